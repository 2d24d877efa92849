"""Where the host's kernel interfaces live. Injectable, so the mount layer can be pointed at synthetic trees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rds_csi.mount.mountinfo import PROC_SELF_MOUNTINFO, DeviceNumber, MountTable, read_mountinfo


@dataclass(frozen=True, slots=True)
class HostPaths:
    """The mount table and process status to read, and the roots of ``/dev`` and ``/sys``."""

    mountinfo: Path = PROC_SELF_MOUNTINFO
    dev: Path = Path("/dev")
    sys: Path = Path("/sys")
    status: Path = Path("/proc/self/status")

    def mount_table(self) -> MountTable:
        return read_mountinfo(self.mountinfo)

    def has_capability(self, bit: int) -> bool:
        """Whether this process holds a capability (``CapEff`` of its status)."""
        return bool(effective_capabilities(self.status.read_text()) >> bit & 1)

    def device_node(self, source: str) -> Path | None:
        """Where a mount source such as ``/dev/nvme0n1`` is under this ``dev`` root; None if it is no /dev path."""
        if not source.startswith("/dev/"):
            return None
        return self.dev / source.removeprefix("/dev/")

    def sysfs_block_device(self, number: DeviceNumber) -> Path:
        """The kernel's directory for a block device number: present exactly while the device exists."""
        return self.sys / "dev" / "block" / str(number)


def effective_capabilities(status: str) -> int:
    """The effective capability mask from ``/proc/<pid>/status`` text; ``ValueError`` when it has none."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == "CapEff":
            return int(value.strip(), 16)
    raise ValueError("no CapEff line in the process status")


HOST = HostPaths()
