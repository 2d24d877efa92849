"""Validation of slots, NQNs, ports and confined paths."""

from __future__ import annotations

import pytest

from rds_csi.core.errors import InvalidArgument
from rds_csi.core.nqn import validate_host_nqn
from rds_csi.routeros.names import (
    RouterPath,
    backing_file_path,
    confine,
    nqn_for_volume,
    parse_router_path,
    validate_host_nqns,
    validate_item_id,
    validate_port,
    validate_slot,
    validate_slot_prefix,
    validate_volume_id,
)

BASE = "/storage-pool/metal-csi"


@pytest.mark.parametrize("slot", ["a", "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8", "A-9", "x" * 128, "-"])
def test_validate_slot_safe_names_are_returned_unchanged(slot: str) -> None:
    assert validate_slot(slot) == slot


@pytest.mark.parametrize(
    "slot", ["", "x" * 129, "a b", 'a"b', "a;b", "a_b", "a.b", "é", "a\nb", "a\x00", "[find]", "$x", "a?"]
)
def test_validate_slot_unsafe_names_are_invalid_argument(slot: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^slot "):
        validate_slot(slot)


def test_validate_volume_id_error_names_the_volume_id_field() -> None:
    with pytest.raises(InvalidArgument, match=r"^volume_id must be"):
        validate_volume_id("bad/id")


def test_validate_slot_non_string_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="slot must be a string, got int"):
        validate_slot(12)


def test_validate_slot_error_message_truncates_huge_values() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_slot("!" * 10_000)
    assert len(info.value.message) < 200


def test_validate_slot_prefix_accepts_empty_and_rejects_regex_characters() -> None:
    assert validate_slot_prefix("") == ""
    assert validate_slot_prefix("pvc-") == "pvc-"
    with pytest.raises(InvalidArgument, match=r"^slot_prefix"):
        validate_slot_prefix("pvc.*")


def test_nqn_for_volume_lower_cases_the_volume_id() -> None:
    assert nqn_for_volume("PVC-ABC-1") == "nqn.2000-02.com.mikrotik:pvc-abc-1"


def test_nqn_for_volume_longest_volume_id_fits_the_nqn_limit() -> None:
    nqn = nqn_for_volume("A" * 128)
    assert len(nqn.encode()) <= 223


def test_nqn_for_volume_invalid_volume_id_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"^volume_id"):
        nqn_for_volume("pvc_1")


@pytest.mark.parametrize(
    "nqn",
    [
        "nqn.2014-08.org.nvmexpress:uuid:0f923194-922a-5dd8-b376-c2c6ccb56dd8",
        "nqn.2014-08.org.nvmexpress.discovery",
        "nqn.2000-02.com.mikrotik:pvc-1",
        "nqn.2024-12.io.example.host:node-1.rack_2@dc+a",
    ],
)
def test_validate_host_nqn_real_world_forms_are_accepted(nqn: str) -> None:
    assert validate_host_nqn(nqn) == nqn


@pytest.mark.parametrize(
    "nqn",
    [
        "",
        "iqn.2014-08.org.nvmexpress:x",
        "nqn.14-08.org.x:y",
        "nqn.2014-13.org.x:y",
        "nqn.2014-08.:x",
        "nqn.2014-08.org.-bad:x",
        "nqn.2014-08.org.x:a,b",
        'nqn.2014-08.org.x:a"b',
        "nqn.2014-08.org.x:a b",
        "nqn.2014-08.org.x:é",
        "\ud800",
        "nqn.2014-08.org.x:\udfff",
        "nqn.2014-08.org.nvmexpress:uuid:not-a-uuid",
        "nqn.2014-08.org.x:" + "a" * 210,
    ],
)
def test_validate_host_nqn_malformed_is_invalid_argument(nqn: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^host_nqn"):
        validate_host_nqn(nqn)


def test_validate_host_nqns_drops_duplicates_keeping_order() -> None:
    a, b = "nqn.2014-08.org.x:a", "nqn.2014-08.org.x:b"
    assert validate_host_nqns([b, a, b]) == (b, a)


@pytest.mark.parametrize("port", [1, 4420, 65535])
def test_validate_port_in_range_is_returned(port: int) -> None:
    assert validate_port(port) == port


@pytest.mark.parametrize("port", [0, -1, 65536, True, "4420", 4420.0])
def test_validate_port_out_of_range_or_wrong_type_is_invalid_argument(port: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^nvme_port"):
        validate_port(port, "nvme_port")


@pytest.mark.parametrize("item_id", ["*1", "*1A", "*ff"])
def test_validate_item_id_router_ids_are_accepted(item_id: str) -> None:
    assert validate_item_id(item_id) == item_id


@pytest.mark.parametrize("item_id", ["1", "*", "*1/../x", "*g", "*1?a=b"])
def test_validate_item_id_anything_else_is_invalid_argument(item_id: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^id "):
        validate_item_id(item_id)


def test_router_path_renders_disk_and_file_forms() -> None:
    path = parse_router_path("storage-pool/metal-csi/pvc-1.img")
    assert path.disk_path == "/storage-pool/metal-csi/pvc-1.img"
    assert path.file_name == "storage-pool/metal-csi/pvc-1.img"
    assert parse_router_path("/storage-pool/metal-csi/pvc-1.img") == path


def test_router_path_constructor_revalidates_segments() -> None:
    with pytest.raises(InvalidArgument):
        RouterPath(("storage-pool", ".."))
    with pytest.raises(InvalidArgument):
        RouterPath(())


def test_parse_router_path_normalizes_dots_and_empty_segments() -> None:
    assert parse_router_path("//a/./b//c/../d/").disk_path == "/a/b/d"


def test_parse_router_path_climbing_above_root_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="escapes"):
        parse_router_path("/a/../../etc")


def test_backing_file_path_is_volume_id_dot_img_under_base() -> None:
    path = backing_file_path(BASE, "pvc-1")
    assert path.disk_path == "/storage-pool/metal-csi/pvc-1.img"
    assert path.file_name == "storage-pool/metal-csi/pvc-1.img"


def test_backing_file_path_invalid_volume_id_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"^volume_id"):
        backing_file_path(BASE, "../etc")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pvc-1.img", "/storage-pool/metal-csi/pvc-1.img"),
        ("sub/dir/x.img", "/storage-pool/metal-csi/sub/dir/x.img"),
        ("a/../b.img", "/storage-pool/metal-csi/b.img"),
        ("/storage-pool/metal-csi/x.img", "/storage-pool/metal-csi/x.img"),
        ("/storage-pool/metal-csi", "/storage-pool/metal-csi"),
        ("", "/storage-pool/metal-csi"),
        ("/storage-pool/other/../metal-csi/x.img", "/storage-pool/metal-csi/x.img"),
    ],
)
def test_confine_paths_under_base_are_normalized(value: str, expected: str) -> None:
    assert confine(BASE, value).disk_path == expected


@pytest.mark.parametrize(
    "value",
    [
        "../x.img",
        "a/../../x.img",
        "/storage-pool/metal-csiX/x.img",
        "/storage-pool/metal-csi/../x.img",
        "/storage-pool",
        "/",
        "/etc/passwd",
    ],
)
def test_confine_paths_escaping_base_are_invalid_argument(value: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^path "):
        confine(BASE, value)


def test_confine_boundary_is_segment_wise_not_string_prefix() -> None:
    base = parse_router_path("/pool/a")
    assert not base.contains(parse_router_path("/pool/ab"))
    assert base.contains(parse_router_path("/pool/a/b"))
    assert base.contains(base)
    with pytest.raises(InvalidArgument, match="outside the base path /pool/a"):
        confine("/pool/a", "/pool/ab/x.img")


@pytest.mark.parametrize("value", ["a b.img", "a;b", 'x"y', "x\\y", "x\ny", "é.img", "...", "a/.../b", "x$y"])
def test_confine_unsafe_characters_are_invalid_argument(value: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^path segments"):
        confine(BASE, value)


def test_confine_field_name_appears_in_error() -> None:
    with pytest.raises(InvalidArgument, match=r"^volume_path "):
        confine(BASE, "../x", field="volume_path")


def test_confine_invalid_base_is_reported_as_base_path() -> None:
    with pytest.raises(InvalidArgument, match=r"^base_path"):
        confine("/", "x.img")


def test_confine_overlong_path_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="at most 1024"):
        confine(BASE, "/".join(["abcdefgh"] * 200))
