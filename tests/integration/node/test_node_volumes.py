"""The node data path over real gRPC on a unix socket, on real loop devices with real mkfs, blkid and mounts.

The NVMe/TCP connect is the one step this host kernel cannot take: ``LoopConnector`` stands in for it (an image
per subsystem, attached as a loop device) and fails the ways the kernel does. The same flows run against the
kernel's NVMe/TCP host in the VM (tests/e2e/guest/test_node_data_path.py).
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from rds_csi.mount import HOST, DeviceNumber, read_mountinfo
from rds_csi.mount.grow import CAP_SYS_RESOURCE
from rds_csi.node.records import read_record, record_path
from tests.integration.node.harness import RunningNode, running_node
from tests.integration.node.kubelet import (
    SIZE,
    XFS_SIZE,
    MakeVolume,
    MiB,
    block_cap,
    code_of,
    expand,
    fs_type_of,
    loop_device,
    metric,
    mount_cap,
    publish,
    stage,
    stats,
    unpublish,
    unstage,
)
from tests.integration.node.loop_connector import LoopConnector

_Cap = csi_pb2.NodeServiceCapability.RPC.Type
root = pytest.mark.root
EXT_GROW_ALLOWED = HOST.has_capability(CAP_SYS_RESOURCE)


# ---- the service itself -------------------------------------------------------------------------------------------


def test_node_claims_stage_expand_stats_and_condition(node: RunningNode) -> None:
    caps = node.node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), timeout=5).capabilities
    assert sorted(c.rpc.type for c in caps) == sorted(
        [_Cap.STAGE_UNSTAGE_VOLUME, _Cap.EXPAND_VOLUME, _Cap.GET_VOLUME_STATS, _Cap.VOLUME_CONDITION]
    )


Stage = csi_pb2.NodeStageVolumeRequest


@pytest.mark.parametrize(
    ("method", "request_", "field"),
    [
        ("NodeStageVolume", Stage(staging_target_path="/s", volume_capability=block_cap()), "volume_id"),
        ("NodeStageVolume", Stage(volume_id="pvc-1", volume_capability=block_cap()), "staging_target_path"),
        ("NodeStageVolume", Stage(volume_id="pvc-1", staging_target_path="/s"), "volume_capability"),
        (
            "NodeStageVolume",
            Stage(volume_id="pvc-1", staging_target_path="/s", volume_capability=block_cap()),
            "volume_context nqn",
        ),
        (
            "NodePublishVolume",
            csi_pb2.NodePublishVolumeRequest(volume_id="pvc-1", staging_target_path="/s"),
            "target_path",
        ),
        ("NodeUnpublishVolume", csi_pb2.NodeUnpublishVolumeRequest(volume_id="pvc-1"), "target_path"),
        ("NodeUnstageVolume", csi_pb2.NodeUnstageVolumeRequest(staging_target_path="/s"), "volume_id"),
        ("NodeGetVolumeStats", csi_pb2.NodeGetVolumeStatsRequest(volume_id="pvc-1"), "volume_path"),
        ("NodeExpandVolume", csi_pb2.NodeExpandVolumeRequest(volume_path="/t"), "volume_id"),
    ],
)
def test_requests_missing_a_field_are_invalid_argument_naming_it(
    node: RunningNode, method: str, request_: object, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        getattr(node.node, method)(request_, timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (refused.value.details() or "")


@root
def test_a_second_operation_on_a_volume_in_flight_is_aborted(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-busy")
    with loops.gated(volume.nqn) as gate:
        first = threading.Thread(target=stage, args=(node, volume, mount_cap()))
        first.start()
        assert gate.entered.wait(10), "the first stage never reached the connect"
        assert code_of(lambda: stage(node, volume, mount_cap())) == grpc.StatusCode.ABORTED
        assert code_of(lambda: unstage(node, volume)) == grpc.StatusCode.ABORTED
        gate.released.set()
        first.join(30)
    assert read_mountinfo().at(volume.staging) is not None  # the first one finished its work
    unstage(node, volume)


# ---- filesystem volumes -------------------------------------------------------------------------------------------


@root
@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
def test_mount_volume_lifecycle_keeps_data_across_a_restage(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume, fs_type: str
) -> None:
    volume = make_volume(f"pvc-life-{fs_type}", XFS_SIZE if fs_type == "xfs" else SIZE)
    cap = mount_cap(fs_type, ("noatime",))
    stage(node, volume, cap)
    device = loop_device(loops, volume)
    staged = read_mountinfo().at(volume.staging)
    assert staged is not None and staged.fs_type == fs_type and "noatime" in staged.mount_options
    assert fs_type_of(device) == fs_type
    stage(node, volume, cap)  # idempotent
    target = publish(node, volume, cap)
    publish(node, volume, cap)  # idempotent
    (target / "data.txt").write_text("kept")
    reader = publish(node, volume, cap, pod="pod-b", readonly=True)
    assert read_mountinfo().at(reader).read_only  # type: ignore[union-attr]
    with pytest.raises(OSError):
        (reader / "other.txt").write_text("refused")
    assert (reader / "data.txt").read_text() == "kept"

    for published in (target, reader):
        unpublish(node, volume, published)
        unpublish(node, volume, published)  # idempotent
        assert not os.path.lexists(published)
    unstage(node, volume)
    unstage(node, volume)  # idempotent
    assert read_mountinfo().at(volume.staging) is None
    assert loops.subsystem(volume.nqn) is None  # disconnected
    assert not record_path(volume.staging).exists() and not volume.staging.exists()

    volume.staging.mkdir()
    stage(node, volume, cap)
    target = publish(node, volume, cap)
    assert (target / "data.txt").read_text() == "kept"  # restaged, not reformatted
    assert metric(node, "rds_csi_node_formats_total", fs_type=fs_type) == 1
    unpublish(node, volume, target)
    unstage(node, volume)
    assert metric(node, "rds_csi_node_operations_total", operation="stage", result="ok") == 3
    assert metric(node, "rds_csi_nvme_connect_duration_seconds_count", result="ok") == 3


@root
@pytest.mark.parametrize(
    "fs_type",
    [
        # Some sandboxes run root without CAP_SYS_RESOURCE, and the kernel then refuses an online ext4 resize (the
        # VM tests grow ext4 through the whole stack).
        pytest.param("ext4", marks=pytest.mark.skipif(not EXT_GROW_ALLOWED, reason="no CAP_SYS_RESOURCE here")),
        "xfs",
    ],
)
def test_expansion_grows_the_mounted_filesystem_online_and_answers_the_measured_size(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume, fs_type: str
) -> None:
    size = XFS_SIZE if fs_type == "xfs" else SIZE
    volume = make_volume(f"pvc-grow-{fs_type}", size)
    cap = mount_cap(fs_type)
    stage(node, volume, cap)
    target = publish(node, volume, cap)
    before = os.statvfs(target)
    loops.grow(volume.nqn, 2 * size)  # what ControllerExpandVolume makes the storage do
    assert expand(node, volume, target, 2 * size) == 2 * size
    after = os.statvfs(target)
    assert after.f_blocks * after.f_frsize > 1.8 * before.f_blocks * before.f_frsize
    assert expand(node, volume, target, 2 * size) == 2 * size  # a retry is harmless
    usage = stats(node, volume, target).usage
    assert usage[0].total == after.f_blocks * after.f_frsize
    unpublish(node, volume, target)
    unstage(node, volume)


@root
def test_stats_report_bytes_and_inodes_and_the_volume_condition(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-stats")
    stage(node, volume, mount_cap())
    target = publish(node, volume, mount_cap())
    (target / "f").write_bytes(b"x" * MiB)
    os.sync()
    response = stats(node, volume, target)
    by_unit = {u.unit: u for u in response.usage}
    vfs = os.statvfs(target)
    assert by_unit[csi_pb2.VolumeUsage.BYTES].total == vfs.f_blocks * vfs.f_frsize
    assert by_unit[csi_pb2.VolumeUsage.BYTES].used >= MiB
    assert by_unit[csi_pb2.VolumeUsage.INODES].total == vfs.f_files
    assert not response.volume_condition.abnormal
    assert not stats(node, volume, target, staged=False).volume_condition.abnormal  # found by its device alone

    loops.set_state(volume.nqn, "connecting")  # the target went away; the kernel is reconnecting
    condition = stats(node, volume, target).volume_condition
    assert condition.abnormal and "connecting" in condition.message
    loops.set_state(volume.nqn, None)
    assert not stats(node, volume, target).volume_condition.abnormal

    subprocess.run(["mount", "-o", "remount,ro", str(volume.staging)], check=True)  # as errors=remount-ro does
    condition = stats(node, volume, target).volume_condition
    assert condition.abnormal and "read-only" in condition.message

    for path in (volume.pods / "nothing-here", volume.pods):  # missing, and present but not a volume
        with pytest.raises(grpc.RpcError) as missing:
            stats(node, volume, path)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    subprocess.run(["mount", "-o", "remount,rw", str(volume.staging)], check=True)
    unpublish(node, volume, target)
    unstage(node, volume)


# ---- block volumes ------------------------------------------------------------------------------------------------


@root
def test_block_volume_is_the_device_node_at_the_target(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-block", block=True)
    stage(node, volume, block_cap())
    device = loop_device(loops, volume)
    assert read_mountinfo().at(volume.staging) is None  # nothing mounted for block: connect and verify only
    target = publish(node, volume, block_cap())
    publish(node, volume, block_cap())  # idempotent
    info = os.stat(target)
    assert stat.S_ISBLK(info.st_mode) and info.st_rdev == os.stat(device).st_rdev
    with open(target, "r+b", buffering=0) as opened:
        opened.seek(MiB)
        opened.write(b"block data")
    response = stats(node, volume, target)
    assert [(u.unit, u.total) for u in response.usage] == [(csi_pb2.VolumeUsage.BYTES, SIZE)]
    assert not response.volume_condition.abnormal
    assert code_of(lambda: unstage(node, volume)) == grpc.StatusCode.FAILED_PRECONDITION  # still published
    unpublish(node, volume, target)
    assert not os.path.lexists(target)
    unstage(node, volume)
    assert loops.subsystem(volume.nqn) is None
    with open(loops.image(volume.nqn), "rb") as image:
        image.seek(MiB)
        assert image.read(10) == b"block data"


@root
def test_block_target_renumbered_under_it_is_abnormal_and_rebound_on_publish(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume, short_tmp: Path
) -> None:
    volume = make_volume("pvc-renumber", block=True)
    stage(node, volume, block_cap())
    target = publish(node, volume, block_cap())
    old = DeviceNumber.from_rdev(os.stat(target).st_rdev)
    # The connection drops and comes back as another device (nvme0n1 -> nvme3n1); the spacer takes the old number.
    loops.disconnect(volume.nqn)
    spacer = short_tmp / "spacer.img"
    spacer.write_bytes(b"\0" * MiB)
    subprocess.run(["losetup", "--find", str(spacer)], check=True)
    try:
        stage(node, volume, block_cap())
        current = loop_device(loops, volume)
        assert DeviceNumber.from_rdev(os.stat(current).st_rdev) != old
        condition = stats(node, volume, target).volume_condition
        assert condition.abnormal and "stale" in condition.message
        publish(node, volume, block_cap())  # the kubelet's retry re-checks the device number
        assert os.stat(target).st_rdev == os.stat(current).st_rdev
        assert not stats(node, volume, target).volume_condition.abnormal
        unpublish(node, volume, target)
        unstage(node, volume)
    finally:
        spacers = subprocess.run(["losetup", "-j", str(spacer)], check=True, capture_output=True, text=True)
        for line in spacers.stdout.splitlines():
            subprocess.run(["losetup", "-d", line.split(":", 1)[0]], check=False)


# ---- refusals and retries -----------------------------------------------------------------------------------------


@root
@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (["mkswap"], "signature"),  # something that is not the requested filesystem
        (["mkfs.xfs", "-q"], "signature"),  # another filesystem: never reformatted
    ],
)
def test_a_device_that_is_not_positively_blank_is_never_formatted(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume, prepare: list[str], reason: str
) -> None:
    volume = make_volume(f"pvc-keep-{len(prepare)}", XFS_SIZE)
    subprocess.run([*prepare, str(loops.image(volume.nqn))], check=True, capture_output=True)
    before = loops.image(volume.nqn).read_bytes()
    with pytest.raises(grpc.RpcError) as refused:
        stage(node, volume, mount_cap("ext4"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "refused to protect data" in (refused.value.details() or "")
    assert loops.image(volume.nqn).read_bytes() == before
    assert read_mountinfo().at(volume.staging) is None
    assert metric(node, "rds_csi_node_formats_refused_total", reason=reason) == 1
    assert metric(node, "rds_csi_node_operations_total", operation="stage", result="failed_precondition") == 1
    unstage(node, volume)  # what the refused stage connected is cleaned up
    assert loops.subsystem(volume.nqn) is None


@root
def test_a_device_not_ready_within_the_deadline_is_retryable_and_the_retry_continues(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-slow")
    loops.appear_after(volume.nqn, polls=10_000)
    with pytest.raises(grpc.RpcError) as slow:
        stage(node, volume, mount_cap(), timeout=3.0)
    assert slow.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "connecting" in (slow.value.details() or "")
    assert loops.subsystem(volume.nqn) is not None  # the connect that is coming up was left alone
    loops.appear_after(volume.nqn, polls=2, zero_size_polls=3)  # then reads size 0 for a moment
    stage(node, volume, mount_cap())
    assert loops.connects == [volume.nqn]  # connected once; the retry continued from there
    assert read_mountinfo().at(volume.staging) is not None
    unstage(node, volume)


@root
def test_a_refused_connect_is_unavailable_and_leaves_nothing_behind_after_unstage(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-refused")
    loops.refuse(volume.nqn)
    assert code_of(lambda: stage(node, volume, mount_cap())) == grpc.StatusCode.UNAVAILABLE
    assert read_record(volume.staging) is not None  # written before the connect, so unstage knows what to undo
    unstage(node, volume)
    assert not record_path(volume.staging).exists()


@root
def test_unstage_refuses_while_the_device_is_held_open_and_succeeds_after(
    node: RunningNode, loops: LoopConnector, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-held", block=True)
    stage(node, volume, block_cap())
    holder = os.open(loop_device(loops, volume), os.O_RDONLY | os.O_EXCL)
    try:
        assert code_of(lambda: unstage(node, volume)) == grpc.StatusCode.FAILED_PRECONDITION
        assert loops.subsystem(volume.nqn) is not None
    finally:
        os.close(holder)
    unstage(node, volume)
    assert loops.subsystem(volume.nqn) is None


@root
def test_unstage_of_a_filesystem_still_published_is_refused_and_stays_mounted(
    node: RunningNode, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-pub")
    stage(node, volume, mount_cap())
    target = publish(node, volume, mount_cap())
    with pytest.raises(grpc.RpcError) as refused:
        unstage(node, volume)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert str(target) in (refused.value.details() or "")
    assert read_mountinfo().at(volume.staging) is not None
    unpublish(node, volume, target)
    unstage(node, volume)


@root
def test_publish_onto_a_target_holding_something_else_is_refused(node: RunningNode, make_volume: MakeVolume) -> None:
    volume = make_volume("pvc-other")
    stage(node, volume, mount_cap())
    target = volume.target()
    target.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "other", str(target)], check=True)
    assert code_of(lambda: publish(node, volume, mount_cap())) == grpc.StatusCode.FAILED_PRECONDITION
    subprocess.run(["umount", str(target)], check=True)
    target.rmdir()
    unstage(node, volume)


@root
def test_unpublish_never_deletes_through_content_left_in_an_unmounted_target(
    node: RunningNode, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-content")
    never = volume.target("pod-never")
    unpublish(node, volume, never)  # csi-sanity's cleanup: a target that was never published is fine
    never.mkdir(parents=True)
    unpublish(node, volume, never)
    assert not never.exists()
    never.mkdir(parents=True)
    (never / "precious").write_text("not ours to delete")
    assert code_of(lambda: unpublish(node, volume, never)) == grpc.StatusCode.FAILED_PRECONDITION
    assert (never / "precious").read_text() == "not ours to delete"


@root
def test_a_restarted_plugin_unstages_what_the_previous_one_staged(
    short_tmp: Path, loops: LoopConnector, make_volume: MakeVolume
) -> None:
    volume = make_volume("pvc-restart")
    with running_node(short_tmp, "off", loops) as first:
        stage(first, volume, mount_cap())
        target = publish(first, volume, mount_cap())
    with running_node(short_tmp, "off", LoopConnector(loops.images)) as second:
        stage(second, volume, mount_cap())  # still staged: idempotent after the restart
        unpublish(second, volume, target)
        unstage(second, volume)
    assert loops.subsystem(volume.nqn) is None
    assert read_mountinfo().at(volume.staging) is None
