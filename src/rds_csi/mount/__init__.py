"""The node's file-system side: mountinfo parsing, safe format, mount/bind/unmount, stats, condition, grow.

- ``read_mountinfo(path)`` / ``parse_mountinfo(text)`` -> ``MountTable`` of ``MountEntry``; queries ``at``,
  ``containing``, ``from_device``, ``from_source``, ``under``, ``binds_of``, ``is_mount_point``.
- ``ensure_filesystem(device, fs_type)``: format only a device blkid positively reports blank; refuse
  (``errors.FormatRefused``) on any doubt or any other content; never reformat. ``probe_device`` is the probe alone.
- ``CommandRunner`` / ``SubprocessRunner``: how external tools run (injectable for failure tests).
"""

from __future__ import annotations

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
from rds_csi.mount.runner import TOOL_ENVIRONMENT, CommandRunner, CommandTimeout, Completed, SubprocessRunner

__all__ = [
    "MKFS_TIMEOUT_SECONDS",
    "PROBE_TIMEOUT_SECONDS",
    "PROC_SELF_MOUNTINFO",
    "TOOL_ENVIRONMENT",
    "CommandRunner",
    "CommandTimeout",
    "Completed",
    "DeviceNumber",
    "FormatOutcome",
    "FsType",
    "MountEntry",
    "MountTable",
    "Signature",
    "SubprocessRunner",
    "classify_blkid",
    "ensure_filesystem",
    "mkfs_command",
    "needs_format",
    "parse_mountinfo",
    "parse_mountinfo_line",
    "probe_device",
    "read_mountinfo",
    "unescape",
]
