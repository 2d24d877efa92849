"""CSI Node: who this node is, and the volume data path (stage, publish, unpublish, unstage, stats, expand).

Each volume method validates its request (``rds_csi.csi.node_validation``), calls the use case in
``rds_csi.node``, and builds the response; errors are domain exceptions that the interceptor maps. A second
concurrent operation on the same volume is answered ABORTED (``csi_method``); stats are read-only and not locked.
"""

from __future__ import annotations

import grpc

from rds_csi.csi.locks import LockedServicer, csi_method
from rds_csi.csi.node_validation import (
    parse_expand,
    parse_publish,
    parse_stage,
    parse_stats,
    parse_unpublish,
    parse_unstage,
)
from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from rds_csi.node import NodeVolumes, VolumeStats

_Cap = csi_pb2.NodeServiceCapability.RPC.Type
_Unit = csi_pb2.VolumeUsage.Unit


def _usage(stats: VolumeStats) -> list[csi_pb2.VolumeUsage]:
    if stats.available_bytes is None or stats.used_bytes is None:
        return [csi_pb2.VolumeUsage(unit=_Unit.BYTES, total=stats.total_bytes)]
    usage = [
        csi_pb2.VolumeUsage(
            unit=_Unit.BYTES, total=stats.total_bytes, available=stats.available_bytes, used=stats.used_bytes
        )
    ]
    if stats.total_inodes is not None and stats.available_inodes is not None and stats.used_inodes is not None:
        usage.append(
            csi_pb2.VolumeUsage(
                unit=_Unit.INODES,
                total=stats.total_inodes,
                available=stats.available_inodes,
                used=stats.used_inodes,
            )
        )
    return usage


class NodeServicer(csi_pb2_grpc.NodeServicer, LockedServicer):  # type: ignore[misc]
    def __init__(self, node_id: str, max_volumes_per_node: int, volumes: NodeVolumes, managed_prefix: str) -> None:
        """``max_volumes_per_node`` 0 means no limit (the CSI convention: the field is left unset); only NQNs
        under ``managed_prefix`` are staged (they are the only ones this node will ever disconnect)."""
        LockedServicer.__init__(self)
        self._node_id = node_id
        self._max_volumes = max_volumes_per_node
        self._volumes = volumes
        self._managed_prefix = managed_prefix

    def register(self, server: grpc.Server) -> None:
        csi_pb2_grpc.add_NodeServicer_to_server(self, server)

    def capabilities(self) -> list[csi_pb2.NodeServiceCapability.RPC.Type]:
        # No SINGLE_NODE_MULTI_WRITER: pods of one node sharing a volume are not policed here.
        return [_Cap.STAGE_UNSTAGE_VOLUME, _Cap.EXPAND_VOLUME, _Cap.GET_VOLUME_STATS, _Cap.VOLUME_CONDITION]

    def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        # No accessible_topology: the RDS serves every node over the network alike.
        return csi_pb2.NodeGetInfoResponse(node_id=self._node_id, max_volumes_per_node=self._max_volumes)

    def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        rpc = csi_pb2.NodeServiceCapability.RPC
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[csi_pb2.NodeServiceCapability(rpc=rpc(type=t)) for t in self.capabilities()]
        )

    @csi_method(lock_on="volume_id")
    def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeStageVolumeResponse:
        self._volumes.stage(parse_stage(request, self._managed_prefix))
        return csi_pb2.NodeStageVolumeResponse()

    @csi_method(lock_on="volume_id")
    def NodeUnstageVolume(
        self, request: csi_pb2.NodeUnstageVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        self._volumes.unstage(parse_unstage(request))
        return csi_pb2.NodeUnstageVolumeResponse()

    @csi_method(lock_on="volume_id")
    def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodePublishVolumeResponse:
        self._volumes.publish(parse_publish(request))
        return csi_pb2.NodePublishVolumeResponse()

    @csi_method(lock_on="volume_id")
    def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        self._volumes.unpublish(parse_unpublish(request))
        return csi_pb2.NodeUnpublishVolumeResponse()

    def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        stats = self._volumes.stats(parse_stats(request))
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=_usage(stats),
            volume_condition=csi_pb2.VolumeCondition(
                abnormal=stats.condition.abnormal, message=stats.condition.message
            ),
        )

    @csi_method(lock_on="volume_id")
    def NodeExpandVolume(
        self, request: csi_pb2.NodeExpandVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeExpandVolumeResponse:
        return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=self._volumes.expand(parse_expand(request)))
