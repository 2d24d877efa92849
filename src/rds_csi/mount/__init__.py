"""The node's file-system side: mountinfo parsing, safe format, mount/bind/unmount, stats, condition, grow.

- ``read_mountinfo(path)`` / ``parse_mountinfo(text)`` -> ``MountTable`` of ``MountEntry``; queries ``at``,
  ``containing``, ``from_device``, ``from_source``, ``under``, ``binds_of``, ``is_mount_point``.
"""

from __future__ import annotations

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

__all__ = [
    "PROC_SELF_MOUNTINFO",
    "DeviceNumber",
    "MountEntry",
    "MountTable",
    "parse_mountinfo",
    "parse_mountinfo_line",
    "read_mountinfo",
    "unescape",
]
