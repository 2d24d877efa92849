"""RouterOS console text: ``print`` (table, ``detail``, ``terse``, ``as-value``) and ``key: value`` blocks.

Layout facts reproduced from captures of a ROSE Data Server (RouterOS 7):
- ``detail``: an index column, then properties as ``key=value`` separated by single spaces, wrapped so a
  line stays below the console width minus one (the device keeps the last column free); continuation lines
  are indented (15 columns under /disk, 5 under /file); a blank line separates entries; no trailing blanks;
  a single value longer than a line is cut at the width and continues on the next line.
- Under /disk, ``size``, ``file-path`` and ``file-size`` always start a new line when the full property set
  is printed (the capture breaks there although the text would fit).
- String properties are quoted (``slot="x"``), paths, enums and dates are not; ``size`` groups digits with
  spaces; ``file-size`` and /file ``size`` are human (``50.0GiB``, ``1024.0MiB``: the larger unit is used
  only once the value exceeds one of it).
- With ``proplist=`` the properties print in the order listed and wrap only at the width.
- An empty result prints nothing; entries with flags get a ``Flags:`` legend line first.

Flag letters (:class:`FlagColumn`): by default only ``X`` for a disabled entry, under ``Flags: X - disabled``, as the
simulator always printed; ``documented`` prints every letter of the Disks manual's legend that applies to the entry
(``X`` disabled, ``B`` block device, ``M`` mounted, lower-case ``t`` NVMe/TCP export: runs such as ``BM`` or
``Bt``), and the legend can be left out. Either way the letters sit between the index and the first property.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(enum.Enum):
    STRING = "string"  # quoted in the console
    ATOM = "atom"  # printed bare: paths, enums, names
    BOOL = "bool"  # yes/no in the console, true/false over REST
    INT = "int"
    GROUPED = "grouped"  # bytes with digits grouped by spaces
    HUMAN = "human"  # bytes in KiB/MiB/GiB/TiB with one decimal
    PERCENT = "percent"
    TIME = "time"


@dataclass(frozen=True, slots=True)
class Prop:
    name: str
    kind: Kind
    new_line: bool = False


class FlagStyle(StrEnum):
    DISABLED = "disabled"  # only X, for a disabled entry
    DOCUMENTED = "documented"  # every letter of the manual's legend that applies


@dataclass(frozen=True, slots=True)
class FlagColumn:
    """Which flag letters entries show, and whether a ``Flags:`` legend line comes first."""

    style: FlagStyle = FlagStyle.DISABLED
    legend: bool = True


PLAIN_FLAGS = FlagColumn()


@dataclass(frozen=True, slots=True)
class Flag:
    """One flag letter: its legend name and when an entry carries it; ``basic`` ones print in every style."""

    letter: str
    name: str
    applies: Callable[[Mapping[str, Any]], bool]
    basic: bool = False


@dataclass(frozen=True, slots=True)
class Menu:
    """How one menu prints: its properties in order, detail indentation and flag letters (in legend order)."""

    props: tuple[Prop, ...]
    first_gap: int
    continuation: int
    flags: tuple[Flag, ...] = ()
    table_columns: tuple[str, ...] = ()

    def prop(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)


DISK_MENU = Menu(
    props=(
        Prop("type", Kind.ATOM, new_line=True),
        Prop("slot", Kind.STRING),
        Prop("slot-default", Kind.STRING),
        Prop("parent", Kind.STRING),
        Prop("fs", Kind.ATOM),
        Prop("model", Kind.STRING),
        Prop("mount-point", Kind.ATOM),
        Prop("file-system", Kind.ATOM),
        Prop("size", Kind.GROUPED, new_line=True),
        Prop("free", Kind.GROUPED),
        Prop("use", Kind.PERCENT),
        Prop("mount-filesystem", Kind.BOOL),
        Prop("mount-read-only", Kind.BOOL),
        Prop("compress", Kind.BOOL),
        Prop("sector-size", Kind.INT),
        Prop("raid-master", Kind.ATOM),
        Prop("nvme-tcp-export", Kind.BOOL),
        Prop("nvme-tcp-server-port", Kind.INT),
        Prop("nvme-tcp-server-nqn", Kind.STRING),
        Prop("nvme-tcp-server-allow-host-name", Kind.STRING),
        Prop("iscsi-export", Kind.BOOL),
        Prop("nfs-sharing", Kind.BOOL),
        Prop("smb-sharing", Kind.BOOL),
        Prop("media-sharing", Kind.BOOL),
        Prop("media-interface", Kind.ATOM),
        Prop("swap", Kind.BOOL),
        Prop("file-path", Kind.ATOM, new_line=True),
        Prop("file-size", Kind.HUMAN, new_line=True),
        Prop("file-offset", Kind.INT),
    ),
    first_gap=2,
    continuation=15,
    flags=(
        Flag("X", "disabled", lambda r: bool(r.get("disabled")), basic=True),
        Flag("B", "block-device", lambda r: r.get("type") in ("file", "partition")),
        Flag("M", "mounted", lambda r: bool(r.get("mount-point"))),
        Flag("t", "nvme-tcp-export", lambda r: bool(r.get("nvme-tcp-export"))),
    ),
    table_columns=("slot", "type", "file-path", "size"),
)

FILE_MENU = Menu(
    props=(
        Prop("name", Kind.ATOM),
        Prop("type", Kind.ATOM),
        Prop("size", Kind.HUMAN),
        Prop("last-modified", Kind.TIME),
    ),
    first_gap=3,
    continuation=5,
    table_columns=("name", "type", "size", "last-modified"),
)

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "$": "\\$", "?": "\\?", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def group_digits(value: int) -> str:
    return f"{value:,}".replace(",", " ")


def human_bytes(value: int) -> str:
    if value <= 1024:
        return str(value)
    scaled = float(value)
    unit = ""
    for candidate in _UNITS:
        if scaled <= 1024:
            break
        scaled /= 1024
        unit = candidate
    return f"{scaled:.1f}{unit}"


def quote(text: str) -> str:
    """A RouterOS double-quoted string, escaping what the console would otherwise interpret."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def console_value(kind: Kind, value: Any) -> str:
    match kind:
        case Kind.STRING:
            return quote(str(value))
        case Kind.BOOL:
            return "yes" if value else "no"
        case Kind.GROUPED:
            return group_digits(int(value))
        case Kind.HUMAN:
            return human_bytes(int(value))
        case Kind.PERCENT:
            return f"{value}%"
        case Kind.TIME:
            return format_time(value)
        case _:
            return str(value)


def api_value(value: Any) -> str:
    """The string a REST or ``as-value`` reply carries: raw numbers, true/false, unquoted text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def format_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _shown(menu: Menu, column: FlagColumn) -> tuple[Flag, ...]:
    return tuple(f for f in menu.flags if f.basic or column.style is FlagStyle.DOCUMENTED)


def _flags(menu: Menu, record: Mapping[str, Any], column: FlagColumn) -> str:
    return "".join(f.letter for f in _shown(menu, column) if f.applies(record))


def _pairs(menu: Menu, record: Mapping[str, Any], proplist: Sequence[str] | None) -> list[tuple[Prop, str]]:
    """The ``key=value`` texts to print: the menu's order, or the proplist's own order when one is given."""
    if proplist is None:
        chosen = [p for p in menu.props if p.name in record]
    else:
        chosen = [p for p in (menu.prop(name) for name in proplist) if p is not None and p.name in record]
    return [(prop, f"{prop.name}={console_value(prop.kind, record[prop.name])}") for prop in chosen]


def _legend(menu: Menu, flag_texts: Iterable[str], column: FlagColumn) -> list[str]:
    used = set("".join(flag_texts))
    if not used or not column.legend:
        return []
    shown = [f for f in _shown(menu, column) if f.letter in used]
    if column.style is FlagStyle.DISABLED:
        return ["Flags: " + ", ".join(f"{f.letter} - {f.name}" for f in shown)]
    return ["Flags: " + "; ".join(f"{f.letter} - {f.name.upper()}" for f in shown)]


def print_detail(
    menu: Menu,
    records: Sequence[Mapping[str, Any]],
    width: int,
    proplist: Sequence[str] | None = None,
    flags: FlagColumn = PLAIN_FLAGS,
) -> str:
    if not records:
        return ""
    flag_texts = [_flags(menu, r, flags) for r in records]
    flag_width = max(len(f) for f in flag_texts)
    limit = width - 2
    lines = _legend(menu, flag_texts, flags)
    for index, (record, letters) in enumerate(zip(records, flag_texts, strict=True)):
        if index:
            lines.append("")
        prefix = f"{index:>2} {letters:<{flag_width}} " if flag_width else f"{index:>2}" + " " * menu.first_gap
        current = prefix
        at_start = True
        indent = " " * menu.continuation
        for prop, text in _pairs(menu, record, proplist):
            forced = prop.new_line and proplist is None and current != prefix
            if not at_start and (forced or len(current) + 1 + len(text) > limit):
                lines.append(current)
                current = indent + text
            else:
                current = current + ("" if at_start else " ") + text
            at_start = False
            # A value too long for any line is cut at the width, as the device does inside long paths.
            while len(current) > limit and current[:limit].strip():
                lines.append(current[:limit])
                current = indent + current[limit:]
        lines.append(current)
    return "\n".join(lines) + "\n"


def print_terse(
    menu: Menu,
    records: Sequence[Mapping[str, Any]],
    proplist: Sequence[str] | None = None,
    flags: FlagColumn = PLAIN_FLAGS,
) -> str:
    lines = []
    for index, record in enumerate(records):
        letters = _flags(menu, record, flags)
        body = " ".join(text for _, text in _pairs(menu, record, proplist))
        lines.append(f"{index:>2} {letters:<1} {body}".rstrip())
    return "".join(line + "\n" for line in lines)


def print_as_value(menu: Menu, records: Sequence[Mapping[str, Any]], proplist: Sequence[str] | None = None) -> str:
    """One record per line: ``.id=*1;key=value;...`` with raw values, properties in menu order."""
    lines = []
    for record in records:
        names = [".id"] if proplist is None or ".id" in proplist else []
        names += [p.name for p in menu.props if p.name in record and (proplist is None or p.name in proplist)]
        lines.append(";".join(f"{name}={api_value(record[name])}" for name in names))
    return "".join(line + "\n" for line in lines)


def print_table(menu: Menu, records: Sequence[Mapping[str, Any]], width: int, flags: FlagColumn = PLAIN_FLAGS) -> str:
    if not records:
        return ""
    flag_texts = [_flags(menu, r, flags) for r in records]
    columns = [menu.prop(c) for c in menu.table_columns]
    header = ["#", *(c.name.upper() for c in columns if c is not None)]
    rows = []
    for index, (record, letters) in enumerate(zip(records, flag_texts, strict=True)):
        cells = [f"{index} {letters}".rstrip()]
        for column in columns:
            if column is None:
                continue
            value = record.get(column.name)
            shown = "" if value is None else console_value(column.kind, value)
            cells.append(shown.strip('"') if column.kind is Kind.STRING else shown)
        rows.append(cells)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = _legend(menu, flag_texts, flags)
    for row in [header, *rows]:
        lines.append(" ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()[: width - 1])
    return "\n".join(lines) + "\n"


def print_block(pairs: Sequence[tuple[str, str]]) -> str:
    """``key: value`` lines with the keys right-aligned two columns past the longest, as monitors print."""
    if not pairs:
        return ""
    key_width = max(len(k) for k, _ in pairs) + 2
    return "".join(f"{key:>{key_width}}: {value}\n" for key, value in pairs)


def bit_rate(bps: int) -> str:
    for threshold, unit in ((1_000_000_000, "Gbps"), (1_000_000, "Mbps"), (1_000, "kbps")):
        if bps >= threshold:
            return f"{bps / threshold:.1f}{unit}"
    return f"{bps}bps"
