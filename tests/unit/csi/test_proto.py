"""The committed CSI stubs: regenerate byte-for-byte, and keep the spec's names, numbers and gRPC paths."""

from __future__ import annotations

import filecmp
import importlib.resources
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, descriptor_pb2, message

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc

PROTO_DIR = Path(csi_pb2.__file__).parent
# The proto is compiled relative to the directory that holds the rds_csi package, so the generated modules
# import each other as rds_csi.csi.proto.*; this holds in a source checkout and in an installed wheel alike.
PROTO_ROOT = PROTO_DIR.parents[2]
GENERATED = ("csi_pb2.py", "csi_pb2.pyi", "csi_pb2_grpc.py")

# The RPCs of CSI v1.12, in the spec's order.
SPEC_RPCS = {
    "Identity": ["GetPluginInfo", "GetPluginCapabilities", "Probe"],
    "Controller": [
        "CreateVolume",
        "DeleteVolume",
        "ControllerPublishVolume",
        "ControllerUnpublishVolume",
        "ValidateVolumeCapabilities",
        "ListVolumes",
        "GetCapacity",
        "ControllerGetCapabilities",
        "CreateSnapshot",
        "DeleteSnapshot",
        "ListSnapshots",
        "GetSnapshot",
        "ControllerExpandVolume",
        "ControllerGetVolume",
        "ControllerModifyVolume",
    ],
    "GroupController": [
        "GroupControllerGetCapabilities",
        "CreateVolumeGroupSnapshot",
        "DeleteVolumeGroupSnapshot",
        "GetVolumeGroupSnapshot",
    ],
    "SnapshotMetadata": ["GetMetadataAllocated", "GetMetadataDelta"],
    "Node": [
        "NodeStageVolume",
        "NodeUnstageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeGetVolumeStats",
        "NodeExpandVolume",
        "NodeGetCapabilities",
        "NodeGetInfo",
    ],
}
STREAMING_RPCS = {"GetMetadataAllocated", "GetMetadataDelta"}


def _flag(options: message.Message, extension: descriptor.FieldDescriptor) -> bool:
    # The generated stubs type option extensions as plain field descriptors, which the Extensions map's
    # stub does not accept as keys; at run time they are exactly the keys it expects.
    extensions: Any = options.Extensions
    return bool(extensions[extension])


def _all_messages() -> Iterator[descriptor.Descriptor]:
    pending = list(csi_pb2.DESCRIPTOR.message_types_by_name.values())
    while pending:
        msg = pending.pop()
        pending.extend(msg.nested_types)
        if not msg.GetOptions().map_entry:
            yield msg


def test_generated_modules_match_committed_files(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools is needed to regenerate the stubs")
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(PROTO_DIR / "csi.proto"),
        ]
    )
    assert code == 0
    fresh = tmp_path / PROTO_DIR.relative_to(PROTO_ROOT)
    stale = [name for name in GENERATED if not filecmp.cmp(fresh / name, PROTO_DIR / name, shallow=False)]
    assert not stale, f"{stale} differ from csi.proto: run scripts/gen-proto and commit the result"


@pytest.mark.parametrize("service", sorted(SPEC_RPCS))
def test_service_declares_exactly_the_spec_rpcs(service: str) -> None:
    methods = csi_pb2.DESCRIPTOR.services_by_name[service].methods
    assert [method.name for method in methods] == SPEC_RPCS[service]
    assert {method.name for method in methods if method.server_streaming} == STREAMING_RPCS & set(SPEC_RPCS[service])


def test_file_declares_exactly_the_spec_services() -> None:
    assert csi_pb2.DESCRIPTOR.package == "csi.v1"
    assert set(csi_pb2.DESCRIPTOR.services_by_name) == set(SPEC_RPCS)


@pytest.mark.parametrize(
    ("message", "field", "number"),
    [
        ("CreateVolumeRequest", "name", 1),
        ("CreateVolumeRequest", "capacity_range", 2),
        ("CreateVolumeRequest", "volume_capabilities", 3),
        ("CreateVolumeRequest", "parameters", 4),
        ("CreateVolumeRequest", "secrets", 5),
        ("CreateVolumeRequest", "volume_content_source", 6),
        ("CreateVolumeRequest", "accessibility_requirements", 7),
        ("CreateVolumeRequest", "mutable_parameters", 8),
        ("Volume", "capacity_bytes", 1),
        ("Volume", "volume_id", 2),
        ("Volume", "volume_context", 3),
        ("Volume", "accessible_topology", 5),
        ("ControllerPublishVolumeRequest", "node_id", 2),
        ("ControllerPublishVolumeRequest", "readonly", 4),
        ("ControllerPublishVolumeRequest", "volume_context", 6),
        ("ControllerPublishVolumeResponse", "publish_context", 1),
        ("ControllerExpandVolumeRequest", "secrets", 3),
        ("ControllerExpandVolumeRequest", "volume_capability", 4),
        ("ControllerExpandVolumeResponse", "node_expansion_required", 2),
        ("NodeStageVolumeRequest", "volume_id", 1),
        ("NodeStageVolumeRequest", "publish_context", 2),
        ("NodeStageVolumeRequest", "staging_target_path", 3),
        ("NodeStageVolumeRequest", "volume_capability", 4),
        ("NodeStageVolumeRequest", "secrets", 5),
        ("NodeStageVolumeRequest", "volume_context", 6),
        ("NodePublishVolumeRequest", "staging_target_path", 3),
        ("NodePublishVolumeRequest", "target_path", 4),
        ("NodePublishVolumeRequest", "readonly", 6),
        ("NodePublishVolumeRequest", "volume_context", 8),
        ("NodeExpandVolumeRequest", "staging_target_path", 4),
        ("NodeExpandVolumeRequest", "secrets", 6),
        ("NodeGetInfoResponse", "max_volumes_per_node", 2),
        ("NodeGetVolumeStatsResponse", "volume_condition", 2),
        ("Snapshot", "group_snapshot_id", 6),
    ],
)
def test_field_number_matches_spec(message: str, field: str, number: int) -> None:
    assert csi_pb2.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number == number


def test_access_modes_have_spec_values() -> None:
    mode = csi_pb2.VolumeCapability.AccessMode.Mode
    assert dict(mode.items()) == {
        "UNKNOWN": 0,
        "SINGLE_NODE_WRITER": 1,
        "SINGLE_NODE_READER_ONLY": 2,
        "MULTI_NODE_READER_ONLY": 3,
        "MULTI_NODE_SINGLE_WRITER": 4,
        "MULTI_NODE_MULTI_WRITER": 5,
        "SINGLE_NODE_SINGLE_WRITER": 6,
        "SINGLE_NODE_MULTI_WRITER": 7,
    }


def test_option_extensions_use_spec_numbers_and_targets() -> None:
    extensions = csi_pb2.DESCRIPTOR.extensions_by_name
    assert {name: (ext.number, ext.containing_type) for name, ext in extensions.items()} == {
        "csi_secret": (1059, descriptor_pb2.FieldOptions.DESCRIPTOR),
        "alpha_field": (1060, descriptor_pb2.FieldOptions.DESCRIPTOR),
        "alpha_enum": (1060, descriptor_pb2.EnumOptions.DESCRIPTOR),
        "alpha_enum_value": (1060, descriptor_pb2.EnumValueOptions.DESCRIPTOR),
        "alpha_message": (1060, descriptor_pb2.MessageOptions.DESCRIPTOR),
        "alpha_method": (1060, descriptor_pb2.MethodOptions.DESCRIPTOR),
        "alpha_service": (1060, descriptor_pb2.ServiceOptions.DESCRIPTOR),
    }


def test_csi_secret_marks_every_secrets_field_and_nothing_else() -> None:
    marked = {
        (msg.name, field.name)
        for msg in _all_messages()
        for field in msg.fields
        if _flag(field.GetOptions(), csi_pb2.csi_secret)
    }
    secrets_fields = {
        (msg.name, field.name) for msg in _all_messages() for field in msg.fields if field.name == "secrets"
    }
    assert len(secrets_fields) == 19
    assert marked == secrets_fields


def test_alpha_markers_sit_on_the_experimental_parts() -> None:
    controller = csi_pb2.DESCRIPTOR.services_by_name["Controller"]
    alpha_methods = {m.name for m in controller.methods if _flag(m.GetOptions(), csi_pb2.alpha_method)}
    assert alpha_methods == {"GetSnapshot", "ControllerGetVolume"}
    metadata = csi_pb2.DESCRIPTOR.services_by_name["SnapshotMetadata"]
    assert _flag(metadata.GetOptions(), csi_pb2.alpha_service)
    assert _flag(csi_pb2.VolumeCondition.DESCRIPTOR.GetOptions(), csi_pb2.alpha_message)
    rpc_type = csi_pb2.ControllerServiceCapability.RPC.DESCRIPTOR.enum_types_by_name["Type"]
    assert not _flag(rpc_type.values_by_name["MODIFY_VOLUME"].GetOptions(), csi_pb2.alpha_enum_value)
    assert _flag(rpc_type.values_by_name["GET_SNAPSHOT"].GetOptions(), csi_pb2.alpha_enum_value)


def test_request_encodes_field_numbers_on_the_wire() -> None:
    request = csi_pb2.NodeUnstageVolumeRequest(volume_id="pvc-1", staging_target_path="/s")
    # field 1 (tag 0x0a) then field 2 (tag 0x12), both length-delimited
    assert request.SerializeToString() == b"\x0a\x05pvc-1\x12\x02/s"


def test_stage_request_round_trips_through_serialization() -> None:
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id="pvc-0b1c",
        publish_context={"nqn": "nqn.2000-02.com.mikrotik:pvc-0b1c"},
        staging_target_path="/var/lib/kubelet/plugins/staging/pvc-0b1c",
        volume_capability=csi_pb2.VolumeCapability(
            mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4", mount_flags=["noatime"]),
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER
            ),
        ),
        secrets={"token": "s3cret"},
        volume_context={"nvmeAddress": "192.0.2.10", "nvmePort": "4420"},
    )
    decoded = csi_pb2.NodeStageVolumeRequest.FromString(request.SerializeToString())
    assert decoded == request
    assert decoded.volume_capability.WhichOneof("access_type") == "mount"
    assert dict(decoded.volume_context) == {"nvmeAddress": "192.0.2.10", "nvmePort": "4420"}


class _Identity(csi_pb2_grpc.IdentityServicer):  # type: ignore[misc]  # the _grpc module is untyped
    def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name="rds.csi.srvlab.io", vendor_version="test")


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    csi_pb2_grpc.add_IdentityServicer_to_server(_Identity(), server)
    csi_pb2_grpc.add_ControllerServicer_to_server(csi_pb2_grpc.ControllerServicer(), server)
    csi_pb2_grpc.add_GroupControllerServicer_to_server(csi_pb2_grpc.GroupControllerServicer(), server)
    csi_pb2_grpc.add_SnapshotMetadataServicer_to_server(csi_pb2_grpc.SnapshotMetadataServicer(), server)
    csi_pb2_grpc.add_NodeServicer_to_server(csi_pb2_grpc.NodeServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
            yield chan
    finally:
        server.stop(grace=None)


def test_generated_stub_reaches_generated_servicer(channel: grpc.Channel) -> None:
    reply = csi_pb2_grpc.IdentityStub(channel).GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
    assert reply.name == "rds.csi.srvlab.io"


@pytest.mark.parametrize(
    "path",
    [
        f"/csi.v1.{service}/{rpc}"
        for service, rpcs in SPEC_RPCS.items()
        for rpc in rpcs
        if rpc != "GetPluginInfo"  # implemented by the fixture's servicer, covered by the stub test above
    ],
)
def test_servicers_register_spec_method_path(channel: grpc.Channel, path: str) -> None:
    rpc = path.rsplit("/", 1)[1]
    # An empty body is a valid encoding of every request message; the base servicers answer
    # "not implemented", which gRPC itself never says for a path nobody registered.
    with pytest.raises(grpc.RpcError) as raised:
        if rpc in STREAMING_RPCS:
            list(channel.unary_stream(path, None, None)(b"", timeout=10))
        else:
            channel.unary_unary(path, None, None)(b"", timeout=10)
    error = raised.value
    assert isinstance(error, grpc.Call)
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert error.details() == "Method not implemented!"


def test_unregistered_method_path_is_not_found(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary("/csi.v1.Identity/GetPluginVersion", None, None)(b"", timeout=10)
    assert isinstance(raised.value, grpc.Call)
    assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert raised.value.details() == "Method not found!"
