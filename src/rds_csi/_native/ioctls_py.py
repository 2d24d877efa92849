"""Pure-Python block and NVMe ioctls through ``fcntl.ioctl``: the reference behaviour of ``ioctls`` (Cython).

Each helper takes an open file descriptor and raises ``OSError`` with the kernel's errno on failure. The request
numbers are the asm-generic ``_IO``/``_IOR`` encodings (x86, arm, riscv and most others), the values the kernel's
<linux/fs.h> and <linux/nvme_ioctl.h> define there; the Cython module takes them from those headers.
"""

from __future__ import annotations

import fcntl
import struct

_U64 = struct.Struct("=Q")


def _io(kind: int, number: int, size: int = 0, read: bool = False) -> int:
    return ((2 if read else 0) << 30) | (size << 16) | (kind << 8) | number


BLKGETSIZE64 = _io(0x12, 114, struct.calcsize("N"), read=True)
BLKFLSBUF = _io(0x12, 97)
NVME_IOCTL_ID = _io(ord("N"), 0x40)
NVME_IOCTL_RESCAN = _io(ord("N"), 0x46)


def check_fd(fd: object) -> int:
    if not isinstance(fd, int) or isinstance(fd, bool):
        raise TypeError(f"fd must be an int, not {type(fd).__name__}")
    if fd < 0 or fd > 0x7FFFFFFF:
        raise ValueError(f"fd must be an open file descriptor, got {fd}")
    return fd


def block_size_bytes(fd: int) -> int:
    """The size of the block device open on ``fd``, in bytes (BLKGETSIZE64)."""
    reply = fcntl.ioctl(check_fd(fd), BLKGETSIZE64, bytes(_U64.size))
    size: int = _U64.unpack(reply)[0]
    return size


def flush_buffers(fd: int) -> None:
    """Write back and drop the block device's buffer cache (BLKFLSBUF; needs CAP_SYS_ADMIN)."""
    fcntl.ioctl(check_fd(fd), BLKFLSBUF)


def namespace_id(fd: int) -> int:
    """The NVMe namespace id of the namespace block device open on ``fd`` (NVME_IOCTL_ID)."""
    return fcntl.ioctl(check_fd(fd), NVME_IOCTL_ID)


def rescan_controller(fd: int) -> None:
    """Make the NVMe controller open on ``fd`` (``/dev/nvmeM``) rescan its namespaces: sizes, new or gone ones
    (NVME_IOCTL_RESCAN)."""
    fcntl.ioctl(check_fd(fd), NVME_IOCTL_RESCAN)
