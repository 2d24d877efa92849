"""CSI Controller: volumes, capacity, expansion, snapshots and clones on the RDS.

Each method validates its request (``rds_csi.csi.validation``), calls the domain backend, and builds the response;
errors are domain exceptions that the interceptor maps. Per-volume serialization comes from ``csi_method``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from rds_csi.attach import AttachmentManager, PublishRequest, migration_timeout_from_context
from rds_csi.core import errors
from rds_csi.csi.locks import LockedServicer, csi_method
from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from rds_csi.csi.validation import (
    PARAM_CTRL_LOSS_TMO,
    PARAM_FENCING,
    PARAM_KEEP_ALIVE_TMO,
    PARAM_MIGRATION_TIMEOUT,
    PARAM_NVME_ADDRESS,
    PARAM_NVME_PORT,
    PARAM_RECONNECT_DELAY,
    PARAM_VOLUME_PATH,
    CapabilitySummary,
    CapacityLimits,
    ParameterDefaults,
    UnsupportedCapability,
    VolumeParameters,
    allocation_bytes,
    capability_record,
    check_against_record,
    parse_parameters,
    require,
    size_satisfies,
    validate_capabilities,
    validate_volume_name,
)
from rds_csi.nvme import NQN_KEY
from rds_csi.routeros.volumes import SNAPSHOT_PREFIX, ContentSource, Snapshot, Volume, VolumeBackend

_Cap = csi_pb2.ControllerServiceCapability.RPC.Type
_TOKEN_RE = re.compile(r"^after:([A-Za-z0-9-]{1,128})$")
# Extra volume_context key: the node needs the subsystem NQN to find the device.
CONTEXT_NQN = NQN_KEY

T = TypeVar("T")


class ClaimRegistry(Protocol):
    """Where events about a volume go: the PVC the provisioner named (``--extra-create-metadata``)."""

    def remember_claim(self, volume_id: str, namespace: str, name: str) -> None: ...


class NodeDirectory(Protocol):
    """Whether a node id names a node of this cluster (a Node object, or a configured id without an API), the
    NVMe host NQN its node plugin reported (for storage-side fencing; None when it reported none), and how many
    volumes it may hold (its CSINode's attach limit for this driver, or the configured default; 0: no limit)."""

    def node_known(self, node_id: str) -> bool: ...

    def host_nqn(self, node_id: str) -> str | None: ...

    def volume_limit(self, node_id: str) -> int: ...


def _page(items: Sequence[T], key: Callable[[T], str], max_entries: int, token: str) -> tuple[list[T], str]:
    """Cursor pagination: the token names the last id returned, so additions/deletions between pages are safe."""
    if max_entries < 0:
        raise errors.InvalidArgument("max_entries must not be negative")
    start = 0
    if token:
        match = _TOKEN_RE.match(token)
        if match is None:
            raise errors.Aborted(f"starting_token {errors.quote_input(token)} was not issued by this driver")
        start = next((i for i, item in enumerate(items) if key(item) > match.group(1)), len(items))
    end = len(items) if max_entries == 0 else min(len(items), start + max_entries)
    next_token = f"after:{key(items[end - 1])}" if end < len(items) else ""
    return list(items[start:end]), next_token


def _timestamp(snapshot: Snapshot) -> Timestamp:
    stamp = Timestamp()
    if snapshot.created_at is not None:
        stamp.FromDatetime(snapshot.created_at)
    else:
        stamp.FromNanoseconds(time.time_ns())
    return stamp


class ControllerServicer(csi_pb2_grpc.ControllerServicer, LockedServicer):  # type: ignore[misc]
    def __init__(
        self,
        backend: VolumeBackend,
        defaults: ParameterDefaults,
        limits: CapacityLimits,
        attachments: AttachmentManager,
        nodes: NodeDirectory,
        *,
        claims: ClaimRegistry | None = None,
    ) -> None:
        LockedServicer.__init__(self)
        self._claims = claims
        self._backend = backend
        self._defaults = defaults
        self._limits = limits
        self._attachments = attachments
        self._nodes = nodes

    def register(self, server: grpc.Server) -> None:
        csi_pb2_grpc.add_ControllerServicer_to_server(self, server)

    # ---- capabilities -------------------------------------------------------------------------------------------

    def capabilities(self) -> list[csi_pb2.ControllerServiceCapability.RPC.Type]:
        return [
            _Cap.CREATE_DELETE_VOLUME,
            _Cap.EXPAND_VOLUME,
            _Cap.GET_CAPACITY,
            _Cap.LIST_VOLUMES,
            _Cap.GET_VOLUME,
            _Cap.VOLUME_CONDITION,
            _Cap.CREATE_DELETE_SNAPSHOT,
            _Cap.LIST_SNAPSHOTS,
            _Cap.CLONE_VOLUME,
            _Cap.PUBLISH_UNPUBLISH_VOLUME,
            _Cap.LIST_VOLUMES_PUBLISHED_NODES,
        ]

    def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        rpc = csi_pb2.ControllerServiceCapability.RPC
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[csi_pb2.ControllerServiceCapability(rpc=rpc(type=t)) for t in self.capabilities()]
        )

    # ---- volumes ------------------------------------------------------------------------------------------------

    @csi_method(lock_on="name")
    def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateVolumeResponse:
        name = validate_volume_name(request.name)
        if name.startswith(SNAPSHOT_PREFIX):
            raise errors.InvalidArgument(
                f"name {errors.quote_input(name)}: the prefix {SNAPSHOT_PREFIX!r} is reserved for snapshots"
            )
        # Validated here and recorded in volume_context; the node receives the capability itself at stage time.
        capabilities = validate_capabilities(request.volume_capabilities)
        params = parse_parameters(request.parameters, self._defaults)
        capacity_range = request.capacity_range if request.HasField("capacity_range") else None
        size = allocation_bytes(capacity_range, self._limits)  # the request is checked before any backend call
        source = self._content_source(request)
        if source is not None:
            size = allocation_bytes(capacity_range, self._limits, self._backend.source_size(source))
        volume = self._backend.create_volume(
            name,
            volume_path=params.volume_path,
            size_bytes=size,
            port=params.nvme_port,
            source=source,
            size_ok=lambda existing: size_satisfies(existing, capacity_range),
        )
        if params.fencing:
            self._backend.fence_init(volume.volume_id)
        if self._claims is not None and params.pvc_name and params.pvc_namespace:
            self._claims.remember_claim(volume.volume_id, params.pvc_namespace, params.pvc_name)
        message = self._volume_message(volume, params, capabilities)
        if request.HasField("volume_content_source"):
            message.content_source.CopyFrom(request.volume_content_source)
        return csi_pb2.CreateVolumeResponse(volume=message)

    @csi_method(lock_on="volume_id")
    def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        nodes = self._attachments.published_nodes(volume_id)
        if nodes:
            raise errors.FailedPrecondition(
                f"volume {errors.quote_input(volume_id)} is still published to {', '.join(nodes)}; unpublish it first"
            )
        self._backend.delete_volume(volume_id)
        return csi_pb2.DeleteVolumeResponse()

    @csi_method(lock_on="volume_id")
    def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        if not request.HasField("capacity_range"):
            raise errors.InvalidArgument("capacity_range is required")
        size = allocation_bytes(request.capacity_range, self._limits)
        volume = self._backend.expand_volume(volume_id, size)
        # A raw block device needs nothing on the node; a filesystem must be grown there, also when this call is
        # a retry that finds the disk already large enough (the first reply may have been lost).
        block = request.HasField("volume_capability") and request.volume_capability.HasField("block")
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=volume.capacity_bytes, node_expansion_required=not block
        )

    def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        volume_id = require(request.volume_id, "volume_id")
        if not request.volume_capabilities:
            raise errors.InvalidArgument("volume_capabilities: at least one capability is required")
        if self._backend.get_volume(volume_id) is None:
            raise errors.NotFound(f"volume {errors.quote_input(volume_id)} does not exist")
        # What the driver cannot read is an error; what it reads but does not offer is an answer (CSI spec).
        try:
            check_against_record(validate_capabilities(request.volume_capabilities), request.volume_context)
        except UnsupportedCapability as unsupported:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message=unsupported.message)
        try:
            parse_parameters(request.parameters, self._defaults)
        except errors.InvalidArgument as unsupported:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message=unsupported.message)
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    def ListVolumes(
        self, request: csi_pb2.ListVolumesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListVolumesResponse:
        volumes, next_token = _page(
            self._backend.list_volumes(), lambda v: v.volume_id, request.max_entries, request.starting_token
        )
        present = self._backend.existing_backing_files(volumes)
        entries = []
        for volume in volumes:
            entry = csi_pb2.ListVolumesResponse.Entry(volume=self._volume_message(volume, None))
            entry.status.published_node_ids.extend(self._attachments.published_nodes(volume.volume_id))
            entry.status.volume_condition.CopyFrom(self._condition(volume, volume.file_path in present))
            entries.append(entry)
        return csi_pb2.ListVolumesResponse(entries=entries, next_token=next_token)

    def ControllerGetVolume(
        self, request: csi_pb2.ControllerGetVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerGetVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        volume = self._backend.get_volume(volume_id)
        if volume is None:
            raise errors.NotFound(f"volume {errors.quote_input(volume_id)} does not exist")
        present = volume.file_path in self._backend.existing_backing_files([volume])
        status = csi_pb2.ControllerGetVolumeResponse.VolumeStatus(volume_condition=self._condition(volume, present))
        status.published_node_ids.extend(self._attachments.published_nodes(volume_id))
        return csi_pb2.ControllerGetVolumeResponse(volume=self._volume_message(volume, None), status=status)

    def GetCapacity(
        self, request: csi_pb2.GetCapacityRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetCapacityResponse:
        params = parse_parameters(request.parameters, self._defaults)
        if request.volume_capabilities:
            try:
                validate_capabilities(request.volume_capabilities)
            except UnsupportedCapability:
                return csi_pb2.GetCapacityResponse(available_capacity=0)  # nothing can be provisioned for these
        pool = self._backend.pool_capacity(params.volume_path)
        response = csi_pb2.GetCapacityResponse(available_capacity=pool.free_bytes)
        response.maximum_volume_size.value = min(self._limits.maximum_bytes, pool.free_bytes)
        response.minimum_volume_size.value = self._limits.minimum_bytes
        return response

    # ---- attachments --------------------------------------------------------------------------------------------

    @csi_method(lock_on="volume_id")
    def ControllerPublishVolume(
        self, request: csi_pb2.ControllerPublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerPublishVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        node_id = require(request.node_id, "node_id")
        if not request.HasField("volume_capability"):
            raise errors.InvalidArgument("volume_capability is required")
        capability = validate_capabilities([request.volume_capability])
        # A hand-made PV must not turn a single-writer filesystem into a multi-writer block device.
        check_against_record(capability, request.volume_context)
        volume = self._backend.get_volume(volume_id)
        if volume is None:
            raise errors.NotFound(f"volume {errors.quote_input(volume_id)} does not exist")
        if not self._nodes.node_known(node_id):
            raise errors.NotFound(f"node {errors.quote_input(node_id)} is not a node of this cluster")
        # Read before the attachment rules run: they hold locks, and this may ask the API server.
        volume_limit = self._nodes.volume_limit(node_id)
        already_attached = node_id in self._attachments.published_nodes(volume_id)
        self._attachments.publish(
            PublishRequest(
                volume_id=volume_id,
                node_id=node_id,
                multi_node_block=capability.multi_node,
                readonly=request.readonly,
                migration_timeout=migration_timeout_from_context(request.volume_context),
                max_volumes_per_node=volume_limit,
            )
        )
        if request.volume_context.get(PARAM_FENCING) == "true":
            self._fence_in(volume_id, node_id, roll_back=not already_attached)
        # The node finds the device by NQN; handing it over here keeps NodeStage independent of volume_context.
        return csi_pb2.ControllerPublishVolumeResponse(publish_context={CONTEXT_NQN: volume.nqn or ""})

    @csi_method(lock_on="volume_id")
    def ControllerUnpublishVolume(
        self, request: csi_pb2.ControllerUnpublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerUnpublishVolumeResponse:
        volume_id = require(request.volume_id, "volume_id")
        # No node id means "from every node" (CSI spec).
        nodes = [request.node_id] if request.node_id else self._attachments.published_nodes(volume_id)
        for node_id in nodes:
            self._attachments.unpublish(volume_id, node_id)
        if nodes and self._backend.is_fenced(volume_id):
            self._fence_to_attached(volume_id)
        return csi_pb2.ControllerUnpublishVolumeResponse()

    def _fence_in(self, volume_id: str, node_id: str, *, roll_back: bool) -> None:
        """Open the export to the node just admitted; if that cannot be done, the publish did not happen.

        Only an attachment this call created is rolled back: a repeated publish to a node that already holds the
        volume must never detach it in our books (another node could then be admitted while it still writes).
        """
        try:
            host_nqn = self._nodes.host_nqn(node_id)
            if host_nqn is None:
                raise errors.FailedPrecondition(
                    f"volume {errors.quote_input(volume_id)} is fenced but node {errors.quote_input(node_id)} has "
                    "not reported its NVMe host NQN"
                )
            self._backend.fence_allow(volume_id, host_nqn)
        except errors.RdsCsiError:
            if roll_back:
                self._attachments.unpublish(volume_id, node_id)
            raise

    def _fence_to_attached(self, volume_id: str) -> None:
        """Allow exactly the nodes still attached. A node whose NQN cannot be read keeps the list unchanged: a
        detached node staying allowed a while is better than cutting off a live one."""
        nqns = [self._nodes.host_nqn(node) for node in self._attachments.published_nodes(volume_id)]
        if any(nqn is None for nqn in nqns):
            raise errors.Unavailable(
                f"volume {errors.quote_input(volume_id)}: cannot read every attached node's host NQN; retry"
            )
        self._backend.fence_only(volume_id, [n for n in nqns if n is not None])

    # ---- snapshots ----------------------------------------------------------------------------------------------

    @csi_method(lock_on="name")
    def CreateSnapshot(
        self, request: csi_pb2.CreateSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateSnapshotResponse:
        name = require(request.name, "name")
        source = validate_volume_name(request.source_volume_id, "source_volume_id")
        snapshot = self._backend.create_snapshot(name, source)
        return csi_pb2.CreateSnapshotResponse(snapshot=self._snapshot_message(snapshot))

    @csi_method(lock_on="snapshot_id")
    def DeleteSnapshot(
        self, request: csi_pb2.DeleteSnapshotRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteSnapshotResponse:
        self._backend.delete_snapshot(require(request.snapshot_id, "snapshot_id"))
        return csi_pb2.DeleteSnapshotResponse()

    def ListSnapshots(
        self, request: csi_pb2.ListSnapshotsRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListSnapshotsResponse:
        if request.snapshot_id:
            found = self._backend.get_snapshot(request.snapshot_id)
            snapshots = [found] if found is not None else []
        else:
            snapshots = self._backend.list_snapshots()
        if request.source_volume_id:
            snapshots = [s for s in snapshots if s.source_volume_id == request.source_volume_id]
        page, next_token = _page(snapshots, lambda s: s.snapshot_id, request.max_entries, request.starting_token)
        entries = [csi_pb2.ListSnapshotsResponse.Entry(snapshot=self._snapshot_message(s)) for s in page]
        return csi_pb2.ListSnapshotsResponse(entries=entries, next_token=next_token)

    # ---- messages -----------------------------------------------------------------------------------------------

    def _content_source(self, request: csi_pb2.CreateVolumeRequest) -> ContentSource | None:
        if not request.HasField("volume_content_source"):
            return None
        src = request.volume_content_source
        kind = src.WhichOneof("type")
        if kind == "snapshot":
            return ContentSource("snapshot", require(src.snapshot.snapshot_id, "volume_content_source.snapshot_id"))
        if kind == "volume":
            return ContentSource("volume", require(src.volume.volume_id, "volume_content_source.volume_id"))
        raise errors.InvalidArgument("volume_content_source: a snapshot or a volume is required")

    def _volume_message(
        self, volume: Volume, params: VolumeParameters | None, capabilities: CapabilitySummary | None = None
    ) -> csi_pb2.Volume:
        """The CSI Volume; its context is everything the node needs, and the capabilities it was created for,
        frozen at create time (``params`` and ``capabilities`` are known only then)."""
        context = {
            PARAM_NVME_ADDRESS: params.nvme_address if params else self._defaults.nvme_address,
            PARAM_NVME_PORT: str(volume.port or (params.nvme_port if params else self._defaults.nvme_port)),
            CONTEXT_NQN: volume.nqn or "",
            PARAM_VOLUME_PATH: volume.volume_path or "",
        }
        if params is not None:
            context[PARAM_CTRL_LOSS_TMO] = str(params.ctrl_loss_tmo)
            context[PARAM_RECONNECT_DELAY] = str(params.reconnect_delay)
            context[PARAM_MIGRATION_TIMEOUT] = str(params.migration_timeout_seconds)
            if params.fencing:
                context[PARAM_FENCING] = "true"
            if params.keep_alive_tmo is not None:
                context[PARAM_KEEP_ALIVE_TMO] = str(params.keep_alive_tmo)
        if capabilities is not None:
            context.update(capability_record(capabilities))
        return csi_pb2.Volume(volume_id=volume.volume_id, capacity_bytes=volume.capacity_bytes, volume_context=context)

    def _snapshot_message(self, snapshot: Snapshot) -> csi_pb2.Snapshot:
        return csi_pb2.Snapshot(
            snapshot_id=snapshot.snapshot_id,
            source_volume_id=snapshot.source_volume_id,
            size_bytes=snapshot.size_bytes,
            creation_time=_timestamp(snapshot),
            ready_to_use=True,
        )

    def _condition(self, volume: Volume, backing_file_present: bool) -> csi_pb2.VolumeCondition:
        problems = []
        if not volume.exported:
            problems.append("the disk is not exported over NVMe/TCP")
        if not backing_file_present:
            problems.append(f"the backing file {volume.file_path} is missing")
        if problems:
            return csi_pb2.VolumeCondition(abnormal=True, message="; ".join(problems))
        return csi_pb2.VolumeCondition(abnormal=False, message="volume is exported and its backing file exists")
