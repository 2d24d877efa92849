"""Issue 10's crash matrix: the controller killed with SIGKILL at random points of a create/delete/publish/unpublish
mix against a persisted simulator with realistic latency (see ``tests/integration/crash_matrix.py``).

After the retries settle: every volume the client was told exists exists; nothing the client was told is deleted
is left on the RDS (no orphan disk, no orphan file); no volume was ever published to more nodes than it may have
(one; two for a Block RWX volume in a live migration). ``RDS_CSI_CRASH_SEED`` replays a kill schedule;
``RDS_CSI_LONG=1`` runs 1,000 kills."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from tests.integration.crash_matrix import (
    NODES,
    GiB,
    KubeCluster,
    MatrixSettings,
    StaticCluster,
    VolumeTruth,
    compare_with_rds,
    run_crash_matrix,
)
from tests.kube_emulator import KubeEmulator
from tests.support import spawn_simulator

LONG = os.environ.get("RDS_CSI_LONG") == "1"
LONG_KILLS = 1000


def _seed() -> int:
    return int(os.environ.get("RDS_CSI_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))


def _run(directory: Path, kills: int, *, kubernetes: bool) -> None:
    settings = MatrixSettings(seed=_seed(), kills=kills)
    sim = spawn_simulator(directory, profile="realistic", persist=True)
    kube = KubeEmulator().start() if kubernetes else None
    try:
        if kube is not None:
            cluster: StaticCluster = KubeCluster(kube, DEFAULT_DRIVER_NAME, settings.seed)
            flags = ["--kube-api", kube.url]
        else:
            cluster = StaticCluster()
            # Without an API the attachments live in the state directory: it outlives every kill, as a volume would.
            flags = ["--kube-api", "off", "--static-nodes", ",".join(NODES), "--state-dir", str(directory / "state")]
        report = run_crash_matrix(sim, directory, settings, flags, cluster)
    finally:
        if kube is not None:
            kube.stop()
        sim.stop()
    print(report.summary())
    assert report.kills == kills + report.startup_kills + 1  # and one more at rest, before the probes
    if report.violations:
        pytest.fail(report.details(), pytrace=False)


def test_static_mode_survives_30_kills_without_a_second_writer_or_a_leaked_volume(short_tmp: Path) -> None:
    _run(short_tmp, 30, kubernetes=False)


def test_kubernetes_mode_survives_15_kills_without_a_second_writer_or_a_leaked_volume(short_tmp: Path) -> None:
    # Half the static run: the mix is the same; what differs is where the truth lives (VolumeAttachments).
    _run(short_tmp, 15, kubernetes=True)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@pytest.mark.skipif(not LONG, reason="long run: RDS_CSI_LONG=1")
@pytest.mark.parametrize("kubernetes", [False, True], ids=["static", "kubernetes"])
def test_1000_kills_leave_no_second_writer_and_no_leaked_volume(short_tmp: Path, kubernetes: bool) -> None:
    _run(short_tmp, LONG_KILLS, kubernetes=kubernetes)


def test_the_comparison_names_missing_volumes_orphan_disks_and_orphan_files() -> None:
    kept = VolumeTruth("pvc-kept", multi_writer=False, state="exists", ever_created=True, capacity=GiB)
    gone = VolumeTruth("pvc-gone", multi_writer=False, state="absent", ever_created=True)
    lost = VolumeTruth("pvc-lost", multi_writer=False, state="exists", ever_created=True, capacity=GiB)
    state = {
        "disks": [
            {"type": "partition", "slot": "storage-pool"},
            {"type": "file", "slot": "pvc-kept", "file-path": "/storage-pool/metal-csi/pvc-kept.img", "size": str(GiB)},
            {"type": "file", "slot": "pvc-gone", "file-path": "/storage-pool/metal-csi/pvc-gone.img", "size": str(GiB)},
        ],
        "files": [
            {"type": "directory", "name": "storage-pool/metal-csi"},
            {"type": ".img file", "name": "storage-pool/metal-csi/pvc-kept.img"},
            {"type": ".img file", "name": "storage-pool/metal-csi/pvc-gone.img"},
            {"type": ".img file", "name": "storage-pool/metal-csi/pvc-lost.img"},
        ],
    }
    found = {(v.kind, v.volume) for v in compare_with_rds([kept, gone, lost], state)}
    assert found == {
        ("missing volume", "pvc-lost"),  # told it exists: only its file is left
        ("orphan disk", "pvc-gone"),  # told it was deleted
        ("orphan file", "pvc-gone"),
        ("orphan file", "pvc-lost"),
    }
