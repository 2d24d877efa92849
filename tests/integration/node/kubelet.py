"""The kubelet's side of the node tests: volumes laid out where the kubelet puts them, and its CSI calls."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from rds_csi.mount import read_mountinfo
from tests.integration.node.harness import RunningNode
from tests.integration.node.loop_connector import MANAGED_PREFIX, LoopConnector

MiB = 1 << 20
SIZE = 64 * MiB
XFS_SIZE = 320 * MiB  # mkfs.xfs refuses file systems smaller than 300 MiB
Mode = csi_pb2.VolumeCapability.AccessMode.Mode


def mount_cap(fs_type: str = "ext4", flags: tuple[str, ...] = ()) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=list(flags)),
    )


def block_cap() -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
        block=csi_pb2.VolumeCapability.BlockVolume(),
    )


@dataclass(frozen=True)
class Volume:
    volume_id: str
    staging: Path
    pods: Path

    @property
    def nqn(self) -> str:
        return MANAGED_PREFIX + self.volume_id

    def target(self, pod: str = "pod-a") -> Path:
        return self.pods / pod / "volumes" / self.volume_id / "mount"

    def context(self) -> dict[str, str]:
        # What CreateVolume froze into volume_context (csi/controller.py).
        return {"nqn": self.nqn, "nvmeAddress": "127.0.0.1", "nvmePort": "4420", "ctrlLossTmo": "-1"}


MakeVolume = Callable[..., Volume]


def kubelet_staging(kubelet: Path, name: str, *, block: bool = False) -> Path:
    """Where the kubelet stages a volume (its hash directory stands in as the volume's name)."""
    csi = kubelet / "plugins" / "kubernetes.io" / "csi"
    return csi / "volumeDevices" / "staging" / name if block else csi / "rds.csi.srvlab.io" / name / "globalmount"


def unmount_under(directory: Path) -> list[str]:
    failures = []
    for entry in reversed(read_mountinfo().under(directory)):
        done = subprocess.run(["umount", entry.mount_point], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            failures.append(f"umount {entry.mount_point}: {done.stderr.strip()}")
    return failures


def stage(node: RunningNode, volume: Volume, cap: csi_pb2.VolumeCapability, timeout: float = 30) -> None:
    node.node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=str(volume.staging),
            volume_capability=cap,
            volume_context=volume.context(),
            publish_context={"nqn": volume.nqn},
        ),
        timeout=timeout,
    )


def publish(
    node: RunningNode, volume: Volume, cap: csi_pb2.VolumeCapability, pod: str = "pod-a", readonly: bool = False
) -> Path:
    target = volume.target(pod)
    target.parent.mkdir(parents=True, exist_ok=True)  # the kubelet makes the target's parent
    node.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=str(volume.staging),
            target_path=str(target),
            volume_capability=cap,
            volume_context=volume.context(),
            readonly=readonly,
        ),
        timeout=30,
    )
    return target


def unpublish(node: RunningNode, volume: Volume, target: Path) -> None:
    node.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target)), timeout=30
    )


def unstage(node: RunningNode, volume: Volume) -> None:
    node.node.NodeUnstageVolume(
        csi_pb2.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=str(volume.staging)),
        timeout=30,
    )


def stats(node: RunningNode, volume: Volume, path: Path, staged: bool = True) -> csi_pb2.NodeGetVolumeStatsResponse:
    response: csi_pb2.NodeGetVolumeStatsResponse = node.node.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(
            volume_id=volume.volume_id,
            volume_path=str(path),
            staging_target_path=str(volume.staging) if staged else "",
        ),
        timeout=30,
    )
    return response


def expand(node: RunningNode, volume: Volume, path: Path, size: int) -> int:
    response = node.node.NodeExpandVolume(
        csi_pb2.NodeExpandVolumeRequest(
            volume_id=volume.volume_id,
            volume_path=str(path),
            staging_target_path=str(volume.staging),
            capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        ),
        timeout=30,
    )
    return int(response.capacity_bytes)


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as failed:
        call()
    code: grpc.StatusCode = failed.value.code()
    return code


def fs_type_of(device: Path) -> str:
    done = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "TYPE", str(device)], check=False, capture_output=True, text=True
    )
    return done.stdout.strip()


def metric(node: RunningNode, name: str, **labels: str) -> float:
    return node.plugin.metrics.registry.get_sample_value(name, labels) or 0.0


def loop_device(loops: LoopConnector, volume: Volume) -> Path:
    subsystem = loops.subsystem(volume.nqn)
    assert subsystem is not None and subsystem.device is not None, f"{volume.nqn} is not attached"
    return subsystem.device.path
