"""Tests in this directory need the real kernel NVMe/TCP stack: they run only inside the test VM
(tests/e2e/test_in_guest.py boots it and runs them there)."""

from __future__ import annotations

import os
import tempfile

IN_GUEST = os.environ.get("RDS_CSI_IN_GUEST") == "1"

collect_ignore_glob = [] if IN_GUEST else ["test_*.py"]

if IN_GUEST:
    # The host's file systems arrive over 9p, which cannot hold unix sockets: temp dirs go to the guest's tmpfs.
    os.environ["TMPDIR"] = os.environ["RDS_CSI_GUEST_SCRATCH"]
    tempfile.tempdir = None
