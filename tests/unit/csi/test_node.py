"""The node service's answers, and the Identity service's capabilities per mode."""

from __future__ import annotations

from typing import Any

import pytest

from rds_csi.core.clock import SystemClock
from rds_csi.csi.identity import IdentityServicer
from rds_csi.csi.node import NodeServicer
from rds_csi.csi.proto import csi_pb2
from rds_csi.node import NodeVolumes
from rds_csi.node.connector import KernelConnector
from rds_csi.observability.health import HealthRegistry
from rds_csi.observability.metrics import Metrics
from rds_csi.plugin.config import load_plugin_config

pytestmark = pytest.mark.native  # the node packages load the native scanner and ioctls

_Service = csi_pb2.PluginCapability.Service
_Cap = csi_pb2.NodeServiceCapability.RPC.Type
PREFIX = "nqn.2000-02.com.mikrotik:"
# The servicers never look at the gRPC context.
NO_CONTEXT: Any = None


def node_servicer(node_id: str, max_volumes: int) -> NodeServicer:
    volumes = NodeVolumes(KernelConnector(PREFIX, SystemClock()), Metrics())
    return NodeServicer(node_id, max_volumes, volumes, PREFIX)


def test_node_get_info_reports_the_configured_node_id_and_volume_limit() -> None:
    config = load_plugin_config({"mode": "node", "node_id": "worker-1", "max_volumes_per_node": "24"}, {})
    info = node_servicer(config.node_id, config.node.max_volumes_per_node).NodeGetInfo(
        csi_pb2.NodeGetInfoRequest(), NO_CONTEXT
    )
    assert (info.node_id, info.max_volumes_per_node) == ("worker-1", 24)
    assert not info.HasField("accessible_topology")


def test_node_claims_stage_expand_stats_and_condition_but_not_multi_writer() -> None:
    response = node_servicer("worker-1", 0).NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), NO_CONTEXT)
    assert sorted(c.rpc.type for c in response.capabilities) == sorted(
        [_Cap.STAGE_UNSTAGE_VOLUME, _Cap.EXPAND_VOLUME, _Cap.GET_VOLUME_STATS, _Cap.VOLUME_CONDITION]
    )


@pytest.mark.parametrize(("controller", "services"), [(True, [_Service.CONTROLLER_SERVICE]), (False, [])])
def test_identity_advertises_the_controller_service_only_where_it_runs_and_no_topology(
    controller: bool, services: list[int]
) -> None:
    identity = IdentityServicer("rds.csi.srvlab.io", "0", controller=controller, health=HealthRegistry())
    caps = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), NO_CONTEXT).capabilities
    assert [c.service.type for c in caps if c.HasField("service")] == services
