"""The console: tokenizer, parser, interpreter and the exact text layout of the device's transcripts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from rds_csi.core.errors import InvalidArgument
from rds_csi.routeros.commands import quote as client_quote
from rds_csi.routeros.parse import FLAGS_KEY, INDEX_KEY, parse_detail, parse_disks, parse_system_resource
from rds_csi.simulator.console import FindItems, Interpreter, ItemRefs, SystemInfo, execute, parse, tokenize
from rds_csi.simulator.format import FlagColumn, FlagStyle, human_bytes, print_block, quote
from rds_csi.simulator.model import Model, Traffic

TRANSCRIPTS = Path(__file__).parent / "transcripts"
GIB = 1024**3


def transcript(name: str) -> str:
    return (TRANSCRIPTS / name).read_text()


@pytest.fixture
def now() -> list[datetime]:
    """The model's wall clock, settable by tests: ``now[0] = ...``."""
    return [datetime(2025, 11, 11, 16, 47, 7)]


@pytest.fixture
def model(now: list[datetime]) -> Model:
    return Model(
        pool_size=7_949_127_950_336,
        pool_free=5_963_595_964_416,
        base_directories=["storage-pool/metal-csi"],
        wall_clock=lambda: now[0],
    )


@pytest.fixture
def console(model: Model) -> Interpreter:
    return Interpreter(model, SystemInfo(), lambda: 3725.0)


def run(console: Interpreter, text: str, width: int = 80) -> tuple[str, int]:
    return execute(console, text, width)


def ok(console: Interpreter, text: str, width: int = 80) -> str:
    output, status = run(console, text, width)
    assert status == 0, output
    return output


def add_disk(console: Interpreter, slot: str, path: str, size: str) -> None:
    ok(
        console,
        f'/disk add type=file slot="{slot}" file-path={path} file-size={size} nvme-tcp-export=yes '
        f'nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:{slot}"',
    )


# ---- exact layouts -----------------------------------------------------------------------------------


def test_print_detail_one_matches_hardware_capture(console: Interpreter) -> None:
    add_disk(console, "pvc-test-123", "/storage-pool/test.img", "50G")
    output = ok(console, "/disk print detail where slot=pvc-test-123")
    # The capture's first line lost the index column (" 0  "); everything else is byte for byte.
    assert output == " 0  " + transcript("disk-print-detail-one.txt")


def test_print_detail_list_with_proplist_matches_transcript(console: Interpreter) -> None:
    add_disk(console, "pvc-test-1", "/storage-pool/test1.img", "50G")
    add_disk(console, "pvc-test-2", "/storage-pool/test2.img", "100G")
    output = ok(
        console,
        "/disk print detail proplist=type,slot,size,file-path,file-size,nvme-tcp-export,"
        'nvme-tcp-server-port,nvme-tcp-server-nqn where slot~"pvc"',
    )
    assert output == transcript("disk-print-detail-list.txt")


def test_file_print_detail_matches_transcript(console: Interpreter, now: list[datetime]) -> None:
    base = "/storage-pool/metal-csi/"
    now[0] = datetime(2025, 11, 11, 14, 32, 41)
    add_disk(console, "a", base + "pvc-ccdecfad-a8bf-572e-9120-464c4d99f12f.img", "10G")
    now[0] = datetime(2025, 11, 11, 16, 47, 7)
    add_disk(console, "b", base + "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img", "1G")
    output = ok(console, '/file print detail where name~"storage-pool/metal-csi"')
    assert output == transcript("file-print-detail-list.txt")


def test_pool_capacity_has_the_transcript_properties(console: Interpreter) -> None:
    output = ok(console, '/disk print detail where mount-point="storage-pool"')
    pairs = dict(token.split("=", 1) for token in transcript("pool-capacity.txt").split() if "=" in token)
    joined = " ".join(line.strip() for line in output.splitlines())
    assert "size=7 949 127 950 336 free=5 963 595 964 416 use=25%" in joined
    for key in ("type", "mount-point", "file-system"):
        assert f"{key}={pairs[key]}" in joined


def test_monitor_traffic_once_prints_the_right_aligned_block(console: Interpreter, model: Model) -> None:
    model.set_traffic("storage-pool", Traffic(write_ops_per_second=76, write_rate=12_800_000))
    output = ok(console, "/disk monitor-traffic storage-pool once")
    expected = transcript("disk-monitor-traffic-once.txt").splitlines()
    lines = output.splitlines()
    assert [line.strip() for line in lines] == [line.strip() for line in expected]
    assert len({line.index(":") for line in lines}) == 1


def test_detail_wraps_at_the_login_console_width(console: Interpreter) -> None:
    add_disk(console, "pvc-w", "/storage-pool/w.img", "1G")
    wide = ok(console, "/disk print detail", width=200).splitlines()
    narrow = ok(console, "/disk print detail", width=60).splitlines()
    assert len(narrow) > len(wide)
    assert all(len(line) <= 58 for line in narrow)


def test_print_empty_result_prints_nothing(console: Interpreter) -> None:
    assert ok(console, '/disk print detail where slot="nothing"') == ""


def test_disabled_disk_gets_flag_letter_and_legend(console: Interpreter) -> None:
    add_disk(console, "pvc-x", "/storage-pool/x.img", "1G")
    ok(console, '/disk set [find slot="pvc-x"] disabled=yes')
    lines = ok(console, "/disk print detail where disabled").splitlines()
    assert lines[0] == "Flags: X - disabled"
    assert lines[1].startswith(" 0 X type=file")


FLAGS_PROPLIST = "type,slot,mount-point,size,free,nvme-tcp-export,nvme-tcp-server-port,file-path,file-size"


def documented_flags_console(model: Model, legend: bool) -> Interpreter:
    console = Interpreter(model, SystemInfo(), lambda: 3725.0, FlagColumn(FlagStyle.DOCUMENTED, legend=legend))
    ok(
        console,
        "/disk add type=file slot=pvc-flag-bt file-path=/storage-pool/metal-csi/pvc-flag-bt.img file-size=2G "
        "nvme-tcp-export=yes nvme-tcp-server-port=4420",
    )
    ok(
        console,
        "/disk add type=file slot=snap-flag-xb file-path=/storage-pool/metal-csi/snap-flag-xb.img file-size=1G "
        "disabled=yes",
    )
    return console


def test_documented_flags_print_every_letter_that_applies_under_the_legend(model: Model) -> None:
    console = documented_flags_console(model, legend=True)
    output = ok(console, f"/disk print detail proplist={FLAGS_PROPLIST}")
    assert output == transcript("disk-print-detail-flags-documented.txt")
    records = parse_detail(output)
    assert [(r[INDEX_KEY], r[FLAGS_KEY]) for r in records] == [("0", "BM"), ("1", "Bt"), ("2", "XB")]
    assert [d.disabled for d in parse_disks(output)] == [False, False, True]


def test_documented_flags_can_go_without_the_legend(model: Model) -> None:
    console = documented_flags_console(model, legend=False)
    output = ok(console, f"/disk print detail proplist={FLAGS_PROPLIST}")
    assert output == transcript("disk-print-detail-flags-documented.txt").split("\n", 1)[1]
    assert ok(console, "/disk print").splitlines()[0].startswith("#")
    assert [line.split()[1] for line in ok(console, "/disk print terse").splitlines()] == ["BM", "Bt", "XB"]


def test_terse_is_one_line_per_record(console: Interpreter) -> None:
    add_disk(console, "pvc-t", "/storage-pool/t.img", "1G")
    lines = ok(console, "/disk print terse").splitlines()
    assert len(lines) == 2
    assert 'slot="pvc-t"' in lines[1]
    assert "size=1 073 741 824" in lines[1]


def test_as_value_carries_raw_values_and_ids(console: Interpreter) -> None:
    add_disk(console, "pvc-v", "/storage-pool/v.img", "1G")
    line = ok(console, '/disk print as-value where slot="pvc-v"').strip()
    fields = dict(pair.split("=", 1) for pair in line.split(";"))
    assert fields[".id"].startswith("*")
    assert fields["file-size"] == str(GIB)
    assert fields["nvme-tcp-export"] == "true"


def test_system_resource_prints_aligned_block(console: Interpreter) -> None:
    lines = ok(console, "/system resource print").splitlines()
    assert lines[0].endswith("uptime: 1h2m5s")
    assert len({line.index(":") for line in lines}) == 1
    values = dict(line.strip().split(": ", 1) for line in lines)
    assert values["cpu-load"] == "1%" and values["cpu-frequency"] == "2000MHz" and values["bad-blocks"] == "0%"
    assert values["free-memory"] == "30.0GiB" and values["board-name"] == "RDS2216"


def test_system_resource_reports_the_configured_release(model: Model) -> None:
    console = Interpreter(model, SystemInfo(version="7.16 (stable)"), lambda: 1.0)
    resource = parse_system_resource(ok(console, "/system resource print"))
    assert (resource.version, resource.board_name, resource.cpu_load_percent) == ("7.16 (stable)", "RDS2216", 1.0)
    assert resource.total_memory_bytes == 32 * GIB


@pytest.mark.parametrize(
    ("value", "text"),
    [(50 * GIB, "50.0GiB"), (GIB, "1024.0MiB"), (10 * GIB, "10.0GiB"), (1536, "1.5KiB"), (1000, "1000")],
)
def test_human_bytes_switches_unit_only_above_one_of_it(value: int, text: str) -> None:
    assert human_bytes(value) == text


def test_quote_escapes_what_the_console_interprets() -> None:
    assert quote('a"b\\c$d?e\nf\x01') == '"a\\"b\\\\c\\$d\\?e\\nf\\01"'


def test_print_block_aligns_two_past_longest_key() -> None:
    assert print_block([("a", "1"), ("abc", "2")]) == "    a: 1\n  abc: 2\n"


# ---- commands ----------------------------------------------------------------------------------------


def test_set_by_find_and_by_id_and_by_name(console: Interpreter, model: Model) -> None:
    add_disk(console, "pvc-s", "/storage-pool/s.img", "1G")
    disk_id = model.disk_records()[1][".id"]
    ok(console, '/disk set [find slot="pvc-s"] nvme-tcp-server-port=4421')
    ok(console, f"/disk set numbers={disk_id} nvme-tcp-server-allow-host-name=nqn.a,nqn.b")
    ok(console, "/disk set pvc-s file-size=2G")
    record = model.disk_records()[1]
    assert record["nvme-tcp-server-port"] == 4421
    assert record["nvme-tcp-server-allow-host-name"] == "nqn.a,nqn.b"
    assert record["file-size"] == 2 * GIB


def test_copy_from_takes_a_find_that_names_the_source_disk(console: Interpreter, model: Model) -> None:
    add_disk(console, "pvc-src", "/storage-pool/metal-csi/pvc-src.img", "3G")
    ok(console, '/disk add type=file slot=cp file-path=/storage-pool/metal-csi/cp.img copy-from=[find slot="pvc-src"]')
    assert model.disk_records()[-1]["file-size"] == 3 * GIB
    output, status = run(
        console, '/disk add type=file slot="cp2" file-path=/storage-pool/metal-csi/cp2.img copy-from=[find slot="none"]'
    )
    assert (output, status) == ("failure: no such item\n", 1)
    with pytest.raises(InvalidArgument, match="bad command name /system"):  # only a find may stand there
        parse("/disk add type=file slot=x file-path=/storage-pool/x.img copy-from=[/system reboot]")
    with pytest.raises(InvalidArgument, match="syntax error"):  # no other argument takes one
        parse('/disk add type=file slot=x file-path=/storage-pool/x.img nvme-tcp-server-nqn=[find slot="a"]')


def test_remove_by_find_matching_nothing_succeeds_silently(console: Interpreter) -> None:
    assert run(console, '/disk remove [find slot="ghost"]') == ("", 0)


def test_remove_by_unknown_name_or_id_is_no_such_item(console: Interpreter) -> None:
    assert run(console, "/disk remove ghost") == ("failure: no such item\n", 1)
    assert run(console, "/disk remove *FF") == ("failure: no such item\n", 1)


def test_file_remove_by_find(console: Interpreter, model: Model) -> None:
    add_disk(console, "pvc-f", "/storage-pool/metal-csi/f.img", "1G")
    ok(console, "/disk remove [find slot=pvc-f]")
    ok(console, '/file remove [find name="storage-pool/metal-csi/f.img"]')
    assert [r["name"] for r in model.file_records()] == ["storage-pool/metal-csi"]


def test_add_over_free_space_prints_failure(console: Interpreter) -> None:
    output, status = run(console, "/disk add type=file slot=big file-path=/storage-pool/big.img file-size=8T")
    assert (output, status) == ("failure: not enough space\n", 1)


def test_where_regex_and_and_or(console: Interpreter) -> None:
    for slot in ("pvc-1", "pvc-2", "other"):
        add_disk(console, slot, f"/storage-pool/{slot}.img", "1G")
    terse = ok(console, '/disk print terse where slot~"^pvc-" and !(slot="pvc-2") or slot=other')
    assert [line.split('slot="')[1].split('"')[0] for line in terse.splitlines()] == ["pvc-1", "other"]


def test_where_size_compares_numerically(console: Interpreter) -> None:
    add_disk(console, "pvc-n", "/storage-pool/n.img", "1G")
    assert 'slot="pvc-n"' in ok(console, "/disk print terse where file-size=1G")
    assert ok(console, "/disk print terse where type=file and file-size>2G") == ""


def test_slash_path_form_and_find_with_menu_path(console: Interpreter) -> None:
    add_disk(console, "pvc-p", "/storage-pool/p.img", "1G")
    ok(console, '/disk/set [/disk find where slot="pvc-p"] disabled=yes')
    assert "X" in ok(console, "/disk/print terse where disabled")


def test_quoted_item_name_for_monitor_traffic(console: Interpreter) -> None:
    assert "slot: storage-pool" in ok(console, '/disk monitor-traffic "storage-pool" once')


def test_monitor_traffic_without_once_is_refused(console: Interpreter) -> None:
    output, status = run(console, "/disk monitor-traffic storage-pool")
    assert status == 1
    assert "once" in output


# ---- syntax, escapes and injection ------------------------------------------------------------------


def test_escapes_decode_to_literal_text() -> None:
    tokens = tokenize(r'"a\"b\\c\$d\?e\_f\4A\n"')
    assert tokens[0].text == 'a"b\\c$d?e fJ\n'


@pytest.mark.parametrize("value", ["é", "pvc-日本", 'a\\b"c', "tab\tnl\n"])
def test_what_the_client_quotes_the_console_reads_back(value: str) -> None:
    # The driver escapes non-ASCII as UTF-8 bytes (\C3\A9); the console must read bytes, not one char per escape.
    assert tokenize(client_quote(value))[0].text == value


def test_parse_find_and_refs() -> None:
    assert isinstance(parse('/disk remove [find slot="x"]').items, FindItems)
    assert parse("/disk remove *1,*2").items == ItemRefs(("*1", "*2"))
    assert parse("/disk set numbers=*1 disabled=no").items == ItemRefs(("*1",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/disk frobnicate", "bad command name frobnicate (line 1 column 7)"),
        ("/dsk print", "bad command name dsk (line 1 column 2)"),
        ("/disk print detail foo", "expected end of command (line 1 column 20)"),
        ("/disk add colour=red", "expected end of command (line 1 column 11)"),
        ('/disk print where slot="open', "syntax error (line 1 column 29)"),
        ('/disk print where slot="\\q"', "syntax error (line 1 column 25)"),
        ("/disk remove [find slot=x", "syntax error (line 1 column 26)"),
        ("", "expected command name (line 1 column 1)"),
    ],
)
def test_syntax_errors_use_the_console_words(console: Interpreter, text: str, message: str) -> None:
    assert run(console, text) == (message + "\n", 1)


def test_bad_value_is_invalid_value_for_argument(console: Interpreter) -> None:
    output, status = run(console, "/disk add type=file slot=v file-path=/storage-pool/v.img file-size=lots")
    assert (output, status) == ("invalid value for argument file-size\n", 1)


@pytest.mark.parametrize(
    "text",
    [
        '/disk print where slot="x"; /disk remove [find]',
        '/disk print where slot="x"\n/disk remove [find]',
        "/disk remove [find slot=$victim]",
        '/disk print where slot="$x"',
        '/disk print where slot="x?"',
        "/disk print where slot=[/disk remove [find]]",
        "/disk remove [:execute {/disk remove [find]}]",
        "/disk add type=file slot=a;b file-path=/storage-pool/a.img file-size=1G",
        "/disk print `id`",
    ],
)
def test_injection_attempts_are_syntax_errors_and_change_nothing(console: Interpreter, model: Model, text: str) -> None:
    add_disk(console, "keep", "/storage-pool/keep.img", "1G")
    before = model.disk_records()
    output, status = run(console, text)
    assert status == 1
    assert output.startswith(("syntax error", "expected end of command", "bad command name"))
    assert model.disk_records() == before


def test_injection_inside_quotes_is_a_literal_value(console: Interpreter, model: Model) -> None:
    add_disk(console, "keep", "/storage-pool/keep.img", "1G")
    ok(console, r'/disk set keep nvme-tcp-server-nqn="nqn.x;/disk/remove[find]\$y"')
    assert model.disk_records()[1]["nvme-tcp-server-nqn"] == "nqn.x;/disk/remove[find]$y"
    assert ok(console, '/disk print where slot="keep;/disk remove [find]"') == ""
    assert len(model.disk_records()) == 2


def test_trailing_newline_and_line_continuation_are_accepted(console: Interpreter) -> None:
    ok(console, "/disk add type=file slot=c \\\n  file-path=/storage-pool/c.img file-size=1G\n")
    assert 'slot="c"' in ok(console, "/disk print terse where slot=c")


def test_combining_detail_and_terse_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        parse("/disk print detail terse")
