"""Storage-side fencing: the export's allow-list follows the attachments, and is never left open to every host."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.csi.proto import csi_pb2
from rds_csi.nvme import HOST_NQN_ANNOTATION
from rds_csi.routeros.volumes import FENCE_CLOSED_NQN
from rds_csi.simulator import FaultRule
from tests.integration.attach.test_attachments_kube import Cluster, block_cap, running_cluster

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
NQN = {node: f"nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000000{i}" for i, node in
       enumerate(("node-a", "node-b", "node-c"), start=1)}  # fmt: skip


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    nodes = {node: {HOST_NQN_ANNOTATION: nqn} for node, nqn in NQN.items()}
    nodes["node-silent"] = {}  # a node whose plugin never reported a host NQN
    with running_cluster(nodes) as cluster:
        yield cluster


def fenced_volume(cluster: Cluster, name: str, *, block_rwx: bool) -> csi_pb2.Volume:
    cap = block_cap(Mode.MULTI_NODE_MULTI_WRITER if block_rwx else Mode.SINGLE_NODE_WRITER)
    volume: csi_pb2.Volume = cluster.ctl.controller.CreateVolume(
        csi_pb2.CreateVolumeRequest(name=name, volume_capabilities=[cap], parameters={"fencing": "true"}),
        timeout=30,
    ).volume
    cluster.kube.add_pv(name, driver=DEFAULT_DRIVER_NAME, volume_mode="Block",
                        access_modes=("ReadWriteMany",) if block_rwx else ("ReadWriteOnce",))  # fmt: skip
    return volume


def allowed(cluster: Cluster, volume_id: str) -> tuple[str, ...]:
    routeros = cluster.ctl.plugin.routeros
    assert routeros is not None
    disk = routeros.client.get_disk(volume_id)
    assert disk is not None
    return disk.allowed_hosts


def test_fenced_export_is_closed_then_follows_the_single_writer(cluster: Cluster) -> None:
    volume = fenced_volume(cluster, "pvc-fenced", block_rwx=False)
    assert volume.volume_context["fencing"] == "true"
    assert allowed(cluster, "pvc-fenced") == (FENCE_CLOSED_NQN,)  # nobody until published
    va = cluster.attach(volume, "node-a", block_rwx=False)
    assert allowed(cluster, "pvc-fenced") == (NQN["node-a"],)
    with pytest.raises(grpc.RpcError):
        cluster.publish(volume, "node-b", block_rwx=False)
    assert allowed(cluster, "pvc-fenced") == (NQN["node-a"],)  # a refused node never gets in
    cluster.detach(volume, "node-a", va)
    assert allowed(cluster, "pvc-fenced") == (FENCE_CLOSED_NQN,)  # closed again, never open to all


def test_fenced_migration_allows_both_sides_then_only_the_target(cluster: Cluster) -> None:
    volume = fenced_volume(cluster, "pvc-fenced-vm", block_rwx=True)
    va_a = cluster.attach(volume, "node-a", block_rwx=True)
    cluster.attach(volume, "node-b", block_rwx=True)
    assert set(allowed(cluster, "pvc-fenced-vm")) == {NQN["node-a"], NQN["node-b"]}
    cluster.detach(volume, "node-a", va_a)
    assert allowed(cluster, "pvc-fenced-vm") == (NQN["node-b"],)


def test_node_without_a_reported_host_nqn_is_not_published_to_a_fenced_volume(cluster: Cluster) -> None:
    volume = fenced_volume(cluster, "pvc-fenced-silent", block_rwx=False)
    with pytest.raises(grpc.RpcError) as refused:
        cluster.publish(volume, "node-silent", block_rwx=False)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "host NQN" in (refused.value.details() or "")
    assert cluster.published(volume) == []  # the attachment was rolled back with the failed fence
    assert allowed(cluster, "pvc-fenced-silent") == (FENCE_CLOSED_NQN,)


def test_unfenced_volumes_keep_an_open_export(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-open", block_rwx=False)
    va = cluster.attach(volume, "node-a", block_rwx=False)
    assert allowed(cluster, "pvc-open") == ()
    cluster.detach(volume, "node-a", va)
    assert allowed(cluster, "pvc-open") == ()


def test_a_failed_fence_on_a_repeated_publish_never_detaches_the_holder(cluster: Cluster) -> None:
    volume = fenced_volume(cluster, "pvc-fenced-retry", block_rwx=False)
    cluster.attach(volume, "node-a", block_rwx=False)
    # The volume lookup passes; the fence step's read of the allow-list fails.
    cluster.sim.simulator.faults.add_rule(
        FaultRule(op="print", kind="error", message="connection lost", after=1, times=1)
    )
    with pytest.raises(grpc.RpcError) as failed:
        cluster.publish(volume, "node-a", block_rwx=False)  # the attacher repeats a publish; RouterOS hiccups
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert cluster.published(volume) == ["node-a"]  # still held: node-b must stay fenced out
    with pytest.raises(grpc.RpcError) as refused:
        cluster.publish(volume, "node-b", block_rwx=False)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
