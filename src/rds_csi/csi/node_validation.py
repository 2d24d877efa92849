"""Pure validation of CSI Node requests: protobuf in, a ``rds_csi.node`` value object out, or ``InvalidArgument``
naming the field to fix.

The connection keys of volume_context are read by ``rds_csi.nvme``'s one reader, with the bounds the controller
checked when it froze them there at CreateVolume.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rds_csi.core import errors
from rds_csi.core.nqn import validate_nqn
from rds_csi.csi.proto import csi_pb2
from rds_csi.csi.validation import AccessType, require, validate_capabilities, validate_volume_name
from rds_csi.mount import FsType, parse_mount_flags
from rds_csi.node.requests import (
    Access,
    BlockAccess,
    ExpandVolume,
    MountAccess,
    PublishVolume,
    StageVolume,
    UnpublishVolume,
    UnstageVolume,
    VolumeStatsQuery,
)
from rds_csi.nvme import NQN_KEY, FabricsTarget, target_from_volume_context

PATH_MAX_BYTES = 4095


def node_path(raw: str, field: str) -> Path:
    """An absolute, normalized path (the kubelet's form); no ``..`` or ``.`` segments, no NUL."""
    require(raw, field)
    if "\0" in raw or len(raw.encode("utf-8", "surrogatepass")) > PATH_MAX_BYTES:
        raise errors.InvalidArgument(f"{field} {errors.quote_input(raw)} is not a usable path")
    path = Path(raw)
    if not path.is_absolute() or any(part in (".", "..") for part in raw.split("/")):
        raise errors.InvalidArgument(f"{field} {errors.quote_input(raw)} must be an absolute path without '.' or '..'")
    return path


def node_access(capability: csi_pb2.VolumeCapability, field: str = "volume_capability") -> Access:
    """The capability as the node uses it: filesystem (with its mount flags) or raw block."""
    try:
        summary = validate_capabilities([capability])
    except errors.InvalidArgument as invalid:
        raise errors.InvalidArgument(invalid.message.replace("volume_capabilities", field, 1)) from None
    if AccessType.BLOCK in summary.access_types:
        return BlockAccess()
    assert summary.fs_type is not None  # a mount capability always has one (ext4 by default)
    try:
        options = parse_mount_flags(capability.mount.mount_flags)
    except errors.InvalidArgument as refused:
        raise errors.InvalidArgument(f"{field}.mount.mount_flags: {refused.message}") from None
    return MountAccess(fs_type=FsType.parse(summary.fs_type), options=options)


def _required_capability(request: object, field: str = "volume_capability") -> Access:
    if not request.HasField(field):  # type: ignore[attr-defined]
        raise errors.InvalidArgument(f"{field} is required")
    return node_access(getattr(request, field), field)


def _volume_id(raw: str) -> str:
    return validate_volume_name(raw, "volume_id")


def _target_nqn(publish_context: Mapping[str, str], volume_context: Mapping[str, str], managed_prefix: str) -> str:
    published = publish_context.get(NQN_KEY)
    created = volume_context.get(NQN_KEY)
    if not published and not created:
        raise errors.InvalidArgument(
            f"volume_context {NQN_KEY} is required (the controller writes it at CreateVolume; "
            "a hand-made PV must carry it)"
        )
    if published and created and published != created:
        raise errors.InvalidArgument(
            f"publish_context {NQN_KEY} {published!r} and volume_context {NQN_KEY} {created!r} disagree"
        )
    field = f"publish_context {NQN_KEY}" if published else f"volume_context {NQN_KEY}"
    nqn = validate_nqn(published or created, field)
    if not nqn.startswith(managed_prefix):
        raise errors.InvalidArgument(
            f"{field} {nqn!r} is outside the managed prefix {managed_prefix!r}: this node would never disconnect it"
        )
    return nqn


def nvme_target(
    publish_context: Mapping[str, str], volume_context: Mapping[str, str], managed_prefix: str
) -> FabricsTarget:
    """The connect target: the NQN the controller published (or froze at create), the rest from volume_context."""
    nqn = _target_nqn(publish_context, volume_context, managed_prefix)
    return target_from_volume_context({**volume_context, NQN_KEY: nqn})


def parse_stage(request: csi_pb2.NodeStageVolumeRequest, managed_prefix: str) -> StageVolume:
    volume_id = _volume_id(request.volume_id)
    staging = node_path(request.staging_target_path, "staging_target_path")
    access = _required_capability(request)
    return StageVolume(
        volume_id=volume_id,
        staging_path=staging,
        target=nvme_target(request.publish_context, request.volume_context, managed_prefix),
        access=access,
    )


def parse_publish(request: csi_pb2.NodePublishVolumeRequest) -> PublishVolume:
    volume_id = _volume_id(request.volume_id)
    staging = node_path(request.staging_target_path, "staging_target_path")
    target = node_path(request.target_path, "target_path")
    access = _required_capability(request)
    if target == staging:
        raise errors.InvalidArgument("target_path must differ from staging_target_path")
    return PublishVolume(volume_id, staging, target, access, request.readonly)


def parse_unpublish(request: csi_pb2.NodeUnpublishVolumeRequest) -> UnpublishVolume:
    return UnpublishVolume(_volume_id(request.volume_id), node_path(request.target_path, "target_path"))


def parse_unstage(request: csi_pb2.NodeUnstageVolumeRequest) -> UnstageVolume:
    return UnstageVolume(_volume_id(request.volume_id), node_path(request.staging_target_path, "staging_target_path"))


def _optional_path(raw: str, field: str) -> Path | None:
    return node_path(raw, field) if raw else None


def _volume_path(raw: str) -> Path:
    """Stats and expansion name a volume by where it is: a path that cannot be one is NOT_FOUND, as csi-sanity
    expects of ``some/path``; only a missing path is the caller's error."""
    require(raw, "volume_path")
    try:
        return node_path(raw, "volume_path")
    except errors.InvalidArgument as unusable:
        raise errors.NotFound(f"{unusable.message}: no volume is there") from None


def parse_stats(request: csi_pb2.NodeGetVolumeStatsRequest) -> VolumeStatsQuery:
    return VolumeStatsQuery(
        volume_id=_volume_id(request.volume_id),
        volume_path=_volume_path(request.volume_path),
        staging_path=_optional_path(request.staging_target_path, "staging_target_path"),
    )


def parse_expand(request: csi_pb2.NodeExpandVolumeRequest) -> ExpandVolume:
    volume_id = _volume_id(request.volume_id)
    volume_path = _volume_path(request.volume_path)
    required = request.capacity_range.required_bytes if request.HasField("capacity_range") else 0
    limit = request.capacity_range.limit_bytes if request.HasField("capacity_range") else 0
    if required < 0 or limit < 0:
        raise errors.InvalidArgument("capacity_range: required_bytes and limit_bytes must not be negative")
    if limit and required > limit:
        raise errors.InvalidArgument(f"capacity_range: required_bytes {required} exceeds limit_bytes {limit}")
    return ExpandVolume(
        volume_id=volume_id,
        volume_path=volume_path,
        staging_path=_optional_path(request.staging_target_path, "staging_target_path"),
        required_bytes=required,
        access=node_access(request.volume_capability) if request.HasField("volume_capability") else None,
    )
