"""Parsers against the real device transcripts, the variants their README lists, and the REST JSON twins."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rds_csi.core.errors import Internal, NotFound
from rds_csi.routeros.models import Disk, DiskTraffic, FileEntry, PoolCapacity, SystemResource
from rds_csi.routeros.parse import (
    FLAGS_KEY,
    INDEX_KEY,
    disk_from_rest,
    disks_from_rest,
    files_from_rest,
    parse_bool,
    parse_detail,
    parse_disks,
    parse_files,
    parse_key_values,
    parse_pool_capacity,
    parse_system_resource,
    parse_traffic,
    pool_capacity_from_rest,
    rest_records,
    system_resource_from_rest,
    traffic_from_rest,
    unescape,
)

TRANSCRIPTS = Path(__file__).parent / "transcripts"
GIB = 1024**3


def transcript(name: str) -> str:
    return (TRANSCRIPTS / name).read_text()


# --- golden transcripts ---------------------------------------------------------------------------------------


def test_disk_print_detail_one_golden() -> None:
    (disk,) = parse_disks(transcript("disk-print-detail-one.txt"))
    assert disk == Disk(
        slot="pvc-test-123",
        type="file",
        file_path="/storage-pool/test.img",
        size_bytes=53_687_091_200,
        file_size_bytes=50 * GIB,
        nvme_export=True,
        port=4420,
        nqn="nqn.2000-02.com.mikrotik:pvc-test-123",
        allowed_hosts=(),
    )


def test_disk_print_detail_one_keeps_every_field_including_empty_quoted() -> None:
    (record,) = parse_detail(transcript("disk-print-detail-one.txt"))
    assert record["slot-default"] == ""
    assert record["nvme-tcp-server-allow-host-name"] == ""
    assert record["fs"] == "-"
    assert record["model"] == "/storage-pool/test.img"
    assert record["file-offset"] == "0"
    assert INDEX_KEY not in record
    assert len(record) == 25


def test_disk_print_detail_list_golden() -> None:
    disks = parse_disks(transcript("disk-print-detail-list.txt"))
    assert disks == [
        Disk(
            slot=f"pvc-test-{n}",
            type="file",
            file_path=f"/storage-pool/test{n}.img",
            size_bytes=size,
            file_size_bytes=size,
            nvme_export=True,
            port=4420,
            nqn=f"nqn.2000-02.com.mikrotik:pvc-test-{n}",
        )
        for n, size in ((1, 50 * GIB), (2, 100 * GIB))
    ]
    assert [r[INDEX_KEY] for r in parse_detail(transcript("disk-print-detail-list.txt"))] == ["0", "1"]


def test_file_print_detail_list_golden() -> None:
    assert parse_files(transcript("file-print-detail-list.txt")) == [
        FileEntry("storage-pool/metal-csi", "directory", None, datetime(2025, 11, 11, 16, 47, 7)),
        FileEntry(
            "storage-pool/metal-csi/pvc-ccdecfad-a8bf-572e-9120-464c4d99f12f.img",
            ".img file",
            10 * GIB,
            datetime(2025, 11, 11, 14, 32, 41),
        ),
        FileEntry(
            "storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img",
            ".img file",
            GIB,
            datetime(2025, 11, 11, 16, 47, 7),
        ),
    ]


def test_file_entry_directory_flag() -> None:
    first, second, _ = parse_files(transcript("file-print-detail-list.txt"))
    assert first.is_directory
    assert not second.is_directory


def test_pool_capacity_golden() -> None:
    capacity = parse_pool_capacity(transcript("pool-capacity.txt"), "storage-pool")
    assert capacity == PoolCapacity(size_bytes=7_949_127_950_336, free_bytes=5_963_595_964_416)
    assert capacity.used_bytes == 7_949_127_950_336 - 5_963_595_964_416


def test_monitor_traffic_once_golden() -> None:
    assert parse_traffic(transcript("disk-monitor-traffic-once.txt")) == DiskTraffic(
        slot="storage-pool",
        read_ops_per_second=0,
        write_ops_per_second=76,
        read_rate_bps=0,
        write_rate_bps=12_800_000,
        read_time=timedelta(0),
        write_time=timedelta(0),
        in_flight_ops=0,
        active_time=timedelta(0),
        wait_time=timedelta(0),
    )


# --- variants from the transcripts README -----------------------------------------------------------------------

FLAGS_AND_LETTERS = """\
Flags: X - disabled; B - block-device, M - mounted
 0 X  type=file slot="pvc-off" size=1 048 576 file-path=/storage-pool/metal-csi/pvc-off.img
      file-size=1024.0KiB nvme-tcp-export=no

 1 BM type=file slot="pvc-on" size=2 199 023 255 552 file-size=2.0TiB
      nvme-tcp-export=yes nvme-tcp-server-port=4421
"""


def test_flags_legend_is_skipped_and_flag_letters_are_recorded() -> None:
    records = parse_detail(FLAGS_AND_LETTERS)
    assert [(r[INDEX_KEY], r.get(FLAGS_KEY), r["slot"]) for r in records] == [
        ("0", "X", "pvc-off"),
        ("1", "BM", "pvc-on"),
    ]
    off, on = parse_disks(FLAGS_AND_LETTERS)
    assert off.disabled and off.flags == frozenset("X") and off.file_size_bytes == 1024 * 1024
    assert not on.disabled and on.size_bytes == on.file_size_bytes == 2 * 1024**4 and on.port == 4421


def test_multi_line_flags_legend_is_skipped() -> None:
    text = 'Flags: X - DISABLED, I - INVALID;\n  D - DYNAMIC\n 0 D  slot="a" type=file\n'
    assert parse_detail(text) == [{"slot": "a", "type": "file", INDEX_KEY: "0", FLAGS_KEY: "D"}]


def test_lower_case_flag_is_a_flag_not_a_value_without_a_key() -> None:
    (disk,) = parse_disks(transcript("disk-print-detail-flags-lowercase.txt"))
    assert disk.flags == frozenset("t")
    assert disk.slot == "pvc-flag-t"
    assert disk.nvme_export and not disk.disabled
    assert disk.size_bytes == disk.file_size_bytes == GIB
    assert disk.file_path == "/storage-pool/metal-csi/pvc-flag-t.img"


MIXED_FLAGS = [
    ("0", "BM", "storage-pool"),
    ("1", "Bt", "pvc-flag-bt"),
    ("2", "XBt", "pvc-flag-xbt"),
    ("3", "B", "snap-flag-b"),
]


@pytest.mark.parametrize("name", ["disk-print-detail-flags-mixed.txt", "disk-print-detail-flags-no-legend.txt"])
def test_mixed_case_flag_runs_with_or_without_the_legend(name: str) -> None:
    records = parse_detail(transcript(name))
    assert [(r[INDEX_KEY], r[FLAGS_KEY], r["slot"]) for r in records] == MIXED_FLAGS
    assert records[3]["comment"] == "snapshot kept by rds-csi"
    pool, exported, disabled, snapshot = parse_disks(transcript(name))
    assert pool.mount_point == "storage-pool" and pool.size_bytes == 7_949_127_950_336
    assert exported.nvme_export and exported.port == 4420 and not exported.disabled
    assert exported.file_size_bytes == 2 * GIB
    assert disabled.disabled and disabled.flags == frozenset("XBt") and disabled.port == 4421
    assert not snapshot.nvme_export and snapshot.file_path == "/storage-pool/metal-csi/snap-flag-b.img"


def test_one_column_per_flag_under_a_wrapped_legend() -> None:
    on, off = parse_disks(transcript("disk-print-detail-flags-columns.txt"))
    assert on.flags == frozenset("ABt") and not on.disabled and on.nvme_export
    assert on.file_path == "/storage-pool/metal-csi/pvc-flag-cols.img" and on.file_size_bytes == GIB
    assert off.flags == frozenset("XB") and off.disabled and not off.nvme_export


def test_unknown_flag_letters_are_kept_and_ignored() -> None:
    (disk,) = parse_disks(transcript("disk-print-detail-flags-unknown.txt"))
    assert disk.flags == frozenset("BZqt")
    assert not disk.disabled
    assert disk.slot == "pvc-flag-unknown" and disk.nqn == "nqn.2000-02.com.mikrotik:pvc-flag-unknown"


def test_flags_on_an_entry_without_an_index_and_on_a_line_of_their_own() -> None:
    assert parse_detail('Bt type=file slot="a"\n') == [{"type": "file", "slot": "a", FLAGS_KEY: "Bt"}]
    text = ' 0 Ac\n      type=file slot="b"\n 1 s   type=file slot="c"\n'
    assert [(r.get(FLAGS_KEY), r["slot"]) for r in parse_detail(text)] == [("Ac", "b"), ("s", "c")]


def test_comment_after_flags_is_stored_and_properties_follow_on_next_line() -> None:
    text = ' 0 X ;;; managed by rds-csi\n      type=file slot="pvc-1"\n 1    type=file slot="pvc-2"\n'
    first, second = parse_detail(text)
    assert first == {"comment": "managed by rds-csi", "type": "file", "slot": "pvc-1", INDEX_KEY: "0", FLAGS_KEY: "X"}
    assert second == {"type": "file", "slot": "pvc-2", INDEX_KEY: "1"}


WRAPPED_PATH = """\
 0  type=file slot="pvc-long" size=53 687
               091 200
               file-path=/storage-pool/metal-csi/a-rather-long-directory-name/and-another-
               level/pvc-long.img file-size=50.0GiB
               nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-long-with-a-name-that-is-wi
               der-than-the-console"
               nvme-tcp-server-allow-host-name="nqn.2014-08.org.nvmexpress:uuid:0f923194-922a-5dd8-b376-c2c6ccb56dd8,nqn.2014-08.org.nvmexpress:uuid:ccdecfad-a8bf-572e-9120-464c4d99f12f"
"""


def test_wrap_inside_path_joins_without_a_space() -> None:
    (record,) = parse_detail(WRAPPED_PATH)
    assert record["file-path"] == "/storage-pool/metal-csi/a-rather-long-directory-name/and-another-level/pvc-long.img"
    assert record["file-size"] == "50.0GiB"


def test_wrap_inside_quoted_value_joins_without_a_space() -> None:
    (record,) = parse_detail(WRAPPED_PATH)
    assert record["nvme-tcp-server-nqn"] == (
        "nqn.2000-02.com.mikrotik:pvc-long-with-a-name-that-is-wider-than-the-console"
    )


def test_wrapped_digit_group_is_a_continuation_not_an_entry() -> None:
    (disk,) = parse_disks(WRAPPED_PATH)
    assert disk.size_bytes == 53_687_091_200
    assert disk.allowed_hosts == (
        "nqn.2014-08.org.nvmexpress:uuid:0f923194-922a-5dd8-b376-c2c6ccb56dd8",
        "nqn.2014-08.org.nvmexpress:uuid:ccdecfad-a8bf-572e-9120-464c4d99f12f",
    )


def test_bare_tokens_within_a_line_join_with_one_space() -> None:
    (record,) = parse_detail(" 0   name=a/b.img\n     type=.img file size=1.5MiB last-modified=2025-11-11 16:47:07\n")
    assert record["type"] == ".img file"
    assert record["last-modified"] == "2025-11-11 16:47:07"


def test_entries_separated_only_by_index_lines() -> None:
    text = ' 0  type=file slot="a"\n    file-size=1.0GiB\n 1  type=file slot="b"\n    file-size=2.0GiB\n'
    assert [(d.slot, d.file_size_bytes) for d in parse_disks(text)] == [("a", GIB), ("b", 2 * GIB)]


def test_index_not_above_current_is_a_continuation() -> None:
    text = ' 5  type=file slot="a"\n 3  x\n'
    (record,) = parse_detail(text)
    assert record["slot"] == "a3 x"


@pytest.mark.parametrize("unit", ["KiB", "MiB", "GiB", "TiB"])
def test_every_unit_in_detail_output(unit: str) -> None:
    (disk,) = parse_disks(f'type=file slot="a" file-size=1.5{unit}\n')
    assert disk.file_size_bytes == int(1.5 * {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit])


def test_quoted_values_decode_routeros_escapes() -> None:
    (record,) = parse_detail('comment="a\\"b\\\\c\\$d\\?e\\_f\\tg\\3F\\C3\\A9 \\q"\n')
    assert record["comment"] == 'a"b\\c$d?e f\tg?é q'


def test_crlf_line_endings_are_accepted() -> None:
    text = transcript("disk-print-detail-list.txt").replace("\n", "\r\n")
    assert parse_disks(text) == parse_disks(transcript("disk-print-detail-list.txt"))


@pytest.mark.parametrize("text", ["", "\n", "   \n\n"])
def test_empty_output_is_no_records(text: str) -> None:
    assert parse_detail(text) == []
    assert parse_disks(text) == []
    assert parse_files(text) == []


def test_empty_pool_output_is_not_found() -> None:
    with pytest.raises(NotFound, match="storage-pool"):
        parse_pool_capacity("", "storage-pool")


def test_pool_without_free_is_internal() -> None:
    with pytest.raises(Internal, match="lacks size or free"):
        parse_pool_capacity("slot=storage-pool size=1 000\n", "storage-pool")


def test_two_pools_are_internal() -> None:
    with pytest.raises(Internal, match="2 RouterOS disks"):
        parse_pool_capacity(transcript("pool-capacity.txt") + "\n" + transcript("pool-capacity.txt"), "storage-pool")


def test_unterminated_quote_is_internal() -> None:
    with pytest.raises(Internal, match="inside the quoted value of 'slot'"):
        parse_detail('type=file slot="abc\n')


def test_value_without_key_is_internal() -> None:
    with pytest.raises(Internal, match="value without a key"):
        parse_detail("garbage output here\n")


def test_disk_without_slot_is_internal() -> None:
    with pytest.raises(Internal, match="no slot"):
        parse_disks("type=file size=1\n")


def test_unparseable_number_names_the_field() -> None:
    with pytest.raises(Internal, match=r"^field size: cannot parse RouterOS size 'lots'"):
        parse_disks('slot="a" size=lots\n')


def test_unknown_timestamp_format_is_tolerated_as_none() -> None:
    (entry,) = parse_files("name=a/b type=file last-modified=someday\n")
    assert entry.last_modified is None


def test_old_style_timestamp_is_parsed() -> None:
    (entry,) = parse_files("name=a/b type=file last-modified=nov/11/2025 16:47:07\n")
    assert entry.last_modified == datetime(2025, 11, 11, 16, 47, 7)


def test_unescape_lone_trailing_backslash_is_kept() -> None:
    assert unescape("abc\\") == "abc\\"


@pytest.mark.parametrize(("text", "expected"), [("yes", True), ("true", True), ("no", False), ("FALSE", False)])
def test_parse_bool_console_and_rest_spellings(text: str, expected: bool) -> None:
    assert parse_bool(text) is expected


def test_parse_bool_other_text_is_internal() -> None:
    with pytest.raises(Internal):
        parse_bool("maybe")


# --- key: value blocks ------------------------------------------------------------------------------------------

SYSTEM_RESOURCE = """\
                   uptime: 2d20h12m20s
                  version: 7.16 (stable)
               build-time: 2024-10-10 14:03:32
              free-memory: 1433.5MiB
             total-memory: 1952.0MiB
                      cpu: ARM64
                 cpu-load: 3%
           free-hdd-space: 96.2MiB
          total-hdd-space: 128.0MiB
        architecture-name: arm64
               board-name: RDS2216
                 platform: MikroTik
"""


def test_system_resource_text() -> None:
    assert parse_system_resource(SYSTEM_RESOURCE) == SystemResource(
        version="7.16 (stable)",
        uptime=timedelta(days=2, hours=20, minutes=12, seconds=20),
        cpu_load_percent=3.0,
        free_memory_bytes=round(1433.5 * 1024**2),
        total_memory_bytes=1952 * 1024**2,
        free_hdd_bytes=round(96.2 * 1024**2),
        total_hdd_bytes=128 * 1024**2,
        board_name="RDS2216",
        architecture="arm64",
    )


def test_key_values_keep_colons_inside_values_and_unquote() -> None:
    props = parse_key_values('  build-time: 2024-10-10 14:03:32\n     comment: "a\\"b"\n')
    assert props == {"build-time": "2024-10-10 14:03:32", "comment": 'a"b'}


def test_key_values_wrapped_value_joins_without_space() -> None:
    assert parse_key_values("  name: abcdef\n        ghi\n") == {"name": "abcdefghi"}


def test_key_values_repeated_key_is_internal() -> None:
    with pytest.raises(Internal, match="repeats 'slot'"):
        parse_key_values("slot: a\nslot: b\n")


def test_key_values_garbage_is_internal() -> None:
    with pytest.raises(Internal, match="expected 'key: value'"):
        parse_key_values("no colon here\n")


def test_traffic_without_slot_is_internal() -> None:
    with pytest.raises(Internal, match="no slot"):
        parse_traffic("read-rate: 0bps\n")


# --- REST JSON twins --------------------------------------------------------------------------------------------

REST_DISKS = json.dumps(
    [
        {
            ".id": "*1A",
            "type": "file",
            "slot": "pvc-test-1",
            "size": "53687091200",
            "file-path": "/storage-pool/test1.img",
            "file-size": "53687091200",
            "nvme-tcp-export": "true",
            "nvme-tcp-server-port": "4420",
            "nvme-tcp-server-nqn": "nqn.2000-02.com.mikrotik:pvc-test-1",
            "disabled": "false",
        },
        {
            ".id": "*1B",
            "type": "file",
            "slot": "pvc-test-2",
            "size": "107374182400",
            "file-path": "/storage-pool/test2.img",
            "file-size": "107374182400",
            "nvme-tcp-export": "yes",
            "nvme-tcp-server-port": "4420",
            "nvme-tcp-server-nqn": "nqn.2000-02.com.mikrotik:pvc-test-2",
        },
    ]
)


def test_rest_disks_equal_console_disks_apart_from_item_id() -> None:
    from_rest = disks_from_rest(REST_DISKS)
    assert [d.item_id for d in from_rest] == ["*1A", "*1B"]
    assert [dataclasses.replace(d, item_id=None) for d in from_rest] == parse_disks(
        transcript("disk-print-detail-list.txt")
    )


def test_rest_single_object_disk() -> None:
    disk = disk_from_rest(json.loads(REST_DISKS)[0])
    assert disk.slot == "pvc-test-1" and disk.item_id == "*1A" and not disk.disabled


def test_rest_disabled_true_marks_disk_disabled() -> None:
    assert disk_from_rest({"slot": "a", "disabled": "true"}).disabled


def test_rest_files_equal_console_files() -> None:
    payload = [
        {".id": "*9", "name": "storage-pool/metal-csi", "type": "directory", "last-modified": "2025-11-11 16:47:07"},
        {
            ".id": "*A",
            "name": "storage-pool/metal-csi/pvc-ccdecfad-a8bf-572e-9120-464c4d99f12f.img",
            "type": ".img file",
            "size": "10737418240",
            "last-modified": "2025-11-11 14:32:41",
        },
    ]
    from_rest = [dataclasses.replace(f, item_id=None) for f in files_from_rest(payload)]
    assert from_rest == parse_files(transcript("file-print-detail-list.txt"))[:2]


def test_rest_pool_capacity() -> None:
    payload = [
        {"slot": "storage-pool", "mount-point": "storage-pool", "size": "7949127950336", "free": "5963595964416"}
    ]
    assert pool_capacity_from_rest(payload, "storage-pool") == parse_pool_capacity(
        transcript("pool-capacity.txt"), "storage-pool"
    )
    with pytest.raises(NotFound):
        pool_capacity_from_rest("[]", "storage-pool")


def test_rest_traffic_equals_console_traffic() -> None:
    payload = [
        {
            "slot": "storage-pool",
            "read-ops-per-second": "0",
            "write-ops-per-second": "76",
            "read-rate": "0",
            "write-rate": "12800000",
            "read-time": "0ms",
            "write-time": "0ms",
            "in-flight-ops": "0",
            "active-time": "0ms",
            "wait-time": "0ms",
        }
    ]
    assert traffic_from_rest(payload) == parse_traffic(transcript("disk-monitor-traffic-once.txt"))


def test_rest_system_resource_object_or_list() -> None:
    obj = {"version": "7.16 (stable)", "uptime": "2d20h12m20s", "cpu-load": "3", "free-memory": "1503133696"}
    expected = SystemResource(
        version="7.16 (stable)",
        uptime=timedelta(days=2, hours=20, minutes=12, seconds=20),
        cpu_load_percent=3.0,
        free_memory_bytes=1_503_133_696,
    )
    assert system_resource_from_rest(obj) == expected
    assert system_resource_from_rest([obj]) == expected


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "holds a int"),
        ('[{"slot": 1}]', "is not a string"),
        ('{"slot": null}', "is not a string"),
    ],
)
def test_rest_non_string_or_malformed_payload_is_internal(payload: str, message: str) -> None:
    with pytest.raises(Internal, match=message):
        rest_records(payload)


def test_rest_traffic_needs_exactly_one_record() -> None:
    with pytest.raises(Internal, match="expected one RouterOS traffic sample record, got 0"):
        traffic_from_rest([])
