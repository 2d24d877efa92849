"""The orphan reconciler against the simulator (RDS) and the API emulator (PVs): report, delete, and never guess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.controller.orphans import OrphanReconciler
from rds_csi.core.clock import ManualClock
from rds_csi.core.settings import OrphanMode
from rds_csi.csi.proto import csi_pb2
from rds_csi.kube import EventRecorder, KubeApi, KubeSettings
from rds_csi.observability.metrics import Metrics
from rds_csi.routeros.names import parse_router_path
from tests.kube_emulator import KubeEmulator
from tests.support import RunningController, SimulatorAccess, start_controller, start_simulator

GRACE = 600.0
BASE = "/storage-pool/metal-csi"


class Setup:
    def __init__(self, directory: Path) -> None:
        self.sim: SimulatorAccess = start_simulator(directory)
        self.kube = KubeEmulator().start()
        self.ctl: RunningController = start_controller(self.sim, "ssh", directory / "o.sock", static_nodes="node-1")
        self.api = KubeApi(KubeSettings(base_url=self.kube.url, request_timeout=2.0))
        self.clock = ManualClock()  # read only by scan_once on the test thread: advancing it races no thread
        self.metrics = Metrics()
        self.events = EventRecorder(self.api, DEFAULT_DRIVER_NAME, self.metrics)

    def reconciler(self, mode: OrphanMode) -> OrphanReconciler:
        assert self.ctl.plugin.controller is not None
        parts = self.ctl.plugin.controller
        return OrphanReconciler(
            parts.volumes,
            self.api,
            parts.attachments,
            self.metrics,
            self.clock,
            events=self.events,
            driver_name=DEFAULT_DRIVER_NAME,
            mode=mode,
            grace_seconds=GRACE,
            interval=3600,
        )

    def create(self, name: str) -> None:
        cap = csi_pb2.VolumeCapability(
            access_mode=csi_pb2.VolumeCapability.AccessMode(
                mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
            ),
            mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
        )
        self.ctl.controller.CreateVolume(csi_pb2.CreateVolumeRequest(name=name, volume_capabilities=[cap]), timeout=30)

    def disks(self) -> set[str]:
        assert self.ctl.plugin.routeros is not None
        return {d.slot for d in self.ctl.plugin.routeros.client.list_disks("")}

    def stop(self) -> None:
        self.events.stop()
        self.api.close()
        self.ctl.stop()
        self.kube.stop()
        self.sim.simulator.stop()


@pytest.fixture
def setup(short_tmp: Path) -> Iterator[Setup]:
    setup = Setup(short_tmp)  # holds the controller's socket
    setup.create("pvc-claimed")
    setup.kube.add_pv("pvc-claimed", driver=DEFAULT_DRIVER_NAME)
    setup.create("pvc-orphan")
    setup.create("pvc-bare")
    assert setup.ctl.plugin.routeros is not None
    setup.ctl.plugin.routeros.client.remove_disk("pvc-bare")  # a file left behind without its disk
    setup.ctl.controller.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name="keep-me", source_volume_id="pvc-orphan"), timeout=30
    )
    try:
        yield setup
    finally:
        setup.stop()


def test_dry_run_reports_ripe_orphans_once_and_touches_nothing(setup: Setup) -> None:
    reconciler = setup.reconciler(OrphanMode.DRY_RUN)
    first = reconciler.scan_once()
    assert first is not None
    assert first.ripe == ()
    assert {c.volume_id for c in first.waiting} == {"pvc-orphan", "pvc-bare"}
    setup.clock.advance(GRACE)
    ripe = reconciler.scan_once()
    assert ripe is not None
    assert {(c.volume_id, c.kind) for c in ripe.ripe} == {("pvc-orphan", "volume"), ("pvc-bare", "file")}
    reconciler.scan_once()  # reported once, not on every pass
    setup.events.stop(timeout=30)  # posts what is queued, then returns
    events = [e for e in setup.kube.events() if e["reason"] == "OrphanVolumeFound"]
    assert len(events) == 2
    assert events[0]["involvedObject"]["kind"] == "CSIDriver"
    assert setup.metrics.registry.get_sample_value("rds_csi_orphan_volumes", {"state": "ripe"}) == 2
    assert "pvc-orphan" in setup.disks()


def test_delete_mode_removes_ripe_orphans_but_not_snapshots_claimed_or_published_volumes(setup: Setup) -> None:
    setup.create("pvc-attached")
    cap = csi_pb2.VolumeCapability(
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER),
        block=csi_pb2.VolumeCapability.BlockVolume(),
    )
    setup.ctl.controller.ControllerPublishVolume(
        csi_pb2.ControllerPublishVolumeRequest(volume_id="pvc-attached", node_id="node-1", volume_capability=cap),
        timeout=30,
    )
    reconciler = setup.reconciler(OrphanMode.DELETE)
    reconciler.scan_once()
    setup.clock.advance(GRACE)
    reconciler.scan_once()
    disks = setup.disks()
    assert "pvc-orphan" not in disks
    assert "pvc-claimed" in disks
    assert "pvc-attached" in disks  # published somewhere: never deleted
    assert any(d.startswith("snap-") for d in disks)
    assert setup.ctl.plugin.routeros is not None
    files = {f.name for f in setup.ctl.plugin.routeros.client.list_files(parse_router_path(BASE))}
    assert "storage-pool/metal-csi/pvc-bare.img" not in files
    assert setup.metrics.registry.get_sample_value("rds_csi_orphan_volumes_deleted_total") == 2


def test_no_pv_list_means_no_decision(setup: Setup) -> None:
    reconciler = setup.reconciler(OrphanMode.DELETE)
    reconciler.scan_once()
    setup.clock.advance(GRACE)
    setup.kube.fail_next(5, 503)
    assert reconciler.scan_once() is None
    assert "pvc-orphan" in setup.disks()
