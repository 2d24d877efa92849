"""The NVMe sysfs scanner on synthetic trees laid out as the kernel's, run identically over the Cython module and
its pure-Python twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from rds_csi._native import (
    NvmeController,
    NvmeNamespace,
    NvmeSubsystem,
    SysfsScanner,
    available_sysfs_scanners,
)
from tests.nvme_sysfs import SysfsTree
from tests.unit.native.backends import backend_params

pytestmark = pytest.mark.native

NQN = "nqn.2000-02.com.mikrotik:pvc-1"
HOST_NQN = "nqn.2014-08.org.nvmexpress:uuid:5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21"
HOST_ID = "5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21"
GIB = 1 << 30


@pytest.fixture(params=backend_params(available_sysfs_scanners()))
def scanner(request: pytest.FixtureRequest) -> SysfsScanner:
    module: SysfsScanner = request.param
    return module


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return SysfsTree(tmp_path / "sys")


def controller(name: str, state: str = "live", traddr: str = "10.0.0.5", trsvcid: int = 4420) -> NvmeController:
    return NvmeController(
        name=name,
        state=state,
        transport="tcp",
        address=f"traddr={traddr},trsvcid={trsvcid},src_addr=10.0.0.9",
        host_nqn=HOST_NQN,
    )


# --- one subsystem ------------------------------------------------------------------------------------------


def test_connected_subsystem_is_found_with_its_controller_and_block_device(
    scanner: SysfsScanner, tree: SysfsTree
) -> None:
    tree.connect(NQN, size_bytes=4 * GIB)

    found = scanner.find_subsystem(tree.root, NQN)

    assert found == NvmeSubsystem(
        name="nvme-subsys0",
        nqn=NQN,
        controllers=(controller("nvme0"),),
        namespaces=(NvmeNamespace("nvme0n1", 4 * GIB, 259, 1),),  # not the hidden path nvme0c0n1, not ng0n1
    )


def test_without_multipath_the_block_device_under_the_controller_is_found(
    scanner: SysfsScanner, tmp_path: Path
) -> None:
    tree = SysfsTree(tmp_path / "sys", multipath=False)
    tree.connect("nqn.2000-02.com.mikrotik:pvc-0")
    tree.connect(NQN, size_bytes=2 * GIB)

    found = scanner.find_subsystem(tree.root, NQN)

    assert found is not None
    assert (found.name, found.controllers) == ("nvme-subsys1", (controller("nvme1"),))
    assert found.namespaces == (NvmeNamespace("nvme1n1", 2 * GIB, 259, 3),)


def test_two_paths_are_two_controllers_of_one_block_device(scanner: SysfsScanner, tree: SysfsTree) -> None:
    tree.connect(NQN, paths=2)

    found = scanner.find_subsystem(tree.root, NQN)

    assert found is not None
    assert [c.name for c in found.controllers] == ["nvme0", "nvme1"]
    assert [n.name for n in found.namespaces] == ["nvme0n1"]


@pytest.mark.parametrize("state", ["connecting", "resetting", "deleting", "deleting (no IO)", "dead", "new"])
def test_controller_state_is_reported_as_the_kernel_prints_it(
    scanner: SysfsScanner, tree: SysfsTree, state: str
) -> None:
    subsystem = tree.connect(NQN)
    tree.set_state(subsystem.controllers[0], state)

    found = scanner.find_subsystem(tree.root, NQN)

    assert found is not None
    assert found.controllers == (controller("nvme0", state=state),)
    assert len(found.namespaces) == 1  # the head stays while its only path reconnects


def test_namespace_reading_size_zero_is_reported_with_size_zero(scanner: SysfsScanner, tree: SysfsTree) -> None:
    subsystem = tree.connect(NQN)
    tree.set_size(subsystem, 0)

    found = scanner.find_subsystem(tree.root, NQN)

    assert found is not None
    assert found.namespaces[0].size_bytes == 0


@pytest.mark.parametrize(("file", "text"), [("dev", None), ("dev", "259"), ("size", "many"), ("size", None)])
def test_namespace_without_a_valid_dev_or_size_is_not_a_block_device_yet(
    scanner: SysfsScanner, tree: SysfsTree, file: str, text: str | None
) -> None:
    tree.connect(NQN)
    attribute = tree.subsystem_dir(0) / "nvme0n1" / file
    if text is None:
        attribute.unlink()
    else:
        attribute.write_text(text + "\n")

    found = scanner.find_subsystem(tree.root, NQN)

    assert found is not None
    assert (found.controllers, found.namespaces) == ((controller("nvme0"),), ())


def test_controller_deleted_between_listing_and_reading_is_left_out(scanner: SysfsScanner, tree: SysfsTree) -> None:
    subsystem = tree.connect(NQN, paths=2)
    (tree.controller_dir(subsystem.controllers[0]) / "state").unlink()

    found = scanner.find_subsystem(tree.root, NQN)

    assert found is not None
    assert [c.name for c in found.controllers] == ["nvme1"]


# --- many subsystems ----------------------------------------------------------------------------------------


def test_nqn_that_only_prefixes_another_matches_nothing(scanner: SysfsScanner, tree: SysfsTree) -> None:
    tree.connect(NQN + "0")
    tree.connect("x" + NQN)

    assert scanner.find_subsystem(tree.root, NQN) is None
    assert scanner.find_subsystem(tree.root, NQN[:-1]) is None


def test_missing_tree_has_no_subsystems(scanner: SysfsScanner, tmp_path: Path) -> None:
    assert scanner.find_subsystem(tmp_path / "no-nvme-module", NQN) is None
    assert scanner.read_subsystem(tmp_path / "no-nvme-module", "nvme-subsys0", NQN) is None
    assert scanner.list_subsystems(tmp_path / "no-nvme-module") == []


def test_list_is_sorted_by_instance_number_not_text(scanner: SysfsScanner, tree: SysfsTree) -> None:
    for index in range(12):
        tree.connect(f"nqn.2000-02.com.mikrotik:pvc-{index}")

    listed = scanner.list_subsystems(tree.root)

    assert [s.name for s in listed] == [f"nvme-subsys{i}" for i in range(12)]
    assert [s.nqn for s in listed] == [f"nqn.2000-02.com.mikrotik:pvc-{i}" for i in range(12)]


def test_both_backends_report_the_same_tree(tree: SysfsTree) -> None:
    for index in range(6):
        subsystem = tree.connect(f"nqn.2000-02.com.mikrotik:pvc-{index}", size_bytes=(index + 1) * GIB, paths=index % 3)
        if subsystem.controllers and index % 2:
            tree.set_state(subsystem.controllers[-1], "connecting")
    reports = [scanner.list_subsystems(tree.root) for scanner in available_sysfs_scanners().values()]

    assert len(reports[0]) == 6
    assert all(report == reports[0] for report in reports)


@pytest.fixture(scope="module")
def large_tree(tmp_path_factory: pytest.TempPathFactory) -> SysfsTree:
    tree = SysfsTree(tmp_path_factory.mktemp("large") / "sys")
    for index in range(4096):
        tree.connect(f"nqn.2000-02.com.mikrotik:pvc-{index:04d}", size_bytes=GIB + index * 512)
    return tree


@pytest.mark.parametrize("index", [0, 1, 2047, 4095])
def test_any_of_4096_controllers_is_found_by_its_nqn(scanner: SysfsScanner, large_tree: SysfsTree, index: int) -> None:
    found = scanner.find_subsystem(large_tree.root, f"nqn.2000-02.com.mikrotik:pvc-{index:04d}")

    assert found is not None
    assert found.name == f"nvme-subsys{index}"
    assert found.controllers == (controller(f"nvme{index}"),)
    assert found.namespaces == (NvmeNamespace(f"nvme{index}n1", GIB + index * 512, 259, 2 * index + 1),)


def test_all_4096_subsystems_are_listed(scanner: SysfsScanner, large_tree: SysfsTree) -> None:
    listed = scanner.list_subsystems(large_tree.root)

    assert [s.nqn for s in listed] == [f"nqn.2000-02.com.mikrotik:pvc-{i:04d}" for i in range(4096)]


def test_absent_nqn_among_4096_is_none(scanner: SysfsScanner, large_tree: SysfsTree) -> None:
    assert scanner.find_subsystem(large_tree.root, "nqn.2000-02.com.mikrotik:pvc-4096") is None


# --- read_subsystem: the resolver's check of a remembered name ----------------------------------------------


def test_read_subsystem_answers_only_while_the_name_carries_the_nqn(scanner: SysfsScanner, tree: SysfsTree) -> None:
    first = tree.connect(NQN)
    assert scanner.read_subsystem(tree.root, first.name, NQN) == scanner.find_subsystem(tree.root, NQN)

    # Renumbering: NQN disconnects, another volume takes nvme-subsys0, NQN comes back as nvme-subsys1.
    tree.remove_subsystem(first.instance)
    assert scanner.read_subsystem(tree.root, "nvme-subsys0", NQN) is None
    tree.connect("nqn.2000-02.com.mikrotik:pvc-other")
    tree.connect(NQN)

    assert scanner.read_subsystem(tree.root, "nvme-subsys0", NQN) is None
    again = scanner.read_subsystem(tree.root, "nvme-subsys1", NQN)
    assert again is not None
    assert (again.controllers[0].name, again.namespaces[0].name) == ("nvme1", "nvme1n1")


# --- arguments ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../nvme-subsys0", "nvme-subsys0/..", "nvme0", "", "nvme-subsys"])
def test_read_subsystem_name_must_be_one_subsystem_entry(scanner: SysfsScanner, tree: SysfsTree, name: str) -> None:
    with pytest.raises(ValueError, match="nvme-subsysN"):
        scanner.read_subsystem(tree.root, name, NQN)


@pytest.mark.parametrize("nqn", ["", "two\nlines", "nul\x00", "x" * 4096])
def test_nqn_must_be_one_short_line(scanner: SysfsScanner, tree: SysfsTree, nqn: str) -> None:
    with pytest.raises(ValueError, match="nqn"):
        scanner.find_subsystem(tree.root, nqn)


def test_arguments_of_the_wrong_type_are_type_errors(scanner: SysfsScanner, tree: SysfsTree) -> None:
    with pytest.raises(TypeError):
        scanner.find_subsystem(tree.root, NQN.encode())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        scanner.find_subsystem(42, NQN)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        scanner.read_subsystem(tree.root, 0, NQN)  # type: ignore[arg-type]
