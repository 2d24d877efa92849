"""A publish may not ask for more than the volume was created for: real gRPC to the controller, the simulator over
real SSH and REST. The PV a publish comes from may be hand-made, so the request's capability is not trusted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from tests.support import RunningController, SimulatorAccess, start_controller

GiB = 1 << 30
Mode = csi_pb2.VolumeCapability.AccessMode.Mode
RECORD_KEYS = ("accessTypes", "fsType", "accessModes")


def mount(mode: int = Mode.SINGLE_NODE_WRITER, fs_type: str = "ext4") -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),  # type: ignore[arg-type]
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type),
    )


def block(mode: int) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),  # type: ignore[arg-type]
        block=csi_pb2.VolumeCapability.BlockVolume(),
    )


@pytest.fixture(scope="module", params=["ssh", "rest"])
def ctl(request: pytest.FixtureRequest, sim: SimulatorAccess, workdir: Path) -> Iterator[RunningController]:
    running = start_controller(sim, str(request.param), workdir / f"{request.param}.sock")
    yield running
    running.stop()


class Volume:
    """A volume created for ``created_for``, removed (unpublished first) when the test ends."""

    def __init__(self, ctl: RunningController, name: str, created_for: csi_pb2.VolumeCapability) -> None:
        self.ctl = ctl
        request = csi_pb2.CreateVolumeRequest(
            name=name, volume_capabilities=[created_for], capacity_range=csi_pb2.CapacityRange(required_bytes=GiB)
        )
        self.volume: csi_pb2.Volume = ctl.controller.CreateVolume(request, timeout=30).volume
        self.context = dict(self.volume.volume_context)

    def publish(
        self, node: str, capability: csi_pb2.VolumeCapability, context: dict[str, str] | None = None
    ) -> csi_pb2.ControllerPublishVolumeResponse:
        request = csi_pb2.ControllerPublishVolumeRequest(
            volume_id=self.volume.volume_id,
            node_id=node,
            volume_capability=capability,
            volume_context=self.context if context is None else context,
        )
        response: csi_pb2.ControllerPublishVolumeResponse = self.ctl.controller.ControllerPublishVolume(
            request, timeout=30
        )
        return response

    def refused(self, node: str, capability: csi_pb2.VolumeCapability) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as error:
            self.publish(node, capability)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
        return error.value

    def published(self) -> list[str]:
        got = self.ctl.controller.ControllerGetVolume(
            csi_pb2.ControllerGetVolumeRequest(volume_id=self.volume.volume_id), timeout=30
        )
        return list(got.status.published_node_ids)

    def remove(self) -> None:
        self.ctl.controller.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=self.volume.volume_id), timeout=30
        )
        self.ctl.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=self.volume.volume_id), timeout=30)


@pytest.fixture
def volumes(ctl: RunningController) -> Iterator[list[Volume]]:
    made: list[Volume] = []
    yield made
    for volume in made:
        volume.remove()


def test_a_single_writer_ext4_volume_cannot_be_published_as_multi_writer_block_to_two_nodes(
    ctl: RunningController, volumes: list[Volume]
) -> None:
    volume = Volume(ctl, "pvc-caps-ext4", mount())
    volumes.append(volume)
    # What a hand-made PV with the same volume handle would ask for: two raw-block writers on a filesystem.
    for node in ("node-1", "node-2"):
        error = volume.refused(node, block(Mode.MULTI_NODE_MULTI_WRITER))
        assert "created for mount" in (error.details() or "")
    assert volume.published() == []
    assert {key: volume.context.get(key) for key in RECORD_KEYS} == {
        "accessTypes": "mount",
        "fsType": "ext4",
        "accessModes": "SINGLE_NODE_WRITER",
    }
    assert "filesystem xfs" in (volume.refused("node-1", mount(fs_type="xfs")).details() or "")
    volume.publish("node-1", mount())
    assert volume.published() == ["node-1"]
    volume.refused("node-1", block(Mode.SINGLE_NODE_WRITER))  # refused before the attachment rules are asked


def test_a_multi_writer_block_volume_is_published_for_its_migration_but_never_mounted(
    ctl: RunningController, volumes: list[Volume]
) -> None:
    volume = Volume(ctl, "pvc-caps-rwx", block(Mode.MULTI_NODE_MULTI_WRITER))
    volumes.append(volume)
    assert "fsType" not in volume.context
    volume.refused("node-1", mount())
    volume.publish("node-1", block(Mode.MULTI_NODE_MULTI_WRITER))
    volume.publish("node-2", block(Mode.MULTI_NODE_MULTI_WRITER))
    assert volume.published() == ["node-1", "node-2"]


def test_validate_volume_capabilities_does_not_confirm_what_the_volume_was_not_created_for(
    ctl: RunningController, volumes: list[Volume]
) -> None:
    volume = Volume(ctl, "pvc-caps-validate", mount())
    volumes.append(volume)

    def validate(capability: csi_pb2.VolumeCapability) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        request = csi_pb2.ValidateVolumeCapabilitiesRequest(
            volume_id=volume.volume.volume_id, volume_capabilities=[capability], volume_context=volume.context
        )
        response: csi_pb2.ValidateVolumeCapabilitiesResponse = ctl.controller.ValidateVolumeCapabilities(
            request, timeout=30
        )
        return response

    assert validate(mount()).HasField("confirmed")
    refused = validate(block(Mode.MULTI_NODE_MULTI_WRITER))
    assert not refused.HasField("confirmed")
    assert "created for mount" in refused.message


def test_a_volume_without_a_capability_record_is_published_as_before(
    ctl: RunningController, volumes: list[Volume]
) -> None:
    # A volume the Go driver created: its PV's volume_context has none of the record keys.
    volume = Volume(ctl, "pvc-caps-legacy", mount())
    volumes.append(volume)
    legacy = {key: value for key, value in volume.context.items() if key not in RECORD_KEYS}
    volume.publish("node-1", block(Mode.MULTI_NODE_MULTI_WRITER), legacy)
    assert volume.published() == ["node-1"]
