"""The staging record: where it lives, what it holds, and that a damaged one stops the call instead of guessing."""

from __future__ import annotations

from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.mount import FsType, parse_mount_flags
from rds_csi.node import MountAccess
from rds_csi.node.records import (
    StagedAccess,
    StagedRecord,
    parse_record,
    read_record,
    record_path,
    remove_record,
    render_record,
    write_record,
)

pytestmark = pytest.mark.native  # the node packages load the native scanner and ioctls

MOUNTED = StagedRecord(
    "pvc-1", "nqn.2000-02.com.mikrotik:pvc-1", MountAccess(FsType.XFS, parse_mount_flags(["noatime", "discard"]))
)
BLOCK = StagedRecord("pvc-2", "nqn.2000-02.com.mikrotik:pvc-2", None)


def test_the_record_sits_beside_the_staging_directory_where_a_mount_cannot_hide_it() -> None:
    staging = Path("/var/lib/kubelet/plugins/kubernetes.io/csi/rds.csi.srvlab.io/ab12/globalmount")
    assert record_path(staging) == staging.parent / "globalmount.rds-csi.json"


@pytest.mark.parametrize("record", [MOUNTED, BLOCK])
def test_records_round_trip(record: StagedRecord) -> None:
    assert parse_record(render_record(record), "x") == record


def test_a_record_says_whether_a_filesystem_was_mounted() -> None:
    assert (MOUNTED.access, BLOCK.access) == (StagedAccess.MOUNT, StagedAccess.BLOCK)


def test_write_read_remove(tmp_path: Path) -> None:
    staging = tmp_path / "globalmount"
    staging.mkdir()
    assert read_record(staging) is None
    write_record(staging, MOUNTED)
    write_record(staging, MOUNTED)  # replaced atomically, no temp files left
    assert read_record(staging) == MOUNTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["globalmount", "globalmount.rds-csi.json"]
    remove_record(staging)
    remove_record(staging)  # none is fine
    assert read_record(staging) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"version": 2, "volume_id": "pvc-1", "nqn": "n", "access": "block"}',
        '{"version": 1, "volume_id": "pvc-1", "nqn": "n", "access": "tape"}',
        '{"version": 1, "volume_id": "pvc-1", "access": "block"}',
        '{"version": 1, "volume_id": "pvc-1", "nqn": "n", "access": "mount", "fs_type": "btrfs", "mount_flags": 0,'
        ' "mount_data": []}',
        '{"version": 1, "volume_id": "pvc-1", "nqn": "n", "access": "mount", "fs_type": "xfs", "mount_flags": "0",'
        ' "mount_data": []}',
    ],
)
def test_a_record_this_driver_did_not_write_is_internal_naming_the_file(text: str) -> None:
    with pytest.raises(errors.Internal, match=r"/staging\.rds-csi\.json"):
        parse_record(text, "/staging.rds-csi.json")
