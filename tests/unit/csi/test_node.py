"""The node service's answers, and the Identity service's capabilities per mode."""

from __future__ import annotations

from typing import Any

import pytest

from rds_csi.config import load_plugin_config
from rds_csi.csi.identity import IdentityServicer
from rds_csi.csi.node import NodeServicer
from rds_csi.csi.proto import csi_pb2
from rds_csi.observability.health import HealthRegistry

_Service = csi_pb2.PluginCapability.Service
# The servicers never look at the gRPC context.
NO_CONTEXT: Any = None


def test_node_get_info_reports_the_configured_node_id_and_volume_limit() -> None:
    config = load_plugin_config({"mode": "node", "node_id": "worker-1", "max_volumes_per_node": "24"}, {})
    servicer = NodeServicer(config.node_id, config.node.max_volumes_per_node)
    info = servicer.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), NO_CONTEXT)
    assert (info.node_id, info.max_volumes_per_node) == ("worker-1", 24)
    assert not info.HasField("accessible_topology")


def test_node_claims_no_optional_capability_before_the_data_path_exists() -> None:
    response = NodeServicer("worker-1", 0).NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), NO_CONTEXT)
    assert list(response.capabilities) == []


@pytest.mark.parametrize(("controller", "services"), [(True, [_Service.CONTROLLER_SERVICE]), (False, [])])
def test_identity_advertises_the_controller_service_only_where_it_runs_and_no_topology(
    controller: bool, services: list[int]
) -> None:
    identity = IdentityServicer("rds.csi.srvlab.io", "0", controller=controller, health=HealthRegistry())
    caps = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), NO_CONTEXT).capabilities
    assert [c.service.type for c in caps if c.HasField("service")] == services
