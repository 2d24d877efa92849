"""The host side of NVMe/TCP for tests that run inside the VM: connect, find the block device, disconnect.

Deliberately minimal and test-only (the node plugin's own connect path is its own module); it speaks the kernel's
interfaces directly: the option string written to /dev/nvme-fabrics and the sysfs tree under /sys/class/nvme*.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

FABRICS = Path("/dev/nvme-fabrics")
NVME_CLASS = Path("/sys/class/nvme")
SUBSYSTEM_CLASS = Path("/sys/class/nvme-subsystem")
_NAMESPACE_RE = re.compile(r"^nvme\d+n\d+$")


@dataclass(frozen=True, slots=True)
class Connection:
    controller: str  # nvmeN
    nqn: str

    def block_device(self, timeout: float = 10.0) -> str:
        """The namespace's block device name (``nvme0n1``), once the kernel has scanned it."""
        deadline = time.monotonic() + timeout
        while True:
            for directory in (*_subsystem_dirs(self.nqn), NVME_CLASS / self.controller):
                names = sorted(n for n in _listdir(directory) if _NAMESPACE_RE.match(n))
                if names:
                    return names[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no namespace of {self.nqn} appeared")
            time.sleep(0.05)

    def disconnect(self) -> None:
        (NVME_CLASS / self.controller / "delete_controller").write_text("1")


def connect(nqn: str, host_nqn: str, port: int, address: str = "127.0.0.1") -> Connection:
    """Connect; ``OSError`` when the target refuses (unknown subsystem, host not allowed)."""
    options = f"nqn={nqn},transport=tcp,traddr={address},trsvcid={port},hostnqn={host_nqn},ctrl_loss_tmo=0"
    fd = os.open(FABRICS, os.O_RDWR)
    try:
        os.write(fd, options.encode())
        reply = os.read(fd, 4096).decode()
    finally:
        os.close(fd)
    fields = dict(part.split("=", 1) for part in reply.strip().split(","))
    return Connection(controller=f"nvme{fields['instance']}", nqn=nqn)


def device_bytes(name: str) -> int:
    return int(Path(f"/sys/block/{name}/size").read_text()) * 512


def wait_for_size(name: str, size: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (current := device_bytes(name)) != size and time.monotonic() < deadline:
        time.sleep(0.05)
    return current


def connected_nqns() -> set[str]:
    return {(NVME_CLASS / c / "subsysnqn").read_text().strip() for c in _listdir(NVME_CLASS)}


def _subsystem_dirs(nqn: str) -> list[Path]:
    return [
        SUBSYSTEM_CLASS / s
        for s in _listdir(SUBSYSTEM_CLASS)
        if (SUBSYSTEM_CLASS / s / "subsysnqn").read_text().strip() == nqn
    ]


def _listdir(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []
