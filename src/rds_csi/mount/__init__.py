"""The node's file-system side: mountinfo parsing, safe format, mount/bind/unmount, stats, condition, grow.

- ``read_mountinfo(path)`` / ``parse_mountinfo(text)`` -> ``MountTable`` of ``MountEntry``; queries ``at``,
  ``containing``, ``from_device``, ``from_source``, ``under``, ``binds_of``, ``is_mount_point``.
- ``ensure_filesystem(device, fs_type)``: format only a device blkid positively reports blank; refuse
  (``errors.FormatRefused``) on any doubt or any other content; never reformat. ``probe_device`` is the probe alone.
- ``CommandRunner`` / ``SubprocessRunner``: how external tools run (injectable for failure tests).
- ``parse_mount_flags(mount_flags, readonly=)`` -> ``MountOptions``: a capability's mount flags, validated.
- ``mount_filesystem``, ``bind_mount``, ``bind_block_device``, ``unmount``, ``remove_target``, ``check_mounted``:
  idempotent mount operations through mount(2)/umount2(2) (see ``rds_csi.mount.kernel`` for why not mount(8)).
- ``filesystem_usage(path)`` (statvfs bytes and inodes), ``block_device_size(device)`` (BLKGETSIZE64).
- ``filesystem_condition`` / ``block_condition`` -> ``VolumeCondition``: read-only, vanished, stale, not answering.
- ``grow_filesystem(device, mount_path)`` -> ``GrowResult``: online resize2fs / xfs_growfs, then the sizes measured.
"""

from __future__ import annotations

from rds_csi.mount.condition import VolumeCondition, assess_mount, block_condition, filesystem_condition
from rds_csi.mount.format import (
    MKFS_TIMEOUT_SECONDS,
    PROBE_TIMEOUT_SECONDS,
    FormatOutcome,
    FsType,
    Signature,
    classify_blkid,
    ensure_filesystem,
    mkfs_command,
    needs_format,
    probe_device,
)
from rds_csi.mount.grow import GROW_TIMEOUT_SECONDS, GrowResult, grow_command, grow_filesystem
from rds_csi.mount.host import HOST, HostPaths
from rds_csi.mount.mounter import (
    bind_block_device,
    bind_mount,
    canonical_path,
    check_mounted,
    device_number,
    mount_filesystem,
    remove_target,
    unmount,
)
from rds_csi.mount.mountinfo import (
    PROC_SELF_MOUNTINFO,
    DeviceNumber,
    MountEntry,
    MountTable,
    parse_mountinfo,
    parse_mountinfo_line,
    read_mountinfo,
    unescape,
)
from rds_csi.mount.options import NO_OPTIONS, MountOptions, parse_mount_flags
from rds_csi.mount.runner import TOOL_ENVIRONMENT, CommandRunner, CommandTimeout, Completed, SubprocessRunner
from rds_csi.mount.stats import FilesystemUsage, block_device_size, filesystem_usage, usage_from_statvfs

__all__ = [
    "GROW_TIMEOUT_SECONDS",
    "HOST",
    "MKFS_TIMEOUT_SECONDS",
    "NO_OPTIONS",
    "PROBE_TIMEOUT_SECONDS",
    "PROC_SELF_MOUNTINFO",
    "TOOL_ENVIRONMENT",
    "CommandRunner",
    "CommandTimeout",
    "Completed",
    "DeviceNumber",
    "FilesystemUsage",
    "FormatOutcome",
    "FsType",
    "GrowResult",
    "HostPaths",
    "MountEntry",
    "MountOptions",
    "MountTable",
    "Signature",
    "SubprocessRunner",
    "VolumeCondition",
    "assess_mount",
    "bind_block_device",
    "bind_mount",
    "block_condition",
    "block_device_size",
    "canonical_path",
    "check_mounted",
    "classify_blkid",
    "device_number",
    "ensure_filesystem",
    "filesystem_condition",
    "filesystem_usage",
    "grow_command",
    "grow_filesystem",
    "mkfs_command",
    "mount_filesystem",
    "needs_format",
    "parse_mount_flags",
    "parse_mountinfo",
    "parse_mountinfo_line",
    "probe_device",
    "read_mountinfo",
    "remove_target",
    "unescape",
    "unmount",
    "usage_from_statvfs",
]
