"""CSI Node: who this node is. The volume data path (stage, publish, expand, stats) is not served yet.

Calls without a handler here are answered UNIMPLEMENTED by the generated base class, and NodeGetCapabilities
claims no optional capability, so the kubelet never calls what the node cannot do.
"""

from __future__ import annotations

import grpc

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc


class NodeServicer(csi_pb2_grpc.NodeServicer):  # type: ignore[misc]
    def __init__(self, node_id: str, max_volumes_per_node: int) -> None:
        """``max_volumes_per_node`` 0 means no limit (the CSI convention: the field is left unset)."""
        self._node_id = node_id
        self._max_volumes = max_volumes_per_node

    def register(self, server: grpc.Server) -> None:
        csi_pb2_grpc.add_NodeServicer_to_server(self, server)

    def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        # No accessible_topology: the RDS serves every node over the network alike.
        return csi_pb2.NodeGetInfoResponse(node_id=self._node_id, max_volumes_per_node=self._max_volumes)

    def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        return csi_pb2.NodeGetCapabilitiesResponse(capabilities=[])
