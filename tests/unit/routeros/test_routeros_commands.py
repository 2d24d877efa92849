"""Command builders, console rendering and the REST mapping."""

from __future__ import annotations

import pytest

from rds_csi.core.errors import Internal, InvalidArgument
from rds_csi.routeros.commands import (
    ID_PLACEHOLDER,
    Arg,
    Command,
    Condition,
    CopyFromForm,
    CopySource,
    DiskRef,
    Operator,
    RestRequest,
    build_disk_add,
    build_disk_backed_by,
    build_disk_export,
    build_disk_get,
    build_disk_get_with_nqn_holders,
    build_disk_list,
    build_disk_remove,
    build_disk_resize,
    build_disk_set_allowed_hosts,
    build_disk_traffic,
    build_file_find,
    build_file_get,
    build_file_list,
    build_file_remove,
    build_health,
    build_pool_capacity,
    quote,
    render_cli,
    to_rest,
)
from rds_csi.routeros.names import backing_file_path, confine, parse_router_path
from rds_csi.routeros.units import MIB

BASE = "/storage-pool/metal-csi"
HOST_A = "nqn.2014-08.org.nvmexpress:uuid:0f923194-922a-5dd8-b376-c2c6ccb56dd8"
HOST_B = "nqn.2014-08.org.nvmexpress:uuid:ccdecfad-a8bf-572e-9120-464c4d99f12f"


def _add(**overrides: object) -> Command:
    kwargs: dict[str, object] = {
        "slot": "pvc-1",
        "file_path": backing_file_path(BASE, "pvc-1"),
        "size_bytes": 1536 * MIB,
        "port": 4420,
    }
    kwargs.update(overrides)
    return build_disk_add(**kwargs)  # type: ignore[arg-type]


def test_build_disk_add_renders_every_value_quoted() -> None:
    assert render_cli(_add()) == (
        '/disk add type="file" file-path="/storage-pool/metal-csi/pvc-1.img" file-size="1536M" slot="pvc-1" '
        'nvme-tcp-export="yes" nvme-tcp-server-port="4420" nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-1"'
    )


def test_build_disk_add_rounds_size_up_to_whole_mib() -> None:
    assert _add(size_bytes=MIB + 1).arg("file-size") == "2M"
    assert _add(size_bytes=1).arg("file-size") == "1M"


def test_build_disk_add_nqn_is_derived_from_slot_lower_cased() -> None:
    cmd = _add(slot="PVC-X", file_path=backing_file_path(BASE, "PVC-X"))
    assert cmd.arg("nvme-tcp-server-nqn") == "nqn.2000-02.com.mikrotik:pvc-x"


def test_build_disk_add_copy_from_passes_source_backing_file_and_no_size() -> None:
    cmd = _add(copy_from=backing_file_path(BASE, "pvc-src"), size_bytes=None)
    assert cmd.arg("copy-from") == "/storage-pool/metal-csi/pvc-src.img"
    assert cmd.arg("file-size") is None
    assert 'copy-from="/storage-pool/metal-csi/pvc-src.img"' in render_cli(cmd)


def test_build_disk_add_copy_from_a_disk_reference_is_a_find_on_the_console_and_the_slot_over_rest() -> None:
    source = CopySource("pvc-src", backing_file_path(BASE, "pvc-src"))
    cmd = _add(copy_from=source.argument(CopyFromForm.DISK), size_bytes=None)
    assert cmd.arg("copy-from") == DiskRef("pvc-src")
    assert ' copy-from=[find slot="pvc-src"] ' in render_cli(cmd)
    assert dict(to_rest(cmd).body or ())["copy-from"] == "pvc-src"
    by_file = _add(copy_from=source.argument(CopyFromForm.FILE), size_bytes=None)
    assert by_file.arg("copy-from") == "/storage-pool/metal-csi/pvc-src.img"
    assert CopyFromForm.FILE.other is CopyFromForm.DISK and CopyFromForm.DISK.other is CopyFromForm.FILE


def test_a_disk_reference_takes_only_a_valid_slot() -> None:
    with pytest.raises(InvalidArgument, match="slot"):
        DiskRef('x"] ; /system reboot ; [find slot="y')


def test_build_disk_add_needs_exactly_one_of_size_and_copy_from() -> None:
    with pytest.raises(InvalidArgument, match="size_bytes is required"):
        _add(size_bytes=None)
    with pytest.raises(InvalidArgument, match="size_bytes is required"):
        _add(copy_from=backing_file_path(BASE, "pvc-src"))


def test_build_disk_add_unexported_copy_carries_no_nvme_identity() -> None:
    cmd = _add(copy_from=backing_file_path(BASE, "pvc-src"), size_bytes=None, port=None, export=False)
    assert cmd.arg("nvme-tcp-export") is False
    assert cmd.arg("nvme-tcp-server-nqn") is None
    assert cmd.arg("nvme-tcp-server-port") is None


def test_build_disk_add_unexported_disk_may_carry_a_marker_nqn_an_exported_one_never() -> None:
    marker = "nqn.2000-02.com.mikrotik:rds-csi.copy.x"
    copy = _add(
        copy_from=backing_file_path(BASE, "pvc-src"), size_bytes=None, port=None, export=False, marker_nqn=marker
    )
    assert (copy.arg("nvme-tcp-export"), copy.arg("nvme-tcp-server-nqn")) == (False, marker)
    with pytest.raises(InvalidArgument, match="only for an unexported disk"):
        _add(marker_nqn=marker)
    with pytest.raises(InvalidArgument, match=r"^marker_nqn "):
        _add(export=False, port=None, marker_nqn="not an nqn")


def test_build_disk_export_sets_export_port_and_the_slots_own_nqn_at_once() -> None:
    assert render_cli(build_disk_export("PVC-1", 4420)) == (
        '/disk set [find slot="PVC-1"] nvme-tcp-export="yes" nvme-tcp-server-port="4420" '
        'nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-1"'
    )


def test_build_disk_add_exported_disk_needs_a_port() -> None:
    with pytest.raises(InvalidArgument, match="port is required"):
        _add(port=None)


def test_build_disk_add_file_not_named_after_slot_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"^file_path must end in pvc-1\.img"):
        _add(file_path=backing_file_path(BASE, "pvc-2"))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slot": "pvc 1"}, "slot"),
        ({"file_path": "/storage-pool/metal-csi/pvc-1.img"}, "file_path"),
        ({"copy_from": "/etc/passwd", "size_bytes": None}, "copy_from"),
        ({"size_bytes": 0}, "size_bytes"),
        ({"port": 0}, "port"),
    ],
)
def test_build_disk_add_invalid_inputs_name_their_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{field} "):
        _add(**overrides)


def test_build_disk_get_filters_by_slot_equality() -> None:
    assert render_cli(build_disk_get("pvc-1")) == '/disk print detail where slot="pvc-1"'


def test_build_disk_get_with_nqn_holders_asks_for_the_slot_or_its_lower_cased_nqn() -> None:
    assert render_cli(build_disk_get_with_nqn_holders("PVC-Case")) == (
        '/disk print detail where slot="PVC-Case" or nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:pvc-case"'
    )


def test_to_rest_any_of_filter_is_a_print_with_api_query_words() -> None:
    request = to_rest(build_disk_get_with_nqn_holders("PVC-Case"))
    assert (request.method, request.path, request.is_read) == ("POST", "/rest/disk/print", True)
    assert request.json_body() == {
        ".query": ["slot=PVC-Case", "nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-case", "#|"]
    }


def test_only_equalities_can_be_joined_with_or() -> None:
    regex = Condition("slot", Operator.MATCHES, "^pvc")
    with pytest.raises(InvalidArgument, match="joined with or"):
        Command(("disk",), "print", where=(regex, Condition("slot", Operator.EQUALS, "a")), where_any=True)


def test_build_disk_list_filters_by_anchored_prefix_regex() -> None:
    assert render_cli(build_disk_list("pvc-")) == '/disk print detail where slot~"^pvc-"'
    assert render_cli(build_disk_list()) == '/disk print detail where slot~"^"'


def test_build_disk_resize_sets_file_size_on_found_slot() -> None:
    assert render_cli(build_disk_resize("pvc-1", 2 * 1024**3 + 1)) == (
        '/disk set [find slot="pvc-1"] file-size="2049M"'
    )


def test_build_disk_set_allowed_hosts_joins_with_commas() -> None:
    cmd = build_disk_set_allowed_hosts("pvc-1", [HOST_A, HOST_B, HOST_A])
    assert render_cli(cmd) == (f'/disk set [find slot="pvc-1"] nvme-tcp-server-allow-host-name="{HOST_A},{HOST_B}"')


def test_build_disk_set_allowed_hosts_empty_list_clears() -> None:
    cmd = build_disk_set_allowed_hosts("pvc-1", [])
    assert render_cli(cmd) == '/disk set [find slot="pvc-1"] nvme-tcp-server-allow-host-name=""'


def test_build_disk_set_allowed_hosts_bad_nqn_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"^host_nqn"):
        build_disk_set_allowed_hosts("pvc-1", [HOST_A, 'nqn.2014-08.org.x:a"];/system reboot'])


def test_build_disk_remove_uses_find_by_slot() -> None:
    assert render_cli(build_disk_remove("pvc-1")) == '/disk remove [find slot="pvc-1"]'


def test_build_file_remove_uses_name_without_leading_slash() -> None:
    cmd = build_file_remove(backing_file_path(BASE, "pvc-1"))
    assert render_cli(cmd) == '/file remove [find name="storage-pool/metal-csi/pvc-1.img"]'


def test_build_file_list_escapes_dots_in_prefix_regex() -> None:
    cmd = build_file_list(parse_router_path("/storage-pool/metal.csi"))
    assert render_cli(cmd) == '/file print detail where name~"^storage-pool/metal[.]csi/"'


def test_build_file_get_asks_for_one_name() -> None:
    path = confine(BASE, "pvc-1.img")
    assert render_cli(build_file_get(path)) == '/file print detail where name="storage-pool/metal-csi/pvc-1.img"'


def test_build_file_find_matches_the_name_in_the_directory_and_below_it_only() -> None:
    request = to_rest(build_file_find(parse_router_path(BASE), "pvc-1.img"))
    names = [
        "storage-pool/metal-csi/pvc-1.img",
        "storage-pool/metal-csi/sub/dir/pvc-1.img",
        "storage-pool/metal-csi/xpvc-1.img",
        "storage-pool/metal-csi/pvc-1.img.bak",
        "storage-pool/metal-csi/pvc-1ximg",
        "storage-pool/other/pvc-1.img",
    ]
    assert [r["name"] for r in request.select([{"name": n} for n in names])] == names[:2]
    with pytest.raises(InvalidArgument, match=r"^file_name "):
        build_file_find(parse_router_path(BASE), "a/b.img")


def test_build_disk_backed_by_asks_for_any_of_the_paths() -> None:
    paths = [confine(BASE, "a.img"), confine(BASE, "b.img")]
    assert render_cli(build_disk_backed_by(paths)) == (
        '/disk print detail where file-path="/storage-pool/metal-csi/a.img" or '
        'file-path="/storage-pool/metal-csi/b.img"'
    )
    assert to_rest(build_disk_backed_by(paths)).json_body() == {
        ".query": ["file-path=/storage-pool/metal-csi/a.img", "file-path=/storage-pool/metal-csi/b.img", "#|"]
    }
    with pytest.raises(InvalidArgument):
        build_disk_backed_by([])


def test_build_file_list_requires_a_router_path() -> None:
    with pytest.raises(InvalidArgument, match=r"^directory must be a RouterPath"):
        build_file_list("storage-pool")  # type: ignore[arg-type]


def test_build_pool_capacity_accepts_either_path_spelling() -> None:
    expected = '/disk print detail where mount-point="storage-pool"'
    assert render_cli(build_pool_capacity("storage-pool")) == expected
    assert render_cli(build_pool_capacity("/storage-pool")) == expected
    with pytest.raises(InvalidArgument, match=r"^mount_point"):
        build_pool_capacity('storage-pool" or name~"')


def test_build_disk_traffic_quotes_the_target() -> None:
    assert render_cli(build_disk_traffic("storage-pool")) == '/disk monitor-traffic "storage-pool" once'


def test_build_health_is_system_resource_print() -> None:
    assert render_cli(build_health()) == "/system resource print"


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("$x", '"\\$x"'),
        ("why?", '"why\\?"'),
        ("a\nb\rc\td", '"a\\nb\\rc\\td"'),
        ("x;y [find] {z}", '"x;y [find] {z}"'),
        ("\x00\x7f", '"\\00\\7F"'),
        ("é", '"\\C3\\A9"'),
        ("", '""'),
    ],
)
def test_quote_escapes_every_special_character(value: str, quoted: str) -> None:
    assert quote(value) == quoted


def test_render_cli_injected_value_stays_one_quoted_line() -> None:
    cmd = Command(("disk",), "print", where=(Condition("slot", Operator.EQUALS, 'x"\n/system reboot;$a'),))
    line = render_cli(cmd)
    assert "\n" not in line
    assert line == '/disk print where slot="x\\"\\n/system reboot;\\$a"'


@pytest.mark.parametrize(
    "kwargs",
    [
        {"menu": (), "verb": "print"},
        {"menu": ("Disk",), "verb": "print"},
        {"menu": ("disk",), "verb": "reboot"},
        {"menu": ("disk",), "verb": "print", "flags": ("detail;",)},
        {"menu": ("disk",), "verb": "print", "find": (Condition("slot", Operator.EQUALS, "x"),)},
        {"menu": ("disk",), "verb": "set", "where": (Condition("slot", Operator.EQUALS, "x"),)},
        {"menu": ("disk",), "verb": "monitor-traffic"},
        {"menu": ("disk",), "verb": "print", "target": "x"},
    ],
)
def test_command_malformed_structure_is_invalid_argument(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        Command(**kwargs)  # type: ignore[arg-type]


def test_condition_key_must_be_an_identifier() -> None:
    with pytest.raises(InvalidArgument, match="condition key"):
        Condition('slot"', Operator.EQUALS, "x")


def test_arg_name_must_be_an_identifier() -> None:
    with pytest.raises(InvalidArgument, match="argument name 'x=y'"):
        Arg("x=y", "z")


def test_arg_text_spells_booleans_and_integers_for_routeros() -> None:
    assert [Arg("a", True).text, Arg("a", False).text, Arg("a", 4420).text, Arg("a", "s").text] == [
        "yes",
        "no",
        "4420",
        "s",
    ]


def test_to_rest_add_is_put_with_string_body() -> None:
    request = to_rest(_add())
    assert (request.method, request.path, request.needs_id_lookup) == ("PUT", "/rest/disk", False)
    assert request.json_body() == {
        "type": "file",
        "file-path": "/storage-pool/metal-csi/pvc-1.img",
        "file-size": "1536M",
        "slot": "pvc-1",
        "nvme-tcp-export": "yes",
        "nvme-tcp-server-port": "4420",
        "nvme-tcp-server-nqn": "nqn.2000-02.com.mikrotik:pvc-1",
    }


def test_to_rest_get_is_get_with_equality_query() -> None:
    request = to_rest(build_disk_get("pvc-1"))
    assert (request.method, request.path, request.query_params(), request.json_body()) == (
        "GET",
        "/rest/disk",
        {"slot": "pvc-1"},
        None,
    )


def test_to_rest_regex_filter_is_applied_client_side() -> None:
    request = to_rest(build_disk_list("pvc-"))
    assert request.query_params() == {}
    records = [{"slot": "pvc-1"}, {"slot": "storage-pool"}, {"slot": "xpvc-2"}, {"type": "file"}]
    assert request.select(records) == [{"slot": "pvc-1"}]


def test_to_rest_file_list_client_filter_treats_dot_literally() -> None:
    request = to_rest(build_file_list(parse_router_path("pool/a.b")))
    records = [{"name": "pool/a.b/x.img"}, {"name": "pool/aXb/x.img"}, {"name": "pool/a.b"}]
    assert request.select(records) == [{"name": "pool/a.b/x.img"}]


def test_to_rest_set_is_lookup_then_patch_by_id() -> None:
    request = to_rest(build_disk_resize("pvc-1", 4 * MIB))
    assert request.needs_id_lookup
    assert request.lookup == RestRequest(
        "GET", "/rest/disk", query=(("slot", "pvc-1"),), client_filter=(Condition("slot", Operator.EQUALS, "pvc-1"),)
    )
    assert (request.method, request.path, request.json_body()) == (
        "PATCH",
        f"/rest/disk/{ID_PLACEHOLDER}",
        {"file-size": "4M"},
    )
    action = request.with_id("*1A")
    assert (action.path, action.needs_id_lookup, action.json_body()) == ("/rest/disk/*1A", False, {"file-size": "4M"})


def test_to_rest_remove_is_lookup_then_delete_by_id() -> None:
    request = to_rest(build_file_remove(confine(BASE, "pvc-1.img")))
    assert request.lookup is not None
    assert request.lookup.query_params() == {"name": "storage-pool/metal-csi/pvc-1.img"}
    assert (request.method, request.with_id("*2").path, request.json_body()) == ("DELETE", "/rest/file/*2", None)


def test_rest_item_ids_select_matching_records_only() -> None:
    lookup = to_rest(build_disk_remove("pvc-1")).lookup
    assert lookup is not None
    records = [{".id": "*1", "slot": "pvc-1"}, {".id": "*2", "slot": "pvc-10"}, {".id": "*3", "slot": "pvc-1"}]
    assert lookup.item_ids(records) == ("*1", "*3")
    assert lookup.item_ids([]) == ()


@pytest.mark.parametrize(
    "record", [{"slot": "pvc-1"}, {"slot": "pvc-1", ".id": "../../x"}, {"slot": "pvc-1", ".id": 1}]
)
def test_rest_item_ids_missing_or_malformed_id_is_internal(record: dict[str, object]) -> None:
    lookup = to_rest(build_disk_remove("pvc-1")).lookup
    assert lookup is not None
    with pytest.raises(Internal, match=r"\.id"):
        lookup.item_ids([record])


def test_rest_with_id_refuses_non_ids_and_requests_without_lookup() -> None:
    request = to_rest(build_disk_remove("pvc-1"))
    with pytest.raises(InvalidArgument):
        request.with_id("*1/../../system/reboot")
    with pytest.raises(InvalidArgument, match="does not take an item id"):
        to_rest(build_disk_get("pvc-1")).with_id("*1")


def test_to_rest_monitor_traffic_is_post_with_numbers_and_once() -> None:
    request = to_rest(build_disk_traffic("storage-pool"))
    assert (request.method, request.path, request.json_body()) == (
        "POST",
        "/rest/disk/monitor-traffic",
        {"numbers": "storage-pool", "once": ""},
    )


def test_to_rest_health_is_get_system_resource() -> None:
    request = to_rest(build_health())
    assert (request.method, request.path, request.query_params()) == ("GET", "/rest/system/resource", {})


def test_to_rest_pool_capacity_queries_mount_point() -> None:
    request = to_rest(build_pool_capacity("storage-pool"))
    assert request.query_params() == {"mount-point": "storage-pool"}
