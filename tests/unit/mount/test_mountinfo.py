"""mountinfo parsing and queries, on lines in the kernel's real format (proc(5))."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.mount import DeviceNumber, MountEntry, parse_mountinfo, parse_mountinfo_line, read_mountinfo, unescape

KUBELET = "/var/lib/kubelet"
STAGING = f"{KUBELET}/plugins/kubernetes.io/csi/rds.csi.srvlab.io/0f3c9d/globalmount"
PUBLISH = f"{KUBELET}/pods/7d1e2a/volumes/kubernetes.io~csi/pvc-1/mount"
BLOCK_PUBLISH = f"{KUBELET}/plugins/kubernetes.io/csi/volumeDevices/publish/pvc-2/7d1e2a"

# Modelled on a real host's table: a systemd host (shared peer groups), a container's (no optional fields), a
# kubelet node with a staged + published NVMe volume and a raw block publish (a bind of a devtmpfs node).
TABLE = "\n".join(
    [
        "22 27 0:21 / /proc rw,relatime - proc proc rw",
        "24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334192k,nr_inodes=3083548,mode=755",
        "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard,resuid=65534,resgid=65534",
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
        "28 27 0:25 / /mnt/tools ro,nosuid,nodev,relatime master:7 - tmpfs tools_unavailable ro,size=4k,mode=755",
        f"3140 27 259:3 / {STAGING} rw,relatime shared:1520 - ext4 /dev/nvme1n1 rw",
        f"3161 27 259:3 / {PUBLISH} ro,relatime shared:1520 - ext4 /dev/nvme1n1 rw",
        f"3170 27 0:6 /nvme2n1 {BLOCK_PUBLISH} rw,nosuid,relatime shared:2 - devtmpfs devtmpfs rw,mode=755",
    ]
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resuid=65534,resgid=65534",
            MountEntry(
                mount_id=27,
                parent_id=1,
                device=DeviceNumber(254, 0),
                root="/",
                mount_point="/",
                mount_options=("rw", "relatime"),
                optional_fields=(),
                fs_type="ext4",
                source="/dev/vda",
                super_options=("rw", "discard", "resuid=65534", "resgid=65534"),
            ),
            id="no-optional-fields",
        ),
        pytest.param(
            "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 propagate_from:2 unbindable - ext3 /dev/root "
            "rw,errors=continue",
            MountEntry(
                mount_id=36,
                parent_id=35,
                device=DeviceNumber(98, 0),
                root="/mnt1",
                mount_point="/mnt/parent",
                mount_options=("rw", "noatime"),
                optional_fields=("master:1", "propagate_from:2", "unbindable"),
                fs_type="ext3",
                source="/dev/root",
                super_options=("rw", "errors=continue"),
            ),
            id="several-optional-fields",
        ),
        pytest.param(
            r"90 27 7:3 /a\040dir /mnt/with\040space\011tab\134back\012nl rw shared:5 - xfs /dev/loop3 "
            r"rw,inode64,logbufs=8,logbsize=32k,noquota",
            MountEntry(
                mount_id=90,
                parent_id=27,
                device=DeviceNumber(7, 3),
                root="/a dir",
                mount_point="/mnt/with space\ttab\\back\nnl",
                mount_options=("rw",),
                optional_fields=("shared:5",),
                fs_type="xfs",
                source="/dev/loop3",
                super_options=("rw", "inode64", "logbufs=8", "logbsize=32k", "noquota"),
            ),
            id="octal-escapes",
        ),
        pytest.param(
            r"95 27 0:51 / /mnt/sshfs rw,nosuid,nodev - fuse.sshfs user@host:/srv\040data rw,user_id=0",
            MountEntry(
                mount_id=95,
                parent_id=27,
                device=DeviceNumber(0, 51),
                root="/",
                mount_point="/mnt/sshfs",
                mount_options=("rw", "nosuid", "nodev"),
                optional_fields=(),
                fs_type="fuse.sshfs",
                source="user@host:/srv data",
                super_options=("rw", "user_id=0"),
            ),
            id="escaped-source-and-subtype",
        ),
    ],
)
def test_a_real_format_line_parses_into_every_field(line: str, expected: MountEntry) -> None:
    assert parse_mountinfo_line(line) == expected


def test_a_non_utf8_mount_point_round_trips_to_its_bytes() -> None:
    raw = b"91 27 7:4 / /mnt/caf\xe9 rw - ext4 /dev/loop4 rw\n"
    table = parse_mountinfo(raw.decode("utf-8", "surrogateescape"))
    assert os.fsencode(table.entries[0].mount_point) == b"/mnt/caf\xe9"


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("27 1 254:0 / / rw,relatime ext4 /dev/vda rw", id="no-separator"),
        pytest.param("27 1 254:0 / / rw,relatime - ext4 /dev/vda", id="no-super-options"),
        pytest.param("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw extra", id="trailing-field"),
        pytest.param("27 1 254-0 / / rw,relatime - ext4 /dev/vda rw", id="bad-device-number"),
        pytest.param("x 1 254:0 / / rw,relatime - ext4 /dev/vda rw", id="bad-mount-id"),
        pytest.param("27 1 254:0 / / rw,relatime Shared:1 - ext4 /dev/vda rw", id="bad-optional-field"),
        pytest.param("27 1 254:0 / - ext4 /dev/vda rw", id="truncated"),
    ],
)
def test_a_malformed_line_is_an_error(line: str) -> None:
    with pytest.raises(ValueError):
        parse_mountinfo_line(line)


def test_a_malformed_line_in_a_table_is_internal_naming_its_line() -> None:
    with pytest.raises(errors.Internal, match="line 2"):
        parse_mountinfo("22 27 0:21 / /proc rw - proc proc rw\nnonsense\n")


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [("plain", "plain"), (r"a\040b", "a b"), (r"\134\040", "\\ "), (r"\08", r"\08"), (r"a\0401", "a 1")],
)
def test_unescape_decodes_three_digit_octal_only(escaped: str, plain: str) -> None:
    assert unescape(escaped) == plain


def test_device_number_parses_and_prints_major_minor() -> None:
    number = DeviceNumber.parse("259:3")
    assert number == DeviceNumber(259, 3)
    assert str(number) == "259:3"
    assert DeviceNumber.from_rdev(os.makedev(259, 3)) == number
    with pytest.raises(ValueError):
        DeviceNumber.parse("259")


TABLE_QUERIES = parse_mountinfo(TABLE)


@pytest.mark.parametrize(
    ("path", "mount_id"),
    [
        (STAGING, 3140),
        (STAGING + "/", 3140),
        (f"{KUBELET}/plugins/../plugins/kubernetes.io/csi/rds.csi.srvlab.io/0f3c9d/globalmount", 3140),
        ("/", 27),
        ("//", 27),
        (BLOCK_PUBLISH, 3170),
        (STAGING + "/lost+found", None),
        (KUBELET, None),
    ],
)
def test_at_finds_the_mount_on_exactly_that_mount_point(path: str, mount_id: int | None) -> None:
    entry = TABLE_QUERIES.at(path)
    assert (entry.mount_id if entry else None) == mount_id
    assert TABLE_QUERIES.is_mount_point(path) is (mount_id is not None)


def test_at_answers_the_topmost_of_stacked_mounts() -> None:
    table = parse_mountinfo(TABLE + f"\n3200 3161 259:7 / {PUBLISH} rw,relatime - ext4 /dev/nvme3n1 rw")
    entry = table.at(PUBLISH)
    assert entry is not None
    assert entry.source == "/dev/nvme3n1"
    assert table.stacked_at(PUBLISH) == 2
    assert table.stacked_at(KUBELET) == 0


def test_relative_paths_are_refused() -> None:
    with pytest.raises(ValueError):
        TABLE_QUERIES.at("var/lib/kubelet")


def test_from_device_finds_the_staging_mount_and_its_bind() -> None:
    points = [entry.mount_point for entry in TABLE_QUERIES.from_device(DeviceNumber(259, 3))]
    assert points == [STAGING, PUBLISH]
    assert TABLE_QUERIES.from_device(DeviceNumber(259, 9)) == ()


def test_from_source_matches_the_source_field_exactly() -> None:
    assert [e.mount_id for e in TABLE_QUERIES.from_source("/dev/nvme1n1")] == [3140, 3161]
    assert TABLE_QUERIES.from_source("/dev/nvme1") == ()


@pytest.mark.parametrize(
    ("path", "mount_id"),
    [(STAGING + "/data/file", 3140), (STAGING, 3140), (KUBELET + "/pods", 27), ("/proc/self", 22)],
)
def test_containing_is_the_deepest_mount_above_a_path(path: str, mount_id: int) -> None:
    entry = TABLE_QUERIES.containing(path)
    assert entry is not None
    assert entry.mount_id == mount_id


def test_binds_of_the_staging_dir_is_the_publish_target_and_back() -> None:
    assert [e.mount_point for e in TABLE_QUERIES.binds_of(STAGING)] == [PUBLISH]
    assert [e.mount_point for e in TABLE_QUERIES.binds_of(PUBLISH)] == [STAGING]


def test_binds_of_a_sub_directory_matches_the_bind_root() -> None:
    table = parse_mountinfo(TABLE + "\n3300 27 259:3 /data /mnt/data rw - ext4 /dev/nvme1n1 rw")
    assert [e.mount_point for e in table.binds_of(STAGING + "/data")] == ["/mnt/data"]
    # Only mount points are listed: the staging mount's sub-directory shows the same files but is not one.
    assert [e.mount_point for e in table.binds_of("/mnt/data")] == []
    assert table.binds_of(STAGING) == TABLE_QUERIES.binds_of(STAGING)


def test_a_block_publish_is_a_bind_of_the_device_node_on_devtmpfs() -> None:
    assert [e.mount_point for e in TABLE_QUERIES.binds_of("/dev/nvme2n1")] == [BLOCK_PUBLISH]


def test_under_lists_mounts_at_and_below_a_directory() -> None:
    assert [e.mount_id for e in TABLE_QUERIES.under(KUBELET)] == [3140, 3161, 3170]
    assert [e.mount_id for e in TABLE_QUERIES.under(STAGING)] == [3140]
    assert TABLE_QUERIES.under(STAGING + "/data") == ()
    assert len(TABLE_QUERIES.under("/")) == len(TABLE_QUERIES.entries)


@pytest.mark.parametrize(
    ("super_options", "mount_options", "read_only", "filesystem_read_only"),
    [
        ("rw", "rw,relatime", False, False),
        ("rw", "ro,relatime", True, False),  # a read-only bind of a writable file system
        ("ro", "ro,relatime", True, True),  # mount -o remount,ro
        ("ro,errors=remount-ro", "rw,relatime", False, True),  # older kernels after an ext4 error
        ("rw,errors=remount-ro,emergency_ro", "rw,relatime", False, True),  # newer kernels after an ext4 error
    ],
)
def test_read_only_tells_the_mount_flag_from_the_file_system_state(
    super_options: str, mount_options: str, read_only: bool, filesystem_read_only: bool
) -> None:
    entry = parse_mountinfo_line(f"45 27 7:0 / /mnt/v {mount_options} - ext4 /dev/loop0 {super_options}")
    assert entry.read_only is read_only
    assert entry.filesystem_read_only is filesystem_read_only


def test_read_mountinfo_reads_the_given_file(tmp_path: Path) -> None:
    path = tmp_path / "mountinfo"
    path.write_bytes(TABLE.encode() + b"\n")
    assert read_mountinfo(path) == TABLE_QUERIES


def test_read_mountinfo_parses_this_process_table() -> None:
    table = read_mountinfo()
    assert table.containing("/") is not None
