"""Online grow on real loop devices: grow the device (``losetup -c``, as a namespace rescan does), grow the mounted
file system, measure; a second grow finds nothing to do and succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.mount import (
    HOST,
    FsType,
    HostPaths,
    ensure_filesystem,
    filesystem_usage,
    grow_filesystem,
    mount_filesystem,
)
from rds_csi.mount.grow import CAP_SYS_RESOURCE
from tests.integration.mount.conftest import XFS_MIN, LoopDevice, LoopDevices, MiB
from tests.mount_runners import exits, real_except, times_out

pytestmark = pytest.mark.root

# Some sandboxes run root without CAP_SYS_RESOURCE; the kernel then refuses an online ext4 resize. The node
# plugin runs privileged; the tests prove the grow where the kernel allows it and the clear refusal where not.
EXT_GROW_ALLOWED = HOST.has_capability(CAP_SYS_RESOURCE)
NO_CAP_SYS_RESOURCE = "this process lacks CAP_SYS_RESOURCE: the kernel refuses an online ext4 resize"


def mounted(loops: LoopDevices, tmp_path: Path, fs_type: FsType, size: int) -> tuple[LoopDevice, Path]:
    device = loops.create(size)
    ensure_filesystem(device.path, fs_type)
    target = tmp_path / "staging"
    mount_filesystem(device.path, target, fs_type)
    return device, target


def status_with(tmp_path: Path, capabilities: int) -> HostPaths:
    status = tmp_path / "status"
    status.write_text(f"Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t{capabilities:016x}\n")
    return HostPaths(status=status)


@pytest.mark.parametrize(
    ("fs_type", "size", "grown"),
    [
        pytest.param(
            FsType.EXT4, 64 * MiB, 192 * MiB, marks=pytest.mark.skipif(not EXT_GROW_ALLOWED, reason=NO_CAP_SYS_RESOURCE)
        ),
        pytest.param(
            FsType.EXT3, 64 * MiB, 192 * MiB, marks=pytest.mark.skipif(not EXT_GROW_ALLOWED, reason=NO_CAP_SYS_RESOURCE)
        ),
        pytest.param(FsType.XFS, XFS_MIN, XFS_MIN + 128 * MiB),
    ],
)
def test_a_mounted_file_system_grows_online_to_the_new_device_size(
    loops: LoopDevices, tmp_path: Path, fs_type: FsType, size: int, grown: int
) -> None:
    device, target = mounted(loops, tmp_path, fs_type, size)
    (target / "data").write_text("survives the grow")
    before = filesystem_usage(target).bytes_total
    device.grow(grown)
    result = grow_filesystem(device.path, target)
    assert result.device_bytes == grown
    assert result.filesystem_bytes_before == before
    # The file system takes its metadata out of the new space too; most of the 128 MiB must show up.
    assert result.filesystem_bytes - before > 96 * MiB
    assert result.filesystem_bytes == filesystem_usage(target).bytes_total
    assert (target / "data").read_text() == "survives the grow"
    again = grow_filesystem(device.path, target)
    assert (again.filesystem_bytes_before, again.filesystem_bytes) == (result.filesystem_bytes,) * 2


@pytest.mark.skipif(EXT_GROW_ALLOWED, reason="this process holds CAP_SYS_RESOURCE: the ext4 grow itself is tested")
def test_an_ext4_grow_the_kernel_refuses_for_want_of_cap_sys_resource_says_so(
    loops: LoopDevices, tmp_path: Path
) -> None:
    device, target = mounted(loops, tmp_path, FsType.EXT4, 64 * MiB)
    device.grow(128 * MiB)
    with pytest.raises(errors.FailedPrecondition, match="needs CAP_SYS_RESOURCE"):
        grow_filesystem(device.path, target)


@pytest.mark.parametrize(("fs_type", "size"), [(FsType.EXT4, 64 * MiB), (FsType.XFS, XFS_MIN)])
def test_growing_a_file_system_already_at_the_device_size_is_success(
    loops: LoopDevices, tmp_path: Path, fs_type: FsType, size: int
) -> None:
    device, target = mounted(loops, tmp_path, fs_type, size)
    result = grow_filesystem(device.path, target)
    assert result.filesystem_bytes == result.filesystem_bytes_before
    assert result.device_bytes == size


def test_growing_needs_the_file_system_mounted_from_that_device(loops: LoopDevices, tmp_path: Path) -> None:
    device = loops.create(64 * MiB)
    ensure_filesystem(device.path, FsType.EXT4)
    target = tmp_path / "staging"
    target.mkdir()
    with pytest.raises(errors.FailedPrecondition, match="nothing is mounted"):
        grow_filesystem(device.path, target)
    mount_filesystem(device.path, target, FsType.EXT4)
    other = loops.create(64 * MiB)
    with pytest.raises(errors.MountConflict, match=f"not from {other.path}"):
        grow_filesystem(other.path, target)


def test_a_failing_grow_tool_is_internal_or_names_the_missing_capability(loops: LoopDevices, tmp_path: Path) -> None:
    device, target = mounted(loops, tmp_path, FsType.EXT4, 64 * MiB)
    device.grow(128 * MiB)
    failing = real_except({"resize2fs": exits(1, stderr="resize2fs 1.47.0\nresize2fs: Permission denied\n")})
    with pytest.raises(errors.Internal, match=r"exit status 1: resize2fs 1\.47\.0 / resize2fs: Permission denied"):
        grow_filesystem(device.path, target, runner=failing, paths=status_with(tmp_path, (1 << 41) - 1))
    with pytest.raises(errors.FailedPrecondition, match="needs CAP_SYS_RESOURCE"):
        grow_filesystem(device.path, target, runner=failing, paths=status_with(tmp_path, 1 << 21))
    with pytest.raises(errors.DeadlineExceeded, match="did not finish"):
        grow_filesystem(device.path, target, runner=real_except({"resize2fs": times_out}))
