"""Controller behaviour the sanity suite does not pin down: allocation reporting, lost replies, concurrency,
backend failures. Real gRPC over a unix socket, the simulator over real SSH and REST."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from rds_csi.simulator import FaultRule
from tests.integration.plugin_process import free_port
from tests.support import RunningController, SimulatorAccess, start_controller, start_simulator

GiB = 1 << 30
Mode = csi_pb2.VolumeCapability.AccessMode.Mode


def mount_cap() -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
    )


def create_request(name: str, size: int = GiB) -> csi_pb2.CreateVolumeRequest:
    return csi_pb2.CreateVolumeRequest(
        name=name, volume_capabilities=[mount_cap()], capacity_range=csi_pb2.CapacityRange(required_bytes=size)
    )


@pytest.fixture(scope="module", params=["ssh", "rest"])
def ctl(request: pytest.FixtureRequest, sim: SimulatorAccess, workdir: Path) -> Iterator[RunningController]:
    backend = str(request.param)
    running = start_controller(sim, backend, workdir / f"{backend}.sock", routeros_command_timeout="2")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def no_faults(sim: SimulatorAccess) -> Iterator[None]:
    sim.simulator.faults.clear_rules()
    sim.simulator.faults.set_profile("zero")
    yield
    sim.simulator.faults.clear_rules()
    sim.simulator.faults.set_profile("zero")


def fault(sim: SimulatorAccess, **rule: object) -> None:
    sim.simulator.faults.add_rule(FaultRule(**rule))  # type: ignore[arg-type]


def delete(ctl: RunningController, volume_id: str) -> None:
    ctl.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id), timeout=30)


def test_one_and_a_half_gib_allocates_and_reports_what_was_allocated(ctl: RunningController) -> None:
    volume = ctl.controller.CreateVolume(create_request("pvc-alloc-15", 3 * GiB // 2), timeout=30).volume
    try:
        assert volume.capacity_bytes >= 3 * GiB // 2
        assert volume.capacity_bytes == 3 * GiB // 2  # whole MiB already: nothing to round
        odd = ctl.controller.CreateVolume(create_request("pvc-alloc-odd", GiB + 1), timeout=30).volume
        assert odd.capacity_bytes == GiB + (1 << 20)  # rounded UP to the next MiB, reported as allocated
        delete(ctl, "pvc-alloc-odd")
    finally:
        delete(ctl, "pvc-alloc-15")


def test_retried_create_after_a_lost_reply_returns_the_same_volume(
    ctl: RunningController, sim: SimulatorAccess
) -> None:
    fault(sim, op="add", kind="drop", times=1)
    try:
        first: csi_pb2.Volume | None = ctl.controller.CreateVolume(create_request("pvc-lost-add"), timeout=30).volume
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE
        first = None
    second = ctl.controller.CreateVolume(create_request("pvc-lost-add"), timeout=30).volume
    try:
        assert second.volume_id == "pvc-lost-add"
        if first is not None:
            assert first == second
        listed = ctl.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30)
        assert [e.volume.volume_id for e in listed.entries].count("pvc-lost-add") == 1
    finally:
        delete(ctl, "pvc-lost-add")


def test_retried_expand_after_lost_replies_still_requests_node_expansion(
    ctl: RunningController, sim: SimulatorAccess
) -> None:
    ctl.controller.CreateVolume(create_request("pvc-lost-set"), timeout=30)
    try:
        # Both the resize and the client's one idempotent repeat lose their replies: the call fails...
        fault(sim, op="set", kind="drop", times=2)
        expand = csi_pb2.ControllerExpandVolumeRequest(
            volume_id="pvc-lost-set", capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GiB)
        )
        with pytest.raises(grpc.RpcError) as failed:
            ctl.controller.ControllerExpandVolume(expand, timeout=30)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        # ...but the disk did grow; the resizer's retry must still get the node to grow the filesystem.
        retried = ctl.controller.ControllerExpandVolume(expand, timeout=30)
        assert retried.capacity_bytes == 2 * GiB
        assert retried.node_expansion_required
    finally:
        delete(ctl, "pvc-lost-set")


def test_block_expansion_needs_no_node_step(ctl: RunningController) -> None:
    ctl.controller.CreateVolume(create_request("pvc-block-grow"), timeout=30)
    try:
        block = csi_pb2.VolumeCapability(
            access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
            block=csi_pb2.VolumeCapability.BlockVolume(),
        )
        grown = ctl.controller.ControllerExpandVolume(
            csi_pb2.ControllerExpandVolumeRequest(
                volume_id="pvc-block-grow",
                capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GiB),
                volume_capability=block,
            ),
            timeout=30,
        )
        assert not grown.node_expansion_required
    finally:
        delete(ctl, "pvc-block-grow")


def test_backend_lookup_failure_is_unavailable_never_not_found(ctl: RunningController, sim: SimulatorAccess) -> None:
    fault(sim, op="print", kind="hang", times=1)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as failed:
        ctl.controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id="pvc-whatever"), timeout=30)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < 5  # the 2 s command timeout, not the caller's 30 s


def test_call_answers_before_the_callers_deadline(ctl: RunningController, sim: SimulatorAccess) -> None:
    fault(sim, op="print", kind="hang")  # every lookup hangs
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as failed:
        ctl.controller.CreateVolume(create_request("pvc-deadline"), timeout=1.5)
    assert failed.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - started < 1.5


def test_concurrent_operation_on_the_same_volume_is_aborted(ctl: RunningController, sim: SimulatorAccess) -> None:
    sim.simulator.faults.set_profile("realistic")  # add takes ~0.5 s: long enough to overlap
    results: list[grpc.StatusCode] = []

    def create() -> None:
        try:
            ctl.controller.CreateVolume(create_request("pvc-same-name"), timeout=30)
            results.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            results.append(exc.code())

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    sim.simulator.faults.set_profile("zero")
    try:
        assert grpc.StatusCode.OK in results
        assert set(results) <= {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}
        assert grpc.StatusCode.ABORTED in results
    finally:
        delete(ctl, "pvc-same-name")


def test_hundred_concurrent_creates_and_deletes_with_realistic_latency(sim: SimulatorAccess, workdir: Path) -> None:
    running = start_controller(sim, "ssh", workdir / "many.sock", routeros_pool_size="8", grpc_workers="100")
    sim.simulator.faults.set_profile("realistic")
    names = [f"pvc-many-{i:03d}" for i in range(100)]
    try:
        with ThreadPoolExecutor(max_workers=100) as pool:
            created = list(pool.map(lambda n: running.controller.CreateVolume(create_request(n), timeout=60), names))
            assert sorted(r.volume.volume_id for r in created) == names
            listed = running.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=60)
            assert set(names) <= {e.volume.volume_id for e in listed.entries}
            list(pool.map(lambda n: delete(running, n), names))
        listed = running.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=60)
        assert not set(names) & {e.volume.volume_id for e in listed.entries}
    finally:
        sim.simulator.faults.set_profile("zero")
        running.stop()


def test_probe_and_healthz_report_routeros_down_and_recover(workdir: Path) -> None:
    directory = workdir / "probe"
    directory.mkdir()
    access = start_simulator(directory)
    port = free_port()
    running = start_controller(access, "ssh", directory / "p.sock", metrics_address=f"127.0.0.1:{port}")
    healthz = f"http://127.0.0.1:{port}/healthz"
    try:
        assert running.identity.Probe(csi_pb2.ProbeRequest(), timeout=30).ready.value
        access.simulator.faults.add_rule(FaultRule(op="any", kind="error", message="connection lost", times=2))
        assert not running.identity.Probe(csi_pb2.ProbeRequest(), timeout=30).ready.value
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(healthz, timeout=30)
        assert unhealthy.value.code == 503
        assert b"routeros" in unhealthy.value.read()
        assert running.identity.Probe(csi_pb2.ProbeRequest(), timeout=30).ready.value  # the fault wore off
        assert urllib.request.urlopen(healthz, timeout=30).status == 200
    finally:
        running.stop()
        access.simulator.stop()


def test_list_and_get_report_an_unexported_volume_as_abnormal(ctl: RunningController, sim: SimulatorAccess) -> None:
    ctl.controller.CreateVolume(create_request("pvc-cond-ok"), timeout=30)
    ctl.controller.CreateVolume(create_request("pvc-cond-bad"), timeout=30)
    try:
        # Someone turns the export off on the RDS behind the driver's back.
        model = sim.simulator.model
        model.set_disk(model.disk_id("pvc-cond-bad"), {"nvme-tcp-export": "no"})
        listed = ctl.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30)
        conditions = {e.volume.volume_id: e.status.volume_condition for e in listed.entries}
        assert conditions["pvc-cond-ok"].abnormal is False
        assert conditions["pvc-cond-bad"].abnormal is True
        assert "not exported" in conditions["pvc-cond-bad"].message
        got = ctl.controller.ControllerGetVolume(
            csi_pb2.ControllerGetVolumeRequest(volume_id="pvc-cond-bad"), timeout=30
        )
        assert got.status.volume_condition.abnormal is True
    finally:
        delete(ctl, "pvc-cond-ok")
        delete(ctl, "pvc-cond-bad")
