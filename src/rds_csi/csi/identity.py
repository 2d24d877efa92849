"""CSI Identity: plugin name and version, capabilities, and Probe backed by the registered health checks."""

from __future__ import annotations

import logging

import grpc

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from rds_csi.observability.health import HealthRegistry
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

_Service = csi_pb2.PluginCapability.Service
_Expansion = csi_pb2.PluginCapability.VolumeExpansion


class IdentityServicer(csi_pb2_grpc.IdentityServicer):  # type: ignore[misc]
    def __init__(self, driver_name: str, version: str, controller: bool, health: HealthRegistry) -> None:
        self._driver_name = driver_name
        self._version = version
        self._controller = controller
        self._health = health

    def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=self._driver_name, vendor_version=self._version)

    def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        # No VOLUME_ACCESSIBILITY_CONSTRAINTS: every node reaches the RDS over the network, so volumes carry no
        # topology and the scheduler has nothing to honour.
        capabilities = [csi_pb2.PluginCapability(volume_expansion=_Expansion(type=_Expansion.ONLINE))]
        if self._controller:
            capabilities.insert(0, csi_pb2.PluginCapability(service=_Service(type=_Service.CONTROLLER_SERVICE)))
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=capabilities)

    def Probe(self, request: csi_pb2.ProbeRequest, context: grpc.ServicerContext) -> csi_pb2.ProbeResponse:
        report = self._health.run()
        if not report.ready:
            log_event(_log, "csi.probe_not_ready", logging.WARNING, reason=report.describe())
        response = csi_pb2.ProbeResponse()
        response.ready.value = report.ready
        return response

    def register(self, server: grpc.Server) -> None:
        csi_pb2_grpc.add_IdentityServicer_to_server(self, server)
