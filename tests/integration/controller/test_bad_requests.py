"""Malformed and impossible requests get the CSI spec's code, not INTERNAL: real gRPC to the controller, the
simulator over real SSH and REST."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from rds_csi.observability.logging import JsonFormatter, TextFormatter
from tests.support import RunningController, SimulatorAccess, start_controller

GiB = 1 << 30
INT64_MAX = (1 << 63) - 1
Mode = csi_pb2.VolumeCapability.AccessMode.Mode
UNKNOWN_MODE = 99  # no CSI access mode has this number (proto3 enums are open: it arrives as it was sent)
# Field 4 of VolumeCapability, length-delimited and empty: an access type a newer CSI spec might add to the oneof.
UNKNOWN_ACCESS_TYPE_FIELD = b"\x22\x00"


def mount(mode: int = Mode.SINGLE_NODE_WRITER, fs_type: str = "ext4") -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),  # type: ignore[arg-type]
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type),
    )


def unknown_access_type() -> csi_pb2.VolumeCapability:
    """A capability whose access type is none this driver's proto knows (kept by protobuf as an unknown field)."""
    capability = csi_pb2.VolumeCapability(access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER))
    capability.MergeFromString(UNKNOWN_ACCESS_TYPE_FIELD)
    return capability


MALFORMED_CAPABILITIES = {
    "access mode 99": mount(UNKNOWN_MODE),
    "block with access mode 99": csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=UNKNOWN_MODE),  # type: ignore[arg-type]
        block=csi_pb2.VolumeCapability.BlockVolume(),
    ),
    "an access type of a newer spec": unknown_access_type(),
}


@pytest.fixture(scope="module", params=["ssh", "rest"])
def ctl(request: pytest.FixtureRequest, sim: SimulatorAccess, workdir: Path) -> Iterator[RunningController]:
    running = start_controller(sim, str(request.param), workdir / f"{request.param}.sock")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def volume(ctl: RunningController) -> Iterator[csi_pb2.Volume]:
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-bad-requests", volume_capabilities=[mount()], capacity_range=csi_pb2.CapacityRange(required_bytes=GiB)
    )
    created: csi_pb2.Volume = ctl.controller.CreateVolume(request, timeout=30).volume
    yield created
    ctl.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=created.volume_id), timeout=30)


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as failed:
        call()
    return failed.value.code(), failed.value.details() or ""


# ---- capabilities this driver cannot even read --------------------------------------------------------------


@pytest.mark.parametrize("capability", MALFORMED_CAPABILITIES.values(), ids=MALFORMED_CAPABILITIES.keys())
def test_create_volume_with_a_malformed_capability_is_invalid_argument(
    ctl: RunningController, capability: csi_pb2.VolumeCapability
) -> None:
    request = csi_pb2.CreateVolumeRequest(name="pvc-bad-capability", volume_capabilities=[capability])
    code, message = code_of(lambda: ctl.controller.CreateVolume(request, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message
    assert "volume_capabilities" in message
    listed = ctl.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30)
    assert "pvc-bad-capability" not in [entry.volume.volume_id for entry in listed.entries]


@pytest.mark.parametrize("capability", MALFORMED_CAPABILITIES.values(), ids=MALFORMED_CAPABILITIES.keys())
def test_validate_volume_capabilities_with_a_malformed_capability_is_invalid_argument(
    ctl: RunningController, volume: csi_pb2.Volume, capability: csi_pb2.VolumeCapability
) -> None:
    request = csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=volume.volume_id, volume_capabilities=[mount(), capability], volume_context=volume.volume_context
    )
    code, message = code_of(lambda: ctl.controller.ValidateVolumeCapabilities(request, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message


@pytest.mark.parametrize("capability", MALFORMED_CAPABILITIES.values(), ids=MALFORMED_CAPABILITIES.keys())
def test_controller_publish_with_a_malformed_capability_is_invalid_argument(
    ctl: RunningController, volume: csi_pb2.Volume, capability: csi_pb2.VolumeCapability
) -> None:
    request = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id="node-1", volume_capability=capability, volume_context=volume.volume_context
    )
    code, message = code_of(lambda: ctl.controller.ControllerPublishVolume(request, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message
    got = ctl.controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id), timeout=30)
    assert list(got.status.published_node_ids) == []


def test_an_unsupported_filesystem_is_invalid_argument_to_create_and_publish_and_unconfirmed_to_validate(
    ctl: RunningController, volume: csi_pb2.Volume
) -> None:
    zfs = mount(fs_type="zfs")
    create = csi_pb2.CreateVolumeRequest(name="pvc-bad-zfs", volume_capabilities=[zfs])
    assert code_of(lambda: ctl.controller.CreateVolume(create, timeout=30))[0] == grpc.StatusCode.INVALID_ARGUMENT
    publish = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id="node-1", volume_capability=zfs, volume_context=volume.volume_context
    )
    assert code_of(lambda: ctl.controller.ControllerPublishVolume(publish, timeout=30))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    # A well-formed question about a filesystem the driver does not offer is answered, not refused (CSI spec).
    validate = csi_pb2.ValidateVolumeCapabilitiesRequest(
        volume_id=volume.volume_id, volume_capabilities=[zfs], volume_context=volume.volume_context
    )
    answer = ctl.controller.ValidateVolumeCapabilities(validate, timeout=30)
    assert not answer.HasField("confirmed")
    assert "zfs" in answer.message


def test_get_capacity_for_a_malformed_capability_is_invalid_argument(ctl: RunningController) -> None:
    request = csi_pb2.GetCapacityRequest(volume_capabilities=[mount(UNKNOWN_MODE)])
    code, message = code_of(lambda: ctl.controller.GetCapacity(request, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message


# ---- sizes no volume can have -------------------------------------------------------------------------------


@pytest.mark.parametrize("required", [INT64_MAX, 1 << 61, 17 << 40])
def test_create_volume_larger_than_the_plugin_can_provide_is_out_of_range(
    ctl: RunningController, required: int
) -> None:
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-bad-huge",
        volume_capabilities=[mount()],
        capacity_range=csi_pb2.CapacityRange(required_bytes=required),
    )
    code, message = code_of(lambda: ctl.controller.CreateVolume(request, timeout=30))
    assert code == grpc.StatusCode.OUT_OF_RANGE, message
    assert "maximum volume size" in message


@pytest.mark.parametrize("required", [INT64_MAX, 1 << 61])
def test_expand_volume_larger_than_the_plugin_can_provide_is_out_of_range(
    ctl: RunningController, volume: csi_pb2.Volume, required: int
) -> None:
    request = csi_pb2.ControllerExpandVolumeRequest(
        volume_id=volume.volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=required)
    )
    code, message = code_of(lambda: ctl.controller.ControllerExpandVolume(request, timeout=30))
    assert code == grpc.StatusCode.OUT_OF_RANGE, message
    got = ctl.controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id), timeout=30)
    assert got.volume.capacity_bytes == GiB


# ---- bad input of any length: a short echo, on the wire and in the log ---------------------------------------

# What a status message and a log line may grow to, whatever the input: far below gRPC's 8 KiB metadata limit.
MESSAGE_BOUND = 1024
LOG_LINE_BOUND = 4096


@pytest.fixture(params=[TextFormatter, JsonFormatter], ids=["text", "json"])
def log_lines(request: pytest.FixtureRequest) -> Iterator[Callable[[], list[str]]]:
    """The driver's log as the plugin writes it (its own formatter), from here on."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(request.param())
    logger = logging.getLogger("rds_csi")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: stream.getvalue().splitlines()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def huge_requests(text: str) -> dict[str, tuple[str, object, grpc.StatusCode]]:
    """RPCs each carrying ``text`` in one field, with the code that field earns."""
    invalid, aborted = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ABORTED
    publish = csi_pb2.ControllerPublishVolumeRequest(volume_id=text, node_id="node-1", volume_capability=mount())
    return {
        "CreateVolume name": (
            "CreateVolume",
            csi_pb2.CreateVolumeRequest(name=text, volume_capabilities=[mount()]),
            invalid,
        ),
        "CreateVolume parameter key": (
            "CreateVolume",
            csi_pb2.CreateVolumeRequest(name="pvc-bad-key", volume_capabilities=[mount()], parameters={text: "1"}),
            invalid,
        ),
        "CreateVolume parameter value": (
            "CreateVolume",
            csi_pb2.CreateVolumeRequest(
                name="pvc-bad-value", volume_capabilities=[mount()], parameters={"nvmePort": text}
            ),
            invalid,
        ),
        "CreateVolume filesystem": (
            "CreateVolume",
            csi_pb2.CreateVolumeRequest(name="pvc-bad-fs", volume_capabilities=[mount(fs_type=text)]),
            invalid,
        ),
        "DeleteVolume volume_id": ("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=text), invalid),
        "ControllerPublishVolume volume_id": ("ControllerPublishVolume", publish, invalid),
        "CreateSnapshot source_volume_id": (
            "CreateSnapshot",
            csi_pb2.CreateSnapshotRequest(name="snap-bad", source_volume_id=text),
            invalid,
        ),
        "ListVolumes starting_token": ("ListVolumes", csi_pb2.ListVolumesRequest(starting_token=text), aborted),
    }


@pytest.mark.parametrize("length", [10_000, 3_000_000], ids=["10k", "3M"])
def test_an_overlong_name_is_invalid_argument_with_a_short_message_and_log_line(
    ctl: RunningController, log_lines: Callable[[], list[str]], length: int
) -> None:
    name = "x" * length
    code, message = code_of(
        lambda: ctl.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(name=name, volume_capabilities=[mount()]), timeout=30
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT, message[:200]  # not RESOURCE_EXHAUSTED "Stream removed"
    assert message.startswith("name 'xxx") and len(message) <= MESSAGE_BOUND, message[:200]
    assert f"{length} characters" in message
    calls = [line for line in log_lines() if "csi.call" in line and "INVALID_ARGUMENT" in line]
    assert len(calls) == 1
    assert all(len(line) <= LOG_LINE_BOUND for line in log_lines()), max(map(len, log_lines()))


@pytest.mark.parametrize("field", list(huge_requests("")))
def test_every_field_that_echoes_bad_input_echoes_a_short_prefix(
    ctl: RunningController, log_lines: Callable[[], list[str]], field: str
) -> None:
    method, request, expected = huge_requests("\u00e9" * 9_000)[field]  # 18 KB of UTF-8, 54 KB percent-encoded
    code, message = code_of(lambda: getattr(ctl.controller, method)(request, timeout=30))
    assert code == expected, message[:200]
    assert len(message.encode()) <= MESSAGE_BOUND, message[:200]
    assert log_lines() and all(len(line) <= LOG_LINE_BOUND for line in log_lines())
