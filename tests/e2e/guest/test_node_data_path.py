"""The node plugin's data path against the kernel's NVMe/TCP host, inside the VM.

The controller creates, publishes and grows volumes over SSH on the simulator, whose nvmet data plane exports them
as real NVMe/TCP targets; the node plugin, over real gRPC, connects through /dev/nvme-fabrics, finds the namespace
in sysfs, formats, mounts, binds, grows online and disconnects, as it does on a Kubernetes node.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from rds_csi.csi.proto import csi_pb2
from rds_csi.mount import read_mountinfo
from tests.e2e.guest import fabrics
from tests.integration.node.harness import NODE_ID, RunningNode, running_node
from tests.support import RunningController, SimulatorAccess, start_controller, start_simulator

GiB = 1 << 30
MiB = 1 << 20
Mode = csi_pb2.VolumeCapability.AccessMode.Mode


@pytest.fixture
def scratch() -> Path:
    return Path(os.environ["RDS_CSI_GUEST_SCRATCH"])


@pytest.fixture
def sim(scratch: Path, short_tmp: Path) -> Iterator[SimulatorAccess]:
    access = start_simulator(short_tmp, nvmet_data_dir=scratch / "node-images")
    yield access
    access.simulator.stop()


@pytest.fixture
def ctl(sim: SimulatorAccess, short_tmp: Path) -> Iterator[RunningController]:
    running = start_controller(sim, "ssh", short_tmp / "ctl.sock", static_nodes=NODE_ID)
    yield running
    running.stop()


@pytest.fixture
def node(short_tmp: Path) -> Iterator[RunningNode]:
    node_dir = short_tmp / "node"
    node_dir.mkdir()
    with running_node(node_dir, "off") as running:
        yield running


def capability(fs_type: str | None) -> csi_pb2.VolumeCapability:
    mode = csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER)
    if fs_type is None:
        return csi_pb2.VolumeCapability(access_mode=mode, block=csi_pb2.VolumeCapability.BlockVolume())
    return csi_pb2.VolumeCapability(access_mode=mode, mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type))


class Kubelet:
    """What the kubelet and the attacher do for one volume on one node, in their order."""

    def __init__(self, ctl: RunningController, node: RunningNode, root: Path, name: str, fs_type: str | None) -> None:
        self.ctl = ctl
        self.node = node
        self.cap = capability(fs_type)
        self.staging = root / "plugins" / name / "globalmount"
        self.target = root / "pods" / "uid-1" / "volumes" / name / "mount"
        self.staging.mkdir(parents=True)
        self.target.parent.mkdir(parents=True)
        self.volume: csi_pb2.Volume = ctl.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=name,
                volume_capabilities=[self.cap],
                capacity_range=csi_pb2.CapacityRange(required_bytes=GiB),
                parameters={"nvmeAddress": "127.0.0.1", "ctrlLossTmo": "30"},
            ),
            timeout=60,
        ).volume
        self.publish_context: dict[str, str] = {}

    @property
    def volume_id(self) -> str:
        return str(self.volume.volume_id)

    def attach(self) -> None:
        response = self.ctl.controller.ControllerPublishVolume(
            csi_pb2.ControllerPublishVolumeRequest(
                volume_id=self.volume_id,
                node_id=NODE_ID,
                volume_capability=self.cap,
                volume_context=self.volume.volume_context,
            ),
            timeout=60,
        )
        self.publish_context = dict(response.publish_context)

    def stage(self) -> None:
        self.node.node.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id=self.volume_id,
                staging_target_path=str(self.staging),
                volume_capability=self.cap,
                volume_context=self.volume.volume_context,
                publish_context=self.publish_context,
            ),
            timeout=60,
        )

    def publish(self) -> None:
        self.node.node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=self.volume_id,
                staging_target_path=str(self.staging),
                target_path=str(self.target),
                volume_capability=self.cap,
                volume_context=self.volume.volume_context,
                publish_context=self.publish_context,
            ),
            timeout=60,
        )

    def expand(self, size: int) -> int:
        grown = self.ctl.controller.ControllerExpandVolume(
            csi_pb2.ControllerExpandVolumeRequest(
                volume_id=self.volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=size)
            ),
            timeout=60,
        )
        assert grown.capacity_bytes == size
        response = self.node.node.NodeExpandVolume(
            csi_pb2.NodeExpandVolumeRequest(
                volume_id=self.volume_id,
                volume_path=str(self.target),
                staging_target_path=str(self.staging),
                capacity_range=csi_pb2.CapacityRange(required_bytes=size),
                volume_capability=self.cap,
            ),
            timeout=60,
        )
        return int(response.capacity_bytes)

    def stats(self) -> csi_pb2.NodeGetVolumeStatsResponse:
        response: csi_pb2.NodeGetVolumeStatsResponse = self.node.node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(
                volume_id=self.volume_id, volume_path=str(self.target), staging_target_path=str(self.staging)
            ),
            timeout=60,
        )
        return response

    def unpublish(self) -> None:
        self.node.node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=self.volume_id, target_path=str(self.target)), timeout=60
        )

    def unstage(self) -> None:
        self.node.node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(volume_id=self.volume_id, staging_target_path=str(self.staging)),
            timeout=60,
        )

    def detach_and_delete(self) -> None:
        self.ctl.controller.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=self.volume_id, node_id=NODE_ID), timeout=60
        )
        self.ctl.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=self.volume_id), timeout=60)


@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_filesystem_volume_stages_grows_online_and_keeps_its_data_across_a_restage(
    ctl: RunningController, node: RunningNode, short_tmp: Path, fs_type: str
) -> None:
    kubelet = Kubelet(ctl, node, short_tmp / "kubelet", f"pvc-node-{fs_type}", fs_type)
    nqn = kubelet.volume.volume_context["nqn"]
    kubelet.attach()
    kubelet.stage()
    kubelet.stage()  # the kubelet retries; nothing is repeated
    staged = read_mountinfo().at(kubelet.staging)
    assert staged is not None and staged.fs_type == fs_type and staged.source.startswith("/dev/nvme")
    kubelet.publish()
    (kubelet.target / "data.txt").write_text("survives a restage")
    before = os.statvfs(kubelet.target)

    assert kubelet.expand(2 * GiB) == 2 * GiB  # online: the filesystem stays mounted and published
    after = os.statvfs(kubelet.target)
    assert after.f_blocks * after.f_frsize > 1.8 * before.f_blocks * before.f_frsize
    response = kubelet.stats()
    assert not response.volume_condition.abnormal, response.volume_condition.message
    assert response.usage[0].total == after.f_blocks * after.f_frsize

    kubelet.unpublish()
    kubelet.unstage()
    assert nqn not in fabrics.connected_nqns()  # disconnected
    assert read_mountinfo().at(kubelet.staging) is None

    kubelet.staging.mkdir()
    kubelet.stage()
    kubelet.publish()
    assert (kubelet.target / "data.txt").read_text() == "survives a restage"
    kubelet.unpublish()
    kubelet.unstage()
    kubelet.detach_and_delete()


def test_block_volume_is_the_namespace_device_at_the_target(
    ctl: RunningController, node: RunningNode, short_tmp: Path
) -> None:
    kubelet = Kubelet(ctl, node, short_tmp / "kubelet", "pvc-node-block", None)
    nqn = kubelet.volume.volume_context["nqn"]
    kubelet.attach()
    kubelet.stage()
    assert nqn in fabrics.connected_nqns()
    assert read_mountinfo().at(kubelet.staging) is None  # block: connect and verify only
    kubelet.publish()
    info = os.stat(kubelet.target)
    assert stat.S_ISBLK(info.st_mode)
    pattern = b"raw block through the published node " * 100
    with open(kubelet.target, "r+b", buffering=0) as device:
        device.seek(3 * MiB)
        device.write(pattern)
        os.fsync(device.fileno())
    response = kubelet.stats()
    assert [(u.unit, u.total) for u in response.usage] == [(csi_pb2.VolumeUsage.BYTES, GiB)]
    assert not response.volume_condition.abnormal, response.volume_condition.message
    assert kubelet.expand(2 * GiB) == 2 * GiB  # block: rescan and the new size, no filesystem to grow
    kubelet.unpublish()
    kubelet.unstage()
    assert nqn not in fabrics.connected_nqns()

    kubelet.stage()
    kubelet.publish()
    with open(kubelet.target, "rb", buffering=0) as device:
        device.seek(3 * MiB)
        assert device.read(len(pattern)) == pattern
    kubelet.unpublish()
    kubelet.unstage()
    kubelet.detach_and_delete()
