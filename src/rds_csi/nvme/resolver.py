"""From a subsystem NQN to its namespace block device, through sysfs, with a cache kept fresh by kernel uevents.

The cache maps an NQN to the subsystem directory name (``nvme-subsysN``) it was last seen under. Every lookup
re-reads that one subsystem (its ``subsysnqn`` first), so an answer is never older than the call: a name that no
longer carries the NQN (renumbering: the volume reconnected as ``nvme-subsys3`` and another took
``nvme-subsys0``) or that vanished is a stale entry, dropped, and a full scan runs, as it does on a miss. Uevents
only make hits likelier and the cache smaller: a subsystem's ``add`` records its NQN (so the first lookup after a
connect is a hit), its ``remove`` drops it. A lost uevent (the kernel's netlink buffer overflowed, or no monitor
could be opened) therefore costs a scan, never a wrong answer.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from rds_csi._native import NvmeNamespace, NvmeSubsystem, SysfsScanner, sysfs_scanner
from rds_csi.core import errors
from rds_csi.core.clock import Clock
from rds_csi.nvme.kernel import DEFAULT_DEV, DEFAULT_SYSFS

SUBSYSTEM_CLASS = "nvme-subsystem"
"""The uevent subsystem of ``/sys/class/nvme-subsystem`` entries: the only events the cache needs."""


@dataclass(frozen=True, slots=True)
class Uevent:
    """What the resolver needs of a kernel uevent."""

    action: str  # add, remove, change, ...
    subsystem: str  # the device's class: nvme-subsystem, nvme, block, ...
    name: str  # the device's sysfs name: nvme-subsys0, nvme3, nvme0n1


@dataclass(frozen=True, slots=True)
class ResolverStats:
    hits: int  # the cached subsystem still carried the NQN
    misses: int  # nothing cached: a full scan
    stale: int  # the cached subsystem had vanished or carried another NQN: dropped, then a full scan


class NamespaceResolver:
    """Thread-safe. ``sysfs_root`` is the sysfs mount; ``scanner`` the implementation (default: ``_native``'s)."""

    def __init__(self, sysfs_root: Path = DEFAULT_SYSFS, scanner: SysfsScanner | None = None) -> None:
        self.sysfs_root = sysfs_root
        self._scanner = scanner or sysfs_scanner()
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}  # nqn -> nvme-subsysN
        self._hits = self._misses = self._stale = 0

    def lookup(self, nqn: str) -> NvmeSubsystem | None:
        """The subsystem carrying ``nqn`` now, with its controllers and namespaces; None if there is none."""
        with self._lock:
            name = self._names.get(nqn)
        if name is not None:
            found = self._scanner.read_subsystem(self.sysfs_root, name, nqn)
            if found is not None:
                with self._lock:
                    self._hits += 1
                return found
            with self._lock:
                self._stale += 1
                if self._names.get(nqn) == name:
                    del self._names[nqn]
        else:
            with self._lock:
                self._misses += 1
        found = self._scanner.find_subsystem(self.sysfs_root, nqn)
        if found is not None:
            self._remember(found)
        return found

    def subsystems(self) -> list[NvmeSubsystem]:
        """Every subsystem on the host (a full scan), remembered for later lookups."""
        found = self._scanner.list_subsystems(self.sysfs_root)
        for subsystem in found:
            self._remember(subsystem)
        return found

    def forget(self, nqn: str) -> None:
        with self._lock:
            self._names.pop(nqn, None)

    def observe(self, event: Uevent) -> None:
        """Apply a kernel uevent to the cache (events of other classes are ignored)."""
        if event.subsystem != SUBSYSTEM_CLASS:
            return
        if event.action == "remove":
            with self._lock:
                for nqn in [n for n, name in self._names.items() if name == event.name]:
                    del self._names[nqn]
        elif event.action == "add":
            try:
                nqn = (self.sysfs_root / "class" / SUBSYSTEM_CLASS / event.name / "subsysnqn").read_text().strip()
            except (OSError, UnicodeDecodeError):
                return  # gone again already, or not ours to read: a later lookup scans
            with self._lock:
                self._names[nqn] = event.name

    def stats(self) -> ResolverStats:
        with self._lock:
            return ResolverStats(self._hits, self._misses, self._stale)

    def cached(self) -> dict[str, str]:
        """The cache's NQN -> subsystem name entries (a copy)."""
        with self._lock:
            return dict(self._names)

    def _remember(self, subsystem: NvmeSubsystem) -> None:
        with self._lock:
            self._names[subsystem.nqn] = subsystem.name


def ready_namespace(subsystem: NvmeSubsystem | None, dev_root: Path = DEFAULT_DEV) -> NvmeNamespace | None:
    """The subsystem's block device once it can be used: registered (``dev``), a non-zero size (a namespace can
    read 0 right after a connect), and its node in ``dev_root`` a block device of that major:minor."""
    if subsystem is None:
        return None
    for namespace in subsystem.namespaces:
        if namespace.size_bytes <= 0:
            continue
        try:
            node = os.stat(dev_root / namespace.name)
        except OSError:
            continue
        if stat.S_ISBLK(node.st_mode) and node.st_rdev == os.makedev(namespace.major, namespace.minor):
            return namespace
    return None


def _not_ready_reason(nqn: str, subsystem: NvmeSubsystem | None, dev_root: Path) -> str:
    if subsystem is None:
        return f"no subsystem carries {nqn} (the connect has not registered it)"
    states = ", ".join(f"{c.name} {c.state}" for c in subsystem.controllers) or "none"
    if not subsystem.namespaces:
        return f"{subsystem.name} ({nqn}) has no namespace block device yet; controllers: {states}"
    namespace = subsystem.namespaces[0]
    if namespace.size_bytes <= 0:
        return f"{namespace.name} ({nqn}) still reads size 0; controllers: {states}"
    return f"{dev_root / namespace.name} is not (yet) the block device {namespace.major}:{namespace.minor}"


def wait_for_namespace(
    resolver: NamespaceResolver,
    nqn: str,
    *,
    deadline: float,
    clock: Clock,
    dev_root: Path = DEFAULT_DEV,
    interval: float = 0.05,
) -> NvmeNamespace:
    """Poll until ``nqn``'s block device is ready (see ``ready_namespace``) or ``deadline`` (``clock`` time) passes.

    Past the deadline: ``DeadlineExceeded`` (retryable) saying what was missing. Nothing is torn down: a retry
    finds the kernel further along.
    """
    while True:
        subsystem = resolver.lookup(nqn)
        namespace = ready_namespace(subsystem, dev_root)
        if namespace is not None:
            return namespace
        now = clock.now()
        if now >= deadline:
            raise errors.DeadlineExceeded(
                f"NVMe namespace not ready in time: {_not_ready_reason(nqn, subsystem, dev_root)}"
            )
        clock.sleep(min(interval, deadline - now))
