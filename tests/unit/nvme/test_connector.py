"""Connect, wait for the device, disconnect and clean up, against a fake kernel that answers as the VM's did and
changes a synthetic sysfs tree (and device nodes) as the kernel would. The real kernel: tests/e2e/guest."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.core.clock import ManualClock
from rds_csi.nvme import Connection, FabricsTarget, HostIdentity, NamespaceResolver, NvmeConnector
from tests.nvme_sysfs import FakeNvmeKernel, SysfsTree, Target

# Device nodes (mknod) for the readiness check; rds_csi.nvme loads the native scanner and ioctls.
pytestmark = [pytest.mark.root, pytest.mark.native]

PREFIX = "nqn.2000-02.com.mikrotik:"
NQN = PREFIX + "pvc-1"
OTHER = PREFIX + "pvc-2"
FOREIGN = "nqn.2014-08.com.example:boot-disk"
HOST = HostIdentity(
    "nqn.2014-08.org.nvmexpress:uuid:5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21", "5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21"
)
GIB = 1 << 30
TARGET = FabricsTarget(nqn=NQN, address="10.0.0.5", port=4420, ctrl_loss_tmo=-1, reconnect_delay=5)


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    if os.geteuid() != 0:
        pytest.skip("needs root to make device nodes")
    return SysfsTree(tmp_path / "sys", dev_root=tmp_path / "dev")


@pytest.fixture
def kernel(tree: SysfsTree) -> FakeNvmeKernel:
    fake = FakeNvmeKernel(tree)
    for nqn in (NQN, OTHER):
        fake.export(Target(nqn, "10.0.0.5", 4420, size_bytes=2 * GIB))
    return fake


class SteppingClock(ManualClock):
    """Virtual time for code polling on the test's own thread: a sleep moves the clock itself (a ManualClock's
    sleep waits for another thread to advance it, and no other thread runs here)."""

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)


@pytest.fixture
def clock() -> ManualClock:
    return SteppingClock()


def make_connector(
    kernel: FakeNvmeKernel, clock: ManualClock, resolve: Callable[[str], str] | None = None
) -> NvmeConnector:
    assert kernel.tree.dev_root is not None
    return NvmeConnector(
        kernel,
        NamespaceResolver(kernel.tree.root),
        HOST,
        PREFIX,
        clock,
        dev_root=kernel.tree.dev_root,
        resolve_address=resolve or (lambda host: host),
    )


@pytest.fixture
def connector(kernel: FakeNvmeKernel, clock: ManualClock) -> NvmeConnector:
    return make_connector(kernel, clock)


# --- connect ------------------------------------------------------------------------------------------------


def test_connect_writes_the_options_once_and_names_the_new_controller(
    connector: NvmeConnector, kernel: FakeNvmeKernel
) -> None:
    kernel.tree.connect(PREFIX + "pvc-0", traddr="10.0.0.6")  # nvme0 is taken

    connection = connector.connect(TARGET)

    assert connection == Connection(NQN, "nvme1", already_connected=False)
    assert kernel.connects == [
        f"nqn={NQN},transport=tcp,traddr=10.0.0.5,trsvcid=4420,hostnqn={HOST.nqn},hostid={HOST.id},"
        "ctrl_loss_tmo=-1,reconnect_delay=5"
    ]


def test_connecting_twice_is_success_with_the_same_controller_and_no_second_write(
    connector: NvmeConnector, kernel: FakeNvmeKernel
) -> None:
    first = connector.connect(TARGET)
    second = connector.connect(TARGET)

    assert second == Connection(NQN, first.controller, already_connected=True)
    assert len(kernel.connects) == 1


@pytest.mark.parametrize("state", ["connecting", "resetting"])
def test_a_connection_the_kernel_is_reestablishing_is_left_to_it(
    connector: NvmeConnector, kernel: FakeNvmeKernel, state: str
) -> None:
    subsystem = kernel.tree.connect(NQN, traddr="10.0.0.5", state=state)

    assert connector.connect(TARGET) == Connection(NQN, f"nvme{subsystem.controllers[0]}", already_connected=True)
    assert kernel.connects == []


def test_a_deleting_controller_does_not_count_and_a_new_one_is_made(
    connector: NvmeConnector, kernel: FakeNvmeKernel
) -> None:
    kernel.tree.connect(NQN, traddr="10.0.0.5", state="deleting")

    assert connector.connect(TARGET) == Connection(NQN, "nvme1", already_connected=False)


def test_ealready_from_a_racing_connect_is_success_with_the_winners_controller(
    kernel: FakeNvmeKernel, clock: ManualClock
) -> None:
    class RacedKernel(FakeNvmeKernel):
        def connect(self, options: str) -> str:
            super().connect(options)  # the other caller's connect lands first...
            return super().connect(options)  # ...so ours is the duplicate

    raced = RacedKernel(kernel.tree)
    raced.targets = kernel.targets

    assert make_connector(raced, clock).connect(TARGET) == Connection(NQN, "nvme0", already_connected=True)


def test_ealready_with_no_controller_visible_is_unavailable(kernel: FakeNvmeKernel, clock: ManualClock) -> None:
    class EarlyKernel(FakeNvmeKernel):
        def connect(self, options: str) -> str:
            raise OSError(errno.EALREADY, os.strerror(errno.EALREADY))

    with pytest.raises(errors.Unavailable, match="already connected"):
        make_connector(EarlyKernel(kernel.tree), clock).connect(TARGET)


@pytest.mark.parametrize(
    ("target", "kind", "says"),
    [
        (FabricsTarget(nqn=PREFIX + "not-exported", address="10.0.0.5"), errors.FailedPrecondition, "not exported"),
        (FabricsTarget(nqn=NQN, address="10.0.0.5", port=4421), errors.Unavailable, "ECONNREFUSED"),
    ],
)
def test_a_refused_connect_is_a_domain_error_and_changes_nothing(
    connector: NvmeConnector, kernel: FakeNvmeKernel, target: FabricsTarget, kind: type[Exception], says: str
) -> None:
    with pytest.raises(kind, match=says):
        connector.connect(target)
    assert kernel.tree.subsystems == {}


def test_a_host_the_target_does_not_allow_is_failed_precondition(tree: SysfsTree, clock: ManualClock) -> None:
    kernel = FakeNvmeKernel(tree)
    kernel.export(Target(NQN, "10.0.0.5", 4420, allowed_hosts=frozenset({"nqn.2014-08.com.example:other"})))

    with pytest.raises(errors.FailedPrecondition, match=f"host {HOST.nqn} is not allowed"):
        make_connector(kernel, clock).connect(TARGET)


def test_an_nqn_outside_the_managed_prefix_is_never_connected(connector: NvmeConnector, kernel: FakeNvmeKernel) -> None:
    with pytest.raises(errors.InvalidArgument, match="managed prefix"):
        connector.connect(FabricsTarget(nqn=FOREIGN, address="10.0.0.5"))
    assert kernel.connects == []


def test_a_host_name_is_connected_by_the_address_it_resolves_to(kernel: FakeNvmeKernel, clock: ManualClock) -> None:
    connector = make_connector(kernel, clock, resolve={"rds.example.net": "10.0.0.5"}.__getitem__)

    connector.connect(FabricsTarget(nqn=NQN, address="rds.example.net"))

    assert ",traddr=10.0.0.5," in kernel.connects[0]


# --- waiting for the device ---------------------------------------------------------------------------------


def test_the_device_is_returned_once_registered_with_its_size(connector: NvmeConnector, clock: ManualClock) -> None:
    connector.connect(TARGET)

    namespace = connector.wait_for_device(NQN, deadline=clock.now() + 5)

    assert (namespace.name, namespace.size_bytes) == ("nvme0n1", 2 * GIB)


def test_a_namespace_reading_size_zero_is_waited_for_until_it_has_its_size(
    kernel: FakeNvmeKernel, tree: SysfsTree
) -> None:
    kernel.namespace_size_on_connect = 0
    polls = []

    class SizeArrives(SteppingClock):
        def sleep(self, seconds: float) -> None:
            polls.append(seconds)
            if len(polls) == 3:  # the kernel finishes its namespace scan while we wait
                tree.set_size(tree.subsystems[0], 2 * GIB)
            super().sleep(seconds)

    clock = SizeArrives()
    connector = make_connector(kernel, clock)
    connector.connect(TARGET)

    assert connector.wait_for_device(NQN, deadline=clock.now() + 5).size_bytes == 2 * GIB
    assert len(polls) == 3


def test_a_device_still_size_zero_at_the_deadline_is_deadline_exceeded_and_stays_connected(
    kernel: FakeNvmeKernel, clock: ManualClock
) -> None:
    kernel.namespace_size_on_connect = 0
    connector = make_connector(kernel, clock)
    connector.connect(TARGET)
    started = clock.now()

    with pytest.raises(errors.DeadlineExceeded, match=r"nvme0n1 .* still reads size 0") as info:
        connector.wait_for_device(NQN, deadline=started + 2)

    assert info.value.retryable
    assert clock.now() == pytest.approx(started + 2)
    assert kernel.deleted == []  # never torn down: the retry continues where the kernel is


def test_a_device_node_that_is_missing_or_another_device_is_not_ready(
    connector: NvmeConnector, tree: SysfsTree, clock: ManualClock
) -> None:
    connector.connect(TARGET)
    assert tree.dev_root is not None
    node = tree.dev_root / "nvme0n1"
    node.unlink()
    os.mknod(node, 0o600 | 0o060000, os.makedev(259, 99))  # S_IFBLK of another minor

    with pytest.raises(errors.DeadlineExceeded, match="is not \\(yet\\) the block device 259:1"):
        connector.wait_for_device(NQN, deadline=clock.now() + 1)


def test_nothing_connected_at_the_deadline_says_so(connector: NvmeConnector, clock: ManualClock) -> None:
    with pytest.raises(errors.DeadlineExceeded, match=f"no subsystem carries {NQN}"):
        connector.wait_for_device(NQN, deadline=clock.now() + 1)


# --- disconnect ---------------------------------------------------------------------------------------------


def test_disconnect_flushes_the_device_then_deletes_every_controller(
    connector: NvmeConnector, kernel: FakeNvmeKernel, tree: SysfsTree
) -> None:
    tree.connect(NQN, paths=2, traddr="10.0.0.5")

    assert connector.disconnect(NQN) == ("nvme0", "nvme1")

    assert kernel.flushed == ["nvme0n1"]
    assert kernel.deleted == ["nvme0", "nvme1"]
    assert tree.subsystems == {}


def test_disconnecting_what_is_not_connected_is_success(connector: NvmeConnector, kernel: FakeNvmeKernel) -> None:
    connector.connect(TARGET)
    assert connector.disconnect(NQN) == ("nvme0",)

    assert connector.disconnect(NQN) == ()
    assert kernel.deleted == ["nvme0"]


def test_a_foreign_nqn_is_refused_and_never_touched(
    connector: NvmeConnector, kernel: FakeNvmeKernel, tree: SysfsTree
) -> None:
    tree.connect(FOREIGN)

    with pytest.raises(errors.FailedPrecondition, match="never disconnects"):
        connector.disconnect(FOREIGN)

    assert (kernel.flushed, kernel.deleted, len(tree.subsystems)) == ([], [], 1)


def test_a_device_in_use_is_failed_precondition_and_stays_connected(
    connector: NvmeConnector, kernel: FakeNvmeKernel, tree: SysfsTree
) -> None:
    connector.connect(TARGET)
    kernel.held.add("nvme0n1")

    with pytest.raises(errors.FailedPrecondition, match="in use"):
        connector.disconnect(NQN)

    assert kernel.deleted == []
    assert len(tree.controllers) == 1


def test_a_failing_write_back_is_unavailable_and_stays_connected(
    connector: NvmeConnector, kernel: FakeNvmeKernel, tree: SysfsTree
) -> None:
    connector.connect(TARGET)
    kernel.flush_error = errno.EIO

    with pytest.raises(errors.Unavailable, match="retrying may succeed"):
        connector.disconnect(NQN)

    assert len(tree.controllers) == 1


def test_without_a_live_path_the_write_back_is_skipped_but_use_is_still_checked(
    connector: NvmeConnector, kernel: FakeNvmeKernel, tree: SysfsTree
) -> None:
    controller = f"nvme{tree.connect(NQN, traddr='10.0.0.5', state='connecting').controllers[0]}"

    assert connector.disconnect(NQN) == (controller,)
    assert kernel.flushed == []

    tree.connect(NQN, traddr="10.0.0.5", state="connecting")
    kernel.held.add(f"nvme{tree.subsystems[0].instance}n1")
    with pytest.raises(errors.FailedPrecondition, match="in use"):
        connector.disconnect(NQN)


def test_a_controller_renumbered_to_another_subsystem_is_not_deleted(
    connector: NvmeConnector, kernel: FakeNvmeKernel, tree: SysfsTree
) -> None:
    tree.connect(NQN, traddr="10.0.0.5")
    connector.connect(TARGET)  # remembered: nvme-subsys0 with nvme0

    class Renumbering(FakeNvmeKernel):
        def flush(self, device: str, *, write_back: bool) -> None:
            # Between the scan and the delete, NQN's controller goes and OTHER's takes the name nvme0.
            tree.remove_subsystem(0)
            tree.connect(OTHER, traddr="10.0.0.5")
            super().flush(f"nvme{tree.subsystems[0].instance}n1", write_back=write_back)

    renumbering = Renumbering(tree)
    connector = NvmeConnector(renumbering, NamespaceResolver(tree.root), HOST, PREFIX, ManualClock())

    assert connector.disconnect(NQN) == ()
    assert [s.nqn for s in tree.subsystems.values()] == [OTHER]


def test_cleanup_disconnects_managed_subsystems_not_in_use_and_never_a_foreign_one(
    connector: NvmeConnector, kernel: FakeNvmeKernel, tree: SysfsTree
) -> None:
    tree.connect(FOREIGN)
    tree.connect(NQN, traddr="10.0.0.5")
    tree.connect(OTHER, traddr="10.0.0.5")
    tree.connect(PREFIX + "pvc-held", traddr="10.0.0.5")
    kernel.held.add("nvme3n1")

    assert connector.disconnect_unused(in_use={NQN}) == [OTHER]

    assert sorted(s.nqn for s in tree.subsystems.values()) == sorted([FOREIGN, NQN, PREFIX + "pvc-held"])
