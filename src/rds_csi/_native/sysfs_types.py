"""What the NVMe sysfs scanner reports, shared by the Cython module and its pure-Python twin.

The kernel's layout (read from a 6.1 kernel with native multipath, the Debian default, and the same since 4.15):

- ``<sysfs>/class/nvme-subsystem/nvme-subsysN`` (a symlink into ``devices/virtual/nvme-subsystem``) holds
  ``subsysnqn``, one symlink per controller (``nvmeM -> ../../nvme-fabrics/ctl/nvmeM``) and, with multipath, one
  directory per namespace head, the block device the node uses (``nvmeNnK``: ``size`` in 512-byte sectors and
  ``dev`` as ``major:minor``). ``ngNnK`` (the generic char device) sits next to it and is not a block device.
- ``<sysfs>/class/nvme/nvmeM`` (the same controller directory) holds ``state``, ``transport``, ``address``
  (``traddr=...,trsvcid=...[,src_addr=...]``), ``subsysnqn``, ``hostnqn``, ``hostid`` and the hidden per-path
  devices ``nvmeNcMnK`` (no ``dev``: not openable). Without multipath the namespaces are ``nvmeMnK`` here instead.

Checks raise plain ``TypeError``/``ValueError``: ``_native`` sits below the domain layer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

SECTOR_BYTES = 512
"""sysfs block ``size`` files count 512-byte sectors whatever the device's logical block size."""

_SUBSYSTEM_NAME = re.compile(r"nvme-subsys[0-9]+")


@dataclass(frozen=True, slots=True)
class NvmeController:
    """One controller (a connection to the subsystem); attributes as the kernel prints them, trailing newline cut."""

    name: str  # nvmeM: /sys/class/nvme/nvmeM, /dev/nvmeM
    state: str  # live, connecting, resetting, deleting, deleting (no IO), dead, new
    transport: str  # tcp, rdma, fc, pcie, loop
    address: str  # traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.9 (empty for pcie)
    host_nqn: str  # the host NQN it was connected with


@dataclass(frozen=True, slots=True)
class NvmeNamespace:
    """One namespace block device of the subsystem."""

    name: str  # nvmeNnK: /dev/nvmeNnK
    size_bytes: int
    major: int
    minor: int


@dataclass(frozen=True, slots=True)
class NvmeSubsystem:
    """One subsystem with its controllers and namespace block devices, each sorted by instance number."""

    name: str  # nvme-subsysN
    nqn: str
    controllers: tuple[NvmeController, ...]
    namespaces: tuple[NvmeNamespace, ...]


class SysfsScanner(Protocol):
    """The API both scanner implementations (modules) offer; ``sysfs_root`` is the sysfs mount (``/sys``)."""

    def find_subsystem(self, sysfs_root: str | os.PathLike[str], nqn: str) -> NvmeSubsystem | None:
        """The subsystem whose ``subsysnqn`` is ``nqn``, found by reading every subsystem's; None if none is."""
        ...

    def read_subsystem(self, sysfs_root: str | os.PathLike[str], name: str, nqn: str) -> NvmeSubsystem | None:
        """Subsystem ``name`` if it (still) carries ``nqn``; None when it is gone or now carries another NQN."""
        ...

    def list_subsystems(self, sysfs_root: str | os.PathLike[str]) -> list[NvmeSubsystem]:
        """Every subsystem, sorted by instance number."""
        ...


def check_root(value: object) -> bytes:
    """The sysfs root as a file-system path in bytes."""
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"sysfs_root must be a str or path, not {type(value).__name__}")
    root = os.fsencode(value)
    if not root or b"\x00" in root:
        raise ValueError(f"sysfs_root must be a non-empty path without NUL, got {value!r}")
    return root


def check_nqn(value: object) -> bytes:
    """The NQN to match, in the bytes ``subsysnqn`` holds (at most a page, as sysfs files are)."""
    if not isinstance(value, str):
        raise TypeError(f"nqn must be a str, not {type(value).__name__}")
    encoded = value.encode()
    if not encoded or len(encoded) >= 4096 or any(c in encoded for c in b"\x00\n"):
        raise ValueError(f"nqn must be a non-empty single line shorter than 4096 bytes, got {value[:80]!r}")
    return encoded


def check_subsystem_name(value: object) -> bytes:
    """A subsystem directory name (``nvme-subsysN``), never a path that could leave the class directory."""
    if not isinstance(value, str):
        raise TypeError(f"name must be a str, not {type(value).__name__}")
    if not _SUBSYSTEM_NAME.fullmatch(value):
        raise ValueError(f"name must be nvme-subsysN, got {value[:80]!r}")
    return value.encode()


def instance_key(name: str | bytes) -> tuple[int, ...]:
    """Sort key: the numbers in a device name in order (``nvme2`` before ``nvme10``, ``nvme0n2`` before ``nvme1n1``)."""
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    return tuple(int(number) for number in re.findall(r"[0-9]+", text, re.ASCII))


def sorted_subsystems(subsystems: Iterable[NvmeSubsystem]) -> list[NvmeSubsystem]:
    return sorted(subsystems, key=lambda s: instance_key(s.name))
