"""csi-sanity "Identity Service" cases, reproduced against the running plugin."""

from __future__ import annotations

import re

import pytest

from rds_csi.csi.proto import csi_pb2
from tests.conformance.sanity_helpers import RPC_TIMEOUT, SanityTarget

_Service = csi_pb2.PluginCapability.Service.Type
_Expansion = csi_pb2.PluginCapability.VolumeExpansion.Type

KNOWN_SERVICES = frozenset(
    {_Service.CONTROLLER_SERVICE, _Service.VOLUME_ACCESSIBILITY_CONSTRAINTS, _Service.GROUP_CONTROLLER_SERVICE}
)
KNOWN_EXPANSIONS = frozenset({_Expansion.ONLINE, _Expansion.OFFLINE})
# The spec's rule for plugin names: a domain-like name of at most 63 characters, starting and ending with a
# letter (the suite checks the same).
PLUGIN_NAME_RE = re.compile(r"^[A-Za-z](?:[A-Za-z0-9._-]{0,61}[A-Za-z])?$")


@pytest.mark.conformance("Identity Service GetPluginCapabilities should return appropriate capabilities")
def test_plugin_capabilities_are_all_known_kinds(csi: SanityTarget) -> None:
    response: csi_pb2.GetPluginCapabilitiesResponse = csi.identity.GetPluginCapabilities(
        csi_pb2.GetPluginCapabilitiesRequest(), timeout=RPC_TIMEOUT
    )
    for capability in response.capabilities:
        kind = capability.WhichOneof("type")
        if kind == "service":
            assert capability.service.type in KNOWN_SERVICES, f"unknown service: {capability.service}"
        elif kind == "volume_expansion":
            assert capability.volume_expansion.type in KNOWN_EXPANSIONS, f"unknown expansion: {capability}"
        else:
            pytest.fail(f"unknown plugin capability: {capability}")


@pytest.mark.conformance("Identity Service Probe should return appropriate information")
def test_probe_with_live_backend_reports_ready(csi: SanityTarget) -> None:
    response: csi_pb2.ProbeResponse = csi.identity.Probe(csi_pb2.ProbeRequest(), timeout=RPC_TIMEOUT)
    # An unset ``ready`` means ready; the backend (the simulator) is up, so an explicit answer must be yes.
    assert not response.HasField("ready") or response.ready.value, "Probe reports not ready"


@pytest.mark.conformance("Identity Service GetPluginInfo should return appropriate information")
def test_plugin_info_has_valid_name_and_version(csi: SanityTarget) -> None:
    response: csi_pb2.GetPluginInfoResponse = csi.identity.GetPluginInfo(
        csi_pb2.GetPluginInfoRequest(), timeout=RPC_TIMEOUT
    )
    assert PLUGIN_NAME_RE.fullmatch(response.name), f"invalid plugin name {response.name!r}"
    assert response.vendor_version, "GetPluginInfo without a vendor_version (required by the spec)"
