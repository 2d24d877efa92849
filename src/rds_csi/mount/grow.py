"""Online grow of a mounted file system to the size of its (already grown) device.

ext4/ext3: ``resize2fs DEVICE`` (online through the kernel while mounted); xfs: ``xfs_growfs MOUNTPOINT`` (xfs grows
only mounted). Both grow to the device size and succeed doing nothing when the file system already fills it, so a
retried expand is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rds_csi.core import errors
from rds_csi.core.deadlines import time_left
from rds_csi.mount.format import FsType
from rds_csi.mount.host import HOST, HostPaths
from rds_csi.mount.mounter import canonical_path, device_number
from rds_csi.mount.runner import CommandRunner, CommandTimeout, SubprocessRunner
from rds_csi.mount.stats import block_device_size, filesystem_usage
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

GROW_TIMEOUT_SECONDS = 120.0
# The kernel's online ext4 resize checks it (ext4_resize_begin); a container given only CAP_SYS_ADMIN lacks it.
CAP_SYS_RESOURCE = 24


@dataclass(frozen=True, slots=True)
class GrowResult:
    """Sizes measured after the grow: the device's, and the file system's before and after (statvfs total)."""

    device_bytes: int
    filesystem_bytes_before: int
    filesystem_bytes: int


def grow_command(fs_type: FsType, device: Path, mount_point: str) -> list[str]:
    if fs_type is FsType.XFS:
        return ["xfs_growfs", mount_point]
    return ["resize2fs", str(device)]


def grow_filesystem(
    device: Path,
    mount_path: Path,
    *,
    runner: CommandRunner | None = None,
    timeout: float = GROW_TIMEOUT_SECONDS,
    paths: HostPaths = HOST,
    device_size: Callable[[Path], int] = block_device_size,
) -> GrowResult:
    """Grow the file system mounted at ``mount_path`` from ``device`` to fill the device, and measure it.

    Nothing mounted there: ``FailedPrecondition`` (online grow needs the mount); mounted from another device:
    ``MountConflict``; the tool failing: ``Internal``; running out of time: ``DeadlineExceeded`` (retry-safe).
    """
    where = canonical_path(mount_path)
    entry = paths.mount_table().at(where)
    if entry is None:
        raise errors.FailedPrecondition(f"nothing is mounted at {where}; an online grow needs the mounted file system")
    number = device_number(device)
    if entry.device != number:
        raise errors.MountConflict(where, f"is mounted from {entry.source} ({entry.device}), not from {device}")
    try:
        fs_type = FsType(entry.fs_type)
    except ValueError:
        raise errors.FailedPrecondition(f"{where} holds {entry.fs_type}, which this driver does not grow") from None
    before = filesystem_usage(Path(where)).bytes_total
    argv = grow_command(fs_type, device, where)
    try:
        result = (runner or SubprocessRunner()).run(argv, timeout=time_left(timeout))
    except CommandTimeout as exc:
        raise errors.DeadlineExceeded(f"{argv[0]} on {where} did not finish within {exc.timeout:g}s") from None
    except OSError as exc:
        raise errors.Internal(f"{argv[0]} could not run: {exc.strerror}") from None
    if result.returncode != 0:
        # Both tools print a banner or progress on stderr even when they succeed; only the status decides.
        detail = " / ".join(line.strip() for line in result.stderr.splitlines() if line.strip())
        failure = f"{argv[0]} on {where} failed with exit status {result.returncode}: {detail}"
        if fs_type is not FsType.XFS and not paths.has_capability(CAP_SYS_RESOURCE):
            raise errors.FailedPrecondition(
                f"{failure}; online ext4 resize needs CAP_SYS_RESOURCE, which the node plugin lacks (run it privileged)"
            )
        raise errors.Internal(failure)
    grown = GrowResult(
        device_bytes=device_size(device),
        filesystem_bytes_before=before,
        filesystem_bytes=filesystem_usage(Path(where)).bytes_total,
    )
    log_event(
        _log,
        "mount.grow",
        device=str(device),
        target=where,
        fs_type=fs_type.value,
        device_bytes=grown.device_bytes,
        before=grown.filesystem_bytes_before,
        after=grown.filesystem_bytes,
    )
    return grown
