"""RouterOS number formats and the file-size allocation unit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rds_csi.core.errors import Internal, InvalidArgument
from rds_csi.routeros.units import (
    MAX_FILE_SIZE,
    MIB,
    format_file_size,
    parse_duration,
    parse_int,
    parse_percent,
    parse_rate,
    parse_size,
    round_up_allocation,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("512", 512), ("53 687 091 200", 53_687_091_200), ("7 949 127 950 336", 7_949_127_950_336)],
)
def test_parse_int_grouped_digits_are_joined(text: str, expected: int) -> None:
    assert parse_int(text) == expected


def test_parse_int_group_split_by_a_wrap_is_still_read() -> None:
    assert parse_int("53 687091 200") == 53_687_091_200


@pytest.mark.parametrize("text", ["", "-1", "1,000", "1  000", "12a", "1.5"])
def test_parse_int_malformed_is_internal(text: str) -> None:
    with pytest.raises(Internal, match="cannot parse RouterOS integer"):
        parse_int(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("53 687 091 200", 53_687_091_200),
        ("50.0GiB", 50 * 1024**3),
        ("1024.0MiB", 1024**3),
        ("1924.1KiB", round(1924.1 * 1024)),
        ("10.0GiB", 10 * 1024**3),
        ("2.5TiB", int(2.5 * 1024**4)),
        ("1.0PiB", 1024**5),
        ("0", 0),
        ("1536M", 1536 * MIB),
        ("1.5G", 1536 * MIB),
        ("4k", 4096),
        ("100B", 100),
    ],
)
def test_parse_size_all_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_one_decimal_is_rounded_to_nearest_byte() -> None:
    assert parse_size("1.3GiB") == 1_395_864_371


@pytest.mark.parametrize("text", ["GiB", "1.2.3GiB", "5 XB", "-1GiB", "1e3", "50.0gib"])
def test_parse_size_malformed_is_internal(text: str) -> None:
    with pytest.raises(Internal, match="size"):
        parse_size(text)


@pytest.mark.parametrize(("text", "expected"), [("25%", 25.0), ("2.5%", 2.5), ("0%", 0.0), ("100 %", 100.0)])
def test_parse_percent(text: str, expected: float) -> None:
    assert parse_percent(text) == expected


def test_parse_percent_without_sign_is_internal() -> None:
    with pytest.raises(Internal):
        parse_percent("25")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0bps", 0),
        ("640kbps", 640_000),
        ("12.8Mbps", 12_800_000),
        ("1.2Gbps", 1_200_000_000),
        ("3Tbps", 3 * 10**12),
    ],
)
def test_parse_rate_decimal_prefixes(text: str, expected: int) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["12.8MB/s", "fast", "1Mibps"])
def test_parse_rate_malformed_is_internal(text: str) -> None:
    with pytest.raises(Internal, match="rate"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0ms", timedelta(0)),
        ("2d20h12m20s", timedelta(days=2, hours=20, minutes=12, seconds=20)),
        ("1w3d", timedelta(weeks=1, days=3)),
        ("5s120ms", timedelta(seconds=5, milliseconds=120)),
        ("12m", timedelta(minutes=12)),
        ("250us", timedelta(microseconds=250)),
        ("00:01:02", timedelta(minutes=1, seconds=2)),
        ("1d02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:00:01.5", timedelta(seconds=1.5)),
    ],
)
def test_parse_duration_unit_and_clock_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "1x", "1:2", "ms"])
def test_parse_duration_malformed_is_internal(text: str) -> None:
    with pytest.raises(Internal, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("requested", "allocated"),
    [(1, MIB), (MIB, MIB), (MIB + 1, 2 * MIB), (1536 * MIB, 1536 * MIB), (10**9, 954 * MIB)],
)
def test_round_up_allocation_rounds_up_to_whole_mib(requested: int, allocated: int) -> None:
    assert round_up_allocation(requested) == allocated
    assert allocated >= requested


def test_round_up_allocation_largest_size_is_exact() -> None:
    assert round_up_allocation(MAX_FILE_SIZE) == MAX_FILE_SIZE
    assert round_up_allocation(MAX_FILE_SIZE - 1) == MAX_FILE_SIZE


@pytest.mark.parametrize("size", [0, -1, MAX_FILE_SIZE + 1, True, 1.5, "1G"])
def test_round_up_allocation_invalid_sizes_are_invalid_argument(size: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^capacity"):
        round_up_allocation(size, "capacity")


def test_format_file_size_renders_whole_mib_with_m_suffix() -> None:
    assert format_file_size(1536 * MIB) == "1536M"
    assert format_file_size(50 * 1024**3) == "51200M"


def test_format_file_size_unrounded_size_is_refused_not_rounded_down() -> None:
    with pytest.raises(InvalidArgument, match="whole number of MiB"):
        format_file_size(MIB + 1)


def test_format_file_size_round_trips_through_parse_size() -> None:
    for size in (MIB, 1536 * MIB, 50 * 1024**3, MAX_FILE_SIZE):
        assert parse_size(format_file_size(size)) == size
