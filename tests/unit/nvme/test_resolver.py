"""The NQN resolver: hits while the remembered subsystem still carries the NQN, a full scan on a miss or a stale
entry (renumbering), uevents that keep the cache fresh; over both scanner backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rds_csi._native import SysfsScanner, available_sysfs_scanners
from rds_csi.nvme import NamespaceResolver, ResolverStats, Uevent
from tests.nvme_sysfs import SysfsTree

NQN_A = "nqn.2000-02.com.mikrotik:pvc-a"
NQN_B = "nqn.2000-02.com.mikrotik:pvc-b"


@pytest.fixture(params=[pytest.param(name, id=name) for name in ("python", "cython")])
def scanner(request: pytest.FixtureRequest) -> SysfsScanner:
    scanners: dict[str, Any] = available_sysfs_scanners()
    if request.param not in scanners:
        pytest.skip("Cython extension not built or disabled")
    found: SysfsScanner = scanners[request.param]
    return found


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return SysfsTree(tmp_path / "sys")


@pytest.fixture
def resolver(tree: SysfsTree, scanner: SysfsScanner) -> NamespaceResolver:
    return NamespaceResolver(tree.root, scanner)


def test_first_lookup_scans_and_later_ones_hit(tree: SysfsTree, resolver: NamespaceResolver) -> None:
    tree.connect(NQN_A)
    tree.connect(NQN_B)

    first = resolver.lookup(NQN_B)
    second = resolver.lookup(NQN_B)

    assert first is not None
    assert first == second
    assert first.name == "nvme-subsys1"
    assert resolver.stats() == ResolverStats(hits=1, misses=1, stale=0)


def test_nothing_connected_is_none_and_not_remembered(tree: SysfsTree, resolver: NamespaceResolver) -> None:
    assert resolver.lookup(NQN_A) is None
    assert resolver.lookup(NQN_A) is None
    assert resolver.stats() == ResolverStats(hits=0, misses=2, stale=0)
    assert resolver.cached() == {}


def test_a_hit_reads_the_current_state_not_a_copy(tree: SysfsTree, resolver: NamespaceResolver) -> None:
    subsystem = tree.connect(NQN_A)
    resolver.lookup(NQN_A)
    tree.set_state(subsystem.controllers[0], "connecting")
    tree.set_size(subsystem, 8 << 30)

    found = resolver.lookup(NQN_A)

    assert found is not None
    assert (found.controllers[0].state, found.namespaces[0].size_bytes) == ("connecting", 8 << 30)
    assert resolver.stats().hits == 1


def test_renumbered_subsystem_is_found_again_by_a_scan(tree: SysfsTree, resolver: NamespaceResolver) -> None:
    tree.connect(NQN_A)
    assert resolver.lookup(NQN_A) is not None  # remembered as nvme-subsys0
    # A reconnect: A goes, B takes nvme-subsys0/nvme0, A comes back as nvme-subsys1/nvme1.
    tree.remove_subsystem(0)
    tree.connect(NQN_B)
    tree.connect(NQN_A)

    found = resolver.lookup(NQN_A)

    assert found is not None
    assert (found.name, found.controllers[0].name, found.namespaces[0].name) == ("nvme-subsys1", "nvme1", "nvme1n1")
    assert resolver.stats() == ResolverStats(hits=0, misses=1, stale=1)
    assert resolver.cached() == {NQN_A: "nvme-subsys1"}


def test_vanished_subsystem_is_a_stale_entry_then_none(tree: SysfsTree, resolver: NamespaceResolver) -> None:
    tree.connect(NQN_A)
    resolver.lookup(NQN_A)
    tree.remove_subsystem(0)

    assert resolver.lookup(NQN_A) is None
    assert resolver.stats().stale == 1
    assert resolver.cached() == {}


def test_add_uevent_makes_the_first_lookup_after_a_connect_a_hit(tree: SysfsTree, resolver: NamespaceResolver) -> None:
    tree.connect(NQN_A)
    subsystem = tree.connect(NQN_B)

    resolver.observe(Uevent("add", "nvme-subsystem", subsystem.name))
    found = resolver.lookup(NQN_B)

    assert found is not None
    assert found.name == subsystem.name
    assert resolver.stats() == ResolverStats(hits=1, misses=0, stale=0)


def test_remove_uevent_drops_the_entry(tree: SysfsTree, resolver: NamespaceResolver) -> None:
    tree.connect(NQN_A)
    tree.connect(NQN_B)
    resolver.subsystems()
    assert resolver.cached() == {NQN_A: "nvme-subsys0", NQN_B: "nvme-subsys1"}

    resolver.observe(Uevent("remove", "nvme-subsystem", "nvme-subsys0"))

    assert resolver.cached() == {NQN_B: "nvme-subsys1"}


@pytest.mark.parametrize(
    "event",
    [
        Uevent("add", "block", "nvme0n1"),  # another class: the cache is keyed by subsystem
        Uevent("remove", "nvme", "nvme0"),
        Uevent("change", "nvme-subsystem", "nvme-subsys0"),
        Uevent("add", "nvme-subsystem", "nvme-subsys7"),  # gone again before it could be read
    ],
)
def test_other_uevents_leave_the_cache_alone(tree: SysfsTree, resolver: NamespaceResolver, event: Uevent) -> None:
    tree.connect(NQN_A)
    resolver.lookup(NQN_A)

    resolver.observe(event)

    assert resolver.cached() == {NQN_A: "nvme-subsys0"}


def test_forget_drops_one_entry(tree: SysfsTree, resolver: NamespaceResolver) -> None:
    tree.connect(NQN_A)
    tree.connect(NQN_B)
    resolver.subsystems()

    resolver.forget(NQN_A)

    assert resolver.cached() == {NQN_B: "nvme-subsys1"}
