"""A node's attach limit at ControllerPublishVolume: real gRPC to the controller, the simulator over SSH, and the
limit from the node's CSINode (served by the Kubernetes API emulator over the real REST protocol) or, without one,
from ``--default-max-volumes-per-node``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.csi.proto import csi_pb2
from tests.integration.attach.test_attachments_kube import running_cluster
from tests.support import RunningController, SimulatorAccess, start_controller, start_simulator
from tests.tempdirs import short_temp_dir

GiB = 1 << 30
Mode = csi_pb2.VolumeCapability.AccessMode.Mode
MOUNT = csi_pb2.VolumeCapability(
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
    mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
)


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


# ---- with the Kubernetes API: the node's CSINode says ----------------------------------------------------------


def test_third_publish_to_a_node_whose_csinode_allows_two_is_resource_exhausted() -> None:
    with running_cluster(("node-a",)) as cluster:
        cluster.kube.add_csinode("node-a", {"other.csi.example.com": 50, DEFAULT_DRIVER_NAME: 2})
        first, second, third = (cluster.volume(f"pvc-limit-{i}", block_rwx=False) for i in range(3))
        va_first = cluster.attach(first, "node-a", block_rwx=False)
        cluster.attach(second, "node-a", block_rwx=False)
        cluster.kube.add_volume_attachment(third.volume_id, "node-a", DEFAULT_DRIVER_NAME, attached=False)
        refused = refusal(lambda: cluster.publish(third, "node-a", block_rwx=False))
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "node-a" in (refused.details() or "") and "2" in (refused.details() or "")
        cluster.publish(first, "node-a", block_rwx=False)  # a repeat is not a new volume on the node
        refused_again = refusal(lambda: cluster.publish(third, "node-a", block_rwx=False))
        assert refused_again.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        cluster.detach(first, "node-a", va_first)
        cluster.publish(third, "node-a", block_rwx=False)  # one detached: room again
        assert cluster.published(third) == ["node-a"]


def test_a_migration_target_counts_against_its_nodes_limit() -> None:
    with running_cluster(("node-a", "node-b")) as cluster:
        cluster.kube.add_csinode("node-b", {DEFAULT_DRIVER_NAME: 1})
        vm_disk = cluster.volume("pvc-limit-vm", block_rwx=True)
        other = cluster.volume("pvc-limit-other", block_rwx=False)
        cluster.attach(vm_disk, "node-a", block_rwx=True)
        cluster.attach(vm_disk, "node-b", block_rwx=True)  # node-b is the migration target: one volume held
        assert cluster.published(vm_disk) == ["node-a", "node-b"]
        refused = refusal(lambda: cluster.publish(other, "node-b", block_rwx=False))
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_without_our_driver_in_the_csinode_the_configured_default_applies() -> None:
    with running_cluster(("node-a",), default_max_volumes_per_node="1") as cluster:
        cluster.kube.add_csinode("node-a", {"other.csi.example.com": 50})
        first, second = (
            cluster.volume("pvc-default-1", block_rwx=False),
            cluster.volume("pvc-default-2", block_rwx=False),
        )
        cluster.attach(first, "node-a", block_rwx=False)
        assert refusal(lambda: cluster.attach(second, "node-a", block_rwx=False)).code() == (
            grpc.StatusCode.RESOURCE_EXHAUSTED
        )


def test_a_csinode_limit_wins_over_the_configured_default() -> None:
    with running_cluster(("node-a",), default_max_volumes_per_node="1") as cluster:
        cluster.kube.add_csinode("node-a", {DEFAULT_DRIVER_NAME: 3})
        volumes = [cluster.volume(f"pvc-wins-{i}", block_rwx=False) for i in range(4)]
        for volume in volumes[:3]:
            cluster.attach(volume, "node-a", block_rwx=False)
        assert all(cluster.published(volume) == ["node-a"] for volume in volumes[:3])
        assert refusal(lambda: cluster.attach(volumes[3], "node-a", block_rwx=False)).code() == (
            grpc.StatusCode.RESOURCE_EXHAUSTED
        )


# ---- without a Kubernetes API: the flag says -------------------------------------------------------------------


@pytest.fixture
def static_limited() -> Iterator[RunningController]:
    with short_temp_dir("rds-limit-") as directory:  # holds the plugin's unix socket
        sim: SimulatorAccess = start_simulator(directory)
        ctl = start_controller(sim, "ssh", directory / "ctl.sock", default_max_volumes_per_node="2")
        try:
            yield ctl
        finally:
            ctl.stop()
            sim.simulator.stop()


def test_third_publish_to_a_node_is_resource_exhausted_with_a_default_limit_of_two(
    static_limited: RunningController,
) -> None:
    ctl = static_limited

    def publish(volume: csi_pb2.Volume, node: str) -> None:
        request = csi_pb2.ControllerPublishVolumeRequest(
            volume_id=volume.volume_id, node_id=node, volume_capability=MOUNT, volume_context=volume.volume_context
        )
        ctl.controller.ControllerPublishVolume(request, timeout=30)

    volumes = [
        ctl.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=f"pvc-static-limit-{i}",
                volume_capabilities=[MOUNT],
                capacity_range=csi_pb2.CapacityRange(required_bytes=GiB),
            ),
            timeout=30,
        ).volume
        for i in range(3)
    ]
    publish(volumes[0], "node-1")
    publish(volumes[1], "node-1")
    refused = refusal(lambda: publish(volumes[2], "node-1"))
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    publish(volumes[1], "node-1")  # a repeat publish is not a new volume on the node
    publish(volumes[2], "node-2")
