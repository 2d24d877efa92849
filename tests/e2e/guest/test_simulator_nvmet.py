"""The simulator's data plane against the real kernel (inside the VM): the driver creates, grows, snapshots,
restores and deletes volumes over SSH, and an NVMe/TCP host sees exactly that on the wire."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rds_csi.csi.proto import csi_pb2
from rds_csi.simulator.nvmet import CONFIGFS_ROOT
from tests.e2e.guest import fabrics
from tests.support import RunningController, SimulatorAccess, start_controller, start_simulator

MIB = 1 << 20
GIB = 1 << 30  # the controller's smallest volume; images are sparse, so size costs nothing
HOST_A = "nqn.2014-08.org.nvmexpress:uuid:0f6c3d4e-0000-4000-8000-00000000000a"
PATTERN = b"rds-csi data plane " * 256
Mode = csi_pb2.VolumeCapability.AccessMode.Mode


@pytest.fixture
def scratch() -> Path:
    return Path(os.environ["RDS_CSI_GUEST_SCRATCH"])


@pytest.fixture
def sim(scratch: Path, short_tmp: Path) -> Iterator[SimulatorAccess]:
    access = start_simulator(short_tmp, persist=True, nvmet_data_dir=scratch / "images")
    yield access
    access.simulator.stop()


@pytest.fixture
def ctl(sim: SimulatorAccess, short_tmp: Path) -> Iterator[RunningController]:
    running = start_controller(sim, "ssh", short_tmp / "ctl.sock")
    yield running
    running.stop()


def block_cap() -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
        block=csi_pb2.VolumeCapability.BlockVolume(),
    )


def create(
    ctl: RunningController, name: str, size: int = GIB, source: csi_pb2.VolumeContentSource | None = None
) -> csi_pb2.Volume:
    request = csi_pb2.CreateVolumeRequest(
        name=name,
        volume_capabilities=[block_cap()],
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        parameters={"nvmeAddress": "127.0.0.1"},
    )
    if source is not None:
        request.volume_content_source.CopyFrom(source)
    volume: csi_pb2.Volume = ctl.controller.CreateVolume(request, timeout=30).volume
    return volume


def attach(volume: csi_pb2.Volume, host: str = HOST_A) -> fabrics.Connection:
    ctx = volume.volume_context
    return fabrics.connect(ctx["nqn"], host, int(ctx["nvmePort"]), ctx["nvmeAddress"])


def write_pattern(device: str, offset: int) -> None:
    with open(f"/dev/{device}", "r+b", buffering=0) as dev:
        dev.seek(offset)
        dev.write(PATTERN)
        os.fsync(dev.fileno())


def read_at(device: str, offset: int) -> bytes:
    with open(f"/dev/{device}", "rb", buffering=0) as dev:
        dev.seek(offset)
        return dev.read(len(PATTERN))


def our_subsystems() -> list[str]:
    return sorted(n for n in os.listdir(CONFIGFS_ROOT / "subsystems") if n.startswith("nqn.2000-02.com.mikrotik:"))


def test_a_created_volume_is_a_block_device_of_its_size_that_keeps_data(ctl: RunningController) -> None:
    volume = create(ctl, "pvc-e2e-data")
    assert volume.capacity_bytes == GIB
    connection = attach(volume)
    try:
        device = connection.block_device()
        assert fabrics.device_bytes(device) == GIB
        write_pattern(device, 5 * MIB)
        assert read_at(device, 5 * MIB) == PATTERN
    finally:
        connection.disconnect()
    # The bytes reached the image file the simulator keeps for the volume.
    again = attach(volume)
    try:
        assert read_at(again.block_device(), 5 * MIB) == PATTERN
    finally:
        again.disconnect()


def test_expansion_is_seen_by_a_connected_host(ctl: RunningController) -> None:
    volume = create(ctl, "pvc-e2e-grow")
    connection = attach(volume)
    try:
        device = connection.block_device()
        ctl.controller.ControllerExpandVolume(
            csi_pb2.ControllerExpandVolumeRequest(
                volume_id=volume.volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GIB)
            ),
            timeout=30,
        )
        assert fabrics.wait_for_size(device, 2 * GIB) == 2 * GIB
    finally:
        connection.disconnect()


def test_snapshot_and_restore_carry_the_data(ctl: RunningController) -> None:
    source = create(ctl, "pvc-e2e-src")
    connection = attach(source)
    try:
        write_pattern(connection.block_device(), 3 * MIB)
    finally:
        connection.disconnect()
    snapshot = ctl.controller.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name="snap-e2e", source_volume_id=source.volume_id), timeout=30
    ).snapshot
    restored = create(
        ctl,
        "pvc-e2e-restored",
        source=csi_pb2.VolumeContentSource(
            snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id)
        ),
    )
    connection = attach(restored)
    try:
        assert read_at(connection.block_device(), 3 * MIB) == PATTERN
    finally:
        connection.disconnect()


def test_delete_withdraws_the_target(ctl: RunningController) -> None:
    volume = create(ctl, "pvc-e2e-gone")
    assert volume.volume_context["nqn"] in our_subsystems()
    ctl.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id), timeout=30)
    assert volume.volume_context["nqn"] not in our_subsystems()
    with pytest.raises(OSError):
        attach(volume)


def test_a_restarted_simulator_exports_its_persisted_volumes_again(scratch: Path, short_tmp: Path) -> None:
    first = start_simulator(short_tmp, persist=True, nvmet_data_dir=scratch / "restart")
    ctl = start_controller(first, "ssh", short_tmp / "ctl.sock")
    try:
        volume = create(ctl, "pvc-e2e-persisted")
        connection = attach(volume)
        try:
            write_pattern(connection.block_device(), 7 * MIB)
        finally:
            connection.disconnect()
    finally:
        ctl.stop()
        first.simulator.stop()
    assert our_subsystems() == []  # a stopped simulator leaves no target behind
    second = start_simulator(short_tmp, persist=True, nvmet_data_dir=scratch / "restart")
    try:
        connection = attach(volume)
        try:
            assert read_at(connection.block_device(), 7 * MIB) == PATTERN
        finally:
            connection.disconnect()
    finally:
        second.simulator.stop()
    assert our_subsystems() == []
    assert os.listdir(CONFIGFS_ROOT / "ports") == []  # and no port of its own either
