"""Mount flags from a capability: generic ones become MS_* bits, file-system ones pass through, nothing injects."""

from __future__ import annotations

import pytest

from rds_csi.core import errors
from rds_csi.mount import MountOptions, parse_mount_flags
from rds_csi.mount.options import (
    MS_LAZYTIME,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_RELATIME,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    shown_per_mount_flags,
)


@pytest.mark.parametrize(
    ("flags", "readonly", "expected"),
    [
        ([], False, MountOptions(0, ())),
        ([], True, MountOptions(MS_RDONLY, ())),
        (["noatime"], False, MountOptions(MS_NOATIME, ())),
        (["noatime,nodiratime", "nosuid"], False, MountOptions(MS_NOATIME | MS_NODIRATIME | MS_NOSUID, ())),
        (["ro"], False, MountOptions(MS_RDONLY, ())),
        (["defaults"], False, MountOptions(0, ())),
        (["sync", "async"], False, MountOptions(0, ())),  # the later one wins, as in mount(8)
        (["noexec", "exec", "nodev"], False, MountOptions(MS_NODEV, ())),
        (["lazytime"], False, MountOptions(MS_LAZYTIME, ())),
        (["strictatime"], False, MountOptions(MS_STRICTATIME, ())),
        (["relatime"], False, MountOptions(MS_RELATIME, ())),
        (["sync"], True, MountOptions(MS_RDONLY | MS_SYNCHRONOUS, ())),
        (["commit=30", "errors=remount-ro"], False, MountOptions(0, ("commit=30", "errors=remount-ro"))),
        (["discard,noatime,data=ordered"], False, MountOptions(MS_NOATIME, ("discard", "data=ordered"))),
        (["logbsize=256k", "allocsize=64M", "inode64"], False, MountOptions(0, ("logbsize=256k", "allocsize=64M",
                                                                               "inode64"))),
        (["nouuid", "norecovery"], True, MountOptions(MS_RDONLY, ("nouuid", "norecovery"))),
    ],
)  # fmt: skip
def test_flags_become_bits_and_file_system_options(flags: list[str], readonly: bool, expected: MountOptions) -> None:
    assert parse_mount_flags(flags, readonly=readonly) == expected


def test_options_render_for_mount_2() -> None:
    options = parse_mount_flags(["noatime", "commit=30,discard"], readonly=True)
    assert options.readonly
    assert options.data_string == "commit=30,discard"
    assert options.per_mount_flags == MS_RDONLY | MS_NOATIME
    assert parse_mount_flags(["sync"]).per_mount_flags == 0
    assert parse_mount_flags([]).data_string is None


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        pytest.param(["noatime -o rw"], "lower-case words", id="space-injection"),
        pytest.param(["noatime\nrw"], "lower-case words", id="newline"),
        pytest.param(["noatime\0rw"], "lower-case words", id="nul"),
        pytest.param(["noatime,"], "lower-case words", id="empty-item"),
        pytest.param([""], "lower-case words", id="empty-flag"),
        pytest.param(['data="ordered"'], "lower-case words", id="quotes"),
        pytest.param(["commit=3 0"], "lower-case words", id="space-in-value"),
        pytest.param(["NOATIME"], "lower-case words", id="upper-case"),
        pytest.param(["a=b=c"], "lower-case words", id="two-equals"),
        pytest.param(["noatime=1"], "takes no value", id="value-on-generic"),
        pytest.param(["bind"], "operation", id="bind"),
        pytest.param(["rbind"], "operation", id="rbind"),
        pytest.param(["remount"], "operation", id="remount"),
        pytest.param(["move"], "operation", id="move"),
        pytest.param(["rshared"], "operation", id="propagation"),
        pytest.param(["loop=/dev/loop0"], "operation", id="loop"),
        pytest.param(["nofail"], "fstab", id="nofail"),
        pytest.param(["_netdev"], "fstab", id="netdev"),
        pytest.param(["x-systemd.automount"], "fstab", id="x-option"),
        pytest.param(["user"], "fstab", id="user"),
        pytest.param(["context=system_u:object_r:container_file_t:s0"], "SELinux", id="selinux"),
        pytest.param(["journal_path=/dev/sda"], "another block device", id="ext4-external-journal"),
        pytest.param(["logdev=/dev/sdb1"], "another block device", id="xfs-external-log"),
        pytest.param(["rtdev=/dev/sdc"], "another block device", id="xfs-realtime-device"),
    ],
)
def test_a_flag_breaking_a_rule_is_invalid_argument_naming_it(flags: list[str], why: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="mount flag") as info:
        parse_mount_flags(flags)
    assert why in info.value.message


def test_rw_contradicting_a_read_only_request_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match="contradicts"):
        parse_mount_flags(["rw"], readonly=True)
    assert parse_mount_flags(["rw"]) == MountOptions(0, ())


def test_options_longer_than_a_page_are_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match="longer than the kernel accepts"):
        parse_mount_flags([f"opt{n}=value" for n in range(500)])


@pytest.mark.parametrize(
    ("shown", "flags"),
    [
        (("rw", "relatime"), MS_RELATIME),
        (("ro", "nosuid", "nodev", "noexec", "relatime"), MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME),
        (("rw", "noatime", "nodiratime"), MS_NOATIME | MS_NODIRATIME),
        (("rw",), MS_STRICTATIME),  # mountinfo shows nothing for strictatime
    ],
)
def test_shown_per_mount_options_map_back_to_their_bits(shown: tuple[str, ...], flags: int) -> None:
    assert shown_per_mount_flags(shown) == flags
