"""mount / bind / unmount on real loop devices through mount(2): idempotent, conflict-aware, never deleting through a
mount, never following a symlink at a target."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.mount import (
    DeviceNumber,
    FsType,
    bind_block_device,
    bind_mount,
    check_mounted,
    ensure_filesystem,
    mount_filesystem,
    parse_mount_flags,
    read_mountinfo,
    remove_target,
    unmount,
)
from tests.integration.mount.conftest import XFS_MIN, LoopDevice, LoopDevices, MiB, run

pytestmark = pytest.mark.root


def formatted(loops: LoopDevices, fs_type: FsType = FsType.EXT4, size: int = 64 * MiB) -> LoopDevice:
    device = loops.create(size)
    ensure_filesystem(device.path, fs_type)
    return device


def staged(loops: LoopDevices, tmp_path: Path, name: str = "staging", *flags: str) -> tuple[LoopDevice, Path]:
    device = formatted(loops)
    target = tmp_path / name
    mount_filesystem(device.path, target, FsType.EXT4, parse_mount_flags(flags))
    return device, target


@pytest.mark.parametrize(("fs_type", "size"), [(FsType.EXT4, 64 * MiB), (FsType.XFS, XFS_MIN)])
def test_a_formatted_device_mounts_on_a_created_directory(
    loops: LoopDevices, tmp_path: Path, fs_type: FsType, size: int
) -> None:
    device = formatted(loops, fs_type, size)
    target = tmp_path / "staging"
    entry = mount_filesystem(device.path, target, fs_type)
    assert (entry.mount_point, entry.source, entry.fs_type) == (str(target), str(device.path), fs_type.value)
    assert entry.device == device.number
    assert not entry.read_only
    (target / "data").write_text("kept")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o755  # the file system's root, not the created directory


def test_mounting_again_from_the_same_device_is_success_without_a_second_mount(
    loops: LoopDevices, tmp_path: Path
) -> None:
    device, target = staged(loops, tmp_path)
    again = mount_filesystem(device.path, target, FsType.EXT4)
    assert again == read_mountinfo().at(target)
    assert read_mountinfo().stacked_at(target) == 1
    assert check_mounted(target, device.path) is True


def test_a_target_mounted_from_another_device_is_a_conflict_and_stays(loops: LoopDevices, tmp_path: Path) -> None:
    first, target = staged(loops, tmp_path)
    other = formatted(loops)
    with pytest.raises(errors.MountConflict, match=f"already mounted from {first.path}"):
        mount_filesystem(other.path, target, FsType.EXT4)
    with pytest.raises(errors.MountConflict, match=f"not from {other.path}"):
        check_mounted(target, other.path)
    entry = read_mountinfo().at(target)
    assert entry is not None
    assert entry.device == first.number


def test_the_same_device_in_the_other_read_only_state_is_already_exists(loops: LoopDevices, tmp_path: Path) -> None:
    device, target = staged(loops, tmp_path)
    with pytest.raises(errors.AlreadyExists, match=r"read-write .* read-only was requested"):
        mount_filesystem(device.path, target, FsType.EXT4, parse_mount_flags([], readonly=True))


def test_mount_flags_reach_the_mount_and_the_file_system(loops: LoopDevices, tmp_path: Path) -> None:
    device = formatted(loops)
    options = parse_mount_flags(["noatime,nosuid", "commit=17"], readonly=True)
    entry = mount_filesystem(device.path, tmp_path / "staging", FsType.EXT4, options)
    assert {"ro", "noatime", "nosuid"} <= set(entry.mount_options)
    assert "commit=17" in entry.super_options
    with pytest.raises(OSError) as info:
        (tmp_path / "staging" / "x").write_text("no")
    assert info.value.errno == errno.EROFS


@pytest.mark.parametrize(
    ("flags", "fs"),
    [pytest.param(["nouuid"], True, id="xfs-option-on-ext4"), pytest.param([], False, id="blank-device")],
)
def test_a_refused_mount_leaves_no_target_behind(
    loops: LoopDevices, tmp_path: Path, flags: list[str], fs: bool
) -> None:
    device = formatted(loops) if fs else loops.create(16 * MiB)
    target = tmp_path / "staging"
    with pytest.raises(errors.FailedPrecondition, match="EINVAL"):
        mount_filesystem(device.path, target, FsType.EXT4, parse_mount_flags(flags))
    assert not target.exists()


def test_an_existing_target_directory_is_kept_after_a_refused_mount(loops: LoopDevices, tmp_path: Path) -> None:
    device = loops.create(16 * MiB)
    target = tmp_path / "staging"
    target.mkdir()
    with pytest.raises(errors.FailedPrecondition):
        mount_filesystem(device.path, target, FsType.EXT4)
    assert target.is_dir()


def test_a_symlink_at_the_target_is_never_followed(loops: LoopDevices, tmp_path: Path) -> None:
    device = formatted(loops)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "staging"
    link.symlink_to(elsewhere)
    with pytest.raises(errors.MountConflict, match="not a directory"):
        mount_filesystem(device.path, link, FsType.EXT4)
    assert read_mountinfo().under(tmp_path) == ()
    assert link.is_symlink()


def test_a_missing_parent_directory_is_failed_precondition(loops: LoopDevices, tmp_path: Path) -> None:
    device = formatted(loops)
    with pytest.raises(errors.FailedPrecondition, match="parent directory"):
        mount_filesystem(device.path, tmp_path / "absent" / "staging", FsType.EXT4)
    assert not (tmp_path / "absent").exists()


def test_a_path_that_is_not_a_block_device_is_refused(tmp_path: Path, loops: LoopDevices) -> None:
    with pytest.raises(errors.FailedPrecondition, match="does not exist"):
        mount_filesystem(tmp_path / "nvme9n9", tmp_path / "staging", FsType.EXT4)
    with pytest.raises(errors.FailedPrecondition, match="not a block device"):
        mount_filesystem(Path("/dev/null"), tmp_path / "staging", FsType.EXT4)
    assert not (tmp_path / "staging").exists()


def test_a_bind_shows_the_staged_files_and_is_idempotent(loops: LoopDevices, tmp_path: Path) -> None:
    device, staging = staged(loops, tmp_path)
    (staging / "data").write_text("staged")
    publish = tmp_path / "publish"
    entry = bind_mount(staging, publish)
    assert (publish / "data").read_text() == "staged"
    assert (entry.device, entry.root) == (device.number, "/")
    assert [e.mount_point for e in read_mountinfo().binds_of(staging)] == [str(publish)]
    assert bind_mount(staging, publish) == entry
    assert read_mountinfo().stacked_at(publish) == 1
    with pytest.raises(errors.AlreadyExists, match="read-only was requested"):
        bind_mount(staging, publish, readonly=True)


def test_a_read_only_bind_is_read_only_and_keeps_the_staging_flags(loops: LoopDevices, tmp_path: Path) -> None:
    _, staging = staged(loops, tmp_path, "staging", "nosuid,nodev,noatime")
    publish = tmp_path / "publish"
    entry = bind_mount(staging, publish, readonly=True, options=parse_mount_flags(["noexec"]))
    assert {"ro", "nosuid", "nodev", "noatime", "noexec"} <= set(entry.mount_options)
    with pytest.raises(OSError) as info:
        (publish / "x").write_text("no")
    assert info.value.errno == errno.EROFS
    (staging / "x").write_text("the staging mount stays writable")
    assert (publish / "x").read_text() == "the staging mount stays writable"
    assert bind_mount(staging, publish, readonly=True) == entry


def test_binding_a_directory_that_is_not_mounted_is_refused(tmp_path: Path, loops: LoopDevices) -> None:
    bare = tmp_path / "staging"
    bare.mkdir()
    with pytest.raises(errors.FailedPrecondition, match="not a mount point"):
        bind_mount(bare, tmp_path / "publish")
    assert not (tmp_path / "publish").exists()


def test_a_publish_target_bound_from_another_staging_is_a_conflict(loops: LoopDevices, tmp_path: Path) -> None:
    _, first = staged(loops, tmp_path, "first")
    _, second = staged(loops, tmp_path, "second")
    publish = tmp_path / "publish"
    bind_mount(first, publish)
    with pytest.raises(errors.MountConflict, match="already mounted from"):
        bind_mount(second, publish)


def test_a_block_device_is_published_at_a_file_and_is_the_device(loops: LoopDevices, tmp_path: Path) -> None:
    device = loops.create(16 * MiB)
    target = tmp_path / "block"
    entry = bind_block_device(device.path, target)
    shown = os.stat(target)
    assert stat.S_ISBLK(shown.st_mode)
    assert DeviceNumber.from_rdev(shown.st_rdev) == device.number
    assert (entry.fs_type, entry.root) == ("devtmpfs", "/" + device.path.name)
    with open(target, "r+b") as published:
        published.write(b"through the publish target")
    with open(device.path, "rb") as raw:
        assert raw.read(26) == b"through the publish target"
    assert bind_block_device(device.path, target) == entry
    other = loops.create(16 * MiB)
    with pytest.raises(errors.MountConflict, match=f"not the device {other.path}"):
        bind_block_device(other.path, target)


def test_a_block_target_that_is_a_directory_or_symlink_is_refused(loops: LoopDevices, tmp_path: Path) -> None:
    device = loops.create(16 * MiB)
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    for target in (tmp_path / "dir", tmp_path / "link"):
        with pytest.raises(errors.MountConflict, match="not a file"):
            bind_block_device(device.path, target)
    assert read_mountinfo().under(tmp_path) == ()


def test_unmount_is_idempotent(loops: LoopDevices, tmp_path: Path) -> None:
    _, target = staged(loops, tmp_path)
    assert unmount(target) is True
    assert read_mountinfo().at(target) is None
    assert unmount(target) is False
    assert unmount(tmp_path / "never-existed") is False


def test_unmount_removes_every_stacked_layer(loops: LoopDevices, tmp_path: Path) -> None:
    _, staging = staged(loops, tmp_path)
    publish = tmp_path / "publish"
    bind_mount(staging, publish)
    run("mount", "--bind", str(staging), str(publish))
    assert read_mountinfo().stacked_at(publish) == 2
    assert unmount(publish) is True
    assert read_mountinfo().at(publish) is None
    assert read_mountinfo().at(staging) is not None


def test_a_busy_mount_is_target_busy_and_stays_mounted(loops: LoopDevices, tmp_path: Path) -> None:
    _, target = staged(loops, tmp_path)
    with open(target / "held", "w"):
        with pytest.raises(errors.TargetBusy, match="busy"):
            unmount(target)
        assert read_mountinfo().at(target) is not None
    assert unmount(target) is True


def test_unmount_of_a_symlink_does_not_unmount_what_it_points_to(loops: LoopDevices, tmp_path: Path) -> None:
    _, staging = staged(loops, tmp_path)
    link = tmp_path / "link"
    link.symlink_to(staging)
    assert unmount(link) is False
    assert read_mountinfo().at(staging) is not None


def test_a_target_is_removed_only_once_nothing_is_mounted_there(loops: LoopDevices, tmp_path: Path) -> None:
    _, target = staged(loops, tmp_path)
    (target / "data").write_text("precious")
    with pytest.raises(errors.TargetBusy, match="not removed"):
        remove_target(target)
    assert (target / "data").read_text() == "precious"
    unmount(target)
    assert remove_target(target) is True
    assert not target.exists()
    assert remove_target(target) is False


def test_a_directory_with_something_mounted_below_is_not_removed(loops: LoopDevices, tmp_path: Path) -> None:
    device = formatted(loops)
    parent = tmp_path / "parent"
    parent.mkdir()
    mount_filesystem(device.path, parent / "staging", FsType.EXT4)
    with pytest.raises(errors.TargetBusy):
        remove_target(parent)
    assert read_mountinfo().at(parent / "staging") is not None


def test_a_non_empty_directory_is_left_alone(tmp_path: Path, loops: LoopDevices) -> None:
    target = tmp_path / "publish"
    target.mkdir()
    (target / "stray").write_text("not ours to delete")
    with pytest.raises(errors.TargetBusy, match="not empty"):
        remove_target(target)
    assert (target / "stray").exists()


def test_a_block_target_file_is_removed_after_unmount(loops: LoopDevices, tmp_path: Path) -> None:
    device = loops.create(16 * MiB)
    target = tmp_path / "block"
    bind_block_device(device.path, target)
    with pytest.raises(errors.TargetBusy):
        remove_target(target)
    assert device.path.exists()
    assert unmount(target) is True
    assert remove_target(target) is True
    assert not target.exists()
    assert device.path.exists()


def test_removing_a_symlink_target_removes_only_the_link(tmp_path: Path, loops: LoopDevices) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "data").write_text("stays")
    link = tmp_path / "publish"
    link.symlink_to(kept)
    assert remove_target(link) is True
    assert not link.is_symlink()
    assert (kept / "data").read_text() == "stays"


def test_check_mounted_tells_nothing_from_the_right_device(loops: LoopDevices, tmp_path: Path) -> None:
    device = formatted(loops)
    target = tmp_path / "staging"
    target.mkdir()
    assert check_mounted(target, device.path) is False
    mount_filesystem(device.path, target, FsType.EXT4)
    assert check_mounted(target, device.path) is True
