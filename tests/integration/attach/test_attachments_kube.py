"""Attachments end to end: real gRPC to the controller, the simulator over SSH, and the Kubernetes API emulator
over the real REST protocol. Attachment time is virtual (the plugin's clock), so windows pass instantly."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.core.clock import ManualClock
from rds_csi.csi.proto import csi_pb2
from tests.integration.plugin_process import free_port
from tests.kube_emulator import KubeEmulator
from tests.support import RunningController, SimulatorAccess, start_controller, start_simulator, wait_until
from tests.tempdirs import short_temp_dir

GiB = 1 << 30
Mode = csi_pb2.VolumeCapability.AccessMode.Mode
NAMESPACE = "vms"


def block_cap(mode: int) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),  # type: ignore[arg-type]
        block=csi_pb2.VolumeCapability.BlockVolume(),
    )


class Cluster:
    """The simulator, the API emulator and a controller pointed at both; the controller can be restarted."""

    def __init__(self, directory: Path, *, nvmet_data_dir: Path | None = None, **flags: str) -> None:
        self.directory = directory
        self.flags = flags
        self.sim: SimulatorAccess = start_simulator(directory, nvmet_data_dir=nvmet_data_dir)
        self.kube = KubeEmulator().start()
        self.clock = ManualClock()
        self.metrics_port = free_port()
        self.ctl = self._start()

    def _start(self) -> RunningController:
        return start_controller(
            self.sim,
            "ssh",
            self.directory / f"ctl-{time.monotonic_ns()}.sock",
            self.clock,
            kube_api=self.kube.url,
            static_nodes="",
            attach_grace_period="30",
            reconcile_interval="5",
            metrics_address=f"127.0.0.1:{self.metrics_port}",
            **self.flags,
        )

    def advance(self, seconds: float) -> None:
        """Move the controller's clock on once every VolumeAttachment change so far has reached its manager: the
        watch thread reads the same clock for attachment times and decisions, so an event still in flight would
        be applied as if it had happened after the advance."""
        sync = self.ctl.plugin.controller.sync if self.ctl.plugin.controller is not None else None
        assert sync is not None, "the controller follows no Kubernetes API"
        target = self.kube.volume_attachments_version()
        assert wait_until(lambda: int(sync.volume_attachments_version or 0) >= target)
        self.clock.advance(seconds)

    def restart_controller(self) -> None:
        self.ctl.stop()
        self.ctl = self._start()

    def stop(self) -> None:
        self.ctl.stop()
        self.kube.stop()
        self.sim.simulator.stop()

    # -- what Kubernetes does around a CSI volume --------------------------------------------------------------

    def volume(self, name: str, *, block_rwx: bool, migration_timeout: int = 30) -> csi_pb2.Volume:
        cap = block_cap(Mode.MULTI_NODE_MULTI_WRITER if block_rwx else Mode.SINGLE_NODE_WRITER)
        volume: csi_pb2.Volume = self.ctl.controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=name,
                volume_capabilities=[cap],
                capacity_range=csi_pb2.CapacityRange(required_bytes=GiB),
                parameters={"migrationTimeoutSeconds": str(migration_timeout)},
            ),
            timeout=30,
        ).volume
        self.kube.add_pvc(NAMESPACE, f"claim-{name}", volume_name=name)
        self.kube.add_pv(
            name,
            driver=DEFAULT_DRIVER_NAME,
            claim=(NAMESPACE, f"claim-{name}"),
            access_modes=("ReadWriteMany",) if block_rwx else ("ReadWriteOnce",),
            volume_mode="Block",
            volume_attributes=dict(volume.volume_context),
        )
        return volume

    def attach(self, volume: csi_pb2.Volume, node: str, *, block_rwx: bool) -> str:
        """The attacher: VolumeAttachment first, then ControllerPublishVolume, then status.attached."""
        va = self.kube.add_volume_attachment(volume.volume_id, node, DEFAULT_DRIVER_NAME, attached=False)
        self.publish(volume, node, block_rwx=block_rwx)
        self.kube.set_attached(va, True)
        return va

    def publish(self, volume: csi_pb2.Volume, node: str, *, block_rwx: bool) -> None:
        cap = block_cap(Mode.MULTI_NODE_MULTI_WRITER if block_rwx else Mode.SINGLE_NODE_WRITER)
        self.ctl.controller.ControllerPublishVolume(
            csi_pb2.ControllerPublishVolumeRequest(
                volume_id=volume.volume_id, node_id=node, volume_capability=cap, volume_context=volume.volume_context
            ),
            timeout=30,
        )

    def detach(self, volume: csi_pb2.Volume, node: str, va: str) -> None:
        self.ctl.controller.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=node), timeout=30
        )
        self.kube.delete_volume_attachment(va)

    def published(self, volume: csi_pb2.Volume) -> list[str]:
        got = self.ctl.controller.ControllerGetVolume(
            csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id), timeout=30
        )
        return list(got.status.published_node_ids)

    def event_reasons(self, volume: csi_pb2.Volume) -> list[str]:
        claim = f"claim-{volume.volume_id}"
        return [str(e["reason"]) for e in self.kube.events() if e["involvedObject"]["name"] == claim]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            body: bytes = response.read()
        return body.decode()


@contextmanager
def running_cluster(
    nodes: Mapping[str, Mapping[str, str]] | Iterable[str], *, nvmet_data_dir: Path | None = None, **flags: str
) -> Iterator[Cluster]:
    """A cluster with these Node objects (a mapping gives each node its annotations), torn down afterwards; with
    ``nvmet_data_dir`` the simulator's volumes are real NVMe/TCP targets (inside the test VM)."""
    with short_temp_dir("rds-att-") as directory:  # holds the controller's socket
        cluster = Cluster(directory, nvmet_data_dir=nvmet_data_dir, **flags)
        annotated = nodes if isinstance(nodes, Mapping) else {node: {} for node in nodes}
        for node, node_annotations in annotated.items():
            cluster.kube.add_node(node, annotations=dict(node_annotations))
        try:
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster(("node-a", "node-b", "node-c")) as cluster:
        yield cluster


def test_live_migration_completes_when_the_source_detaches(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-vm-ok", block_rwx=True)
    va_a = cluster.attach(volume, "node-a", block_rwx=True)
    cluster.attach(volume, "node-b", block_rwx=True)
    assert cluster.published(volume) == ["node-a", "node-b"]
    with pytest.raises(grpc.RpcError) as third:
        cluster.publish(volume, "node-c", block_rwx=True)
    assert third.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    cluster.advance(12)
    cluster.detach(volume, "node-a", va_a)
    assert cluster.published(volume) == ["node-b"]
    assert wait_until(lambda: {"MigrationStarted", "MigrationCompleted"} <= set(cluster.event_reasons(volume)))
    metrics = cluster.metrics()
    assert 'rds_csi_migration_total{result="completed"} 1.0' in metrics
    assert "rds_csi_migration_duration_seconds_count 1.0" in metrics
    assert "rds_csi_migration_active 0.0" in metrics


def test_live_migration_rolls_back_when_the_target_detaches(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-vm-back", block_rwx=True)
    cluster.attach(volume, "node-a", block_rwx=True)
    va_b = cluster.attach(volume, "node-b", block_rwx=True)
    cluster.detach(volume, "node-b", va_b)
    assert cluster.published(volume) == ["node-a"]
    assert wait_until(lambda: "MigrationFailed" in cluster.event_reasons(volume))
    failed = [e for e in cluster.kube.events() if e["reason"] == "MigrationFailed"]
    assert failed[0]["type"] == "Warning"


def test_expired_migration_admits_no_new_node_until_one_side_detaches(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-vm-slow", block_rwx=True, migration_timeout=30)
    cluster.attach(volume, "node-a", block_rwx=True)
    va_b = cluster.attach(volume, "node-b", block_rwx=True)
    cluster.advance(31)
    with pytest.raises(grpc.RpcError) as refused:
        cluster.publish(volume, "node-c", block_rwx=True)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert wait_until(lambda: "MigrationFailed" in cluster.event_reasons(volume))
    assert 'rds_csi_migration_total{result="failed"} 1.0' in cluster.metrics()
    cluster.detach(volume, "node-b", va_b)
    assert cluster.published(volume) == ["node-a"]


def test_controller_restart_mid_migration_rebuilds_from_volume_attachments(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-vm-restart", block_rwx=True)
    va_a = cluster.attach(volume, "node-a", block_rwx=True)
    cluster.attach(volume, "node-b", block_rwx=True)
    cluster.restart_controller()
    assert sorted(cluster.published(volume)) == ["node-a", "node-b"]  # rebuilt before serving, from VAs alone
    with pytest.raises(grpc.RpcError) as third:
        cluster.publish(volume, "node-c", block_rwx=True)
    assert third.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    cluster.detach(volume, "node-a", va_a)
    assert cluster.published(volume) == ["node-b"]


def test_a_pv_named_apart_from_its_volume_id_still_holds_its_writer_after_a_restart(cluster: Cluster) -> None:
    # A pre-provisioned PV: VolumeAttachments name the PV, the attachment table keys by the CSI volume handle.
    cap = block_cap(Mode.SINGLE_NODE_WRITER)
    volume = cluster.ctl.controller.CreateVolume(
        csi_pb2.CreateVolumeRequest(
            name="vol-static-9", volume_capabilities=[cap], capacity_range=csi_pb2.CapacityRange(required_bytes=GiB)
        ),
        timeout=30,
    ).volume
    cluster.kube.add_pvc(NAMESPACE, "claim-static", volume_name="static-data")
    cluster.kube.add_pv(
        "static-data",
        driver=DEFAULT_DRIVER_NAME,
        claim=(NAMESPACE, "claim-static"),
        volume_handle=volume.volume_id,
        volume_mode="Block",
        volume_attributes=dict(volume.volume_context),
    )
    va = cluster.kube.add_volume_attachment("static-data", "node-a", DEFAULT_DRIVER_NAME, attached=False)
    cluster.publish(volume, "node-a", block_rwx=False)
    cluster.kube.set_attached(va, True)
    cluster.restart_controller()
    assert cluster.published(volume) == ["node-a"]
    with pytest.raises(grpc.RpcError) as second:
        cluster.publish(volume, "node-b", block_rwx=False)
    assert second.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def refused(cluster: Cluster, volume: csi_pb2.Volume, node: str) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as publish:
        cluster.publish(volume, node, block_rwx=False)
    code: grpc.StatusCode = publish.value.code()
    return code


def test_a_publish_answered_just_before_a_restart_keeps_every_other_node_out(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-restart-attaching", block_rwx=False)
    va = cluster.kube.add_volume_attachment(volume.volume_id, "node-a", DEFAULT_DRIVER_NAME, attached=False)
    cluster.publish(volume, "node-a", block_rwx=False)
    cluster.restart_controller()  # before the attacher wrote status.attached for the OK it got
    assert cluster.published(volume) == ["node-a"]
    cluster.clock.advance(60)  # no grace period to hide behind
    assert refused(cluster, volume, "node-b") == grpc.StatusCode.FAILED_PRECONDITION
    cluster.kube.set_attached(va, True)
    assert refused(cluster, volume, "node-b") == grpc.StatusCode.FAILED_PRECONDITION
    assert cluster.published(volume) == ["node-a"]


def test_a_volume_attachment_being_deleted_before_it_was_attached_holds_its_volume_until_unpublished(
    cluster: Cluster,
) -> None:
    volume = cluster.volume("pvc-restart-detaching", block_rwx=False)
    va = cluster.kube.add_volume_attachment(volume.volume_id, "node-a", DEFAULT_DRIVER_NAME, attached=False)
    cluster.publish(volume, "node-a", block_rwx=False)
    cluster.kube.mark_deleting(va)  # the pod went away before the attacher recorded the attach
    cluster.restart_controller()
    cluster.clock.advance(60)
    assert refused(cluster, volume, "node-b") == grpc.StatusCode.FAILED_PRECONDITION
    cluster.detach(volume, "node-a", va)  # the attacher's ControllerUnpublishVolume, then the finalizer goes
    cluster.publish(volume, "node-b", block_rwx=False)
    assert cluster.published(volume) == ["node-b"]


def test_a_volume_attachment_published_elsewhere_holds_its_volume_as_soon_as_the_watch_sees_it(
    cluster: Cluster,
) -> None:
    # Another controller instance (the old pod of a rolling update) answered node-a's publish; this one only
    # sees the VolumeAttachment appear, not yet attached.
    volume = cluster.volume("pvc-watch-attaching", block_rwx=False)
    cluster.kube.add_volume_attachment(volume.volume_id, "node-a", DEFAULT_DRIVER_NAME, attached=False)
    assert wait_until(lambda: cluster.published(volume) == ["node-a"])
    cluster.clock.advance(60)
    assert refused(cluster, volume, "node-b") == grpc.StatusCode.FAILED_PRECONDITION


def test_single_writer_conflict_then_deleted_node_is_cleared_and_new_node_admitted(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-rwo", block_rwx=False)
    cluster.attach(volume, "node-a", block_rwx=False)
    with pytest.raises(grpc.RpcError) as conflict:
        cluster.publish(volume, "node-b", block_rwx=False)
    assert conflict.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert wait_until(lambda: "AttachmentConflict" in cluster.event_reasons(volume))
    cluster.advance(60)  # past the grace period: the attachment is no longer fresh
    cluster.kube.delete_node("node-a")  # the node is gone (its VA lingers, as after a node crash)
    assert wait_until(lambda: cluster.published(volume) == [])  # the node watch triggered the reconciler
    assert wait_until(lambda: "StaleAttachmentCleared" in cluster.event_reasons(volume))
    cluster.attach(volume, "node-b", block_rwx=False)
    assert cluster.published(volume) == ["node-b"]
    metrics = cluster.metrics()
    assert "rds_csi_attachment_conflicts_total 1.0" in metrics
    assert "rds_csi_attachment_stale_cleared_total 1.0" in metrics
    assert 'rds_csi_attachment_reconcile_total{action="stale_cleared"}' in metrics


def test_grace_period_answers_aborted_and_never_admits_a_second_writer(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-grace", block_rwx=False)
    va_a = cluster.attach(volume, "node-a", block_rwx=False)
    cluster.detach(volume, "node-a", va_a)
    cluster.attach(volume, "node-c", block_rwx=False)  # a new owner right after the detach
    with pytest.raises(grpc.RpcError) as retry:
        cluster.publish(volume, "node-b", block_rwx=False)
    assert retry.value.code() == grpc.StatusCode.ABORTED
    assert "grace period" in (retry.value.details() or "")
    assert cluster.published(volume) == ["node-c"]
    cluster.advance(31)
    with pytest.raises(grpc.RpcError) as after:
        cluster.publish(volume, "node-b", block_rwx=False)
    assert after.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # node-c is alive: still one writer
    assert "rds_csi_attachment_grace_period_used_total 1.0" in cluster.metrics()


def test_every_attachment_metric_moves_and_events_reach_the_claim(cluster: Cluster) -> None:
    volume = cluster.volume("pvc-metrics", block_rwx=False)
    va = cluster.attach(volume, "node-a", block_rwx=False)
    cluster.detach(volume, "node-a", va)
    assert wait_until(lambda: {"VolumeAttached", "VolumeDetached"} <= set(cluster.event_reasons(volume)))
    event = next(e for e in cluster.kube.events() if e["reason"] == "VolumeAttached")
    assert event["involvedObject"]["kind"] == "PersistentVolumeClaim"
    assert event["involvedObject"]["namespace"] == NAMESPACE
    metrics = cluster.metrics()
    for series in (
        "rds_csi_attachment_attach_total 1.0",
        "rds_csi_attachment_detach_total 1.0",
        'rds_csi_attachment_operation_duration_seconds_count{operation="publish"}',
        "rds_csi_attachments_active 0.0",
        'rds_csi_events_posted_total{reason="VolumeAttached",result="posted"} 1.0',
    ):
        assert series in metrics, series


def test_hanging_event_posts_never_delay_a_csi_call(cluster: Cluster) -> None:
    cluster.kube.hang_events = True
    try:
        volume = cluster.volume("pvc-slow-events", block_rwx=False)
        started = time.monotonic()
        for _ in range(5):
            va = cluster.attach(volume, "node-a", block_rwx=False)
            cluster.detach(volume, "node-a", va)
        assert time.monotonic() - started < 5.0  # ten publishes/unpublishes, each posting an event that hangs
    finally:
        cluster.kube.hang_events = False


@pytest.fixture
def strict_cluster() -> Iterator[Cluster]:
    with running_cluster(("node-a", "node-b"), require_kubevirt_migration="true") as cluster:
        yield cluster


def test_strict_mode_admits_the_second_node_only_during_a_kubevirt_migration(strict_cluster: Cluster) -> None:
    cluster = strict_cluster
    volume = cluster.volume("pvc-vm-strict", block_rwx=True)
    cluster.attach(volume, "node-a", block_rwx=True)
    cluster.kube.add_vmi(NAMESPACE, "vm-strict", [f"claim-{volume.volume_id}"], "node-a")
    with pytest.raises(grpc.RpcError) as refused:
        cluster.publish(volume, "node-b", block_rwx=True)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "strict migration mode" in (refused.value.details() or "")
    cluster.kube.add_vmim(NAMESPACE, "vm-strict-migration", "vm-strict", "Scheduled", target_node="node-b")
    cluster.attach(volume, "node-b", block_rwx=True)
    assert cluster.published(volume) == ["node-a", "node-b"]
