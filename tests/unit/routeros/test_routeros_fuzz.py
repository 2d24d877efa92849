"""Adversarial inputs against every command builder.

For each builder: either it refuses the input with ``InvalidArgument``, or the rendered console line, read back by
the small RouterOS tokenizer below (written from the console grammar, sharing no code with the renderer),
has exactly the structure of the ``Command`` with every value round-tripping, and nothing but fixed identifiers
outside double quotes.

Examples per builder: the Hypothesis profile's budget (tests/conftest.py; far more with ``RDS_CSI_LONG=1``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rds_csi.core.errors import InvalidArgument
from rds_csi.routeros.commands import (
    FLAGS,
    VERBS,
    Command,
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
    build_pool_capacity,
    quote,
    render_cli,
)
from rds_csi.routeros.names import RouterPath, backing_file_path, confine
from rds_csi.routeros.units import MIB

# Sizes come from the Hypothesis profile; adversarial text is slow to generate and often filtered, by design.
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

BASE = "/storage-pool/metal-csi"
SAFE_PATH_RE = re.compile(r"/(?:[A-Za-z0-9._-]+/)*[A-Za-z0-9._-]+")


# --- an independent RouterOS console tokenizer --------------------------------------------------------------------


class TokenizeError(AssertionError):
    pass


@dataclass(frozen=True)
class Tok:
    kind: str  # "word", "string", "[", "]", "=", "~"
    text: str


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-/")
_ESCAPE_MEANING = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "$": "$", "?": "?", "_": " "}
_HEXDIGITS = "0123456789ABCDEF"


def tokenize(line: str) -> list[Tok]:
    """Split one console line; anything outside quotes that is not a plain word or operator is an error."""
    if "\n" in line or "\r" in line:
        raise TokenizeError("a command line must not contain a line break")
    tokens: list[Tok] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char == " ":
            i += 1
        elif char in "[]=~":
            tokens.append(Tok(char, char))
            i += 1
        elif char == '"':
            data = bytearray()
            i += 1
            while True:
                if i >= len(line):
                    raise TokenizeError("unterminated string")
                char = line[i]
                if char == '"':
                    i += 1
                    break
                if char == "\\":
                    nxt = line[i + 1 : i + 3]
                    if len(nxt) == 2 and all(c in _HEXDIGITS for c in nxt):
                        data.append(int(nxt, 16))
                        i += 3
                    elif nxt[:1] in _ESCAPE_MEANING:
                        data += _ESCAPE_MEANING[nxt[0]].encode()
                        i += 2
                    else:
                        raise TokenizeError(f"unknown escape {line[i : i + 2]!r}")
                elif char == "$":
                    raise TokenizeError("unescaped $ inside a string substitutes a variable")
                elif char == "?" or not " " <= char <= "~":
                    raise TokenizeError(f"raw {char!r} inside a string")
                else:
                    data += char.encode()
                    i += 1
            tokens.append(Tok("string", data.decode("utf-8", "surrogatepass")))
        elif char in _WORD_CHARS:
            start = i
            while i < len(line) and line[i] in _WORD_CHARS:
                i += 1
            tokens.append(Tok("word", line[start:i]))
        else:
            raise TokenizeError(f"character {char!r} outside a quoted string")
    return tokens


@dataclass
class Parsed:
    menu: list[str] = field(default_factory=list)
    verb: str = ""
    target: str | None = None
    find: list[tuple[str, str, str]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    args: list[tuple[str, str]] = field(default_factory=list)
    where: list[tuple[str, str, str]] = field(default_factory=list)
    joiners: set[str] = field(default_factory=set)


class _Reader:
    def __init__(self, tokens: list[Tok]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> str:
        tok = self.peek()
        if tok is None or tok.kind != kind:
            raise TokenizeError(f"expected {kind} at token {self.pos}, got {tok}")
        self.pos += 1
        return tok.text

    def conditions(self, stop: str | None, joiners: set[str] | None = None) -> list[tuple[str, str, str]]:
        out = []
        while True:
            key = self.take("word")
            op_tok = self.peek()
            if op_tok is None or op_tok.kind not in "=~":
                raise TokenizeError("expected = or ~ in a condition")
            self.pos += 1
            out.append((key, op_tok.kind, self.take("string")))
            nxt = self.peek()
            if nxt is not None and (nxt == Tok("word", "and") or (joiners is not None and nxt == Tok("word", "or"))):
                self.pos += 1
                if joiners is not None:
                    joiners.add(nxt.text)
                continue
            if stop is not None:
                self.take(stop)
            return out


def parse_line(line: str) -> Parsed:
    """Read a rendered line back into its parts, following the console grammar."""
    reader = _Reader(tokenize(line))
    parsed = Parsed()
    head = reader.take("word")
    if not head.startswith("/") or "/" in head[1:]:
        raise TokenizeError("a command starts with /menu")
    parsed.menu.append(head[1:])
    while (word := reader.take("word")) not in VERBS:
        parsed.menu.append(word)
    parsed.verb = word
    if (tok := reader.peek()) is not None and tok.kind == "string":
        parsed.target = reader.take("string")
    if (tok := reader.peek()) is not None and tok.kind == "[":
        reader.pos += 1
        if reader.take("word") != "find":
            raise TokenizeError("[ must open a find")
        parsed.find = reader.conditions(stop="]")
    while (tok := reader.peek()) is not None:
        if tok == Tok("word", "where"):
            reader.pos += 1
            parsed.where = reader.conditions(stop=None, joiners=parsed.joiners)
        elif tok.kind == "word" and tok.text in FLAGS and not parsed.args:
            parsed.flags.append(reader.take("word"))
        else:
            name = reader.take("word")
            reader.take("=")
            parsed.args.append((name, reader.take("string")))
    return parsed


def assert_round_trips(cmd: Command) -> Parsed:
    """The rendered line reads back as exactly ``cmd``."""
    parsed = parse_line(render_cli(cmd))
    assert parsed.menu == list(cmd.menu)
    assert parsed.verb == cmd.verb
    assert parsed.target == cmd.target
    assert parsed.find == [(c.key, c.operator.value, c.value) for c in cmd.find]
    assert parsed.flags == list(cmd.flags)
    assert parsed.args == [(a.name, a.text) for a in cmd.args]
    assert parsed.where == [(c.key, c.operator.value, c.value) for c in cmd.where]
    assert parsed.joiners <= ({"or"} if cmd.where_any else {"and"})  # never a mix: no precedence to get wrong
    return parsed


def check(build: Callable[[], Command]) -> Command | None:
    """Run a builder: ``None`` if it refused with InvalidArgument, else the command, verified to round-trip."""
    try:
        cmd = build()
    except InvalidArgument:
        return None
    assert_round_trips(cmd)
    return cmd


# --- adversarial strategies -------------------------------------------------------------------------------------
# Plain st.text over chosen alphabets: composite strategies (from_regex, lists of one_of) cost ~50x more per example.

_SAFE = "ABCXYZabcxyz0189-"
_NASTY = "\"\\;[]{}$?()=~#`'\n\r\t\x00\x7f /.-_:,@+*^|\u00e9\U0001f4a5\u2028\u017f\u212a"
nasty_text = st.text(alphabet=st.sampled_from(_SAFE + _NASTY) | st.characters(), max_size=16)
slots = st.text(alphabet=_SAFE, min_size=1, max_size=130) | nasty_text
# Mostly path characters, so that a good share of paths is accepted and the builders' output gets checked. (A list
# of sampled characters keeps the weights; st.text would fold the alphabet into a plain character set.)
_path_chars = st.sampled_from(list("abz09._-/" * 30) + list(_NASTY))
path_texts = (
    st.tuples(st.sampled_from(["", "/", BASE + "/"]), st.lists(_path_chars, max_size=20).map("".join)).map("".join)
    | nasty_text
)
sizes = st.integers(min_value=-(2**64), max_value=2**64)
host_nqns = (
    nasty_text
    | st.uuids().map(lambda u: f"nqn.2014-08.org.nvmexpress:uuid:{u}")
    | nasty_text.map(lambda s: f"nqn.2014-08.org.example:{s}")
)


def _confined(text: str) -> RouterPath | None:
    try:
        path = confine(BASE, text)
    except InvalidArgument:
        return None
    assert path.disk_path == BASE or path.disk_path.startswith(BASE + "/")
    assert SAFE_PATH_RE.fullmatch(path.disk_path)
    assert ".." not in path.segments
    return path


@FUZZ
@given(slot=slots, size=sizes, port=st.sampled_from([-1, 0, 1, 4420, 65535, 65536]), source=path_texts)
def test_fuzz_build_disk_add(slot: str, size: int, port: int, source: str) -> None:
    try:
        file_path = backing_file_path(BASE, slot)
    except InvalidArgument:
        file_path = confine(BASE, "x.img")  # still exercise the builder: it must refuse the mismatched name
    copy_from = _confined(source)
    size_arg = size if copy_from is None else None  # a copy is sized like its source
    cmd = check(
        lambda: build_disk_add(slot=slot, file_path=file_path, size_bytes=size_arg, port=port, copy_from=copy_from)
    )
    if cmd is not None:
        assert cmd.arg("slot") == slot
        assert cmd.arg("file-path") == f"{BASE}/{slot}.img"
        assert cmd.arg("copy-from") == (None if copy_from is None else copy_from.disk_path)
        assert cmd.arg("nvme-tcp-server-nqn") == "nqn.2000-02.com.mikrotik:" + slot.lower()
        file_size = cmd.arg("file-size")
        if copy_from is None:
            assert isinstance(file_size, str) and int(file_size.removesuffix("M")) * MIB >= size
        else:
            assert file_size is None


@FUZZ
@given(slot=slots, prefix=slots | st.just(""), size=sizes)
def test_fuzz_slot_builders_get_list_resize_remove_traffic(slot: str, prefix: str, size: int) -> None:
    if (cmd := check(lambda: build_disk_get(slot))) is not None:
        assert cmd.where[0].value == slot
    if (cmd := check(lambda: build_disk_get_with_nqn_holders(slot))) is not None:
        assert [c.value for c in cmd.where] == [slot, "nqn.2000-02.com.mikrotik:" + slot.lower()]
    if (cmd := check(lambda: build_disk_list(prefix))) is not None:
        assert cmd.where[0].value == "^" + prefix
    if (cmd := check(lambda: build_disk_resize(slot, size))) is not None:
        assert cmd.find[0].value == slot
    if (cmd := check(lambda: build_disk_remove(slot))) is not None:
        assert cmd.find[0].value == slot
    if (cmd := check(lambda: build_disk_traffic(slot))) is not None:
        assert cmd.target == slot


@FUZZ
@given(slot=slots, port=st.sampled_from([-1, 0, 1, 4420, 65535, 65536]), marker=host_nqns, source=path_texts)
def test_fuzz_export_and_marked_copy_builders(slot: str, port: int, marker: str, source: str) -> None:
    if (cmd := check(lambda: build_disk_export(slot, port))) is not None:
        assert cmd.find[0].value == slot
        assert cmd.arg("nvme-tcp-server-nqn") == "nqn.2000-02.com.mikrotik:" + slot.lower()
    copy_from = _confined(source)
    if copy_from is None:
        return
    try:
        file_path = backing_file_path(BASE, slot)
    except InvalidArgument:
        return
    cmd = check(
        lambda: build_disk_add(
            slot=slot, file_path=file_path, size_bytes=None, port=None, copy_from=copy_from, export=False,
            marker_nqn=marker,
        )
    )  # fmt: skip
    if cmd is not None:
        assert cmd.arg("nvme-tcp-server-nqn") == marker


@FUZZ
@given(slot=slots, hosts=st.lists(host_nqns, max_size=4))
def test_fuzz_build_disk_set_allowed_hosts(slot: str, hosts: list[str]) -> None:
    cmd = check(lambda: build_disk_set_allowed_hosts(slot, hosts))
    if cmd is not None:
        expected = ",".join(dict.fromkeys(hosts))
        assert cmd.arg("nvme-tcp-server-allow-host-name") == expected


@FUZZ
@given(text=path_texts, mount_point=st.text(alphabet="abz09._-/", max_size=20) | nasty_text)
def test_fuzz_path_builders_file_remove_file_list_pool_capacity(text: str, mount_point: str) -> None:
    path = _confined(text)
    if path is not None:
        removed = check(lambda: build_file_remove(path))
        listed = check(lambda: build_file_list(path))
        got = check(lambda: build_file_get(path))
        backing = check(lambda: build_disk_backed_by([path, path]))
        assert removed is not None and listed is not None and got is not None and backing is not None
        assert removed.find[0].value == path.file_name
        assert listed.where[0].value == "^" + path.file_name.replace(".", "[.]") + "/"
        assert got.where[0].value == path.file_name
        assert [c.value for c in backing.where] == [path.disk_path] * 2
        if (found := check(lambda: build_file_find(path, mount_point))) is not None:
            assert SAFE_PATH_RE.fullmatch("/" + mount_point)
            assert found.where[0].value.endswith("/(.+/)?" + mount_point.replace(".", "[.]") + "$")
    if (cmd := check(lambda: build_pool_capacity(mount_point))) is not None:
        assert SAFE_PATH_RE.fullmatch("/" + cmd.where[0].value)


@FUZZ
@given(value=st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_fuzz_quote_round_trips_any_text(value: str) -> None:
    assert tokenize(quote(value)) == [Tok("string", value)]


def test_tokenizer_rejects_what_the_renderer_must_never_emit() -> None:
    for line in ['/disk print where slot="a";/system reboot', '/disk print where slot="$a"', "/disk print\n", 'x="a']:
        try:
            parse_line(line)
        except TokenizeError:
            continue
        raise AssertionError(f"tokenizer accepted {line!r}")
