"""Node requests in, value objects out; a bad request is INVALID_ARGUMENT naming the field to fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rds_csi.core import errors
from rds_csi.csi.node_validation import (
    node_access,
    node_path,
    parse_expand,
    parse_publish,
    parse_stage,
    parse_stats,
    parse_unpublish,
    parse_unstage,
)
from rds_csi.csi.proto import csi_pb2
from rds_csi.mount import FsType, parse_mount_flags
from rds_csi.node import BlockAccess, MountAccess
from rds_csi.nvme import FabricsTarget

pytestmark = pytest.mark.native  # the node packages load the native scanner and ioctls

PREFIX = "nqn.2000-02.com.mikrotik:"
NQN = PREFIX + "pvc-1"
Mode = csi_pb2.VolumeCapability.AccessMode.Mode
# What CreateVolume writes (csi/controller.py _volume_message) for a StorageClass with keepAliveTmo set.
CONTEXT = {
    "nvmeAddress": "10.0.0.5",
    "nvmePort": "4420",
    "nqn": NQN,
    "volumePath": "/storage-pool/metal-csi",
    "ctrlLossTmo": "-1",
    "reconnectDelay": "5",
    "migrationTimeoutSeconds": "300",
    "keepAliveTmo": "15",
}


def mount_cap(
    fs_type: str = "", flags: tuple[str, ...] = (), mode: int = Mode.SINGLE_NODE_WRITER
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),  # type: ignore[arg-type]
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=list(flags)),
    )


def block_cap(mode: int = Mode.SINGLE_NODE_WRITER) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),  # type: ignore[arg-type]
        block=csi_pb2.VolumeCapability.BlockVolume(),
    )


def stage_request(**overrides: object) -> csi_pb2.NodeStageVolumeRequest:
    fields: dict[str, object] = {
        "volume_id": "pvc-1",
        "staging_target_path": "/var/lib/kubelet/plugins/kubernetes.io/csi/rds.csi.srvlab.io/ab12/globalmount",
        "volume_capability": mount_cap("xfs"),
        "volume_context": CONTEXT,
        "publish_context": {"nqn": NQN},
    }
    fields.update(overrides)
    return csi_pb2.NodeStageVolumeRequest(**fields)  # type: ignore[arg-type]


def test_stage_request_becomes_the_target_the_controller_froze_into_volume_context() -> None:
    stage = parse_stage(stage_request(), PREFIX)
    assert stage.volume_id == "pvc-1"
    assert stage.staging_path == Path("/var/lib/kubelet/plugins/kubernetes.io/csi/rds.csi.srvlab.io/ab12/globalmount")
    assert stage.target == FabricsTarget(
        nqn=NQN, address="10.0.0.5", port=4420, ctrl_loss_tmo=-1, reconnect_delay=5, keep_alive_tmo=15
    )
    assert stage.access == MountAccess(FsType.XFS)


def test_stage_of_a_hand_made_volume_context_leaves_unset_timeouts_to_the_kernel() -> None:
    context = {"nvmeAddress": "10.0.0.5", "nqn": NQN}
    target = parse_stage(stage_request(volume_context=context, publish_context={}), PREFIX).target
    assert (target.port, target.ctrl_loss_tmo, target.reconnect_delay, target.keep_alive_tmo) == (
        4420,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"volume_id": ""}, "volume_id"),
        ({"volume_id": "../etc"}, "volume_id"),
        ({"staging_target_path": ""}, "staging_target_path"),
        ({"staging_target_path": "relative/dir"}, "staging_target_path"),
        ({"staging_target_path": "/a/../b"}, "staging_target_path"),
        ({"volume_capability": None}, "volume_capability"),
        ({"volume_context": {"nvmeAddress": "10.0.0.5"}, "publish_context": {}}, "volume_context nqn"),
        ({"volume_context": {"nqn": NQN}}, "volume_context nvmeAddress"),
        ({"volume_context": {**CONTEXT, "nvmeAddress": "10.0.0.5;reboot"}}, "nvmeAddress"),
        ({"volume_context": {**CONTEXT, "nvmePort": "0"}}, "nvmePort"),
        ({"volume_context": {**CONTEXT, "ctrlLossTmo": "soon"}}, "ctrlLossTmo"),
        ({"volume_context": {**CONTEXT, "reconnectDelay": "0"}}, "reconnectDelay"),
        ({"volume_context": {**CONTEXT, "keepAliveTmo": "9999"}}, "keepAliveTmo"),
        ({"publish_context": {"nqn": "not-an-nqn"}}, "publish_context nqn"),
        ({"publish_context": {"nqn": PREFIX + "pvc-2"}}, "disagree"),
        (
            {"publish_context": {}, "volume_context": {**CONTEXT, "nqn": "nqn.2014-08.org.example:boot"}},
            "outside the managed prefix",
        ),
        ({"volume_capability": mount_cap("btrfs")}, "volume_capability"),
        ({"volume_capability": mount_cap("ext4", ("noatime dev",))}, "mount_flags"),
        ({"volume_capability": mount_cap("ext4", ("remount",))}, "mount_flags"),
        ({"volume_capability": mount_cap("ext4", ("journal_path=/dev/sda",))}, "mount_flags"),
        ({"volume_capability": mount_cap(mode=Mode.MULTI_NODE_MULTI_WRITER)}, "volume_capability"),
    ],
)
def test_bad_stage_requests_are_invalid_argument_naming_the_field(overrides: dict[str, object], field: str) -> None:
    fields = {k: v for k, v in overrides.items() if v is not None}
    request = stage_request(**fields)
    if "volume_capability" in overrides and overrides["volume_capability"] is None:
        request.ClearField("volume_capability")
    with pytest.raises(errors.InvalidArgument) as invalid:
        parse_stage(request, PREFIX)
    assert field in invalid.value.message


def test_capabilities_become_mount_with_parsed_flags_or_block() -> None:
    assert node_access(mount_cap("", ("noatime", "discard"))) == MountAccess(
        FsType.EXT4, parse_mount_flags(["noatime", "discard"])
    )
    assert node_access(block_cap(Mode.MULTI_NODE_MULTI_WRITER)) == BlockAccess()


def test_publish_needs_both_paths_distinct_and_keeps_readonly() -> None:
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id="pvc-1",
        staging_target_path="/staging/pvc-1",
        target_path="/pods/uid/volumes/pvc-1/mount",
        volume_capability=block_cap(),
        readonly=True,
    )
    publish = parse_publish(request)
    assert (publish.target_path, publish.access, publish.readonly) == (
        Path("/pods/uid/volumes/pvc-1/mount"),
        BlockAccess(),
        True,
    )
    for field in ("volume_id", "staging_target_path", "target_path"):
        broken = csi_pb2.NodePublishVolumeRequest()
        broken.CopyFrom(request)
        broken.ClearField(field)
        with pytest.raises(errors.InvalidArgument, match=field):
            parse_publish(broken)
    broken.CopyFrom(request)
    broken.ClearField("volume_capability")
    with pytest.raises(errors.InvalidArgument, match="volume_capability"):
        parse_publish(broken)
    broken.CopyFrom(request)
    broken.target_path = request.staging_target_path
    with pytest.raises(errors.InvalidArgument, match="differ"):
        parse_publish(broken)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (csi_pb2.NodeUnpublishVolumeRequest(target_path="/t"), "volume_id"),
        (csi_pb2.NodeUnpublishVolumeRequest(volume_id="pvc-1"), "target_path"),
        (csi_pb2.NodeUnstageVolumeRequest(staging_target_path="/s"), "volume_id"),
        (csi_pb2.NodeUnstageVolumeRequest(volume_id="pvc-1"), "staging_target_path"),
        (csi_pb2.NodeGetVolumeStatsRequest(volume_path="/t"), "volume_id"),
        (csi_pb2.NodeGetVolumeStatsRequest(volume_id="pvc-1"), "volume_path"),
        (csi_pb2.NodeExpandVolumeRequest(volume_path="/t"), "volume_id"),
        (csi_pb2.NodeExpandVolumeRequest(volume_id="pvc-1"), "volume_path"),
    ],
)
def test_missing_fields_of_the_other_node_calls_are_named(request_: Any, field: str) -> None:
    parsers: dict[type, Callable[[Any], object]] = {
        csi_pb2.NodeUnpublishVolumeRequest: parse_unpublish,
        csi_pb2.NodeUnstageVolumeRequest: parse_unstage,
        csi_pb2.NodeGetVolumeStatsRequest: parse_stats,
        csi_pb2.NodeExpandVolumeRequest: parse_expand,
    }
    parse = parsers[type(request_)]
    with pytest.raises(errors.InvalidArgument, match=field):
        parse(request_)


def test_stats_and_expand_take_the_staging_path_when_the_kubelet_sends_it() -> None:
    stats = parse_stats(csi_pb2.NodeGetVolumeStatsRequest(volume_id="pvc-1", volume_path="/t"))
    assert stats.staging_path is None
    expand = parse_expand(
        csi_pb2.NodeExpandVolumeRequest(
            volume_id="pvc-1",
            volume_path="/t",
            staging_target_path="/s",
            capacity_range=csi_pb2.CapacityRange(required_bytes=2 << 30),
            volume_capability=mount_cap("xfs"),
        )
    )
    assert (expand.staging_path, expand.required_bytes, expand.access) == (
        Path("/s"),
        2 << 30,
        MountAccess(FsType.XFS),
    )


def test_expand_with_an_impossible_range_is_invalid_argument() -> None:
    request = csi_pb2.NodeExpandVolumeRequest(
        volume_id="pvc-1", volume_path="/t", capacity_range=csi_pb2.CapacityRange(required_bytes=3, limit_bytes=2)
    )
    with pytest.raises(errors.InvalidArgument, match="limit_bytes"):
        parse_expand(request)


@pytest.mark.parametrize("raw", ["/ok\0no", "/" + "x" * 5000])
def test_unusable_paths_are_refused(raw: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="target_path"):
        node_path(raw, "target_path")


@pytest.mark.parametrize("parse", [parse_stats, parse_expand])
def test_a_volume_path_that_cannot_be_a_volume_is_not_found(parse: Callable[[Any], object]) -> None:
    request_type = csi_pb2.NodeGetVolumeStatsRequest if parse is parse_stats else csi_pb2.NodeExpandVolumeRequest
    with pytest.raises(errors.NotFound, match="some/path"):
        parse(request_type(volume_id="pvc-1", volume_path="some/path"))
