"""Native hot paths with pure-Python twins; this module alone decides which implementation is used.

``RDS_CSI_NO_EXTENSIONS=1`` (or ``true``/``yes``) forces the pure twins; otherwise the compiled Cython modules
are used when they all import, and the twins when any does not (no compiler at install time, or a build failure):
one process never mixes the two, so ``BACKEND`` names what runs.

The components: ``AttachmentTable`` (the controller's attachment state), the NVMe sysfs scanner
(``find_subsystem``, ``read_subsystem``, ``list_subsystems``) and the block/NVMe ioctls (``block_size_bytes``,
``flush_buffers``, ``namespace_id``, ``rescan_controller``).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Final

from rds_csi._native import attachment_table_py, ioctls_py, sysfs_scan_py
from rds_csi._native.sysfs_types import NvmeController, NvmeNamespace, NvmeSubsystem, SysfsScanner
from rds_csi._native.types import MAX_NODES, AccessKind, Migration, NodeAttachment, VolumeEntry

__all__ = [
    "BACKEND",
    "MAX_NODES",
    "NO_EXTENSIONS_ENV",
    "AccessKind",
    "AttachmentTable",
    "Migration",
    "NodeAttachment",
    "NvmeController",
    "NvmeNamespace",
    "NvmeSubsystem",
    "SysfsScanner",
    "VolumeEntry",
    "available_backends",
    "available_ioctls",
    "available_sysfs_scanners",
    "block_size_bytes",
    "extensions_disabled",
    "find_subsystem",
    "flush_buffers",
    "list_subsystems",
    "namespace_id",
    "read_subsystem",
    "rescan_controller",
    "sysfs_scanner",
]

NO_EXTENSIONS_ENV: Final = "RDS_CSI_NO_EXTENSIONS"


def extensions_disabled() -> bool:
    """True when the environment forces the pure-Python twins."""
    return os.environ.get(NO_EXTENSIONS_ENV, "").strip().lower() in {"1", "true", "yes"}


# Per backend, its module for each component.
_BACKENDS: Final[dict[str, dict[str, ModuleType]]] = {
    "python": {"attachment_table": attachment_table_py, "sysfs_scan": sysfs_scan_py, "ioctls": ioctls_py}
}
if not extensions_disabled():
    try:
        from rds_csi._native import attachment_table, ioctls, sysfs_scan
    except ImportError:
        pass
    else:
        _BACKENDS["cython"] = {"attachment_table": attachment_table, "sysfs_scan": sysfs_scan, "ioctls": ioctls}

BACKEND: Final[str] = "cython" if "cython" in _BACKENDS else "python"
_CHOSEN = _BACKENDS[BACKEND]

if TYPE_CHECKING:
    from rds_csi._native.attachment_table_py import AttachmentTable
    from rds_csi._native.ioctls_py import block_size_bytes, flush_buffers, namespace_id, rescan_controller
    from rds_csi._native.sysfs_scan_py import find_subsystem, list_subsystems, read_subsystem
else:
    AttachmentTable = _CHOSEN["attachment_table"].AttachmentTable
    find_subsystem = _CHOSEN["sysfs_scan"].find_subsystem
    read_subsystem = _CHOSEN["sysfs_scan"].read_subsystem
    list_subsystems = _CHOSEN["sysfs_scan"].list_subsystems
    block_size_bytes = _CHOSEN["ioctls"].block_size_bytes
    flush_buffers = _CHOSEN["ioctls"].flush_buffers
    namespace_id = _CHOSEN["ioctls"].namespace_id
    rescan_controller = _CHOSEN["ioctls"].rescan_controller


def _component(name: str) -> dict[str, ModuleType]:
    return {backend: modules[name] for backend, modules in _BACKENDS.items()}


def available_backends() -> dict[str, ModuleType]:
    """Attachment table modules usable in this process, by backend name (``"python"`` always, ``"cython"`` if
    built and not disabled); each has the same ``AttachmentTable``."""
    return _component("attachment_table")


def available_sysfs_scanners() -> dict[str, SysfsScanner]:
    """NVMe sysfs scanner modules usable in this process, by backend name; each offers ``SysfsScanner``."""
    return dict(_component("sysfs_scan"))


def available_ioctls() -> dict[str, ModuleType]:
    """Block/NVMe ioctl modules usable in this process, by backend name; each has the same four helpers."""
    return _component("ioctls")


def sysfs_scanner() -> SysfsScanner:
    """The scanner module this process uses (``BACKEND``'s)."""
    scanner: SysfsScanner = _CHOSEN["sysfs_scan"]
    return scanner
