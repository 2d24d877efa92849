"""Pure validation of CSI Node requests: protobuf in, a ``rds_csi.node`` value object out, or ``InvalidArgument``
naming the field to fix.

The connection keys of volume_context are read with the same rules (and defaults) the controller used when it
froze them there at CreateVolume.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from rds_csi import errors
from rds_csi.csi.controller import CONTEXT_NQN
from rds_csi.csi.proto import csi_pb2
from rds_csi.csi.validation import (
    PARAM_NVME_ADDRESS,
    AccessType,
    address_param,
    connection_settings,
    require,
    validate_capabilities,
    validate_volume_name,
)
from rds_csi.node.requests import (
    Access,
    BlockAccess,
    ExpandVolume,
    MountAccess,
    NvmeTarget,
    PublishVolume,
    StageVolume,
    UnpublishVolume,
    UnstageVolume,
    VolumeStatsQuery,
)
from rds_csi.nqn import show_rejected, validate_nqn

PATH_MAX_BYTES = 4095
# One mount option per flag, as the kubelet passes a PV's mountOptions: no separators that could smuggle others in.
_MOUNT_FLAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:=/@+-]*")
# Options that change what mount(8) does rather than how the filesystem is mounted.
_OPERATION_FLAGS = frozenset({"bind", "rbind", "remount", "move", "make-shared", "make-private", "make-slave"})


def node_path(raw: str, field: str) -> Path:
    """An absolute, normalized path (the kubelet's form); no ``..`` or ``.`` segments, no NUL."""
    require(raw, field)
    if "\0" in raw or len(raw.encode("utf-8", "surrogatepass")) > PATH_MAX_BYTES:
        raise errors.InvalidArgument(f"{field} {show_rejected(raw)} is not a usable path")
    path = Path(raw)
    if not path.is_absolute() or any(part in (".", "..") for part in raw.split("/")):
        raise errors.InvalidArgument(f"{field} {show_rejected(raw)} must be an absolute path without '.' or '..'")
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
    flags = tuple(capability.mount.mount_flags)
    for flag in flags:
        if not _MOUNT_FLAG_RE.fullmatch(flag):
            raise errors.InvalidArgument(
                f"{field}.mount.mount_flags: {show_rejected(flag)} is not a single mount option"
            )
        if flag in _OPERATION_FLAGS:
            raise errors.InvalidArgument(f"{field}.mount.mount_flags: {flag!r} is not a filesystem option")
    return MountAccess(fs_type=summary.fs_type, mount_flags=flags)


def _required_capability(request: object, field: str = "volume_capability") -> Access:
    if not request.HasField(field):  # type: ignore[attr-defined]
        raise errors.InvalidArgument(f"{field} is required")
    return node_access(getattr(request, field), field)


def _volume_id(raw: str) -> str:
    return validate_volume_name(raw, "volume_id")


def _target_nqn(publish_context: Mapping[str, str], volume_context: Mapping[str, str], managed_prefix: str) -> str:
    published = publish_context.get(CONTEXT_NQN)
    created = volume_context.get(CONTEXT_NQN)
    if not published and not created:
        raise errors.InvalidArgument(
            f"volume_context.{CONTEXT_NQN} is required (the controller writes it at CreateVolume; "
            "a hand-made PV must carry it)"
        )
    if published and created and published != created:
        raise errors.InvalidArgument(
            f"publish_context.{CONTEXT_NQN} {published!r} and volume_context.{CONTEXT_NQN} {created!r} disagree"
        )
    field = f"publish_context.{CONTEXT_NQN}" if published else f"volume_context.{CONTEXT_NQN}"
    nqn = validate_nqn(published or created, field)
    if not nqn.startswith(managed_prefix):
        raise errors.InvalidArgument(
            f"{field} {nqn!r} is outside the managed prefix {managed_prefix!r}: this node would never disconnect it"
        )
    return nqn


def nvme_target(
    publish_context: Mapping[str, str], volume_context: Mapping[str, str], managed_prefix: str
) -> NvmeTarget:
    nqn = _target_nqn(publish_context, volume_context, managed_prefix)
    address = volume_context.get(PARAM_NVME_ADDRESS)
    if not address:
        raise errors.InvalidArgument(f"volume_context.{PARAM_NVME_ADDRESS} is required")
    settings = connection_settings(volume_context, what="volume_context")
    return NvmeTarget(
        nqn=nqn,
        address=address_param(address, "volume_context"),
        port=settings.port,
        ctrl_loss_tmo=settings.ctrl_loss_tmo,
        reconnect_delay=settings.reconnect_delay,
        keep_alive_tmo=settings.keep_alive_tmo,
    )


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


def parse_stats(request: csi_pb2.NodeGetVolumeStatsRequest) -> VolumeStatsQuery:
    return VolumeStatsQuery(
        volume_id=_volume_id(request.volume_id),
        volume_path=node_path(request.volume_path, "volume_path"),
        staging_path=_optional_path(request.staging_target_path, "staging_target_path"),
    )


def parse_expand(request: csi_pb2.NodeExpandVolumeRequest) -> ExpandVolume:
    volume_id = _volume_id(request.volume_id)
    volume_path = node_path(request.volume_path, "volume_path")
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
