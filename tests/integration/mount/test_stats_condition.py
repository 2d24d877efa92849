"""Stats and condition on real loop mounts: usage follows writes, sizes follow the device, read-only after an
error or a remount and a device gone or renumbered are reported abnormal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rds_csi.mount import (
    FsType,
    HostPaths,
    bind_block_device,
    bind_mount,
    block_condition,
    block_device_size,
    ensure_filesystem,
    filesystem_condition,
    filesystem_usage,
    mount_filesystem,
    parse_mount_flags,
)
from tests.integration.mount.conftest import LoopDevice, LoopDevices, MiB, run

pytestmark = pytest.mark.root


def staged(loops: LoopDevices, tmp_path: Path, *flags: str) -> tuple[LoopDevice, Path]:
    device = loops.create(64 * MiB)
    ensure_filesystem(device.path, FsType.EXT4)
    target = tmp_path / "staging"
    mount_filesystem(device.path, target, FsType.EXT4, parse_mount_flags(flags))
    return device, target


def test_usage_counts_the_bytes_and_inodes_a_write_takes(loops: LoopDevices, tmp_path: Path) -> None:
    _, target = staged(loops, tmp_path)
    before = filesystem_usage(target)
    assert 0 < before.bytes_used < before.bytes_total <= 64 * MiB
    assert before.bytes_available <= before.bytes_total - before.bytes_used
    with open(target / "data", "wb") as data:
        data.write(os.urandom(8 * MiB))
        os.fsync(data.fileno())
    after = filesystem_usage(target)
    assert after.bytes_used - before.bytes_used >= 8 * MiB
    assert after.bytes_total == before.bytes_total
    assert (after.inodes_used, after.inodes_free) == (before.inodes_used + 1, before.inodes_free - 1)


def test_block_device_size_follows_the_device(loops: LoopDevices) -> None:
    device = loops.create(16 * MiB)
    assert block_device_size(device.path) == 16 * MiB
    device.grow(24 * MiB)
    assert block_device_size(device.path) == 24 * MiB


def test_a_healthy_mount_and_its_read_only_bind_are_normal(loops: LoopDevices, tmp_path: Path) -> None:
    device, staging = staged(loops, tmp_path)
    publish = tmp_path / "publish"
    bind_mount(staging, publish, readonly=True)
    assert filesystem_condition(staging, expected_device=device.number).abnormal is False
    assert filesystem_condition(publish, expected_device=device.number, readonly_expected=True).abnormal is False
    assert filesystem_condition(publish, expected_device=device.number).message == (
        "the volume is mounted read-only, expected read-write"
    )


def test_a_remount_read_only_is_abnormal(loops: LoopDevices, tmp_path: Path) -> None:
    _, staging = staged(loops, tmp_path)
    run("mount", "-o", "remount,ro", str(staging))
    condition = filesystem_condition(staging)
    assert condition.abnormal
    assert "read-only" in condition.message


def test_an_ext4_error_with_errors_remount_ro_is_abnormal(loops: LoopDevices, tmp_path: Path) -> None:
    device, staging = staged(loops, tmp_path, "errors=remount-ro")
    assert not filesystem_condition(staging).abnormal
    Path(f"/sys/fs/ext4/{device.path.name}/trigger_fs_error").write_text("1")
    condition = filesystem_condition(staging)
    assert condition.abnormal
    # Kernels from 6.18 show emergency_ro in mountinfo; every kernel counts the error in sysfs.
    assert "ext4 has recorded 1 error(s)" in condition.message
    with pytest.raises(OSError):
        (staging / "x").write_text("refused by the kernel")


def test_a_mount_of_a_device_the_volume_no_longer_has_is_stale(loops: LoopDevices, tmp_path: Path) -> None:
    _, staging = staged(loops, tmp_path)
    renumbered = loops.create(16 * MiB)
    condition = filesystem_condition(staging, expected_device=renumbered.number)
    assert condition.abnormal
    assert condition.message.startswith("stale mount")


def test_a_device_gone_from_dev_and_sys_is_abnormal(loops: LoopDevices, tmp_path: Path) -> None:
    # Loop devices never vanish while mounted; the injectable roots show the node plugin's view after they did.
    device, staging = staged(loops, tmp_path)
    (tmp_path / "empty").mkdir()
    gone = HostPaths(dev=tmp_path / "empty", sys=tmp_path / "empty")
    condition = filesystem_condition(staging, paths=gone)
    assert condition.message.split("; ") == [
        f"the device {device.path} is gone",
        f"device {device.number} no longer exists (not in sysfs)",
    ]


def test_a_block_publish_is_normal_until_its_device_is_renumbered_or_gone(loops: LoopDevices, tmp_path: Path) -> None:
    device = loops.create(16 * MiB)
    target = tmp_path / "block"
    bind_block_device(device.path, target)
    assert block_condition(target, expected_device=device.number).abnormal is False
    other = loops.create(16 * MiB)
    assert block_condition(target, expected_device=other.number).message.startswith("stale publish")
    (tmp_path / "empty").mkdir()
    gone = block_condition(target, paths=HostPaths(sys=tmp_path / "empty"))
    assert gone.message == f"device {device.number} no longer exists (not in sysfs)"
