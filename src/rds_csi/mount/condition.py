"""Volume condition: is a staged/published volume healthy, and if not, what is wrong with it.

Abnormal when
- the file system went read-only while it should be writable (after errors: ``ro`` or ``emergency_ro`` in the
  super options; or remounted read-only), or ext4 recorded errors: some kernels (6.1 for one) turn an ext4
  read-only after an error without showing it in mountinfo or statvfs, and ``/sys/fs/ext4/<dev>/errors_count`` is
  then the only sign,
- the device under it vanished: the mount's source node is gone from ``/dev`` (or now names another device), or
  its major:minor is gone from ``/sys/dev/block``,
- the mount is stale: it uses another major:minor than the volume's device has now (renumbered after a
  reconnect),
- the file system no longer answers statvfs.
The checks on a mount entry are pure (``assess_mount``); the rest reads the injectable ``/dev`` and ``/sys`` roots.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from rds_csi.mount.host import HOST, HostPaths
from rds_csi.mount.mounter import canonical_path
from rds_csi.mount.mountinfo import DeviceNumber, MountEntry


@dataclass(frozen=True, slots=True)
class VolumeCondition:
    """CSI's VolumeCondition: ``abnormal`` and a message saying why (or that all is well)."""

    abnormal: bool
    message: str


def _condition(problems: list[str], healthy: str) -> VolumeCondition:
    return VolumeCondition(True, "; ".join(problems)) if problems else VolumeCondition(False, healthy)


def assess_mount(
    entry: MountEntry, *, expected_device: DeviceNumber | None = None, readonly_expected: bool = False
) -> tuple[str, ...]:
    """The problems a mount entry shows by itself: read-only state and staleness."""
    problems = []
    if "emergency_ro" in entry.super_options:
        problems.append("the file system went read-only after errors (emergency_ro)")
    elif not readonly_expected and entry.filesystem_read_only and not entry.read_only:
        problems.append("the file system went read-only after errors while mounted read-write")
    elif not readonly_expected and entry.read_only:
        problems.append("the volume is mounted read-only, expected read-write")
    if expected_device is not None and entry.device != expected_device:
        problems.append(
            f"stale mount: it uses device {entry.device} while the volume's device is now {expected_device}"
        )
    return tuple(problems)


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def _device_problems(source: str, number: DeviceNumber, paths: HostPaths) -> list[str]:
    problems = []
    node = paths.device_node(source)
    if node is not None:
        try:
            info = os.stat(node)
        except FileNotFoundError:
            problems.append(f"the device {source} is gone")
        else:
            if not stat.S_ISBLK(info.st_mode):
                problems.append(f"{source} is no longer a block device")
            elif DeviceNumber.from_rdev(info.st_rdev) != number:
                now = DeviceNumber.from_rdev(info.st_rdev)
                problems.append(f"{source} is now device {now}; the mount still uses {number}")
    if not paths.sysfs_block_device(number).exists():
        problems.append(f"device {number} no longer exists (not in sysfs)")
    return problems


_EXT_TYPES = frozenset({"ext2", "ext3", "ext4"})


def _ext4_error_count(number: DeviceNumber, paths: HostPaths) -> int:
    # The kernel names the device's directories after its name (nvme1n1), found through its sysfs link.
    name = os.path.basename(os.path.realpath(paths.sysfs_block_device(number)))
    try:
        return int((paths.sys / "fs" / "ext4" / name / "errors_count").read_text())
    except (OSError, ValueError):
        return 0


def filesystem_condition(
    mount_path: Path,
    *,
    expected_device: DeviceNumber | None = None,
    readonly_expected: bool = False,
    paths: HostPaths = HOST,
) -> VolumeCondition:
    """The condition of the file-system volume mounted at ``mount_path`` (a staging or publish path)."""
    where = canonical_path(mount_path)
    entry = paths.mount_table().at(where)
    if entry is None:
        return VolumeCondition(True, f"nothing is mounted at {where}")
    problems = list(assess_mount(entry, expected_device=expected_device, readonly_expected=readonly_expected))
    problems += _device_problems(entry.source, entry.device, paths)
    if entry.fs_type in _EXT_TYPES and (count := _ext4_error_count(entry.device, paths)):
        problems.append(f"ext4 has recorded {count} error(s) since it was last checked")
    try:
        os.statvfs(where)
    except OSError as exc:
        problems.append(f"the file system does not answer: {_errno_name(exc)} ({exc.strerror})")
    return _condition(problems, f"{entry.fs_type} on {entry.source} is mounted and answers")


def block_condition(
    target: Path, *, expected_device: DeviceNumber | None = None, paths: HostPaths = HOST
) -> VolumeCondition:
    """The condition of a raw block volume published at ``target`` (a bind of the device node)."""
    where = canonical_path(target)
    if paths.mount_table().at(where) is None:
        return VolumeCondition(True, f"nothing is published at {where}")
    try:
        info = os.stat(where)
    except OSError as exc:
        return VolumeCondition(True, f"the published device does not answer: {_errno_name(exc)}")
    if not stat.S_ISBLK(info.st_mode):
        return VolumeCondition(True, f"{where} does not show a block device")
    number = DeviceNumber.from_rdev(info.st_rdev)
    problems = []
    if expected_device is not None and number != expected_device:
        problems.append(f"stale publish: it shows device {number} while the volume's device is now {expected_device}")
    if not paths.sysfs_block_device(number).exists():
        problems.append(f"device {number} no longer exists (not in sysfs)")
    return _condition(problems, f"device {number} is published and present")
