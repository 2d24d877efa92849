"""RouterOS commands as data, built only from validated values, rendered for the CLI or mapped onto REST.

A :class:`Command` says *what* to run (menu, verb, arguments, filters, flags); the ``build_*`` functions are the
only intended constructors and accept nothing that :mod:`rds_csi.routeros.names` / :mod:`.units` did not
validate. Two renderings exist:

* :func:`render_cli` produces one console line. Every value — arguments, filter operands and the unnamed target —
  is double-quoted and escaped (``\\"`` ``\\\\`` ``\\$`` ``\\?`` ``\\n`` ``\\r`` ``\\t``; any other byte outside
  printable ASCII as ``\\HH`` of its UTF-8 encoding, upper-case hex as RouterOS requires). Outside the quotes the
  line holds only fixed identifiers from this module, so no value can end a command, start a second one
  (``;``, newline), substitute a variable (``$``) or a command (``[...]``), or ask for help (``?``).
* :func:`to_rest` maps the same operation onto the RouterOS REST API as a :class:`RestRequest`. REST has no
  ``[find]``: ``set``/``remove`` become a two-step plan, a ``GET`` lookup whose matching records' ``.id`` values
  are substituted into the ``PATCH``/``DELETE`` path. The API's queries cannot express the console's ``~``
  (regex) operator, so such conditions travel as ``client_filter`` for the transport to apply to the records.

RouterOS semantics worth knowing when using these builders: ``[find ...]`` that matches nothing makes ``set`` and
``remove`` succeed silently, and matching several items acts on all of them. The REST plan reproduces that (zero
or more ``.id`` values); a caller that must know whether the slot existed asks with :func:`build_disk_get` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeVar

from rds_csi.core.errors import Internal, InvalidArgument
from rds_csi.core.nqn import validate_nqn
from rds_csi.routeros.names import (
    RouterPath,
    nqn_for_volume,
    parse_router_path,
    validate_host_nqns,
    validate_item_id,
    validate_path_segment,
    validate_port,
    validate_slot,
    validate_slot_prefix,
)
from rds_csi.routeros.units import format_file_size, round_up_allocation

DISK_MENU = ("disk",)
FILE_MENU = ("file",)
SYSTEM_RESOURCE_MENU = ("system", "resource")

VERBS = frozenset({"add", "print", "set", "remove", "monitor-traffic"})
FLAGS = frozenset({"detail", "once", "terse", "as-value"})

REST_ROOT = "/rest"
ID_PLACEHOLDER = "{id}"
"""Stands in the path of a :class:`RestRequest` that still needs its item id (see :meth:`RestRequest.with_id`)."""

_IDENTIFIER_RE = re.compile(r"[a-z][a-z0-9-]*")

RecordT = TypeVar("RecordT", bound=Mapping[str, object])


class CopyFromForm(StrEnum):
    """How ``/disk add copy-from=`` names its source. Public RouterOS documentation does not settle which one the
    RDS takes, so the driver sends the configured one and learns from a refusal (``rds_csi.routeros.client``)."""

    FILE = "file"
    """The source disk's backing file: ``copy-from="/pool/dir/src.img"``."""
    DISK = "disk"
    """The source disk itself: ``copy-from=[find slot="src"]`` (REST: ``"copy-from": "src"``)."""

    @property
    def other(self) -> CopyFromForm:
        return CopyFromForm.DISK if self is CopyFromForm.FILE else CopyFromForm.FILE


class Operator(StrEnum):
    """Comparison in a ``where`` / ``[find]`` condition."""

    EQUALS = "="
    MATCHES = "~"
    """POSIX extended regex search, as the console's ``~``."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``key <operator> "value"`` inside ``where`` or ``[find ...]``."""

    key: str
    operator: Operator
    value: str

    def __post_init__(self) -> None:
        _check_identifier(self.key, "condition key")

    def matches(self, properties: Mapping[str, object]) -> bool:
        """Evaluate against one record (console text or REST JSON); a missing or non-string field never matches."""
        actual = properties.get(self.key)
        if not isinstance(actual, str):
            return False
        if self.operator is Operator.EQUALS:
            return actual == self.value
        return re.search(self.value, actual) is not None


@dataclass(frozen=True, slots=True)
class DiskRef:
    """An argument value that names a disk by its slot: ``[find slot="<slot>"]`` on the console (which yields the
    disk's item id), the slot itself over REST (where, as for ``parent=``, a disk is referred to by its name)."""

    slot: str

    def __post_init__(self) -> None:
        validate_slot(self.slot)


ArgValue = str | int | bool | DiskRef


@dataclass(frozen=True, slots=True)
class Arg:
    """A named argument ``name="value"``; ``value`` keeps its type, :attr:`text` is what RouterOS receives."""

    name: str
    value: ArgValue

    def __post_init__(self) -> None:
        _check_identifier(self.name, "argument name")

    @property
    def text(self) -> str:
        """RouterOS spelling: ``yes``/``no`` for booleans, decimal for integers, strings unchanged, a disk
        reference's slot (the REST spelling; the console renders :class:`DiskRef` as ``[find ...]``)."""
        if isinstance(self.value, bool):
            return "yes" if self.value else "no"
        if isinstance(self.value, DiskRef):
            return self.value.slot
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Command:
    """One RouterOS operation. Build it with a ``build_*`` function; render it with :func:`render_cli` or map it
    with :func:`to_rest`.

    ``menu`` is the menu path (``("disk",)``), ``verb`` the command, ``target`` the unnamed parameter
    (``monitor-traffic "x"``), ``find`` the item selector of ``set``/``remove``, ``where`` the filter of
    ``print`` (every condition must hold; with ``where_any``, any one of them), ``flags`` valueless words such as
    ``detail`` or ``once``.
    """

    menu: tuple[str, ...]
    verb: str
    args: tuple[Arg, ...] = ()
    target: str | None = None
    find: tuple[Condition, ...] = ()
    where: tuple[Condition, ...] = ()
    flags: tuple[str, ...] = ()
    where_any: bool = False

    def __post_init__(self) -> None:
        if not self.menu:
            raise InvalidArgument("command menu must not be empty")
        for word in self.menu:
            _check_identifier(word, "menu word")
        if self.verb not in VERBS:
            raise InvalidArgument(f"command verb {self.verb!r} is not one of {sorted(VERBS)}")
        unknown = set(self.flags) - FLAGS
        if unknown:
            raise InvalidArgument(f"command flags {sorted(unknown)} are not among {sorted(FLAGS)}")
        if self.find and self.verb not in ("set", "remove"):
            raise InvalidArgument("only set and remove select items with [find]")
        if self.where and self.verb != "print":
            raise InvalidArgument("only print filters with where")
        if self.where_any and not all(c.operator is Operator.EQUALS for c in self.where):
            # The REST API's query words (what ``or`` maps to there) have no regex operator.
            raise InvalidArgument("only equality conditions can be joined with or")
        if (self.target is not None) != (self.verb == "monitor-traffic"):
            raise InvalidArgument("exactly monitor-traffic takes an unnamed target")

    def arg(self, name: str) -> ArgValue | None:
        """The value of argument ``name``, or ``None`` if the command has none."""
        return next((a.value for a in self.args if a.name == name), None)


def _check_identifier(word: str, what: str) -> None:
    # Identifiers are written unquoted, so they are held to a fixed alphabet even though only this module sets them.
    if not _IDENTIFIER_RE.fullmatch(word):
        raise InvalidArgument(f"{what} {word!r} is not a RouterOS identifier")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "$": "\\$", "?": "\\?", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """Double-quote ``value`` for the RouterOS console so that it reads back as exactly ``value``."""
    out = ['"']
    for char in value:
        escaped = _ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.extend(f"\\{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    out.append('"')
    return "".join(out)


def _render_conditions(conditions: Iterable[Condition], joiner: str = "and") -> str:
    return f" {joiner} ".join(f"{c.key}{c.operator.value}{quote(c.value)}" for c in conditions)


def render_cli(cmd: Command) -> str:
    """Render ``cmd`` as exactly one console line (no newline), every value quoted.

    Shape: ``/<menu> <verb> ["target"] [[find k="v"]] [flags] [name="value" ...] [where k="v" and k~"re"]``
    (``or`` instead of ``and`` with ``where_any``).
    """
    parts = ["/" + " ".join(cmd.menu), cmd.verb]
    if cmd.target is not None:
        parts.append(quote(cmd.target))
    if cmd.find:
        parts.append(f"[find {_render_conditions(cmd.find)}]")
    parts.extend(cmd.flags)
    parts.extend(_render_arg(a) for a in cmd.args)
    if cmd.where:
        parts.append("where " + _render_conditions(cmd.where, "or" if cmd.where_any else "and"))
    return " ".join(parts)


def _render_arg(arg: Arg) -> str:
    if isinstance(arg.value, DiskRef):
        return f"{arg.name}=[find {_render_conditions(_slot_is(arg.value.slot))}]"
    return f"{arg.name}={quote(arg.text)}"


Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RestRequest:
    """One REST call, or the action half of a two-step plan.

    ``query`` holds URL query parameters (equality filters), ``body`` the JSON object (all values strings, as
    RouterOS expects) or ``None`` for no body, ``query_words`` the API query of a ``POST .../print`` (sent as
    ``.query``), ``client_filter`` conditions the transport applies to the returned records (see :meth:`select`).
    When ``lookup`` is set the path contains :data:`ID_PLACEHOLDER`: run ``lookup``, take :meth:`item_ids` of its
    records, and run :meth:`with_id` for each (none at all means nothing to do).
    """

    method: str
    path: str
    query: Pairs = ()
    body: Pairs | None = None
    client_filter: tuple[Condition, ...] = ()
    lookup: RestRequest | None = None
    query_words: tuple[str, ...] = ()

    @property
    def needs_id_lookup(self) -> bool:
        """True if the path still needs an item id from :attr:`lookup`."""
        return self.lookup is not None

    def query_params(self) -> dict[str, str]:
        """The query as a dict for the HTTP client."""
        return dict(self.query)

    @property
    def is_read(self) -> bool:
        """True if the request changes nothing on the router (a lost reply to it is safe to ask again)."""
        return self.method == "GET" or self.path.endswith("/print")

    def json_body(self) -> dict[str, str | list[str]] | None:
        """The JSON body as a dict, or ``None`` when the request has no body."""
        if self.query_words:
            return {".query": list(self.query_words)}
        return None if self.body is None else dict(self.body)

    def select(self, records: Sequence[RecordT]) -> list[RecordT]:
        """The records that satisfy every ``client_filter`` condition, in order (same record type as given)."""
        return [r for r in records if all(c.matches(r) for c in self.client_filter)]

    def item_ids(self, records: Sequence[Mapping[str, object]]) -> tuple[str, ...]:
        """For a lookup: the validated ``.id`` of every selected record."""
        ids = []
        for record in self.select(records):
            item_id = record.get(".id")
            if not isinstance(item_id, str):
                raise Internal(f"RouterOS REST record without a string .id: {dict(record)!r}")
            try:
                ids.append(validate_item_id(item_id, ".id"))
            except InvalidArgument as exc:
                raise Internal(f"RouterOS REST returned a malformed .id: {exc.message}") from exc
        return tuple(ids)

    def with_id(self, item_id: str) -> RestRequest:
        """The action with ``item_id`` substituted; refuses anything but a RouterOS item id (``*1A``)."""
        if self.lookup is None:
            raise InvalidArgument("this REST request does not take an item id")
        return replace(self, path=self.path.replace(ID_PLACEHOLDER, validate_item_id(item_id)), lookup=None)


def _rest_lookup(base: str, conditions: tuple[Condition, ...]) -> RestRequest:
    equalities = tuple((c.key, c.value) for c in conditions if c.operator is Operator.EQUALS)
    # Equalities go to the server to narrow the answer; every condition is re-checked client side, which also
    # covers the regex ones the API cannot express.
    return RestRequest("GET", base, query=equalities, client_filter=conditions)


def to_rest(cmd: Command) -> RestRequest:
    """Map ``cmd`` onto the REST API (``/rest/<menu path>``); pure data, the transport performs it.

    ``print`` -> ``GET`` (filters as query + client filter; ``where_any`` -> ``POST <path>/print`` with the API
    query words ``k=v ... #|``, so the router filters), ``add`` -> ``PUT`` with the arguments as body,
    ``set`` -> lookup + ``PATCH <path>/<.id>``, ``remove`` -> lookup + ``DELETE <path>/<.id>``,
    ``monitor-traffic`` -> ``POST <path>/monitor-traffic`` with ``numbers`` and the flags (``once``) as ``""``.
    The ``detail`` flag has no REST meaning: REST always returns every field.
    """
    base = REST_ROOT + "/" + "/".join(cmd.menu)
    body = tuple((a.name, a.text) for a in cmd.args)
    match cmd.verb:
        case "print" if cmd.where_any:
            words = [f"{c.key}={c.value}" for c in cmd.where] + ["#|"] * (len(cmd.where) - 1)
            return RestRequest("POST", f"{base}/print", query_words=tuple(words))
        case "print":
            return _rest_lookup(base, cmd.where)
        case "add":
            return RestRequest("PUT", base, body=body)
        case "set":
            return RestRequest("PATCH", f"{base}/{ID_PLACEHOLDER}", body=body, lookup=_rest_lookup(base, cmd.find))
        case "remove":
            return RestRequest("DELETE", f"{base}/{ID_PLACEHOLDER}", lookup=_rest_lookup(base, cmd.find))
        case _:  # monitor-traffic: Command.__post_init__ guarantees a target
            assert cmd.target is not None
            flags = tuple((flag, "") for flag in cmd.flags)
            return RestRequest("POST", f"{base}/{cmd.verb}", body=(("numbers", cmd.target), *flags))


def _require_path(value: object, field: str) -> RouterPath:
    if not isinstance(value, RouterPath):
        raise InvalidArgument(f"{field} must be a RouterPath from confine() or backing_file_path()")
    return value


def _slot_is(slot: str) -> tuple[Condition, ...]:
    return (Condition("slot", Operator.EQUALS, slot),)


def _literal(text: str) -> str:
    # Validated names and paths use only [A-Za-z0-9._/-]; of those only '.' means anything to a regex.
    return text.replace(".", "[.]")


def _prefix_regex(prefix: str) -> str:
    return "^" + _literal(prefix)


@dataclass(frozen=True, slots=True)
class CopySource:
    """The disk a copy is made from, known both ways ``copy-from`` may name it."""

    slot: str
    file_path: RouterPath

    def argument(self, form: CopyFromForm) -> RouterPath | DiskRef:
        """The ``copy_from`` value of :func:`build_disk_add` in ``form``."""
        return self.file_path if form is CopyFromForm.FILE else DiskRef(self.slot)


def build_disk_add(
    *,
    slot: str,
    file_path: RouterPath,
    size_bytes: int | None,
    port: int | None,
    copy_from: RouterPath | DiskRef | None = None,
    export: bool = True,
    marker_nqn: str | None = None,
) -> Command:
    """``/disk add`` of a file-backed disk, exported over NVMe/TCP unless ``export`` is false.

    The NQN is always :func:`nqn_for_volume` of ``slot`` and the backing file must be named ``<slot>.img``
    (docs/architecture.md §3). ``size_bytes`` is rounded **up** to whole MiB. ``copy_from`` makes a copy-on-write
    copy of the source, named by its backing file path (``copy-from="/pool/dir/src.img"``) or, given a :class:`DiskRef`,
    as the disk itself (``copy-from=[find slot="src"]``): see :class:`CopyFromForm`. A copy takes its
    size from the source, so ``size_bytes`` must be ``None`` with ``copy_from``: grow the copy afterwards with
    :func:`build_disk_resize`. An exported disk needs ``port``; an unexported one (a snapshot) takes none, and
    may carry ``marker_nqn`` instead of its own NQN (the driver marks a copy it has not finished this way; an
    exported disk's NQN is always the slot's, see :func:`build_disk_export`).
    """
    slot = validate_slot(slot)
    path = _require_path(file_path, "file_path")
    if path.segments[-1] != f"{slot}.img":
        raise InvalidArgument(f"file_path must end in {slot}.img for slot {slot}, got {path.disk_path}")
    if (copy_from is None) == (size_bytes is None):
        raise InvalidArgument("size_bytes is required for a new file and must be omitted for a copy")
    args = [Arg("type", "file"), Arg("file-path", path.disk_path)]
    if size_bytes is not None:
        args.append(Arg("file-size", format_file_size(round_up_allocation(size_bytes))))
    args.append(Arg("slot", slot))
    if isinstance(copy_from, DiskRef):
        args.append(Arg("copy-from", copy_from))
    elif copy_from is not None:
        args.append(Arg("copy-from", _require_path(copy_from, "copy_from").disk_path))
    if export:
        if port is None:
            raise InvalidArgument("port is required for an exported disk")
        args += [
            Arg("nvme-tcp-export", True),
            Arg("nvme-tcp-server-port", validate_port(port)),
            Arg("nvme-tcp-server-nqn", nqn_for_volume(slot)),
        ]
        if marker_nqn is not None:
            raise InvalidArgument("marker_nqn is only for an unexported disk")
    else:
        args.append(Arg("nvme-tcp-export", False))
        if marker_nqn is not None:
            args.append(Arg("nvme-tcp-server-nqn", validate_nqn(marker_nqn, "marker_nqn")))
    return Command(DISK_MENU, "add", args=tuple(args))


def build_disk_export(slot: str, port: int) -> Command:
    """``/disk set [find slot="<slot>"] nvme-tcp-export=yes nvme-tcp-server-port=<port> nvme-tcp-server-nqn=<NQN>``:
    export an unexported disk under the slot's own NQN (:func:`nqn_for_volume`), in one change."""
    slot = validate_slot(slot)
    args = (
        Arg("nvme-tcp-export", True),
        Arg("nvme-tcp-server-port", validate_port(port)),
        Arg("nvme-tcp-server-nqn", nqn_for_volume(slot)),
    )
    return Command(DISK_MENU, "set", find=_slot_is(slot), args=args)


def build_disk_get(slot: str) -> Command:
    """``/disk print detail where slot="<slot>"``: zero or one disk."""
    return Command(DISK_MENU, "print", where=_slot_is(validate_slot(slot)), flags=("detail",))


def build_disk_get_with_nqn_holders(slot: str) -> Command:
    """``/disk print detail where slot="<slot>" or nvme-tcp-server-nqn="<NQN of slot>"``: the disk in ``slot``
    and every disk that already uses the NQN a volume in ``slot`` gets (:func:`nqn_for_volume`, lower-cased, so
    slots differing only in case share it)."""
    slot = validate_slot(slot)
    nqn = Condition("nvme-tcp-server-nqn", Operator.EQUALS, nqn_for_volume(slot))
    where = (Condition("slot", Operator.EQUALS, slot), nqn)
    return Command(DISK_MENU, "print", where=where, flags=("detail",), where_any=True)


def build_disk_list(slot_prefix: str = "") -> Command:
    """``/disk print detail where slot~"^<prefix>"``: every disk whose slot starts with ``slot_prefix``."""
    regex = _prefix_regex(validate_slot_prefix(slot_prefix))
    return Command(DISK_MENU, "print", where=(Condition("slot", Operator.MATCHES, regex),), flags=("detail",))


def build_disk_resize(slot: str, size_bytes: int) -> Command:
    """``/disk set [find slot="<slot>"] file-size=<n>M``, ``size_bytes`` rounded **up** to whole MiB."""
    size = format_file_size(round_up_allocation(size_bytes))
    return Command(DISK_MENU, "set", find=_slot_is(validate_slot(slot)), args=(Arg("file-size", size),))


def build_disk_set_allowed_hosts(slot: str, host_nqns: Iterable[str]) -> Command:
    """``/disk set [find slot="<slot>"] nvme-tcp-server-allow-host-name="<nqn>,<nqn>"``.

    RouterOS list properties are comma-separated; duplicates are dropped, order kept; an empty list clears it.
    """
    hosts = ",".join(validate_host_nqns(host_nqns))
    return Command(
        DISK_MENU,
        "set",
        find=_slot_is(validate_slot(slot)),
        args=(Arg("nvme-tcp-server-allow-host-name", hosts),),
    )


def build_disk_remove(slot: str) -> Command:
    """``/disk remove [find slot="<slot>"]`` (a no-op in RouterOS when nothing matches)."""
    return Command(DISK_MENU, "remove", find=_slot_is(validate_slot(slot)))


def build_file_remove(path: RouterPath) -> Command:
    """``/file remove [find name="<path without leading slash>"]``; confine ``path`` to the base first."""
    name = _require_path(path, "path").file_name
    return Command(FILE_MENU, "remove", find=(Condition("name", Operator.EQUALS, name),))


def build_file_get(path: RouterPath) -> Command:
    """``/file print detail where name="<path without leading slash>"``: zero or one file."""
    name = _require_path(path, "path").file_name
    return Command(FILE_MENU, "print", where=(Condition("name", Operator.EQUALS, name),), flags=("detail",))


def build_file_find(directory: RouterPath, file_name: str) -> Command:
    """``/file print detail where name~"^<directory>/(.+/)?<file name>$"``: every file called ``file_name`` in
    ``directory`` or any directory below it."""
    name = validate_path_segment(file_name, "file_name")
    regex = _prefix_regex(_require_path(directory, "directory").file_name + "/") + "(.+/)?" + _literal(name) + "$"
    return Command(FILE_MENU, "print", where=(Condition("name", Operator.MATCHES, regex),), flags=("detail",))


def build_disk_backed_by(paths: Iterable[RouterPath]) -> Command:
    """``/disk print detail where file-path="<path>" or ...``: the disks whose backing file is one of ``paths``."""
    where = tuple(Condition("file-path", Operator.EQUALS, _require_path(p, "path").disk_path) for p in paths)
    if not where:
        raise InvalidArgument("paths must name at least one file")
    return Command(DISK_MENU, "print", where=where, flags=("detail",), where_any=True)


def build_file_list(directory: RouterPath) -> Command:
    """``/file print detail where name~"^<directory>/"``: everything below ``directory`` (not itself)."""
    regex = _prefix_regex(_require_path(directory, "directory").file_name + "/")
    return Command(FILE_MENU, "print", where=(Condition("name", Operator.MATCHES, regex),), flags=("detail",))


def build_pool_capacity(mount_point: str) -> Command:
    """``/disk print detail where mount-point="<mount point>"``: the pool partition with ``size`` and ``free``."""
    name = parse_router_path(mount_point, "mount_point").file_name
    return Command(DISK_MENU, "print", where=(Condition("mount-point", Operator.EQUALS, name),), flags=("detail",))


def build_disk_traffic(slot: str) -> Command:
    """``/disk monitor-traffic "<slot>" once``: one sample of a disk's I/O counters."""
    return Command(DISK_MENU, "monitor-traffic", target=validate_slot(slot), flags=("once",))


def build_health() -> Command:
    """``/system resource print``: cheap liveness probe with version, uptime, load and memory."""
    return Command(SYSTEM_RESOURCE_MENU, "print")
