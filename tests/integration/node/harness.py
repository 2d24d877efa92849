"""A node plugin in this process, on a unix socket, with real gRPC stubs to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from rds_csi.csi.proto import csi_pb2_grpc
from rds_csi.node.connector import Connector
from rds_csi.plugin.config import load_plugin_config
from rds_csi.plugin.lifecycle import Plugin
from tests.kube_emulator import KubeEmulator

NODE_ID = "worker-1"


@dataclass
class RunningNode:
    plugin: Plugin
    identity: csi_pb2_grpc.IdentityStub
    node: csi_pb2_grpc.NodeStub
    host_nqn_file: Path

    @property
    def host_nqn(self) -> str:
        return self.host_nqn_file.read_text().strip()


def node_annotations(kube: KubeEmulator) -> dict[str, str]:
    """The annotations of this node's Node object, as the API server holds them now."""
    node = kube.get("nodes", NODE_ID)
    assert node is not None, f"no Node {NODE_ID}"
    found: dict[str, str] = node["metadata"].get("annotations", {})
    return found


def node_plugin(directory: Path, kube_api: str, connector: Connector | None = None, **flags: str) -> Plugin:
    """``rds-csi plugin --mode node`` with its socket and host NQN and ID files in ``directory``, re-checking every
    second; ``connector`` stands in for the kernel's NVMe/TCP host where it cannot run."""
    options: dict[str, str | None] = {
        "mode": "node",
        "node_id": NODE_ID,
        "endpoint": f"unix://{directory / 'node.sock'}",
        "metrics_address": "off",
        "log_level": "warning",
        "kube_api": kube_api,
        "host_nqn_file": str(directory / "nvme" / "hostnqn"),
        "host_id_file": str(directory / "nvme" / "hostid"),
        "host_nqn_recheck_interval": "1",
        "kubelet_dir": str(directory / "kubelet"),
        # Recovery disconnects managed subsystems no staged volume claims: tests that connect by hand turn it on.
        "node_recovery_interval": "0",
        **flags,
    }
    return Plugin(load_plugin_config(options, {}), connector=connector)


@contextmanager
def running_node(
    directory: Path, kube_api: str, connector: Connector | None = None, **flags: str
) -> Iterator[RunningNode]:
    plugin = node_plugin(directory, kube_api, connector, **flags)
    plugin.start()
    try:
        with grpc.insecure_channel(f"unix://{directory / 'node.sock'}") as channel:
            yield RunningNode(
                plugin,
                csi_pb2_grpc.IdentityStub(channel),
                csi_pb2_grpc.NodeStub(channel),
                Path(plugin.config.node.host_nqn_file),
            )
    finally:
        plugin.stop()
