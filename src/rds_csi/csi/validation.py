"""Pure validation of CSI requests: protobuf messages in, validated value objects out, ``InvalidArgument`` (or
``OutOfRange``) with a message that tells the user what to change.

Capabilities fail in two ways the CSI spec tells apart: a capability this driver cannot read (no access type it
knows, no or an unknown access mode) is a malformed request, INVALID_ARGUMENT everywhere; a well-formed one it
does not offer is an ``UnsupportedCapability`` (still INVALID_ARGUMENT to create or publish), which
ValidateVolumeCapabilities answers as "not confirmed" and GetCapacity as no capacity.

Nothing here does I/O, so every rule is a small table-driven test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from rds_csi.attach.decisions import (
    DEFAULT_MIGRATION_TIMEOUT,
    MAX_MIGRATION_TIMEOUT,
    MIGRATION_TIMEOUT_KEY,
    MIN_MIGRATION_TIMEOUT,
)
from rds_csi.core import errors
from rds_csi.core.addresses import is_host
from rds_csi.csi.proto import csi_pb2
from rds_csi.nvme import (
    ADDRESS_KEY,
    CTRL_LOSS_TMO_KEY,
    CTRL_LOSS_TMO_RANGE,
    KEEP_ALIVE_TMO_KEY,
    KEEP_ALIVE_TMO_RANGE,
    PORT_KEY,
    RECONNECT_DELAY_KEY,
    RECONNECT_DELAY_RANGE,
)
from rds_csi.routeros.units import MAX_FILE_SIZE, round_up_allocation

GiB = 1 << 30
TiB = 1 << 40

T = TypeVar("T")

_VOLUME_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,128}$")
_Mode = csi_pb2.VolumeCapability.AccessMode.Mode
_KNOWN_MODES = frozenset(_Mode.values()) - {_Mode.UNKNOWN}

SINGLE_NODE_MODES = frozenset(
    {
        _Mode.SINGLE_NODE_WRITER,
        _Mode.SINGLE_NODE_READER_ONLY,
        _Mode.SINGLE_NODE_SINGLE_WRITER,
        _Mode.SINGLE_NODE_MULTI_WRITER,
    }
)
# Multi-node writers exist only for the KubeVirt live-migration window, and only on raw block devices.
MULTI_NODE_BLOCK_MODES = frozenset({_Mode.MULTI_NODE_MULTI_WRITER})
SUPPORTED_FS_TYPES = ("ext4", "xfs", "ext3")
DEFAULT_FS_TYPE = "ext4"

# StorageClass parameter keys (camelCase, as the Go driver spelled them: existing StorageClasses carry over). Those
# the node connects with are copied into volume_context under the same name: the node's reader owns them.
PARAM_VOLUME_PATH = "volumePath"
PARAM_NVME_ADDRESS = ADDRESS_KEY
PARAM_NVME_PORT = PORT_KEY
PARAM_CTRL_LOSS_TMO = CTRL_LOSS_TMO_KEY
PARAM_RECONNECT_DELAY = RECONNECT_DELAY_KEY
PARAM_KEEP_ALIVE_TMO = KEEP_ALIVE_TMO_KEY
PARAM_MIGRATION_TIMEOUT = MIGRATION_TIMEOUT_KEY
PARAM_FENCING = "fencing"
KNOWN_PARAMS = frozenset(
    {
        PARAM_FENCING,
        PARAM_VOLUME_PATH,
        PARAM_NVME_ADDRESS,
        PARAM_NVME_PORT,
        PARAM_CTRL_LOSS_TMO,
        PARAM_RECONNECT_DELAY,
        PARAM_KEEP_ALIVE_TMO,
        PARAM_MIGRATION_TIMEOUT,
    }
)
# Keys the provisioner itself adds (with --extra-create-metadata) or reserves; read, never rejected.
PROVISIONER_PREFIX = "csi.storage.k8s.io/"
PVC_NAME_KEY = "csi.storage.k8s.io/pvc/name"
PVC_NAMESPACE_KEY = "csi.storage.k8s.io/pvc/namespace"
FSTYPE_KEY = "csi.storage.k8s.io/fstype"
_NAMED_UNKNOWN_PARAMS = 5  # a message names this many unknown keys, then counts the rest

# volume_context keys recording what CreateVolume was asked for, so that a publish cannot ask for more. Volumes the
# Go driver (or an earlier release) created have none of them, and are published as before.
CONTEXT_ACCESS_TYPES = "accessTypes"  # "block", "mount" or "block,mount"
CONTEXT_FS_TYPE = "fsType"  # with mount: the filesystem it was created for
CONTEXT_ACCESS_MODES = "accessModes"  # CSI access mode names, comma separated


class UnsupportedCapability(errors.InvalidArgument):
    """Well-formed capabilities this driver (or this volume) does not support; see the module docstring."""


class AccessType(StrEnum):
    BLOCK = "block"
    MOUNT = "mount"


@dataclass(frozen=True, slots=True)
class CapabilitySummary:
    """What a set of volume capabilities asks for, once validated."""

    access_types: frozenset[AccessType]
    modes: frozenset[int]
    fs_type: str | None  # None when every capability is Block

    @property
    def multi_node(self) -> bool:
        return bool(self.modes & MULTI_NODE_BLOCK_MODES)


@dataclass(frozen=True, slots=True)
class VolumeParameters:
    """StorageClass parameters after defaults, validated; frozen into volume_context at create time."""

    volume_path: str
    nvme_address: str
    nvme_port: int
    ctrl_loss_tmo: int
    reconnect_delay: int
    keep_alive_tmo: int | None
    migration_timeout_seconds: int
    fencing: bool = False
    pvc_name: str | None = None
    pvc_namespace: str | None = None


@dataclass(frozen=True, slots=True)
class ParameterDefaults:
    volume_path: str
    nvme_address: str
    nvme_port: int = 4420
    ctrl_loss_tmo: int = -1
    reconnect_delay: int = 5
    migration_timeout_seconds: int = int(DEFAULT_MIGRATION_TIMEOUT)


@dataclass(frozen=True, slots=True)
class CapacityLimits:
    minimum_bytes: int = GiB
    maximum_bytes: int = 16 * TiB


def require(value: str, field: str) -> str:
    if not value:
        raise errors.InvalidArgument(f"{field} is required")
    return value


def validate_volume_name(name: str, field: str = "name") -> str:
    require(name, field)
    if not _VOLUME_NAME_RE.match(name):
        raise errors.InvalidArgument(
            f"{field} {errors.quote_input(name)} must be 1-128 characters of letters, digits and '-' "
            "(the provisioner's pvc-<uuid> names qualify)"
        )
    return name


def validate_capabilities(capabilities: Iterable[csi_pb2.VolumeCapability]) -> CapabilitySummary:
    caps = list(capabilities)
    if not caps:
        raise errors.InvalidArgument("volume_capabilities: at least one capability is required")
    access_types: set[AccessType] = set()
    modes: set[int] = set()
    fs_types: set[str] = set()
    for cap in caps:
        access = cap.WhichOneof("access_type")
        if access is None:
            # Also a capability whose access type is one a newer CSI spec added: protobuf keeps it as unknown.
            raise errors.InvalidArgument(
                "volume_capabilities: each capability needs an access type this driver knows (block or mount)"
            )
        if not cap.HasField("access_mode") or cap.access_mode.mode == _Mode.UNKNOWN:
            raise errors.InvalidArgument("volume_capabilities: each capability needs an access mode")
        mode = cap.access_mode.mode
        if mode not in _KNOWN_MODES:  # proto3 enums are open: any number arrives as sent
            raise errors.InvalidArgument(f"volume_capabilities: access mode {mode} is not a CSI access mode")
        mode_name = _Mode.Name(mode)
        if mode in MULTI_NODE_BLOCK_MODES:
            if access != "block":
                raise UnsupportedCapability(
                    f"volume_capabilities: {mode_name} is only supported with volumeMode: Block (KubeVirt live "
                    "migration); a filesystem written from two nodes would be corrupted"
                )
        elif mode not in SINGLE_NODE_MODES:
            raise UnsupportedCapability(
                f"volume_capabilities: access mode {mode_name} is not supported; use ReadWriteOnce / "
                "ReadWriteOncePod, or ReadWriteMany with volumeMode: Block for live migration"
            )
        modes.add(mode)
        if access == "mount":
            access_types.add(AccessType.MOUNT)
            fs_type = (cap.mount.fs_type or DEFAULT_FS_TYPE).lower()
            if fs_type not in SUPPORTED_FS_TYPES:
                raise UnsupportedCapability(
                    f"volume_capabilities: filesystem {errors.quote_input(cap.mount.fs_type)} is not supported; "
                    f"use one of {', '.join(SUPPORTED_FS_TYPES)}"
                )
            fs_types.add(fs_type)
        else:
            access_types.add(AccessType.BLOCK)
    if len(fs_types) > 1:
        raise UnsupportedCapability(f"volume_capabilities: conflicting filesystems {sorted(fs_types)}")
    return CapabilitySummary(frozenset(access_types), frozenset(modes), next(iter(fs_types), None))


def capability_record(created: CapabilitySummary) -> dict[str, str]:
    """The volume_context entries that record the capabilities a volume was created with."""
    record = {
        CONTEXT_ACCESS_TYPES: ",".join(sorted(created.access_types)),
        CONTEXT_ACCESS_MODES: ",".join(sorted(_Mode.Name(mode) for mode in created.modes)),
    }
    if created.fs_type is not None:
        record[CONTEXT_FS_TYPE] = created.fs_type
    return record


def check_against_record(requested: CapabilitySummary, volume_context: Mapping[str, str]) -> None:
    """Refuse capabilities the volume was not created for, as far as its volume_context records them.

    What is refused is what could hurt the data: another access type (a raw-block writer under a filesystem, or a
    mkfs over a raw block volume), another filesystem, and multi-node access to a volume created for a single
    node (two writers). Single-node modes among themselves are not told apart: the attachment rules treat them
    alike, and a reader is marked by the readonly flag. A key that is absent is not checked (see above).

    INVALID_ARGUMENT, not FAILED_PRECONDITION: the request asks for capabilities the volume does not support, which
    no change of state can fix; the CSI spec answers exactly that ("Exceeds capabilities") with INVALID_ARGUMENT
    in ControllerExpandVolume and NodeExpandVolume, for the caller to retry with matching capabilities.
    """
    created_types = _recorded(volume_context, CONTEXT_ACCESS_TYPES, AccessType)
    if created_types is not None and not requested.access_types <= created_types:
        raise UnsupportedCapability(
            f"volume_capability: {_names(requested.access_types)} access, but the volume was created for "
            f"{_names(created_types)} ({CONTEXT_ACCESS_TYPES} in its volume_context)"
        )
    created_fs = volume_context.get(CONTEXT_FS_TYPE)
    if created_fs is not None and requested.fs_type is not None and requested.fs_type != created_fs.lower():
        raise UnsupportedCapability(
            f"volume_capability: filesystem {requested.fs_type}, but the volume was created for {created_fs} "
            f"({CONTEXT_FS_TYPE} in its volume_context)"
        )
    created_modes = _recorded(volume_context, CONTEXT_ACCESS_MODES, _Mode.Value)
    if created_modes is not None and requested.multi_node and not created_modes & MULTI_NODE_BLOCK_MODES:
        raise UnsupportedCapability(
            f"volume_capability: {_names(_Mode.Name(mode) for mode in requested.modes)} lets several nodes write, "
            f"but the volume was created for a single node ({_names(_Mode.Name(mode) for mode in created_modes)})"
        )


def _recorded(volume_context: Mapping[str, str], key: str, parse: Callable[[str], T]) -> frozenset[T] | None:
    raw = volume_context.get(key)
    if raw is None:
        return None
    try:
        return frozenset(parse(name.strip()) for name in raw.split(","))
    except ValueError:
        raise errors.InvalidArgument(
            f"volume_context {key}={errors.quote_input(raw)} is not a record this driver writes; a volume's "
            "capabilities are recorded by CreateVolume"
        ) from None


def _names(values: Iterable[object]) -> str:
    return "/".join(sorted(str(value) for value in values))


def _int_param(params: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise errors.InvalidArgument(f"parameter {key}={errors.quote_input(raw)}: must be an integer") from None
    if not low <= value <= high:
        raise errors.InvalidArgument(f"parameter {key}={errors.quote_input(raw)}: must be between {low} and {high}")
    return value


def _bool_param(params: Mapping[str, str], key: str) -> bool:
    raw = params.get(key, "false").strip().lower()
    if raw not in ("true", "false"):
        raise errors.InvalidArgument(f'parameter {key}={errors.quote_input(params[key])}: must be "true" or "false"')
    return raw == "true"


def _address_param(raw: str) -> str:
    host = raw.strip()
    if not is_host(host):
        raise errors.InvalidArgument(
            f"parameter {PARAM_NVME_ADDRESS}={errors.quote_input(raw)}: not a host name or IP address"
        )
    return host


def _volume_path_param(raw: str, base: str) -> str:
    path = "/" + "/".join(p for p in raw.strip().split("/") if p)
    if any(p in (".", "..") for p in path.split("/")):
        raise errors.InvalidArgument(
            f"parameter {PARAM_VOLUME_PATH}={errors.quote_input(raw)}: '.' and '..' are not allowed"
        )
    base_norm = "/" + "/".join(p for p in base.split("/") if p)
    if path != base_norm and not path.startswith(base_norm + "/"):
        raise errors.InvalidArgument(
            f"parameter {PARAM_VOLUME_PATH}={errors.quote_input(raw)}: must be {base_norm} or below it (the driver's "
            "configured base)"
        )
    return path


def parse_parameters(params: Mapping[str, str], defaults: ParameterDefaults) -> VolumeParameters:
    unknown = sorted(k for k in params if k not in KNOWN_PARAMS and not k.startswith(PROVISIONER_PREFIX))
    if unknown:
        named = ", ".join(errors.quote_input(key) for key in unknown[:_NAMED_UNKNOWN_PARAMS])
        more = f" and {len(unknown) - _NAMED_UNKNOWN_PARAMS} more" if len(unknown) > _NAMED_UNKNOWN_PARAMS else ""
        raise errors.InvalidArgument(
            f"unknown StorageClass parameter(s) {named}{more}; supported: {', '.join(sorted(KNOWN_PARAMS))}"
        )
    fstype = params.get(FSTYPE_KEY)
    if fstype is not None and fstype.lower() not in SUPPORTED_FS_TYPES:
        raise errors.InvalidArgument(
            f"parameter {FSTYPE_KEY}={errors.quote_input(fstype)}: use one of {', '.join(SUPPORTED_FS_TYPES)}"
        )
    keep_alive_raw = params.get(PARAM_KEEP_ALIVE_TMO)
    return VolumeParameters(
        volume_path=_volume_path_param(params.get(PARAM_VOLUME_PATH, defaults.volume_path), defaults.volume_path),
        nvme_address=_address_param(params.get(PARAM_NVME_ADDRESS, defaults.nvme_address)),
        nvme_port=_int_param(params, PARAM_NVME_PORT, defaults.nvme_port, 1, 65535),
        ctrl_loss_tmo=_int_param(params, PARAM_CTRL_LOSS_TMO, defaults.ctrl_loss_tmo, *CTRL_LOSS_TMO_RANGE),
        reconnect_delay=_int_param(params, PARAM_RECONNECT_DELAY, defaults.reconnect_delay, *RECONNECT_DELAY_RANGE),
        keep_alive_tmo=(
            None if keep_alive_raw is None else _int_param(params, PARAM_KEEP_ALIVE_TMO, 0, *KEEP_ALIVE_TMO_RANGE)
        ),
        migration_timeout_seconds=_int_param(
            # A StorageClass out of range is refused (the volume_context reader clamps: a PV may be hand-edited).
            params,
            PARAM_MIGRATION_TIMEOUT,
            defaults.migration_timeout_seconds,
            int(MIN_MIGRATION_TIMEOUT),
            int(MAX_MIGRATION_TIMEOUT),
        ),
        fencing=_bool_param(params, PARAM_FENCING),
        pvc_name=params.get(PVC_NAME_KEY),
        pvc_namespace=params.get(PVC_NAMESPACE_KEY),
    )


def allocation_bytes(
    capacity_range: csi_pb2.CapacityRange | None, limits: CapacityLimits, source_bytes: int = 0
) -> int:
    """The size to allocate: the request raised to the minimum (and to the content source's size, which a copy
    cannot shrink below) and rounded UP to RouterOS's allocation unit.

    OUT_OF_RANGE when no allocatable size satisfies both ``required_bytes`` and ``limit_bytes`` or the maximum
    (the CSI spec's "unsupported capacity" in CreateVolume and ControllerExpandVolume): also for a request no disk
    could ever have, up to the largest int64.
    """
    required = capacity_range.required_bytes if capacity_range is not None else 0
    limit = capacity_range.limit_bytes if capacity_range is not None else 0
    if required < 0 or limit < 0:
        raise errors.InvalidArgument("capacity_range: required_bytes and limit_bytes must not be negative")
    if limit and required > limit:
        raise errors.InvalidArgument(f"capacity_range: required_bytes {required} exceeds limit_bytes {limit}")
    if limit and source_bytes > limit:
        raise errors.OutOfRange(f"the content source is {source_bytes} bytes, more than limit_bytes {limit}")
    maximum = min(limits.maximum_bytes, MAX_FILE_SIZE)
    if required > maximum:  # before rounding, which refuses sizes beyond any disk as malformed
        raise errors.OutOfRange(f"capacity_range: required_bytes {required} exceeds the maximum volume size {maximum}")
    size = round_up_allocation(max(required, limits.minimum_bytes, source_bytes), "capacity_range.required_bytes")
    if limit and size > limit:
        raise errors.OutOfRange(
            f"capacity_range: the smallest allocatable size ({size} bytes: minimum {limits.minimum_bytes}, "
            f"rounded up to whole MiB) exceeds limit_bytes {limit}"
        )
    if size > maximum:
        raise errors.OutOfRange(f"capacity_range: {size} bytes exceeds the maximum volume size {maximum}")
    return size


def size_satisfies(existing_bytes: int, capacity_range: csi_pb2.CapacityRange | None) -> bool:
    """Whether an existing volume's size fits the request (for idempotent CreateVolume)."""
    if capacity_range is None:
        return True
    if capacity_range.required_bytes and existing_bytes < capacity_range.required_bytes:
        return False
    return not (capacity_range.limit_bytes and existing_bytes > capacity_range.limit_bytes)
