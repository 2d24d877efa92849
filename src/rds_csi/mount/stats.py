"""Capacity figures: bytes and inodes of a mounted file system (statvfs), and the size of a block device."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from rds_csi.core import errors

# _IOR(0x12, 114, size_t): the request number encodes sizeof(size_t), so compute it rather than hard-code 64-bit.
BLKGETSIZE64 = (2 << 30) | (ctypes.sizeof(ctypes.c_size_t) << 16) | (0x12 << 8) | 114


@dataclass(frozen=True, slots=True)
class FilesystemUsage:
    """What NodeGetVolumeStats reports for a mounted volume. ``bytes_available`` is what an unprivileged writer can
    still use (``f_bavail``): the free space less ext4's small reserve for delayed allocation (no root reserve:
    volumes are made with ``-m 0``)."""

    bytes_total: int
    bytes_used: int
    bytes_available: int
    inodes_total: int
    inodes_used: int
    inodes_free: int


def usage_from_statvfs(result: os.statvfs_result) -> FilesystemUsage:
    unit = result.f_frsize or result.f_bsize
    return FilesystemUsage(
        bytes_total=result.f_blocks * unit,
        bytes_used=(result.f_blocks - result.f_bfree) * unit,
        bytes_available=result.f_bavail * unit,
        inodes_total=result.f_files,
        inodes_used=result.f_files - result.f_ffree,
        inodes_free=result.f_ffree,
    )


def filesystem_usage(path: Path) -> FilesystemUsage:
    """statvfs of the file system mounted at ``path``. A missing path is ``NotFound``; a file system that does not
    answer (EIO from a dead device) is ``Unavailable``."""
    try:
        return usage_from_statvfs(os.statvfs(path))
    except FileNotFoundError:
        raise errors.NotFound(f"{path} does not exist") from None
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        raise errors.Unavailable(f"statvfs of {path} failed: {code} ({exc.strerror})") from None


def block_device_size(device: Path) -> int:
    """The size in bytes of a block device (BLKGETSIZE64). Swappable for the native ioctl helper: it is the only
    place that asks. A path that is not a block device is ``FailedPrecondition``."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise errors.FailedPrecondition(f"device {device} does not exist") from None
    try:
        answer = fcntl.ioctl(fd, BLKGETSIZE64, bytes(8))
    except OSError as exc:
        if exc.errno == errno.ENOTTY:
            raise errors.FailedPrecondition(f"{device} is not a block device") from None
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        raise errors.Internal(f"reading the size of {device} failed: {code} ({exc.strerror})") from None
    finally:
        os.close(fd)
    size: int = struct.unpack("=Q", answer)[0]
    return size
