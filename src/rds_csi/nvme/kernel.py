"""The kernel's NVMe host interfaces the connector writes to: thin I/O, no decisions.

``LinuxNvmeKernel`` speaks to the real ones (every path injectable): the option string goes to ``/dev/nvme-fabrics``
and the reply is read back from the same open file; a controller is deleted by writing ``1`` to its
``delete_controller``; a namespace block device is flushed with ``fsync`` and ``BLKFLSBUF`` through an exclusive
open, which the kernel refuses (EBUSY) while the device is mounted or held by another device. Failures raise
``OSError`` with the kernel's errno; ``rds_csi.nvme.fabrics`` says what they mean.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Protocol

from rds_csi._native import flush_buffers

DEFAULT_FABRICS = Path("/dev/nvme-fabrics")
DEFAULT_SYSFS = Path("/sys")
DEFAULT_DEV = Path("/dev")


class NvmeKernel(Protocol):
    def connect(self, options: str) -> str:
        """Write ``options`` to /dev/nvme-fabrics and return the kernel's reply (``instance=N,cntlid=M``)."""
        ...

    def delete_controller(self, controller: str, nqn: str) -> bool:
        """Delete ``controller`` (``nvmeM``) if it still belongs to subsystem ``nqn``; False if it does not (any
        more): renumbering may have given the name to another subsystem's controller since it was scanned."""
        ...

    def flush(self, device: str, *, write_back: bool) -> None:
        """Open block device ``device`` (``nvmeNnK``) exclusively, EBUSY while it is in use, and with
        ``write_back`` write back everything buffered for it."""
        ...


class LinuxNvmeKernel:
    def __init__(
        self, fabrics: Path = DEFAULT_FABRICS, sysfs_root: Path = DEFAULT_SYSFS, dev_root: Path = DEFAULT_DEV
    ) -> None:
        self.fabrics = fabrics
        self.sysfs_root = sysfs_root
        self.dev_root = dev_root

    def connect(self, options: str) -> str:
        # One write of the whole string; the kernel answers on the same file description.
        fd = os.open(self.fabrics, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.write(fd, options.encode())
            return os.read(fd, 4096).decode("utf-8", "replace")
        finally:
            os.close(fd)

    def delete_controller(self, controller: str, nqn: str) -> bool:
        directory = self.sysfs_root / "class" / "nvme" / controller
        try:
            if (directory / "subsysnqn").read_text(encoding="utf-8", errors="replace").strip() != nqn:
                return False
            fd = os.open(directory / "delete_controller", os.O_WRONLY | os.O_CLOEXEC)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENODEV):
                return False  # already gone
            raise
        try:
            os.write(fd, b"1")  # synchronous: the controller is gone when the write returns
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENODEV):
                raise
        finally:
            os.close(fd)
        return True

    def flush(self, device: str, *, write_back: bool) -> None:
        fd = os.open(self.dev_root / device, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
        try:
            if write_back:
                os.fsync(fd)
                flush_buffers(fd)
        finally:
            os.close(fd)
