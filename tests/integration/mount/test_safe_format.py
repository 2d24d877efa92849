"""Safe format on real loop devices with the real blkid and mkfs: a blank device is formatted; anything else, and
every failure of the probe, leaves the device byte-for-byte untouched."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.mount import FormatOutcome, FsType, SubprocessRunner, ensure_filesystem, probe_device
from tests.integration.mount.conftest import XFS_MIN, LoopDevice, LoopDevices, MiB, run
from tests.mount_runners import Answer, cannot_start, exits, real_except, times_out

pytestmark = pytest.mark.root


def blkid_type(device: LoopDevice) -> str:
    return run("blkid", "-p", "-o", "value", "-s", "TYPE", str(device.path)).strip()


@pytest.mark.parametrize(("fs_type", "size"), [(FsType.EXT4, 64 * MiB), (FsType.EXT3, 64 * MiB), (FsType.XFS, XFS_MIN)])
def test_a_blank_device_is_formatted_once_then_left_alone(loops: LoopDevices, fs_type: FsType, size: int) -> None:
    device = loops.create(size)
    assert ensure_filesystem(device.path, fs_type) is FormatOutcome.FORMATTED
    assert blkid_type(device) == fs_type.value
    formatted = device.digest()
    assert ensure_filesystem(device.path, fs_type) is FormatOutcome.EXISTING
    assert device.digest() == formatted


def test_ext_file_systems_reserve_no_blocks_for_root(loops: LoopDevices) -> None:
    device = loops.create(64 * MiB)
    ensure_filesystem(device.path, FsType.EXT4)
    assert "Reserved block count:     0" in run("dumpe2fs", "-h", str(device.path)).splitlines()


@pytest.mark.parametrize(
    ("existing", "requested", "size"),
    [
        (FsType.XFS, FsType.EXT4, XFS_MIN),
        (FsType.EXT4, FsType.XFS, XFS_MIN),
        (FsType.EXT4, FsType.EXT3, 64 * MiB),
        (FsType.EXT3, FsType.EXT4, 64 * MiB),
    ],
)
def test_a_file_system_of_another_type_is_refused_and_untouched(
    loops: LoopDevices, existing: FsType, requested: FsType, size: int
) -> None:
    device = loops.create(size)
    ensure_filesystem(device.path, existing)
    before = device.digest()
    with pytest.raises(errors.FormatRefused, match="refused to protect data") as info:
        ensure_filesystem(device.path, requested)
    assert info.value.reason == "signature"
    assert f"holds {existing.value} (filesystem)" in info.value.message
    assert device.digest() == before


def write_dos_partition_table(device: LoopDevice) -> None:
    entry = bytes([0x00, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048, 16384)
    with open(device.path, "r+b") as disk:
        disk.seek(446)
        disk.write(entry)
        disk.seek(510)
        disk.write(b"\x55\xaa")


def test_a_partition_table_is_refused_and_untouched(loops: LoopDevices) -> None:
    device = loops.create(16 * MiB)
    write_dos_partition_table(device)
    before = device.digest()
    with pytest.raises(errors.FormatRefused, match="dos partition table"):
        ensure_filesystem(device.path, FsType.EXT4)
    assert device.digest() == before


def test_two_signatures_are_ambivalent_and_refused(loops: LoopDevices, tmp_path: Path) -> None:
    device = loops.create(XFS_MIN)
    ensure_filesystem(device.path, FsType.EXT4)
    # An XFS super block in sector 0 next to the ext4 one at 1 KiB: what a botched manual re-format leaves.
    xfs_image = tmp_path / "xfs.img"
    with open(xfs_image, "wb") as image:
        image.truncate(XFS_MIN)
    run("mkfs.xfs", "-q", str(xfs_image))
    with open(xfs_image, "rb") as source, open(device.path, "r+b") as disk:
        disk.write(source.read(512))
    before = device.digest()
    with pytest.raises(errors.FormatRefused, match="ambivalent") as info:
        ensure_filesystem(device.path, FsType.EXT4)
    assert info.value.reason == "ambivalent"
    assert device.digest() == before


@pytest.mark.parametrize(
    ("blkid", "reason"),
    [
        pytest.param(times_out, "timeout", id="timeout"),
        pytest.param(exits(4, stderr="blkid: error\n"), "probe-failed", id="exit-4"),
        pytest.param(exits(4), "probe-failed", id="exit-4-silent"),
        pytest.param(exits(0, "\x7fELF\x02\x01\x01garbage\n"), "probe-failed", id="garbage"),
        pytest.param(exits(2, "TYPE=ext4\n"), "probe-failed", id="exit-2-with-output"),
        pytest.param(exits(2, stderr="blkid: warning\n"), "probe-failed", id="exit-2-with-stderr"),
        pytest.param(exits(8), "ambivalent", id="exit-8"),
        pytest.param(cannot_start, "probe-failed", id="not-installed"),
    ],
)
def test_a_failing_probe_of_a_blank_device_never_formats_it(loops: LoopDevices, blkid: Answer, reason: str) -> None:
    device = loops.create(16 * MiB)
    before = device.digest()
    runner = real_except({"blkid": blkid})
    with pytest.raises(errors.FormatRefused, match="refused to protect data") as info:
        ensure_filesystem(device.path, FsType.EXT4, runner=runner)
    assert info.value.reason == reason
    assert not runner.ran("mkfs.ext4")
    assert device.digest() == before


def test_a_blkid_that_hangs_for_real_is_cut_off_and_refused(loops: LoopDevices, tmp_path: Path) -> None:
    device = loops.create(16 * MiB)
    before = device.digest()
    slow_blkid = tmp_path / "blkid"
    slow_blkid.write_text("#!/bin/sh\nexec sleep 600\n")
    slow_blkid.chmod(0o755)
    runner = real_except({"blkid": lambda argv, timeout: SubprocessRunner().run([str(slow_blkid)], timeout=timeout)})
    with pytest.raises(errors.FormatRefused, match=r"did not answer within 0\.5s"):
        ensure_filesystem(device.path, FsType.EXT4, runner=runner, probe_timeout=0.5)
    assert not runner.ran("mkfs.ext4")
    assert device.digest() == before


def test_an_unreadable_device_is_refused_although_blkid_calls_it_blank(loops: LoopDevices, tmp_path: Path) -> None:
    # A loop device whose backing file sits on a shut-down XFS: every read fails with EIO, as on a dead path.
    outer = loops.create(XFS_MIN)
    run("mkfs.xfs", "-q", str(outer.path))
    holder = tmp_path / "holder"
    holder.mkdir()
    run("mount", str(outer.path), str(holder))
    inner = loops.create(16 * MiB, image_dir=holder)
    run("xfs_io", "-x", "-c", "shutdown", str(holder))
    silent = subprocess.run(["blkid", "-p", "-o", "export", str(inner.path)], capture_output=True, check=False)
    assert (silent.returncode, silent.stdout, silent.stderr) == (2, b"", b"")  # what makes the read check necessary
    runner = real_except({})
    with pytest.raises(errors.FormatRefused, match="Input/output error") as info:
        ensure_filesystem(inner.path, FsType.EXT4, runner=runner)
    assert info.value.reason == "unreadable"
    assert runner.calls == []


def test_a_failing_mkfs_is_internal(loops: LoopDevices) -> None:
    device = loops.create(16 * MiB)
    runner = real_except({"mkfs.ext4": exits(1, stderr="mkfs.ext4: Device size reported to be zero.\n")})
    with pytest.raises(errors.Internal, match=r"exit status 1: mkfs\.ext4: Device size reported to be zero"):
        ensure_filesystem(device.path, FsType.EXT4, runner=runner)


def test_an_mkfs_that_reports_success_without_a_file_system_is_internal(loops: LoopDevices) -> None:
    device = loops.create(16 * MiB)
    runner = real_except({"mkfs.xfs": exits(0)})
    with pytest.raises(errors.Internal, match="reported success but blkid then found nothing"):
        ensure_filesystem(device.path, FsType.XFS, runner=runner)


def test_probe_names_what_a_formatted_device_holds(loops: LoopDevices) -> None:
    device = loops.create(16 * MiB)
    assert probe_device(device.path) is None
    ensure_filesystem(device.path, FsType.EXT4)
    signature = probe_device(device.path)
    assert signature is not None
    assert (signature.type, signature.usage, signature.partition_table) == ("ext4", "filesystem", None)
