"""Recovery on loop devices: stale staging mounts remounted when nothing uses them, orphaned managed subsystems
disconnected (foreign ones never), and the circuit breaker that stops a remount storm and resets itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rds_csi.core.clock import ManualClock
from rds_csi.csi.locks import KeyedLocks
from rds_csi.mount import DeviceNumber, read_mountinfo
from rds_csi.node.recovery import Recovery
from rds_csi.nvme import FabricsTarget
from rds_csi.observability.metrics import Metrics
from tests.integration.node.harness import RunningNode, running_node
from tests.integration.node.kubelet import (
    MakeVolume,
    Volume,
    block_cap,
    loop_device,
    mount_cap,
    publish,
    stage,
    stats,
    unpublish,
    unstage,
)
from tests.integration.node.loop_connector import MANAGED_PREFIX, LoopConnector
from tests.support import wait_until

pytestmark = pytest.mark.root

MiB = 1 << 20
FOREIGN = "nqn.2014-08.org.example:boot-disk"  # e.g. the node's own root disk over NVMe-oF


def recovery(loops: LoopConnector, short_tmp: Path, clock: ManualClock | None = None) -> Recovery:
    return Recovery(loops, Metrics(), clock or ManualClock(), short_tmp / "kubelet", KeyedLocks().hold)


def connect_by_hand(loops: LoopConnector, nqn: str) -> None:
    loops.export(nqn, 16 * MiB)
    loops.connect(FabricsTarget(nqn=nqn, address="127.0.0.1"))


def staged_device(volume: Volume) -> DeviceNumber:
    entry = read_mountinfo().at(volume.staging)
    assert entry is not None, f"{volume.staging} is not mounted"
    return entry.device


def test_an_unclaimed_managed_subsystem_is_disconnected_at_the_second_look_and_a_foreign_one_never(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume, short_tmp: Path
) -> None:
    staged = make_volume("pvc-claimed", block=True)
    stage(node, staged, block_cap())
    orphan = MANAGED_PREFIX + "pvc-forgotten"
    connect_by_hand(loops, orphan)
    connect_by_hand(loops, FOREIGN)
    passes = recovery(loops, short_tmp)
    assert passes.run_once().disconnected == ()  # first seen unclaimed: could be a stage between record and look
    assert passes.run_once().disconnected == (orphan,)
    assert loops.subsystem(orphan) is None
    assert loops.subsystem(FOREIGN) is not None  # outside the managed prefix: never looked at
    assert loops.subsystem(staged.nqn) is not None  # its record claims it
    assert loops.disconnects == [orphan]
    unstage(node, staged)


def test_an_unclaimed_subsystem_whose_device_is_mounted_is_kept(loops: LoopConnector, short_tmp: Path) -> None:
    nqn = MANAGED_PREFIX + "pvc-by-hand"
    connect_by_hand(loops, nqn)
    device = loops.subsystem(nqn)
    assert device is not None and device.device is not None
    subprocess.run(["mkfs.ext4", "-q", str(device.device.path)], check=True)
    where = short_tmp / "by-hand"
    where.mkdir()
    subprocess.run(["mount", str(device.device.path), str(where)], check=True)
    passes = recovery(loops, short_tmp)
    for _ in range(3):
        assert passes.run_once().disconnected == ()
    subprocess.run(["umount", str(where)], check=True)
    assert passes.run_once().disconnected == (nqn,)


def test_a_stale_staging_mount_nobody_uses_is_remounted_on_the_current_device(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume, short_tmp: Path
) -> None:
    volume = make_volume("pvc-stale")
    stage(node, volume, mount_cap("ext4", ("noatime",)))
    target = publish(node, volume, mount_cap())
    (target / "kept.txt").write_text("before the reconnect")
    unpublish(node, volume, target)
    old = staged_device(volume)
    new = loops.renumber(volume.nqn)
    condition = stats(node, volume, volume.staging).volume_condition
    assert condition.abnormal and "stale" in condition.message

    report = recovery(loops, short_tmp).run_once()
    assert (report.stale, report.remounted) == ((volume.volume_id,), (volume.volume_id,))
    assert staged_device(volume) == DeviceNumber.from_rdev(os.stat(new).st_rdev) != old
    assert "noatime" in read_mountinfo().at(volume.staging).mount_options  # type: ignore[union-attr]
    assert not stats(node, volume, volume.staging).volume_condition.abnormal
    target = publish(node, volume, mount_cap())
    assert (target / "kept.txt").read_text() == "before the reconnect"
    unpublish(node, volume, target)
    unstage(node, volume)


def test_a_stale_mount_still_in_use_is_left_and_the_breaker_pauses_then_retries(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume, short_tmp: Path
) -> None:
    volume = make_volume("pvc-stuck")
    stage(node, volume, mount_cap())
    target = publish(node, volume, mount_cap())
    loops.renumber(volume.nqn)
    clock = ManualClock()
    passes = recovery(loops, short_tmp, clock)
    for _ in range(passes.failure_threshold):
        report = passes.run_once()
        assert (report.stale, report.remounted) == ((volume.volume_id,), ())  # a pod still writes through it
    unpublish(node, volume, target)  # the pod went away
    assert passes.run_once().remounted == ()  # the breaker is open: no remount storm
    clock.advance(passes.cool_down + 1)
    assert passes.run_once().remounted == (volume.volume_id,)  # and it resets itself
    unstage(node, volume)


def test_the_plugin_runs_recovery_at_start_and_then_periodically(short_tmp: Path, loops: LoopConnector) -> None:
    orphan = MANAGED_PREFIX + "pvc-left-behind"
    connect_by_hand(loops, orphan)
    with running_node(short_tmp, "off", loops, node_recovery_interval="1") as running:
        registry = running.plugin.metrics.registry
        # The counter moves once the disconnect has returned: waiting on it waits for the whole step.
        assert wait_until(lambda: registry.get_sample_value("rds_csi_node_orphans_disconnected_total") == 1, 20)
        assert loops.subsystem(orphan) is None


def test_a_block_volume_staged_but_not_published_is_never_an_orphan(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume, short_tmp: Path
) -> None:
    volume = make_volume("pvc-idle", block=True)
    stage(node, volume, block_cap())
    passes = recovery(loops, short_tmp)
    for _ in range(3):
        assert passes.run_once().disconnected == ()
    assert loop_device(loops, volume).exists()
    unstage(node, volume)
