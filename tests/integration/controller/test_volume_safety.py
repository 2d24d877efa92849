"""Data safety of volumes on the RDS (issue 10): no shared NQN, no success read from unreadable output, no orphan
left by a failed delete, creates from a source that converge, copies proven whole. Real gRPC over a unix socket,
the simulator over real SSH and REST, faults injected into the simulator, what it received read from its log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from rds_csi.simulator import FaultRule, LoggedCommand
from tests.support import RunningController, SimulatorAccess, start_controller

GiB = 1 << 30
NQN_PREFIX = "nqn.2000-02.com.mikrotik:"
Mode = csi_pb2.VolumeCapability.AccessMode.Mode


def create_request(name: str, size: int = GiB) -> csi_pb2.CreateVolumeRequest:
    capability = csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
    )
    return csi_pb2.CreateVolumeRequest(
        name=name, volume_capabilities=[capability], capacity_range=csi_pb2.CapacityRange(required_bytes=size)
    )


@pytest.fixture(scope="module", params=["ssh", "rest"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def ctl(backend: str, sim: SimulatorAccess, workdir: Path) -> Iterator[RunningController]:
    running = start_controller(sim, backend, workdir / f"{backend}.sock", routeros_command_timeout="2")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def no_faults(sim: SimulatorAccess) -> Iterator[None]:
    sim.simulator.faults.clear_rules()
    sim.simulator.commands.clear()
    yield
    sim.simulator.faults.clear_rules()


def fault(sim: SimulatorAccess, **rule: object) -> None:
    sim.simulator.faults.add_rule(FaultRule(**rule))  # type: ignore[arg-type]


def received(sim: SimulatorAccess, backend: str) -> list[LoggedCommand]:
    return [c for c in sim.simulator.commands.entries() if c.transport == backend]


def disks(sim: SimulatorAccess) -> dict[str, dict[str, object]]:
    return {str(r["slot"]): r for r in sim.simulator.model.disk_records() if r["type"] == "file"}


def files(sim: SimulatorAccess) -> set[str]:
    return {str(r["name"]) for r in sim.simulator.model.file_records() if r["type"] != "directory"}


def delete(ctl: RunningController, volume_id: str) -> None:
    ctl.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id), timeout=30)


def rpc_error(call: object) -> grpc.RpcError:
    """Run ``call`` (a zero-argument callable) and return the gRPC error it must raise."""
    with pytest.raises(grpc.RpcError) as failed:
        call()  # type: ignore[operator]
    return failed.value


# ---- finding 3: two volumes, one NQN ----------------------------------------------------------------------------


def test_a_name_differing_only_in_case_is_already_exists_and_never_a_second_export(
    ctl: RunningController, sim: SimulatorAccess, backend: str
) -> None:
    ctl.controller.CreateVolume(create_request("pvc-case"), timeout=30)
    try:
        assert [c.op for c in received(sim, backend)] == ["print", "add", "print"]  # one read decides a create
        sim.simulator.commands.clear()
        refused = rpc_error(lambda: ctl.controller.CreateVolume(create_request("PVC-CASE"), timeout=30))
        assert refused.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "'pvc-case'" in (refused.details() or "")
        assert [(c.menu, c.op) for c in received(sim, backend)] == [("disk", "print")]  # one read, nothing changed
        assert [d["nvme-tcp-server-nqn"] for d in disks(sim).values()].count(NQN_PREFIX + "pvc-case") == 1
        assert "PVC-CASE" not in disks(sim)
    finally:
        delete(ctl, "pvc-case")
        delete(ctl, "PVC-CASE")


# ---- finding 4: output that is not a success is never taken for one ----------------------------------------------

IMAGE = "storage-pool/metal-csi/{}.img"


@pytest.mark.parametrize("kind", ["garbage", "ignore"])
def test_a_delete_is_ok_only_once_the_disk_and_its_file_are_gone(
    ctl: RunningController, sim: SimulatorAccess, kind: str
) -> None:
    name = f"pvc-del-{kind}"
    ctl.controller.CreateVolume(create_request(name), timeout=30)
    try:
        fault(sim, op="remove", kind=kind)  # every remove answers unreadably, or "succeeds" doing nothing
        failed = rpc_error(lambda: delete(ctl, name))
        assert failed.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
        assert name in disks(sim)
        assert IMAGE.format(name) in files(sim)
    finally:
        sim.simulator.faults.clear_rules()
        delete(ctl, name)
    assert name not in disks(sim)
    assert IMAGE.format(name) not in files(sim)


@pytest.mark.parametrize("kind", ["garbage", "ignore"])
def test_an_expand_is_ok_only_when_the_disk_reads_back_at_the_size_asked_for(
    ctl: RunningController, sim: SimulatorAccess, kind: str
) -> None:
    name = f"pvc-grow-{kind}"
    ctl.controller.CreateVolume(create_request(name), timeout=30)
    expand = csi_pb2.ControllerExpandVolumeRequest(
        volume_id=name, capacity_range=csi_pb2.CapacityRange(required_bytes=3 * GiB)
    )
    try:
        fault(sim, op="set", kind=kind)
        failed = rpc_error(lambda: ctl.controller.ControllerExpandVolume(expand, timeout=30))
        assert failed.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
        if kind == "ignore":
            assert f"to {3 * GiB} bytes, but lists it with {GiB} bytes" in (failed.details() or "")
        sim.simulator.faults.clear_rules()
        assert ctl.controller.ControllerExpandVolume(expand, timeout=30).capacity_bytes == 3 * GiB
    finally:
        sim.simulator.faults.clear_rules()
        delete(ctl, name)


# ---- finding 5: a failed or interrupted delete leaves nothing that blocks the name ----------------------------


def test_a_delete_retry_removes_the_file_a_failed_file_remove_left(
    ctl: RunningController, sim: SimulatorAccess
) -> None:
    ctl.controller.CreateVolume(create_request("pvc-half-deleted"), timeout=30)
    image = IMAGE.format("pvc-half-deleted")
    fault(sim, op="remove", menu="file", kind="error", message="file is locked")
    try:
        assert rpc_error(lambda: delete(ctl, "pvc-half-deleted")).code() == grpc.StatusCode.INTERNAL
        assert "pvc-half-deleted" not in disks(sim)  # /disk remove went through...
        assert image in files(sim)  # ...the file stayed
    finally:
        sim.simulator.faults.clear_rules()
    delete(ctl, "pvc-half-deleted")
    assert image not in files(sim)


def test_a_create_over_the_file_a_killed_delete_left_starts_empty(ctl: RunningController, sim: SimulatorAccess) -> None:
    name = "pvc-reborn"
    model = sim.simulator.model
    ctl.controller.CreateVolume(create_request(name), timeout=30)
    model.write(IMAGE.format(name), 512 << 20)  # the old volume held data
    model.remove_disk(model.disk_id(name))  # the controller was killed between /disk remove and /file remove
    try:
        volume = ctl.controller.CreateVolume(create_request(name, 2 * GiB), timeout=30).volume
        assert volume.capacity_bytes == 2 * GiB
        assert model.allocated(IMAGE.format(name)) < 1 << 20  # a new sparse image, not the old data
    finally:
        delete(ctl, name)
    assert IMAGE.format(name) not in files(sim)


def test_a_file_another_disk_uses_is_never_removed(ctl: RunningController, sim: SimulatorAccess) -> None:
    model = sim.simulator.model
    image = IMAGE.format("pvc-taken")
    model.add_disk({"type": "file", "slot": "foreign", "file-path": "/" + image, "file-size": "1G"})
    try:
        refused = rpc_error(lambda: ctl.controller.CreateVolume(create_request("pvc-taken"), timeout=30))
        assert refused.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "'foreign'" in (refused.details() or "")
        delete(ctl, "pvc-taken")  # no volume of that name: done, and the other disk's file stays
        assert image in files(sim)
        assert "foreign" in disks(sim)
    finally:
        model.remove_disk(model.disk_id("foreign"))
        model.remove_file(model.file_id(image))


# ---- finding 6: a create from a source that failed half way is finished by its retry -----------------------------


def content_source(ctl: RunningController, kind: str, source_volume: str) -> csi_pb2.VolumeContentSource:
    if kind == "volume":
        return csi_pb2.VolumeContentSource(volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id=source_volume))
    snapshot = ctl.controller.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name=f"snap-of-{source_volume}", source_volume_id=source_volume), timeout=30
    ).snapshot
    return csi_pb2.VolumeContentSource(
        snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id)
    )


def from_source(name: str, source: csi_pb2.VolumeContentSource, size: int) -> csi_pb2.CreateVolumeRequest:
    request = create_request(name, size)
    request.volume_content_source.CopyFrom(source)
    return request


def delete_source(ctl: RunningController, source: csi_pb2.VolumeContentSource, source_volume: str) -> None:
    if source.HasField("snapshot"):
        snapshot_id = source.snapshot.snapshot_id
        ctl.controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot_id), timeout=30)
    delete(ctl, source_volume)


GROW_FAILURES = {
    "no space": {"op": "set", "kind": "error", "message": "not enough space", "times": 1},
    "grow lost": {"op": "set", "kind": "lost-reply", "times": 2},
    "connection dropped": {"op": "set", "kind": "drop", "times": 2},
    "export lost": {"op": "set", "kind": "lost-reply", "after": 1, "times": 2},
}


@pytest.mark.parametrize("kind", ["volume", "snapshot"])
@pytest.mark.parametrize("failure", sorted(GROW_FAILURES))
def test_a_retried_create_from_a_source_finishes_the_copy_a_failure_left(
    ctl: RunningController, sim: SimulatorAccess, kind: str, failure: str
) -> None:
    source_volume, name = f"pvc-src-{kind}", f"pvc-copy-{kind}"
    ctl.controller.CreateVolume(create_request(source_volume), timeout=30)
    source = content_source(ctl, kind, source_volume)
    try:
        fault(sim, **GROW_FAILURES[failure])
        first = rpc_error(lambda: ctl.controller.CreateVolume(from_source(name, source, 2 * GiB), timeout=30))
        assert first.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
        sim.simulator.faults.clear_rules()
        if failure != "export lost":
            assert disks(sim)[name]["nvme-tcp-export"] is False  # no host can reach the half-made copy
        volume = ctl.controller.CreateVolume(from_source(name, source, 2 * GiB), timeout=30).volume
        assert volume.capacity_bytes == 2 * GiB
        assert volume.volume_context["nqn"] == NQN_PREFIX + name
        made = disks(sim)[name]
        assert (made["size"], made["nvme-tcp-export"], made["nvme-tcp-server-nqn"]) == (
            2 * GiB,
            True,
            NQN_PREFIX + name,
        )
    finally:
        sim.simulator.faults.clear_rules()
        delete(ctl, name)
        delete_source(ctl, source, source_volume)


def test_a_half_made_copy_of_one_source_is_never_finished_for_another(
    ctl: RunningController, sim: SimulatorAccess
) -> None:
    ctl.controller.CreateVolume(create_request("pvc-src-a"), timeout=30)
    ctl.controller.CreateVolume(create_request("pvc-src-b"), timeout=30)
    source_a, source_b = content_source(ctl, "volume", "pvc-src-a"), content_source(ctl, "volume", "pvc-src-b")
    try:
        fault(sim, op="set", kind="error", message="not enough space", times=1)
        rpc_error(lambda: ctl.controller.CreateVolume(from_source("pvc-copy-ab", source_a, 2 * GiB), timeout=30))
        other = rpc_error(
            lambda: ctl.controller.CreateVolume(from_source("pvc-copy-ab", source_b, 2 * GiB), timeout=30)
        )
        assert other.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "unfinished copy of another content source" in (other.details() or "")
        blank = rpc_error(lambda: ctl.controller.CreateVolume(create_request("pvc-copy-ab", 2 * GiB), timeout=30))
        assert blank.code() == grpc.StatusCode.ALREADY_EXISTS
        assert disks(sim)["pvc-copy-ab"]["nvme-tcp-export"] is False
    finally:
        delete(ctl, "pvc-copy-ab")
        delete(ctl, "pvc-src-a")
        delete(ctl, "pvc-src-b")


# ---- finding 8: a copy is proven whole before it is used or grown -------------------------------------------------


@pytest.mark.parametrize("kind", ["volume", "snapshot"])
def test_a_short_copy_is_removed_and_the_create_fails_naming_both_sizes(
    ctl: RunningController, sim: SimulatorAccess, kind: str
) -> None:
    source_volume, name = f"pvc-whole-src-{kind}", f"pvc-whole-{kind}"
    ctl.controller.CreateVolume(create_request(source_volume), timeout=30)
    source = content_source(ctl, kind, source_volume)
    try:
        fault(sim, op="add", kind="short-copy", times=1)
        failed = rpc_error(lambda: ctl.controller.CreateVolume(from_source(name, source, 2 * GiB), timeout=30))
        assert failed.code() == grpc.StatusCode.INTERNAL
        assert f"came out {GiB // 2} bytes, but its source has {GiB} bytes" in (failed.details() or "")
        assert name not in disks(sim)
        assert IMAGE.format(name) not in files(sim)
        assert ctl.controller.CreateVolume(from_source(name, source, 2 * GiB), timeout=30).volume.capacity_bytes == (
            2 * GiB
        )
    finally:
        sim.simulator.faults.clear_rules()
        delete(ctl, name)
        delete_source(ctl, source, source_volume)


def test_a_short_snapshot_is_removed_and_never_reported_ready(ctl: RunningController, sim: SimulatorAccess) -> None:
    ctl.controller.CreateVolume(create_request("pvc-snap-whole"), timeout=30)
    request = csi_pb2.CreateSnapshotRequest(name="snap-whole", source_volume_id="pvc-snap-whole")
    try:
        fault(sim, op="add", kind="short-copy", times=1)
        failed = rpc_error(lambda: ctl.controller.CreateSnapshot(request, timeout=30))
        assert failed.code() == grpc.StatusCode.INTERNAL
        assert f"came out {GiB // 2} bytes, but its source has {GiB} bytes" in (failed.details() or "")
        assert not [slot for slot in disks(sim) if slot.startswith("snap-")]
        assert not [name for name in files(sim) if name.rsplit("/", 1)[-1].startswith("snap-")]
        snapshot = ctl.controller.CreateSnapshot(request, timeout=30).snapshot
        assert (snapshot.size_bytes, snapshot.ready_to_use) == (GiB, True)
        ctl.controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id), timeout=30)
    finally:
        sim.simulator.faults.clear_rules()
        delete(ctl, "pvc-snap-whole")


def test_a_short_copy_left_behind_is_never_grown_by_a_retry(ctl: RunningController, sim: SimulatorAccess) -> None:
    ctl.controller.CreateVolume(create_request("pvc-short-src"), timeout=30)
    source = content_source(ctl, "volume", "pvc-short-src")
    try:
        fault(sim, op="add", kind="short-copy", times=1)
        fault(sim, op="remove", kind="error", message="disk is locked", times=1)  # and its removal fails
        failed = rpc_error(lambda: ctl.controller.CreateVolume(from_source("pvc-short", source, 2 * GiB), timeout=30))
        assert "removing the copy failed" in (failed.details() or "")
        assert disks(sim)["pvc-short"]["size"] == GiB // 2
        retried = rpc_error(lambda: ctl.controller.CreateVolume(from_source("pvc-short", source, 2 * GiB), timeout=30))
        assert retried.code() == grpc.StatusCode.INTERNAL
        assert f"came out {GiB // 2} bytes, but its source has {GiB} bytes; the copy was removed" in (
            retried.details() or ""
        )
        volume = ctl.controller.CreateVolume(from_source("pvc-short", source, 2 * GiB), timeout=30).volume
        assert volume.capacity_bytes == 2 * GiB
    finally:
        sim.simulator.faults.clear_rules()
        delete(ctl, "pvc-short")
        delete(ctl, "pvc-short-src")
