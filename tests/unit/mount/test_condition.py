"""Volume condition from a mount entry (pure) and from synthetic /proc, /dev and /sys trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.mount import (
    DeviceNumber,
    HostPaths,
    MountEntry,
    assess_mount,
    block_condition,
    block_device_size,
    filesystem_condition,
    filesystem_usage,
    parse_mountinfo_line,
    usage_from_statvfs,
)

NVME = DeviceNumber(259, 3)


def entry(mount_options: str = "rw,relatime", super_options: str = "rw", device: str = "259:3") -> MountEntry:
    return parse_mountinfo_line(f"3140 27 {device} / /staging {mount_options} - ext4 /dev/nvme1n1 {super_options}")


ERRORS = "the file system went read-only after errors"


@pytest.mark.parametrize(
    ("mount_options", "super_options", "readonly_expected", "problems"),
    [
        ("rw,relatime", "rw", False, ()),
        ("ro,relatime", "rw", True, ()),  # a read-only publish bind
        ("ro,relatime", "ro", True, ()),
        ("ro,relatime", "ro", False, ("the volume is mounted read-only, expected read-write",)),  # remount,ro
        ("rw,relatime", "ro,errors=remount-ro", False, (f"{ERRORS} while mounted read-write",)),  # older kernels
        ("rw,relatime", "rw,errors=remount-ro,emergency_ro", False, (f"{ERRORS} (emergency_ro)",)),  # newer ones
        ("ro,relatime", "rw,emergency_ro", True, (f"{ERRORS} (emergency_ro)",)),
    ],
)
def test_read_only_is_a_problem_only_where_writes_were_expected(
    mount_options: str, super_options: str, readonly_expected: bool, problems: tuple[str, ...]
) -> None:
    assert assess_mount(entry(mount_options, super_options), readonly_expected=readonly_expected) == problems


def test_a_mount_on_another_device_number_than_the_volume_has_now_is_stale() -> None:
    assert assess_mount(entry(), expected_device=NVME) == ()
    (problem,) = assess_mount(entry(), expected_device=DeviceNumber(259, 7))
    assert problem == "stale mount: it uses device 259:3 while the volume's device is now 259:7"


def host(tmp_path: Path, lines: list[str], *, sys_devices: list[str]) -> HostPaths:
    (tmp_path / "mountinfo").write_text("".join(line + "\n" for line in lines))
    (tmp_path / "dev").mkdir()
    for number in sys_devices:
        (tmp_path / "sys" / "dev" / "block" / number).mkdir(parents=True)
    return HostPaths(mountinfo=tmp_path / "mountinfo", dev=tmp_path / "dev", sys=tmp_path / "sys")


def test_a_device_gone_from_dev_is_abnormal(tmp_path: Path) -> None:
    mounted = tmp_path / "staging"
    mounted.mkdir()
    paths = host(tmp_path, [f"3140 27 259:3 / {mounted} rw - ext4 /dev/nvme1n1 rw"], sys_devices=["259:3"])
    condition = filesystem_condition(mounted, paths=paths)
    assert condition.abnormal
    assert condition.message == "the device /dev/nvme1n1 is gone"


def test_a_device_gone_from_sysfs_and_dev_is_abnormal_for_both(tmp_path: Path) -> None:
    mounted = tmp_path / "staging"
    mounted.mkdir()
    paths = host(tmp_path, [f"3140 27 259:3 / {mounted} rw - ext4 /dev/nvme1n1 rw"], sys_devices=[])
    condition = filesystem_condition(mounted, expected_device=DeviceNumber(259, 9), paths=paths)
    assert condition.abnormal
    assert condition.message.split("; ") == [
        "stale mount: it uses device 259:3 while the volume's device is now 259:9",
        "the device /dev/nvme1n1 is gone",
        "device 259:3 no longer exists (not in sysfs)",
    ]


def test_a_source_node_that_is_no_longer_a_device_is_abnormal(tmp_path: Path) -> None:
    mounted = tmp_path / "staging"
    mounted.mkdir()
    paths = host(tmp_path, [f"3140 27 259:3 / {mounted} rw - ext4 /dev/nvme1n1 rw"], sys_devices=["259:3"])
    (tmp_path / "dev" / "nvme1n1").write_text("")
    assert filesystem_condition(mounted, paths=paths).message == "/dev/nvme1n1 is no longer a block device"


def test_errors_recorded_by_ext4_in_sysfs_are_abnormal(tmp_path: Path) -> None:
    mounted = tmp_path / "staging"
    mounted.mkdir()
    paths = host(tmp_path, [f"3140 27 259:3 / {mounted} rw - ext4 /dev/nvme1n1 rw,errors=remount-ro"], sys_devices=[])
    device_dir = tmp_path / "sys" / "devices" / "virtual" / "nvme-subsystem" / "nvme-subsys1" / "nvme1n1"
    device_dir.mkdir(parents=True)
    (tmp_path / "sys" / "dev" / "block").mkdir(parents=True)
    (tmp_path / "sys" / "dev" / "block" / "259:3").symlink_to(device_dir)
    counter = tmp_path / "sys" / "fs" / "ext4" / "nvme1n1" / "errors_count"
    counter.parent.mkdir(parents=True)
    counter.write_text("0\n")
    (tmp_path / "dev" / "nvme1n1").symlink_to("/dev/null")  # present; not a block device, which is reported too
    assert filesystem_condition(mounted, paths=paths).message == "/dev/nvme1n1 is no longer a block device"
    counter.write_text("3\n")
    assert filesystem_condition(mounted, paths=paths).message.split("; ")[1] == (
        "ext4 has recorded 3 error(s) since it was last checked"
    )


def test_a_present_mount_without_a_dev_source_is_healthy(tmp_path: Path) -> None:
    mounted = tmp_path / "scratch"
    mounted.mkdir()
    paths = host(tmp_path, [f"95 27 0:51 / {mounted} rw - tmpfs tmpfs rw"], sys_devices=["0:51"])
    condition = filesystem_condition(mounted, paths=paths)
    assert not condition.abnormal
    assert condition.message == "tmpfs on tmpfs is mounted and answers"


def test_nothing_mounted_is_abnormal(tmp_path: Path) -> None:
    paths = host(tmp_path, [], sys_devices=[])
    assert filesystem_condition(tmp_path, paths=paths).abnormal
    assert block_condition(tmp_path / "block", paths=paths).message.startswith("nothing is published at")


def test_usage_is_computed_from_fragment_size_blocks_and_inodes() -> None:
    result = os.statvfs_result((4096, 1024, 1000, 400, 300, 500, 120, 120, 0, 255))
    usage = usage_from_statvfs(result)
    assert (usage.bytes_total, usage.bytes_used, usage.bytes_available) == (1024000, 614400, 307200)
    assert (usage.inodes_total, usage.inodes_used, usage.inodes_free) == (500, 380, 120)


def test_usage_of_a_missing_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(errors.NotFound):
        filesystem_usage(tmp_path / "missing")


def test_usage_of_this_directory_is_plausible(tmp_path: Path) -> None:
    usage = filesystem_usage(tmp_path)
    assert 0 < usage.bytes_available <= usage.bytes_total
    assert usage.bytes_used <= usage.bytes_total


def test_the_size_of_something_that_is_not_a_block_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "image").write_bytes(bytes(4096))
    with pytest.raises(errors.FailedPrecondition, match="not a block device"):
        block_device_size(tmp_path / "image")
    with pytest.raises(errors.FailedPrecondition, match="does not exist"):
        block_device_size(tmp_path / "missing")
