"""rds-csi: a Kubernetes CSI driver for MikroTik ROSE Data Server block storage over NVMe/TCP."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DEFAULT_DRIVER_NAME = "rds.csi.srvlab.io"

try:
    __version__ = version("rds-csi")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
