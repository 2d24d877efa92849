"""An independent RouterOS console: tokenizer, parser and interpreter for the command subset the driver uses.

It is deliberately stricter than the device where the device would do something dangerous: a second command
(after ``;`` or a newline), a variable (``$x``), a help request (``?``) or a command substitution other than
``[find ...]`` is a syntax error here, never executed. Quoted strings take RouterOS escapes (``\\"`` ``\\\\``
``\\$`` ``\\?`` ``\\_`` ``\\n`` ``\\r`` ``\\t`` ``\\a`` ``\\b`` ``\\f`` ``\\v`` and ``\\XX`` hex), so
everything inside quotes is literal text.

Error texts: problems found while parsing are printed as the console does, without a prefix
(``syntax error (line 1 column 7)``, ``expected end of command (line 1 column 12)``,
``bad command name foo (line 1 column 2)``, ``invalid value for argument file-size``); runtime failures are
printed as ``failure: <reason>``. Both end the exec session with a non-zero status.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rds_csi.core.errors import InvalidArgument, NotFound, RdsCsiError
from rds_csi.simulator.format import (
    DISK_MENU,
    FILE_MENU,
    PLAIN_FLAGS,
    FlagColumn,
    Kind,
    Menu,
    api_value,
    bit_rate,
    human_bytes,
    print_as_value,
    print_block,
    print_detail,
    print_table,
    print_terse,
)
from rds_csi.simulator.model import DISK_ADD_PARAMS, DISK_SET_PARAMS, Model, parse_size


class CliSyntaxError(InvalidArgument):
    """The console refused the text before running anything."""


class TokKind(enum.Enum):
    WORD = "word"
    STRING = "string"
    EQ = "="
    NE = "!="
    TILDE = "~"
    LT = "<"
    GT = ">"
    NOT = "!"
    LBRACK = "["
    RBRACK = "]"
    LPAREN = "("
    RPAREN = ")"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokKind
    text: str
    line: int
    column: int
    spaced: bool  # whitespace (or the start of the text) precedes this token


_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/*@+,%-")
_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "$": "$",
    "?": "?",
    "_": " ",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}
_HEX = frozenset("0123456789ABCDEF")
_OPERATORS = {"=": TokKind.EQ, "~": TokKind.TILDE, "<": TokKind.LT, ">": TokKind.GT}
_BRACKETS = {"[": TokKind.LBRACK, "]": TokKind.RBRACK, "(": TokKind.LPAREN, ")": TokKind.RPAREN}


def _syntax(line: int, column: int) -> CliSyntaxError:
    return CliSyntaxError(f"syntax error (line {line} column {column})")


def _expected_end(token: Token) -> CliSyntaxError:
    return CliSyntaxError(f"expected end of command (line {token.line} column {token.column})")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, line, line_start = 0, 1, 0
    spaced = True
    n = len(text)
    while i < n:
        ch = text[i]
        column = i - line_start + 1
        if ch in " \t\r":
            i += 1
            spaced = True
            continue
        if ch == "\\" and text[i + 1 : i + 2] == "\n":
            i += 2
            line, line_start, spaced = line + 1, i, True
            continue
        if ch in ";\n":
            # A separator is only harmless at the very end: anything after it would be a second command.
            if text[i + 1 :].strip(" \t\r\n;"):
                raise CliSyntaxError(f"expected end of command (line {line} column {column})")
            break
        if ch == '"':
            value, i, line, line_start = _read_string(text, i, line, line_start)
            tokens.append(Token(TokKind.STRING, value, line, column, spaced))
        elif ch == "!":
            if text[i + 1 : i + 2] == "=":
                tokens.append(Token(TokKind.NE, "!=", line, column, spaced))
                i += 2
            else:
                tokens.append(Token(TokKind.NOT, "!", line, column, spaced))
                i += 1
        elif ch in _OPERATORS:
            tokens.append(Token(_OPERATORS[ch], ch, line, column, spaced))
            i += 1
        elif ch in _BRACKETS:
            tokens.append(Token(_BRACKETS[ch], ch, line, column, spaced))
            i += 1
        elif ch in _WORD_CHARS:
            start = i
            while i < n and text[i] in _WORD_CHARS:
                i += 1
            tokens.append(Token(TokKind.WORD, text[start:i], line, column, spaced))
        else:
            raise _syntax(line, column)
        spaced = False
    tokens.append(Token(TokKind.END, "", line, i - line_start + 1, True))
    return tokens


def _read_string(text: str, start: int, line: int, line_start: int) -> tuple[str, int, int, int]:
    # Bytes, as the console holds strings: a \HH escape is one byte, and several make one UTF-8 character.
    out = bytearray()
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return out.decode("utf-8", "replace"), i + 1, line, line_start
        if ch == "\\":
            nxt = text[i + 1 : i + 2]
            pair = text[i + 1 : i + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                out.append(int(pair, 16))
                i += 3
            elif nxt in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[nxt].encode()
                i += 2
            elif nxt == "\n":
                i += 2
                line, line_start = line + 1, i
            else:
                raise _syntax(line, i - line_start + 1)
            continue
        if ch in "$?":
            # Unescaped, the console would substitute a variable or open help: refuse instead.
            raise _syntax(line, i - line_start + 1)
        if ch == "\n":
            line, line_start = line + 1, i + 1
        out += ch.encode("utf-8", "surrogatepass")
        i += 1
    raise _syntax(line, n - line_start + 1)


# ---- parsed commands ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cond:
    prop: str
    op: TokKind | None  # None: the property is true (a flag such as ``disabled``)
    value: str


@dataclass(frozen=True, slots=True)
class Not:
    inner: Expr


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    left: Expr
    right: Expr


Expr = Cond | Not | BoolOp


@dataclass(frozen=True, slots=True)
class ItemRefs:
    refs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FindItems:
    where: Expr | None


Items = ItemRefs | FindItems


@dataclass(frozen=True, slots=True)
class Command:
    menu: tuple[str, ...]
    verb: str
    items: Items | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    modifiers: frozenset[str] = frozenset()
    proplist: tuple[str, ...] | None = None
    where: Expr | None = None
    references: Mapping[str, FindItems] = field(default_factory=dict)  # name=[find ...]: resolved when run

    @property
    def op(self) -> str:
        """The fault-injection class of this command: add, print, set, remove or monitor."""
        return "monitor" if self.verb == "monitor-traffic" else self.verb


@dataclass(frozen=True, slots=True)
class _MenuSpec:
    format: Menu | None
    verbs: frozenset[str]
    queryable: frozenset[str]


_MENUS: dict[tuple[str, ...], _MenuSpec] = {
    ("disk",): _MenuSpec(
        DISK_MENU,
        frozenset({"add", "print", "set", "remove", "monitor-traffic"}),
        frozenset({".id", "disabled", *(p.name for p in DISK_MENU.props)}),
    ),
    ("file",): _MenuSpec(FILE_MENU, frozenset({"print", "remove"}), frozenset({".id", "name", "type", "size"})),
    ("system", "resource"): _MenuSpec(None, frozenset({"print"}), frozenset()),
}
_PRINT_MODIFIERS = frozenset({"detail", "terse", "as-value", "without-paging"})
# Arguments that name an item of the menu, so a [find ...] may stand as their value (it yields the item ids).
_REFERENCE_PARAMS = frozenset({"copy-from"})


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, kind: TokKind) -> Token:
        token = self.peek()
        if token.kind is not kind:
            raise _syntax(token.line, token.column)
        return self.take()

    def command(self) -> Command:
        first = self.peek()
        if first.kind is not TokKind.WORD:
            raise CliSyntaxError(f"expected command name (line {first.line} column {first.column})")
        menu, verb = self.path()
        spec = _MENUS[menu]
        if verb == "print":
            return self.print_args(menu, spec)
        if verb == "add":
            references: dict[str, FindItems] = {}
            params = self.named_params(DISK_ADD_PARAMS, (spec, menu, references))
            return Command(menu, verb, params=params, references=references)
        items = self.items(spec, menu)
        allowed = DISK_SET_PARAMS if verb == "set" else frozenset()
        params = self.named_params(allowed if items is not None else allowed | {"numbers"})
        if "numbers" in params:
            items = ItemRefs(tuple(params.pop("numbers").split(",")))
        modifiers = self.words({"once"}) if verb == "monitor-traffic" else frozenset()
        self.end()
        if items is None:
            raise InvalidArgument("missing value for argument numbers")
        return Command(menu, verb, items=items, params=params, modifiers=modifiers)

    def path(self) -> tuple[tuple[str, ...], str]:
        menu: tuple[str, ...] = ()
        first = True
        while True:
            token = self.peek()
            if token.kind is not TokKind.WORD or self.peek(1).kind in (TokKind.EQ, TokKind.NE):
                raise CliSyntaxError(f"expected command name (line {token.line} column {token.column})")
            self.take()
            text, column = token.text, token.column
            if first and text.startswith("/"):
                text, column = text[1:], column + 1
            first = False
            segments = text.split("/")
            for index, segment in enumerate(segments):
                if any(key[: len(menu) + 1] == (*menu, segment) for key in _MENUS):
                    menu = (*menu, segment)
                elif menu in _MENUS and segment in _MENUS[menu].verbs and index == len(segments) - 1:
                    return menu, segment
                else:
                    raise CliSyntaxError(f"bad command name {segment} (line {token.line} column {column})")
                column += len(segment) + 1

    def print_args(self, menu: tuple[str, ...], spec: _MenuSpec) -> Command:
        modifiers = set()
        proplist: tuple[str, ...] | None = None
        where: Expr | None = None
        while self.peek().kind is not TokKind.END:
            token = self.peek()
            is_word = token.kind is TokKind.WORD
            if is_word and token.text == "where" and spec.format is not None:
                self.take()
                where = self.expression(spec, closing=TokKind.END)
                break
            if is_word and token.text in _PRINT_MODIFIERS and self.peek(1).kind is not TokKind.EQ:
                modifiers.add(self.take().text)
                continue
            if is_word and token.text == "proplist" and spec.format is not None:
                names = tuple(n for n in self.named_params(frozenset({"proplist"}))["proplist"].split(",") if n)
                if not set(names) <= spec.queryable:
                    raise InvalidArgument("invalid value for argument proplist")
                proplist = names
                continue
            raise _expected_end(token)
        if len(modifiers & {"detail", "terse", "as-value"}) > 1:
            raise InvalidArgument("detail, terse and as-value can not be combined")
        return Command(menu, "print", modifiers=frozenset(modifiers), proplist=proplist, where=where)

    def items(self, spec: _MenuSpec, menu: tuple[str, ...]) -> Items | None:
        token = self.peek()
        if token.kind is TokKind.LBRACK:
            self.take()
            head = self.expect(TokKind.WORD)
            if head.text.startswith("/"):
                segments = tuple(head.text[1:].split("/"))
                if segments == menu and self.peek().kind is TokKind.WORD and self.peek().text == "find":
                    self.take()
                elif segments != (*menu, "find"):
                    raise CliSyntaxError(f"bad command name {head.text} (line {head.line} column {head.column})")
            elif head.text != "find":
                raise CliSyntaxError(f"bad command name {head.text} (line {head.line} column {head.column})")
            if self.peek().kind is TokKind.WORD and self.peek().text == "where":
                self.take()
            where = None if self.peek().kind is TokKind.RBRACK else self.expression(spec, closing=TokKind.RBRACK)
            self.expect(TokKind.RBRACK)
            return FindItems(where)
        if token.kind is TokKind.STRING:
            self.take()
            return ItemRefs((token.text,))
        if token.kind is TokKind.WORD and self.peek(1).kind is not TokKind.EQ and token.text != "once":
            self.take()
            return ItemRefs(tuple(token.text.split(",")))
        return None

    def named_params(
        self,
        allowed: frozenset[str],
        finds: tuple[_MenuSpec, tuple[str, ...], dict[str, FindItems]] | None = None,
    ) -> dict[str, str]:
        """``name=value`` arguments; with ``finds``, a reference argument's ``[find ...]`` goes into its dict."""
        params: dict[str, str] = {}
        while self.peek().kind is TokKind.WORD and self.peek(1).kind is TokKind.EQ:
            name = self.peek()
            if name.text not in allowed or name.text in params or (finds is not None and name.text in finds[2]):
                raise _expected_end(name)
            self.take()
            eq = self.take()
            value = self.peek()
            if not name.spaced or eq.spaced:
                raise _syntax(eq.line, eq.column)
            reference = finds is not None and name.text in _REFERENCE_PARAMS
            if value.kind is TokKind.LBRACK and not value.spaced and reference and finds is not None:
                spec, menu, references = finds
                found = self.items(spec, menu)
                assert isinstance(found, FindItems)  # items() reads a bracket as [find ...] or refuses it
                references[name.text] = found
            elif value.kind in (TokKind.WORD, TokKind.STRING) and not value.spaced:
                params[name.text] = self.take().text
            elif value.kind is TokKind.END or value.spaced:
                params[name.text] = ""
            else:
                raise _syntax(value.line, value.column)
        return params

    def words(self, allowed: set[str]) -> frozenset[str]:
        found = set()
        while self.peek().kind is TokKind.WORD and self.peek().text in allowed:
            found.add(self.take().text)
        return frozenset(found)

    def end(self) -> None:
        token = self.peek()
        if token.kind is not TokKind.END:
            raise _expected_end(token)

    # expression := or ; or := and ("or" and)* ; and := unary (["and"] unary)* ; unary := ("!"|"not") unary | atom
    def expression(self, spec: _MenuSpec, closing: TokKind) -> Expr:
        left = self.conjunction(spec, closing)
        while self.peek().kind is TokKind.WORD and self.peek().text == "or":
            self.take()
            left = BoolOp("or", left, self.conjunction(spec, closing))
        return left

    def conjunction(self, spec: _MenuSpec, closing: TokKind) -> Expr:
        left = self.unary(spec, closing)
        while self.peek().kind not in (closing, TokKind.RPAREN, TokKind.END) and not (
            self.peek().kind is TokKind.WORD and self.peek().text == "or"
        ):
            if self.peek().kind is TokKind.WORD and self.peek().text == "and":
                self.take()
            left = BoolOp("and", left, self.unary(spec, closing))
        return left

    def unary(self, spec: _MenuSpec, closing: TokKind) -> Expr:
        token = self.peek()
        if token.kind is TokKind.NOT or (token.kind is TokKind.WORD and token.text == "not"):
            self.take()
            return Not(self.unary(spec, closing))
        if token.kind is TokKind.LPAREN:
            self.take()
            inner = self.expression(spec, TokKind.RPAREN)
            self.expect(TokKind.RPAREN)
            return inner
        if token.kind is not TokKind.WORD or token.text not in spec.queryable:
            raise _syntax(token.line, token.column)
        self.take()
        op = self.peek()
        if op.kind in (TokKind.EQ, TokKind.NE, TokKind.TILDE, TokKind.LT, TokKind.GT):
            self.take()
            value = self.peek()
            if value.kind in (TokKind.WORD, TokKind.STRING) and not value.spaced:
                self.take()
                return Cond(token.text, op.kind, value.text)
            if value.kind in (closing, TokKind.END) or value.spaced:
                return Cond(token.text, op.kind, "")
            raise _syntax(value.line, value.column)
        return Cond(token.text, None, "")


def parse(text: str) -> Command:
    """Parse one console command; raise ``CliSyntaxError``/``InvalidArgument`` with the console's words."""
    parser = _Parser(tokenize(text))
    command = parser.command()
    parser.end()
    return command


# ---- evaluation --------------------------------------------------------------------------------------


def _canonical(menu: Menu | None, prop: str, value: str) -> str:
    spec = menu.prop(prop) if menu is not None else None
    if prop == "disabled" or (spec is not None and spec.kind is Kind.BOOL):
        lowered = value.lower()
        return {"yes": "true", "no": "false"}.get(lowered, lowered)
    if spec is not None and spec.kind in (Kind.GROUPED, Kind.HUMAN, Kind.INT) and value:
        try:
            return str(parse_size(prop, value.replace(" ", "")))
        except InvalidArgument:
            return value
    return value


def matches(expr: Expr | None, record: Mapping[str, Any], menu: Menu | None) -> bool:
    if expr is None:
        return True
    if isinstance(expr, Not):
        return not matches(expr.inner, record, menu)
    if isinstance(expr, BoolOp):
        if expr.op == "and":
            return matches(expr.left, record, menu) and matches(expr.right, record, menu)
        return matches(expr.left, record, menu) or matches(expr.right, record, menu)
    present = expr.prop in record
    actual = api_value(record[expr.prop]) if present else ""
    if expr.op is None:
        return present and actual == "true"
    if expr.op is TokKind.TILDE:
        try:
            return present and re.search(expr.value, actual) is not None
        except re.error as exc:
            raise InvalidArgument("invalid value for argument regexp") from exc
    wanted = _canonical(menu, expr.prop, expr.value)
    if expr.op is TokKind.EQ:
        return present and actual == wanted
    if expr.op is TokKind.NE:
        return not present or actual != wanted
    if not present:
        return False
    if actual.isdigit() and wanted.isdigit():
        return int(actual) < int(wanted) if expr.op is TokKind.LT else int(actual) > int(wanted)
    return actual < wanted if expr.op is TokKind.LT else actual > wanted


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """What ``/system resource print`` reports besides uptime. ``version`` is the RouterOS release, as RouterOS
    prints it (``7.21.2 (stable)``); the driver refuses releases without the /disk properties it sets."""

    version: str = "7.21.2 (stable)"
    build_time: str = "2026-01-28 10:06:42"
    factory_software: str = "7.19.4"
    board_name: str = "RDS2216"
    architecture: str = "arm64"
    cpu: str = "ARM64"
    cpu_count: int = 16
    cpu_frequency_mhz: int = 2000
    cpu_load_percent: int = 1
    total_memory: int = 32 * 1024**3
    free_memory: int = 30 * 1024**3
    total_hdd_space: int = 1024**3
    free_hdd_space: int = 900 * 1024**2
    write_sect_since_reboot: int = 5_218
    write_sect_total: int = 1_940_337
    bad_blocks_percent: int = 0


def resource_pairs(info: SystemInfo, uptime_seconds: float) -> list[tuple[str, Any]]:
    """The properties in the order RouterOS prints them, with raw values (what REST sends, as strings)."""
    return [
        ("uptime", _duration(uptime_seconds)),
        ("version", info.version),
        ("build-time", info.build_time),
        ("factory-software", info.factory_software),
        ("free-memory", info.free_memory),
        ("total-memory", info.total_memory),
        ("cpu", info.cpu),
        ("cpu-count", info.cpu_count),
        ("cpu-frequency", info.cpu_frequency_mhz),
        ("cpu-load", info.cpu_load_percent),
        ("free-hdd-space", info.free_hdd_space),
        ("total-hdd-space", info.total_hdd_space),
        ("write-sect-since-reboot", info.write_sect_since_reboot),
        ("write-sect-total", info.write_sect_total),
        ("bad-blocks", info.bad_blocks_percent),
        ("architecture-name", info.architecture),
        ("board-name", info.board_name),
        ("platform", "MikroTik"),
    ]


# How the console shows the resource values that carry a unit (REST sends the bare number).
_RESOURCE_UNITS: dict[str, Callable[[Any], str]] = {
    "free-memory": lambda v: human_bytes(int(v)),
    "total-memory": lambda v: human_bytes(int(v)),
    "free-hdd-space": lambda v: human_bytes(int(v)),
    "total-hdd-space": lambda v: human_bytes(int(v)),
    "cpu-frequency": lambda v: f"{v}MHz",
    "cpu-load": lambda v: f"{v}%",
    "bad-blocks": lambda v: f"{v}%",
}


def _duration(seconds: float) -> str:
    total = int(seconds)
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    parts.append(f"{total}s")
    return "".join(parts)


def traffic_pairs(model: Model, disk_id: int, slot: str) -> list[tuple[str, int | str]]:
    t = model.traffic(disk_id)
    return [
        ("slot", slot),
        ("read-ops-per-second", t.read_ops_per_second),
        ("write-ops-per-second", t.write_ops_per_second),
        ("read-rate", t.read_rate),
        ("write-rate", t.write_rate),
        ("read-time", t.read_time),
        ("write-time", t.write_time),
        ("in-flight-ops", t.in_flight_ops),
        ("active-time", t.active_time),
        ("wait-time", t.wait_time),
    ]


_RATE_KEYS = frozenset({"read-rate", "write-rate"})
_TIME_KEYS = frozenset({"read-time", "write-time", "active-time", "wait-time"})


class Interpreter:
    """Runs parsed commands against a ``Model`` and renders the console's text."""

    def __init__(
        self, model: Model, info: SystemInfo, uptime: Callable[[], float], flags: FlagColumn = PLAIN_FLAGS
    ) -> None:
        self.model = model
        self.info = info
        self.uptime = uptime
        self.flags = flags

    def records(self, menu: tuple[str, ...]) -> list[dict[str, Any]]:
        return self.model.disk_records() if menu == ("disk",) else self.model.file_records()

    def resolve(self, menu: tuple[str, ...], items: Items) -> list[str]:
        """Item references to ``.id`` values, in the order given (``[find]`` may yield none)."""
        records = self.records(menu)
        fmt = _MENUS[menu].format
        if isinstance(items, FindItems):
            return [r[".id"] for r in records if matches(items.where, r, fmt)]
        key = "slot" if menu == ("disk",) else "name"
        ids = []
        for ref in items.refs:
            if ref.isdigit():
                if int(ref) >= len(records):
                    raise NotFound("no such item")
                ids.append(records[int(ref)][".id"])
                continue
            found = next((r[".id"] for r in records if ref in (r[".id"], r[key])), None)
            if found is None:
                raise NotFound("no such item")
            ids.append(found)
        return ids

    def run(self, command: Command, width: int, *, short_copy: bool = False) -> str:
        """Run ``command``; ``short_copy`` is a fault: a ``copy-from`` copies only half of its source."""
        menu = command.menu
        if menu == ("system", "resource"):
            pairs = resource_pairs(self.info, self.uptime())
            return print_block([(k, _console_resource(k, v)) for k, v in pairs])
        fmt = _MENUS[menu].format
        assert fmt is not None
        if command.verb == "print":
            records = [r for r in self.records(menu) if matches(command.where, r, fmt)]
            if "as-value" in command.modifiers:
                return print_as_value(fmt, records, command.proplist)
            if "terse" in command.modifiers:
                return print_terse(fmt, records, command.proplist, self.flags)
            if "detail" in command.modifiers or command.proplist is not None:
                return print_detail(fmt, records, width, command.proplist, self.flags)
            return print_table(fmt, records, width, self.flags)
        if command.verb == "add":
            params = dict(command.params)
            for name, find in command.references.items():
                params[name] = ",".join(self.resolve(menu, find))
            self.model.add_disk(params, short_copy=short_copy)
            return ""
        assert command.items is not None
        ids = self.resolve(menu, command.items)
        if command.verb == "set":
            for item in ids:
                self.model.set_disk(_id(item), command.params)
            return ""
        if command.verb == "remove":
            for item in ids:
                if menu == ("disk",):
                    self.model.remove_disk(_id(item))
                else:
                    self.model.remove_file(_id(item))
            return ""
        if "once" not in command.modifiers:
            raise InvalidArgument("monitor-traffic needs once in a non-interactive session")
        by_id = {r[".id"]: r for r in self.model.disk_records()}
        blocks = []
        for item in ids:
            pairs = traffic_pairs(self.model, _id(item), by_id[item]["slot"])
            blocks.append(print_block([(k, _traffic_text(k, v)) for k, v in pairs]))
        return "".join(blocks)


def _id(text: str) -> int:
    return int(text[1:], 16)


def _console_resource(key: str, value: Any) -> str:
    render = _RESOURCE_UNITS.get(key)
    return render(value) if render is not None else str(value)


def _traffic_text(key: str, value: int | str) -> str:
    if key in _RATE_KEYS:
        return bit_rate(int(value))
    if key in _TIME_KEYS:
        return f"{value}ms"
    return str(value)


def render_error(error: RdsCsiError) -> str:
    """The line the console prints for an error: parse-time texts bare, runtime ones as ``failure:``."""
    if isinstance(error, InvalidArgument):
        return error.message
    return f"failure: {error.message}"


def execute(interpreter: Interpreter, text: str, width: int) -> tuple[str, int]:
    """Parse and run one command: (output, exit status). Used where no fault injection sits in between."""
    try:
        return interpreter.run(parse(text), width), 0
    except RdsCsiError as exc:
        return render_error(exc) + "\n", 1
