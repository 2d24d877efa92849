"""Sans-IO parsers: RouterOS console text or REST JSON in, typed records (:mod:`.models`) out.

``print detail`` grammar accepted by :func:`parse_detail`:

* An optional legend first: a line starting with ``Flags:`` (or ``Columns:``) plus any following lines without
  ``=``; it is skipped.
* Entries are separated by blank lines, or start at a line whose first token is an index (``" 1  type=..."``).
  An index line only starts a new entry when its number is larger than the current entry's and it is indented
  less than the current entry's continuation lines, so a wrapped value that happens to start with digits
  (``091 200``) is never mistaken for an entry. The first entry may lack an index (single-item prints do).
* After the index: optional flag letters of either case, in one run or several (``X``, ``BM``, ``t``, ``Bt``,
  ``Ac``, ``*``...), and an optional ``;;; comment`` running to the end of the line (stored under ``comment``; bare
  tokens on the next line continue it). Flags are recognised only there, on an entry's first line, where a
  property (``key=``) is the only other thing that may stand, and each letter at most once per entry; the letters
  are kept as printed, and the ones the driver does not know mean nothing to it (only ``X``, disabled, is read).
* Properties are ``key=value``; keys are lower-case RouterOS identifiers. A value is either double-quoted, with
  RouterOS escapes (``\\"`` ``\\\\`` ``\\n`` ``\\t`` ``\\r`` ``\\$`` ``\\?`` ``\\_`` ``\\a`` ``\\b`` ``\\f``
  ``\\v`` and ``\\HH`` bytes, decoded as UTF-8), or unquoted up to the next space.
* A token without ``=`` continues the previous value. **Wrap rule**: RouterOS breaks detail output between
  properties and only cuts inside a value when the value alone is wider than the console; such a cut falls at a
  column, not at a space. So a bare token that *starts a continuation line* is glued to the previous value with
  no separator (``file-path=/storage-pool/very/lo`` + ``ng/path.img``), while a bare token *within a line* is
  joined with one space (``type=.img file``, ``size=53 687 091 200``, ``last-modified=2025-11-11 16:47:07``).
  A quoted value left open at the end of a line continues likewise, after the next line's indentation. The
  price: a space that falls exactly on a wrap point is lost; the number parsers tolerate that for digit groups.
* Empty output is an empty list.

Records come back as ``dict[str, str]`` with two reserved keys that RouterOS never uses: :data:`INDEX_KEY`
(``".index"``, the printed number) and :data:`FLAGS_KEY` (``".flags"``, the flag letters), present only when
printed. REST records are plain JSON objects whose values are all strings; ``.id`` is the item id.

Anything that does not fit raises :class:`rds_csi.core.errors.Internal`: it is an answer we do not understand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from rds_csi.core.errors import Internal, NotFound
from rds_csi.routeros.models import Disk, DiskTraffic, FileEntry, PoolCapacity, SystemResource
from rds_csi.routeros.units import parse_duration, parse_int, parse_percent, parse_rate, parse_size

INDEX_KEY = ".index"
FLAGS_KEY = ".flags"
COMMENT_KEY = "comment"

_LEGEND_PREFIXES = ("Flags:", "Columns:")
_INDEX_RE = re.compile(r"( *)([0-9]+)(?= |$)")
_FLAG_RE = re.compile(r"[A-Za-z*+]+(?= |$)")
_KEY_RE = re.compile(r"([a-z][a-z0-9.-]*)=")
_KV_LINE_RE = re.compile(r" *([a-z][a-z0-9.-]*):(?: +(.*))?")
_HEX = frozenset("0123456789ABCDEF")
_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "$": "$",
    "?": "?",
    "_": " ",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}
_TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%b/%d/%Y %H:%M:%S")

T = TypeVar("T")


def unescape(body: str) -> str:
    """Decode the inside of a RouterOS double-quoted string (the quotes themselves already removed)."""
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 == len(body):
            out += char.encode("utf-8", "surrogatepass")
            i += 1
            continue
        pair = body[i + 1 : i + 3]
        if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
            out.append(int(pair, 16))
            i += 3
            continue
        following = body[i + 1]
        # An unknown escape keeps its character, as the console does.
        out += _SIMPLE_ESCAPES.get(following, following).encode("utf-8", "surrogatepass")
        i += 2
    return out.decode("utf-8", "replace")


def _token_end(line: str, pos: int) -> int:
    end = line.find(" ", pos)
    return len(line) if end < 0 else end


def _skip_spaces(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] == " ":
        pos += 1
    return pos


class _Entry:
    """Accumulates one ``print detail`` entry across its lines."""

    def __init__(self, index: int | None) -> None:
        self.index = index
        self.props: dict[str, str] = {}
        self.flags = ""
        self.property_column = 0
        self.continuation_indent: int | None = None
        self._last_key: str | None = None
        self._open_key: str | None = None
        self._raw: list[str] = []
        self._escape_pending = False

    def starts_new_entry(self, line: str) -> bool:
        match = _INDEX_RE.match(line)
        if match is None:
            return False
        if self.index is not None and int(match.group(2)) <= self.index:
            return False
        threshold = self.continuation_indent if self.continuation_indent is not None else self.property_column
        return len(match.group(1)) < threshold

    def first_line(self, line: str, pos: int) -> None:
        while True:
            pos = _skip_spaces(line, pos)
            if line.startswith(";;;", pos):
                self.props[COMMENT_KEY] = line[pos + 3 :].strip()
                self._last_key = COMMENT_KEY
                self.property_column = len(line)
                return
            flag = _FLAG_RE.match(line, pos)
            # A letter marks one state, so an entry never prints it twice; a word that repeats one ("garbage") is
            # text we do not understand, not flags.
            if flag is None or len(set(self.flags + flag.group(0))) != len(self.flags) + len(flag.group(0)):
                break
            self.flags += flag.group(0)
            pos = flag.end()
        self.property_column = pos
        self._feed(line, pos, wrapped=False)

    def continuation(self, line: str) -> None:
        pos = _skip_spaces(line, 0)
        if self.continuation_indent is None:
            self.continuation_indent = pos
        self._feed(line, pos, wrapped=True)

    def _feed(self, line: str, pos: int, *, wrapped: bool) -> None:
        if self._open_key is not None:
            pos = self._read_quoted(line, pos)
            if self._open_key is not None:
                return
            wrapped = False
        first_token = True
        while (pos := _skip_spaces(line, pos)) < len(line):
            key = _KEY_RE.match(line, pos)
            if key is not None:
                pos = key.end()
                if line.startswith('"', pos):
                    self._open_key, self._raw, self._escape_pending = key.group(1), [], False
                    pos = self._read_quoted(line, pos + 1)
                    if self._open_key is not None:
                        return
                else:
                    end = _token_end(line, pos)
                    self.props[key.group(1)] = line[pos:end]
                    self._last_key, pos = key.group(1), end
            else:
                end = _token_end(line, pos)
                if self._last_key is None:
                    raise Internal(f"cannot parse RouterOS output line {line.strip()!r}: value without a key")
                separator = "" if wrapped and first_token else " "
                self.props[self._last_key] += separator + line[pos:end]
                pos = end
            first_token = False

    def _read_quoted(self, line: str, pos: int) -> int:
        """Consume quoted text up to the closing quote; returns the position after it (or the line end)."""
        start = pos
        while pos < len(line):
            char = line[pos]
            if self._escape_pending:
                self._escape_pending = False
            elif char == "\\":
                self._escape_pending = True
            elif char == '"':
                self._raw.append(line[start:pos])
                assert self._open_key is not None
                self.props[self._open_key] = unescape("".join(self._raw))
                self._last_key, self._open_key = self._open_key, None
                return pos + 1
            pos += 1
        self._raw.append(line[start:pos])
        return pos

    def finish(self) -> dict[str, str]:
        if self._open_key is not None:
            raise Internal(f"RouterOS output ends inside the quoted value of {self._open_key!r}")
        record = dict(self.props)
        if self.index is not None:
            record[INDEX_KEY] = str(self.index)
        if self.flags:
            record[FLAGS_KEY] = self.flags
        return record


def parse_detail(text: str) -> list[dict[str, str]]:
    """Parse ``print detail`` output into one ``dict`` per entry (see the module docstring for the grammar)."""
    entries: list[_Entry] = []
    current: _Entry | None = None
    in_legend = False
    for raw_line in text.splitlines():
        line = raw_line.rstrip()
        if not line:
            current, in_legend = None, False
            continue
        if current is None and line.lstrip().startswith(_LEGEND_PREFIXES):
            in_legend = True
            continue
        index = _INDEX_RE.match(line)
        if in_legend and "=" not in line and index is None:
            continue
        in_legend = False
        if current is None or current.starts_new_entry(line):
            current = _Entry(int(index.group(2)) if index else None)
            entries.append(current)
            current.first_line(line, index.end() if index else 0)
        else:
            current.continuation(line)
    return [entry.finish() for entry in entries]


def parse_key_values(text: str) -> dict[str, str]:
    """Parse the ``key: value`` block of ``monitor-traffic ... once`` or ``/system resource print``.

    Keys may be right-aligned. A line that is not ``key: value`` continues the previous value without a separator
    (the same wrap rule as :func:`parse_detail`). A fully quoted value is unescaped.
    """
    props: dict[str, str] = {}
    last: str | None = None
    for raw_line in text.splitlines():
        line = raw_line.rstrip()
        if not line:
            continue
        match = _KV_LINE_RE.fullmatch(line)
        if match is None:
            if last is None:
                raise Internal(f"cannot parse RouterOS output line {line.strip()!r}: expected 'key: value'")
            props[last] += line.strip()
            continue
        key = match.group(1)
        if key in props:
            raise Internal(f"RouterOS output repeats {key!r}: expected a single 'key: value' block")
        props[key] = match.group(2) or ""
        last = key
    return {
        key: unescape(value[1:-1]) if len(value) >= 2 and value[0] == value[-1] == '"' else value
        for key, value in props.items()
    }


def parse_bool(text: str) -> bool:
    """``yes``/``true`` -> True, ``no``/``false`` -> False (console and REST spellings)."""
    lowered = text.strip().lower()
    if lowered in ("yes", "true"):
        return True
    if lowered in ("no", "false"):
        return False
    raise Internal(f"cannot parse RouterOS boolean {text!r}")


def _optional(props: Mapping[str, str], key: str, parse: Callable[[str], T]) -> T | None:
    value = props.get(key)
    if value is None or value == "":
        return None
    try:
        return parse(value)
    except Internal as exc:
        raise Internal(f"field {key}: {exc.message}") from exc


def _required(props: Mapping[str, str], key: str, what: str) -> str:
    value = props.get(key)
    if value is None or value == "":
        raise Internal(f"RouterOS {what} record has no {key}: {dict(props)!r}")
    return value


def _parse_timestamp(text: str) -> datetime | None:
    for fmt in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _percent_or_number(text: str) -> float:
    # The console prints "25%", REST prints "25".
    return parse_percent(text if text.rstrip().endswith("%") else text + "%")


def _rate_or_number(text: str) -> int:
    # The console prints "12.8Mbps", REST prints bits per second as a plain number.
    return parse_int(text) if text.strip().isdigit() else parse_rate(text)


def _duration_or_millis(text: str) -> timedelta:
    # The console prints "12ms"; REST prints the traffic counters' milliseconds as a plain number.
    return timedelta(milliseconds=parse_int(text)) if text.strip().isdigit() else parse_duration(text)


def disk_from_properties(props: Mapping[str, str]) -> Disk:
    """Build a :class:`Disk` from one record of either transport (``parse_detail`` dict or REST object)."""
    hosts = props.get("nvme-tcp-server-allow-host-name", "")
    flags = frozenset(props.get(FLAGS_KEY, ""))
    return Disk(
        slot=_required(props, "slot", "disk"),
        type=props.get("type", ""),
        file_path=props.get("file-path") or None,
        size_bytes=_optional(props, "size", parse_size),
        file_size_bytes=_optional(props, "file-size", parse_size),
        nvme_export=bool(_optional(props, "nvme-tcp-export", parse_bool)),
        port=_optional(props, "nvme-tcp-server-port", parse_int),
        nqn=props.get("nvme-tcp-server-nqn") or None,
        allowed_hosts=tuple(h for h in (part.strip() for part in hosts.split(",")) if h),
        mount_point=props.get("mount-point") or None,
        disabled="X" in flags or bool(_optional(props, "disabled", parse_bool)),
        item_id=props.get(".id") or None,
        flags=flags,
    )


def file_from_properties(props: Mapping[str, str]) -> FileEntry:
    """Build a :class:`FileEntry` from one record of either transport."""
    return FileEntry(
        name=_required(props, "name", "file"),
        type=props.get("type", ""),
        size_bytes=_optional(props, "size", parse_size),
        last_modified=_optional(props, "last-modified", _parse_timestamp),
        item_id=props.get(".id") or None,
    )


def pool_capacity_from_records(records: Sequence[Mapping[str, str]], mount_point: str) -> PoolCapacity:
    """The capacity of the single pool partition in ``records`` (the answer to ``build_pool_capacity``).

    No record -> ``NotFound`` (the mount point does not exist); several -> ``Internal``.
    """
    if not records:
        raise NotFound(f"no RouterOS disk is mounted at {mount_point!r}")
    if len(records) > 1:
        raise Internal(f"{len(records)} RouterOS disks claim mount point {mount_point!r}")
    (props,) = records
    size = _optional(props, "size", parse_size)
    free = _optional(props, "free", parse_size)
    if size is None or free is None:
        raise Internal(f"RouterOS pool record for {mount_point!r} lacks size or free: {dict(props)!r}")
    return PoolCapacity(size_bytes=size, free_bytes=free)


def traffic_from_properties(props: Mapping[str, str]) -> DiskTraffic:
    """Build a :class:`DiskTraffic` from a ``key: value`` block or a REST object."""
    return DiskTraffic(
        slot=_required(props, "slot", "traffic"),
        read_ops_per_second=_optional(props, "read-ops-per-second", parse_int),
        write_ops_per_second=_optional(props, "write-ops-per-second", parse_int),
        read_rate_bps=_optional(props, "read-rate", _rate_or_number),
        write_rate_bps=_optional(props, "write-rate", _rate_or_number),
        read_time=_optional(props, "read-time", _duration_or_millis),
        write_time=_optional(props, "write-time", _duration_or_millis),
        in_flight_ops=_optional(props, "in-flight-ops", parse_int),
        active_time=_optional(props, "active-time", _duration_or_millis),
        wait_time=_optional(props, "wait-time", _duration_or_millis),
    )


def system_resource_from_properties(props: Mapping[str, str]) -> SystemResource:
    """Build a :class:`SystemResource` from a ``key: value`` block or a REST object."""
    return SystemResource(
        version=_required(props, "version", "system resource"),
        uptime=_optional(props, "uptime", parse_duration),
        cpu_load_percent=_optional(props, "cpu-load", _percent_or_number),
        free_memory_bytes=_optional(props, "free-memory", parse_size),
        total_memory_bytes=_optional(props, "total-memory", parse_size),
        free_hdd_bytes=_optional(props, "free-hdd-space", parse_size),
        total_hdd_bytes=_optional(props, "total-hdd-space", parse_size),
        board_name=props.get("board-name") or None,
        architecture=props.get("architecture-name") or None,
    )


def parse_disks(text: str) -> list[Disk]:
    """Disks from ``/disk print detail`` output."""
    return [disk_from_properties(p) for p in parse_detail(text)]


def parse_files(text: str) -> list[FileEntry]:
    """Files from ``/file print detail`` output."""
    return [file_from_properties(p) for p in parse_detail(text)]


def parse_pool_capacity(text: str, mount_point: str) -> PoolCapacity:
    """Pool capacity from ``/disk print detail where mount-point=...`` output."""
    return pool_capacity_from_records(parse_detail(text), mount_point)


def parse_traffic(text: str) -> DiskTraffic:
    """One sample from ``/disk monitor-traffic <slot> once`` output."""
    return traffic_from_properties(parse_key_values(text))


def parse_system_resource(text: str) -> SystemResource:
    """Health data from ``/system resource print`` output."""
    return system_resource_from_properties(parse_key_values(text))


def rest_records(payload: object) -> list[dict[str, str]]:
    """Normalize a decoded REST answer (a list of objects, or one object) into string records.

    RouterOS sends every value as a JSON string; anything else is a contract change and raises ``Internal``.
    Accepts raw ``str``/``bytes`` JSON as well as already-decoded data.
    """
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError as exc:
            raise Internal(f"RouterOS REST answer is not JSON: {exc}") from exc
    items = payload if isinstance(payload, list) else [payload]
    records = []
    for item in items:
        if not isinstance(item, dict):
            raise Internal(f"RouterOS REST answer holds a {type(item).__name__}, expected an object")
        record: dict[str, str] = {}
        for key, value in item.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise Internal(f"RouterOS REST field {key!r} is not a string: {value!r}")
            record[key] = value
        records.append(record)
    return records


def disks_from_rest(payload: object) -> list[Disk]:
    """Disks from a ``GET /rest/disk`` answer."""
    return [disk_from_properties(r) for r in rest_records(payload)]


def disk_from_rest(obj: object) -> Disk:
    """One disk from a REST object (for example the answer of ``PUT /rest/disk``)."""
    return disk_from_properties(_exactly_one(rest_records(obj), "disk"))


def files_from_rest(payload: object) -> list[FileEntry]:
    """Files from a ``GET /rest/file`` answer."""
    return [file_from_properties(r) for r in rest_records(payload)]


def pool_capacity_from_rest(payload: object, mount_point: str) -> PoolCapacity:
    """Pool capacity from a ``GET /rest/disk?mount-point=...`` answer."""
    return pool_capacity_from_records(rest_records(payload), mount_point)


def traffic_from_rest(payload: object) -> DiskTraffic:
    """One sample from a ``POST /rest/disk/monitor-traffic`` answer (a one-element list)."""
    return traffic_from_properties(_exactly_one(rest_records(payload), "traffic sample"))


def system_resource_from_rest(payload: object) -> SystemResource:
    """Health data from a ``GET /rest/system/resource`` answer (an object, or a one-element list)."""
    return system_resource_from_properties(_exactly_one(rest_records(payload), "system resource"))


def _exactly_one(records: list[dict[str, str]], what: str) -> dict[str, str]:
    if len(records) != 1:
        raise Internal(f"expected one RouterOS {what} record, got {len(records)}")
    return records[0]
