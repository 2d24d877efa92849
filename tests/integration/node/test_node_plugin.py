"""The node plugin as the kubelet and the controller see it: real gRPC on a unix socket, and its host NQN on its
Node object in the emulated API server, written in the background and restored when someone takes it away."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from rds_csi.nvme import HOST_NQN_ANNOTATION
from rds_csi.plugin.config import ConfigError
from tests.integration.node.harness import NODE_ID, node_annotations, node_plugin, running_node
from tests.kube_emulator import KubeEmulator
from tests.support import wait_until

_Cap = csi_pb2.NodeServiceCapability.RPC.Type
IMPOSTOR_NQN = "nqn.2014-08.com.example:someone-else"


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emulator:
        emulator.add_node(NODE_ID, annotations={"team": "storage"})
        yield emulator


def reporter_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rds-csi-host-nqn-report"]


def test_host_nqn_is_reported_on_the_node_and_restored_after_removal_or_change(
    short_tmp: Path, kube: KubeEmulator
) -> None:
    with running_node(short_tmp, kube.url) as node:
        assert node.host_nqn.startswith("nqn.2014-08.org.nvmexpress:uuid:")  # generated on first start
        assert wait_until(lambda: node_annotations(kube).get(HOST_NQN_ANNOTATION) == node.host_nqn)
        kube.annotate_node(NODE_ID, {HOST_NQN_ANNOTATION: None})
        assert wait_until(lambda: node_annotations(kube).get(HOST_NQN_ANNOTATION) == node.host_nqn)
        kube.annotate_node(NODE_ID, {HOST_NQN_ANNOTATION: IMPOSTOR_NQN})
        assert wait_until(lambda: node_annotations(kube).get(HOST_NQN_ANNOTATION) == node.host_nqn)
        assert node_annotations(kube)["team"] == "storage"  # a merge patch: nobody else's annotation is touched
    assert reporter_threads() == []


def test_same_host_nqn_is_reported_after_a_restart(short_tmp: Path, kube: KubeEmulator) -> None:
    with running_node(short_tmp, kube.url) as first:
        assert wait_until(lambda: HOST_NQN_ANNOTATION in node_annotations(kube))
        reported = first.host_nqn
    kube.annotate_node(NODE_ID, {HOST_NQN_ANNOTATION: None})
    with running_node(short_tmp, kube.url) as second:
        assert wait_until(lambda: node_annotations(kube).get(HOST_NQN_ANNOTATION) == reported)
        assert second.host_nqn == reported


def test_node_serves_while_the_api_server_is_down_and_reports_once_it_is_up(
    short_tmp: Path, kube: KubeEmulator
) -> None:
    kube.down = True
    with running_node(short_tmp, kube.url, max_volumes_per_node="24") as node:
        info = node.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=5)
        assert (info.node_id, info.max_volumes_per_node) == (NODE_ID, 24)
        assert wait_until(lambda: ("GET", f"/api/v1/nodes/{NODE_ID}") in kube.requests())  # it tried, and failed
        kube.down = False
        assert wait_until(lambda: node_annotations(kube).get(HOST_NQN_ANNOTATION) == node.host_nqn)


def test_node_and_identity_services_answer_over_grpc(short_tmp: Path, kube: KubeEmulator) -> None:
    with running_node(short_tmp, kube.url) as node:
        info = node.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=5)
        assert (info.node_id, info.max_volumes_per_node) == (NODE_ID, 0)
        caps = node.node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), timeout=5)
        assert _Cap.STAGE_UNSTAGE_VOLUME in [c.rpc.type for c in caps.capabilities]
        plugin_caps = node.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), timeout=5)
        assert not [c for c in plugin_caps.capabilities if c.HasField("service")]  # no controller, no topology
        assert node.identity.Probe(csi_pb2.ProbeRequest(), timeout=5).ready.value
        with pytest.raises(grpc.RpcError) as staged:  # served by the data path, which checks the request first
            node.node.NodeStageVolume(csi_pb2.NodeStageVolumeRequest(volume_id="pvc-1"), timeout=5)
        assert staged.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_invalid_host_nqn_file_stops_the_node_plugin_before_it_serves(short_tmp: Path, kube: KubeEmulator) -> None:
    host_nqn_file = short_tmp / "nvme" / "hostnqn"
    host_nqn_file.parent.mkdir()
    host_nqn_file.write_text("worker-1\n")
    plugin = node_plugin(short_tmp, kube.url)
    with pytest.raises(ConfigError) as refused:
        plugin.start()
    assert refused.value.option == "--host-nqn-file"
    assert str(host_nqn_file) in str(refused.value)
    assert not (short_tmp / "node.sock").exists()
    assert host_nqn_file.read_text() == "worker-1\n"  # the operator's file is theirs to fix
    assert HOST_NQN_ANNOTATION not in node_annotations(kube)


def test_invalid_host_id_file_stops_the_node_plugin_before_it_serves(short_tmp: Path, kube: KubeEmulator) -> None:
    host_id_file = short_tmp / "nvme" / "hostid"
    host_id_file.parent.mkdir()
    host_id_file.write_text("not-a-uuid\n")
    plugin = node_plugin(short_tmp, kube.url)
    with pytest.raises(ConfigError) as refused:
        plugin.start()
    assert refused.value.option == "--host-id-file"
    assert str(host_id_file) in str(refused.value)
    assert not (short_tmp / "node.sock").exists()
    assert host_id_file.read_text() == "not-a-uuid\n"


def test_generated_host_id_is_the_generated_host_nqns_uuid(short_tmp: Path) -> None:
    with running_node(short_tmp, "off") as node:
        host_id = (short_tmp / "nvme" / "hostid").read_text()
        assert node.host_nqn == f"nqn.2014-08.org.nvmexpress:uuid:{host_id.strip()}"


def test_without_a_kubernetes_api_the_node_serves_and_says_once_that_fencing_cannot_see_it(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rds_csi")
    with running_node(short_tmp, "off") as node:
        assert node.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=5).node_id == NODE_ID
        assert node.host_nqn_file.exists()  # the identity is settled all the same, for the data path
        assert reporter_threads() == []
    warnings = [r for r in caplog.records if r.getMessage() == "node.host_nqn_not_reported"]
    assert len(warnings) == 1
