"""``rds-csi demo``: run the driver end to end on this machine, no hardware, and show what it does.

The plugin (controller + node) starts on a private unix socket with its embedded default backend, the RouterOS
simulator, which it reaches over real SSH exactly as it would reach an RDS. The demo then drives it over real gRPC
the way the provisioner, resizer and snapshotter sidecars do, and shows what landed on the (simulated) RDS.
Steps grow as the driver's services land (publish/stage arrive with the attachments and node issues).
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from collections.abc import Mapping
from typing import TextIO

import grpc

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from rds_csi.observability.logging import configure_logging
from rds_csi.plugin.config import load_plugin_config
from rds_csi.plugin.lifecycle import Plugin

GiB = 1 << 30
_Mode = csi_pb2.VolumeCapability.AccessMode.Mode


def _mount_capability() -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=_Mode.SINGLE_NODE_WRITER),
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
    )


class _Demo:
    def __init__(self, channel: grpc.Channel, plugin: Plugin, out: TextIO) -> None:
        self.identity = csi_pb2_grpc.IdentityStub(channel)
        self.controller = csi_pb2_grpc.ControllerStub(channel)
        self.plugin = plugin
        self.out = out

    def say(self, text: str) -> None:
        self.out.write(text + "\n")

    def identity_calls(self) -> None:
        info = self.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
        self.say(f"GetPluginInfo: name={info.name} version={info.vendor_version}")
        probe = self.identity.Probe(csi_pb2.ProbeRequest(), timeout=10)
        self.say(f"Probe: ready={probe.ready.value} (the RouterOS health check ran over SSH)")

    def volume_lifecycle(self) -> None:
        cap = _mount_capability()
        created = self.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name="pvc-demo-1",
                volume_capabilities=[cap],
                capacity_range=csi_pb2.CapacityRange(required_bytes=3 * GiB // 2),
                parameters={"csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pvc/namespace": "demo"},
            ),
            timeout=30,
        ).volume
        self.say(f"CreateVolume pvc-demo-1 (1.5 GiB): allocated {created.capacity_bytes} bytes")
        self.say(f"  volume_context for the node: {dict(sorted(created.volume_context.items()))}")
        capacity = self.controller.GetCapacity(csi_pb2.GetCapacityRequest(), timeout=30)
        self.say(f"GetCapacity: {capacity.available_capacity / GiB:.1f} GiB free in the pool (thin provisioned)")
        expanded = self.controller.ControllerExpandVolume(
            csi_pb2.ControllerExpandVolumeRequest(
                volume_id="pvc-demo-1", capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GiB)
            ),
            timeout=30,
        )
        self.say(
            f"ControllerExpandVolume to 2 GiB: {expanded.capacity_bytes} bytes, "
            f"node expansion required={expanded.node_expansion_required}"
        )
        snapshot = self.controller.CreateSnapshot(
            csi_pb2.CreateSnapshotRequest(name="snapshot-demo", source_volume_id="pvc-demo-1"), timeout=30
        ).snapshot
        self.say(f"CreateSnapshot: id={snapshot.snapshot_id} ready={snapshot.ready_to_use}")
        source = csi_pb2.VolumeContentSource(
            snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snapshot.snapshot_id)
        )
        restored = self.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(name="pvc-demo-2", volume_capabilities=[cap], volume_content_source=source),
            timeout=30,
        ).volume
        self.say(f"CreateVolume pvc-demo-2 from the snapshot: {restored.capacity_bytes} bytes")
        self.attachments(cap, created.volume_context)
        listed = self.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30)
        self.say("ListVolumes: " + ", ".join(e.volume.volume_id for e in listed.entries))
        got = self.controller.ControllerGetVolume(
            csi_pb2.ControllerGetVolumeRequest(volume_id="pvc-demo-1"), timeout=30
        )
        condition = got.status.volume_condition
        self.say(f"ControllerGetVolume pvc-demo-1: abnormal={condition.abnormal} ({condition.message})")
        self.show_rds()
        for volume_id in ("pvc-demo-2", "pvc-demo-1"):
            self.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id), timeout=30)
        self.controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot.snapshot_id), timeout=30)
        left = self.controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=30)
        self.say(f"DeleteVolume x2, DeleteSnapshot: {len(left.entries)} volumes left")

    def attachments(self, cap: csi_pb2.VolumeCapability, context: Mapping[str, str]) -> None:
        """Publish to one node, show the fence holding against a second node, then detach."""

        def publish(node: str) -> csi_pb2.ControllerPublishVolumeResponse:
            request = csi_pb2.ControllerPublishVolumeRequest(
                volume_id="pvc-demo-1", node_id=node, volume_capability=cap, volume_context=context
            )
            response: csi_pb2.ControllerPublishVolumeResponse = self.controller.ControllerPublishVolume(
                request, timeout=30
            )
            return response

        published = publish("demo-node")
        self.say(f"ControllerPublishVolume pvc-demo-1 -> demo-node: publish_context={dict(published.publish_context)}")
        try:
            publish("demo-node-2")
        except grpc.RpcError as refused:
            self.say(f"ControllerPublishVolume pvc-demo-1 -> demo-node-2: {refused.code().name} ({refused.details()})")
        got = self.controller.ControllerGetVolume(
            csi_pb2.ControllerGetVolumeRequest(volume_id="pvc-demo-1"), timeout=30
        )
        self.say(f"  published to: {list(got.status.published_node_ids)}")
        self.controller.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id="pvc-demo-1", node_id="demo-node"), timeout=30
        )
        self.say("ControllerUnpublishVolume pvc-demo-1 <- demo-node: detached")

    def show_rds(self) -> None:
        """What the RDS itself now holds, read back through the driver's own RouterOS client."""
        assert self.plugin.routeros is not None
        self.say("On the RDS (/disk print detail, parsed):")
        for disk in self.plugin.routeros.client.list_disks(""):
            if disk.file_path:
                export = f"nvme-tcp {disk.nqn}" if disk.nvme_export else "not exported"
                self.say(f"  slot={disk.slot} size={disk.size_bytes} file={disk.file_path} {export}")

    def metrics(self) -> None:
        if self.plugin.http is None:
            return
        url = f"http://127.0.0.1:{self.plugin.http.port}/metrics"
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        wanted = ("rds_csi_csi_operations_total{", "rds_csi_routeros_commands_total{")
        lines = [line for line in body.splitlines() if line.startswith(wanted) and 'code="OK"' in line]
        routeros = [line for line in body.splitlines() if line.startswith("rds_csi_routeros_commands_total{")]
        self.say(f"metrics ({url}): {len(lines)} CSI method series, {len(routeros)} RouterOS command series, e.g.")
        for line in lines[:3] + routeros[:3]:
            self.say(f"  {line}")


def run_demo(out: TextIO) -> int:
    workdir = tempfile.mkdtemp(prefix="rds-csi-demo-")
    config = load_plugin_config(
        {
            "mode": "all",
            "node_id": "demo-node",
            "endpoint": f"unix://{workdir}/csi.sock",
            "metrics_address": "127.0.0.1:0",
            "log_level": "error",
            "kube_api": "off",
            "static_nodes": "demo-node,demo-node-2",
            "state_dir": f"{workdir}/attachments",  # without a Kubernetes API, attachments are kept on disk
            # The demo must not give this machine an NVMe identity.
            "host_nqn_file": f"{workdir}/hostnqn",
            "host_id_file": f"{workdir}/hostid",
        },
        {},
    )
    configure_logging(config.log_format.value, config.log_level)
    plugin = Plugin(config)
    plugin.start()
    try:
        target = f"unix://{workdir}/csi.sock"
        out.write(f"plugin serving CSI on {target}; RouterOS backend: embedded simulator over SSH\n")
        with grpc.insecure_channel(target) as channel:
            demo = _Demo(channel, plugin, out)
            demo.identity_calls()
            demo.volume_lifecycle()
            demo.metrics()
        out.write("demo finished: OK\n")
        return 0
    finally:
        plugin.stop()
        shutil.rmtree(workdir, ignore_errors=True)
