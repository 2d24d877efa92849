"""Safe format decisions: only a positive "no signature" from blkid allows mkfs; every doubt is a refusal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.mount import (
    Completed,
    FsType,
    Signature,
    classify_blkid,
    ensure_filesystem,
    mkfs_command,
    needs_format,
    probe_device,
)
from tests.mount_runners import ScriptedRunner, exits

DEVICE = "/dev/nvme1n1"
EXT4_EXPORT = (
    "DEVNAME=/dev/nvme1n1\nUUID=3cb24777-beb8-4aed-9ced-5a7b20c02d56\nVERSION=1.0\nBLOCK_SIZE=4096\nTYPE=ext4\n"
    "USAGE=filesystem\n"
)
XFS_EXPORT = (
    "DEVNAME=/dev/nvme1n1\nUUID=6b8a5e3e-1f0c-4c1e-9d0e-2a7f3b1c9d11\nBLOCK_SIZE=512\nTYPE=xfs\nUSAGE=filesystem\n"
)
AMBIVALENT_STDERR = (
    "blkid: /dev/nvme1n1: ambivalent result (probably more filesystems on the device, use wipefs(8) to see more "
    "details)\n"
)


def blkid(returncode: int, stdout: str = "", stderr: str = "") -> Completed:
    return Completed(("blkid", "-p", "-o", "export", DEVICE), returncode, stdout, stderr)


def test_exit_2_with_no_output_is_the_only_blank_answer() -> None:
    assert classify_blkid(blkid(2), DEVICE) is None
    assert classify_blkid(blkid(2, "\n"), DEVICE) is None


@pytest.mark.parametrize(
    ("stdout", "tags"),
    [
        (EXT4_EXPORT, {"TYPE": "ext4", "USAGE": "filesystem"}),
        (XFS_EXPORT, {"TYPE": "xfs", "USAGE": "filesystem"}),
        ("DEVNAME=/dev/nvme1n1\nPTTYPE=dos\n", {"PTTYPE": "dos"}),
        ("DEVNAME=/dev/nvme1n1\nPTUUID=7c0b5bd0-3a5e-4e22-9a9e-8a9b2e0a1f2e\nPTTYPE=gpt\n", {"PTTYPE": "gpt"}),
        ("DEVNAME=/dev/nvme1n1\nVERSION=2\nUUID=0e3b\nTYPE=crypto_LUKS\nUSAGE=crypto\n", {"TYPE": "crypto_LUKS"}),
        ("DEVNAME=/dev/nvme1n1\nLABEL=my\\ data\nTYPE=swap\nUSAGE=other\n", {"LABEL": "my\\ data", "TYPE": "swap"}),
    ],
)
def test_exit_0_reports_the_signature_found(stdout: str, tags: dict[str, str]) -> None:
    signature = classify_blkid(blkid(0, stdout), DEVICE)
    assert signature is not None
    assert tags.items() <= signature.tags.items()


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        pytest.param(blkid(8, stderr=AMBIVALENT_STDERR), "ambivalent", id="ambivalent-exit-8"),
        pytest.param(blkid(8), "ambivalent", id="ambivalent-silent"),
        pytest.param(blkid(4, stderr="blkid: error: /dev/nvme1n1: Input/output error\n"), "probe-failed", id="exit-4"),
        pytest.param(blkid(4), "probe-failed", id="exit-4-silent"),
        pytest.param(blkid(1), "probe-failed", id="exit-1"),
        pytest.param(blkid(-9), "probe-failed", id="killed"),
        pytest.param(blkid(2, "TYPE=ext4\n"), "probe-failed", id="exit-2-with-tags"),
        pytest.param(blkid(2, stderr="blkid: warning\n"), "probe-failed", id="exit-2-with-stderr"),
        pytest.param(blkid(0, EXT4_EXPORT, "blkid: warning\n"), "probe-failed", id="exit-0-with-stderr"),
        pytest.param(blkid(0, "TYPE=ext4\n\x00\x01garbage"), "probe-failed", id="garbage-line"),
        pytest.param(blkid(0, "DEVNAME=/dev/nvme1n1\n"), "probe-failed", id="exit-0-unnamed"),
        pytest.param(blkid(0), "probe-failed", id="exit-0-silent"),
    ],
)
def test_every_other_answer_refuses_to_format(result: Completed, reason: str) -> None:
    with pytest.raises(errors.FormatRefused, match="refused to protect data") as info:
        classify_blkid(result, DEVICE)
    assert info.value.reason == reason
    assert info.value.device == DEVICE
    assert DEVICE in info.value.message


def ext4() -> Signature:
    return Signature({"TYPE": "ext4", "USAGE": "filesystem"})


@pytest.mark.parametrize("fs_type", list(FsType))
def test_a_blank_device_needs_a_format(fs_type: FsType) -> None:
    assert needs_format(None, fs_type, DEVICE) is True


@pytest.mark.parametrize(
    ("signature", "fs_type"),
    [
        (Signature({"TYPE": "ext4", "USAGE": "filesystem"}), FsType.EXT4),
        (Signature({"TYPE": "ext3", "USAGE": "filesystem"}), FsType.EXT3),
        (Signature({"TYPE": "xfs", "USAGE": "filesystem"}), FsType.XFS),
    ],
)
def test_the_requested_file_system_already_there_needs_no_format(signature: Signature, fs_type: FsType) -> None:
    assert needs_format(signature, fs_type, DEVICE) is False


@pytest.mark.parametrize(
    ("signature", "fs_type", "described"),
    [
        (Signature({"TYPE": "xfs", "USAGE": "filesystem"}), FsType.EXT4, "xfs (filesystem)"),
        (Signature({"TYPE": "ext4", "USAGE": "filesystem"}), FsType.XFS, "ext4 (filesystem)"),
        (Signature({"TYPE": "ext4", "USAGE": "filesystem"}), FsType.EXT3, "ext4 (filesystem)"),  # never "upgraded"
        (Signature({"TYPE": "ext2", "USAGE": "filesystem"}), FsType.EXT4, "ext2 (filesystem)"),
        (Signature({"PTTYPE": "gpt"}), FsType.EXT4, "gpt partition table"),
        (Signature({"TYPE": "ext4", "USAGE": "filesystem", "PTTYPE": "dos"}), FsType.EXT4, "dos partition table"),
        (Signature({"TYPE": "crypto_LUKS", "USAGE": "crypto"}), FsType.EXT4, "crypto_LUKS (crypto)"),
        (Signature({"TYPE": "ext4"}), FsType.EXT4, "ext4 (unknown usage)"),
        (Signature({"TYPE": "linux_raid_member", "USAGE": "raid"}), FsType.XFS, "linux_raid_member (raid)"),
    ],
)
def test_anything_else_on_the_device_is_never_reformatted(
    signature: Signature, fs_type: FsType, described: str
) -> None:
    with pytest.raises(errors.FormatRefused, match="never reformatted") as info:
        needs_format(signature, fs_type, DEVICE)
    assert described in info.value.message
    assert info.value.reason == "signature"


def test_mkfs_commands_never_force_and_never_discard() -> None:
    assert mkfs_command(Path(DEVICE), FsType.EXT4) == [
        "mkfs.ext4", "-q", "-m", "0", "-E", "nodiscard,lazy_itable_init=1", DEVICE,
    ]  # fmt: skip
    assert mkfs_command(Path(DEVICE), FsType.EXT3) == ["mkfs.ext3", "-q", "-m", "0", "-E", "nodiscard", DEVICE]
    assert mkfs_command(Path(DEVICE), FsType.XFS) == ["mkfs.xfs", "-q", "-K", DEVICE]


@pytest.mark.parametrize(("value", "fs_type"), [("ext4", FsType.EXT4), ("ext3", FsType.EXT3), ("xfs", FsType.XFS)])
def test_fs_type_parses_the_supported_names(value: str, fs_type: FsType) -> None:
    assert FsType.parse(value) is fs_type


@pytest.mark.parametrize("value", ["", "EXT4", "btrfs", "ext2", "xfs,ext4"])
def test_fs_type_refuses_anything_else(value: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="fs_type"):
        FsType.parse(value)


def regular_file(directory: Path) -> Path:
    path = directory / "image"
    path.write_bytes(bytes(4096))
    return path


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        pytest.param(lambda tmp: tmp / "missing", "does not exist", id="missing"),
        pytest.param(lambda tmp: tmp, "not a block device", id="directory"),
        pytest.param(regular_file, "not a block device", id="regular-file"),
        pytest.param(lambda tmp: Path("/dev/null"), "not a block device", id="character-device"),
    ],
)
def test_a_path_that_is_not_a_readable_block_device_is_refused_before_blkid_runs(
    tmp_path: Path, make: Callable[[Path], Path], detail: str
) -> None:
    runner = ScriptedRunner(answers={})
    with pytest.raises(errors.FormatRefused, match=detail) as info:
        probe_device(make(tmp_path), runner=runner)
    assert info.value.reason == "unreadable"
    assert runner.calls == []


def test_ensure_filesystem_on_a_path_that_is_no_device_runs_no_tool(tmp_path: Path) -> None:
    runner = ScriptedRunner(answers={"blkid": exits(2)})
    with pytest.raises(errors.FormatRefused):
        ensure_filesystem(tmp_path / "missing", FsType.EXT4, runner=runner)
    assert runner.calls == []
