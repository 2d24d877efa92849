"""Validation of every name, NQN, port and path that may end up in a RouterOS command.

Everything user-controlled passes through here before a command builder sees it, so the builders only ever
handle values from a small, documented alphabet (the NQN grammar itself lives in :mod:`rds_csi.core.nqn`, shared with
the node side). Each failure raises :class:`rds_csi.core.errors.InvalidArgument` whose message starts with the name of
the offending field.

Path model. RouterOS spells the same file two ways: ``/disk`` takes ``file-path=/storage-pool/a/b.img`` (leading
slash) while ``/file`` lists it as ``name=storage-pool/a/b.img`` (no leading slash). :class:`RouterPath` holds the
segments once and renders both forms. Segments are restricted to :data:`PATH_SEGMENT_CHARS` (ASCII letters,
digits, ``.``, ``_`` and ``-``); a segment made only of dots is refused, so no path can name a parent directory
however RouterOS might interpret it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rds_csi.core.errors import InvalidArgument
from rds_csi.core.errors import quote_input as _show
from rds_csi.core.nqn import require_str as _require_str
from rds_csi.core.nqn import validate_host_nqn, validate_nqn

SLOT_MAX_LENGTH = 128
"""Longest slot / volume id accepted (docs/architecture.md §3)."""

MIKROTIK_NQN_PREFIX = "nqn.2000-02.com.mikrotik:"
"""Prefix of every subsystem NQN this driver creates; the volume id (lower-cased) follows it."""

PATH_SEGMENT_CHARS = "A-Z a-z 0-9 . _ -"
"""Characters allowed in one path segment (documentation of :data:`_SEGMENT_RE`)."""

PATH_MAX_LENGTH = 1024
"""Longest rendered ``file-path`` accepted, including the leading slash."""

PATH_SEGMENT_MAX_LENGTH = 255

_SLOT_RE = re.compile(r"[A-Za-z0-9-]{1,128}")
_SLOT_PREFIX_RE = re.compile(r"[A-Za-z0-9-]{0,128}")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")
_ONLY_DOTS_RE = re.compile(r"\.+")
_ITEM_ID_RE = re.compile(r"\*[0-9A-Fa-f]{1,16}")


def validate_slot(value: object, field: str = "slot") -> str:
    """Return ``value`` if it is a valid RouterOS slot / volume id: ``[A-Za-z0-9-]{1,128}``.

    ``field`` names the value in the error message (``"volume_id"``, ``"slot"``, ``"source_volume_id"``...).
    """
    text = _require_str(value, field)
    if not _SLOT_RE.fullmatch(text):
        raise InvalidArgument(
            f"{field} must be 1..{SLOT_MAX_LENGTH} characters of A-Z, a-z, 0-9 and '-', got {_show(value)}"
        )
    return text


def validate_volume_id(value: object) -> str:
    """Return ``value`` if it is a valid volume id (same grammar as a slot, reported as ``volume_id``)."""
    return validate_slot(value, "volume_id")


def validate_slot_prefix(value: object, field: str = "slot_prefix") -> str:
    """Return ``value`` if it is a valid slot prefix: ``[A-Za-z0-9-]{0,128}`` (empty matches every slot)."""
    text = _require_str(value, field)
    if not _SLOT_PREFIX_RE.fullmatch(text):
        raise InvalidArgument(
            f"{field} must be at most {SLOT_MAX_LENGTH} characters of A-Z, a-z, 0-9 and '-', got {_show(value)}"
        )
    return text


def validate_host_nqns(values: Iterable[object]) -> tuple[str, ...]:
    """Validate host NQNs and return them de-duplicated in first-seen order."""
    seen: dict[str, None] = {}
    for value in values:
        seen[validate_host_nqn(value)] = None
    return tuple(seen)


def nqn_for_volume(volume_id: object) -> str:
    """The subsystem NQN of a volume: ``nqn.2000-02.com.mikrotik:<volume id lower-cased>`` (docs/architecture.md §3)."""
    return validate_nqn(MIKROTIK_NQN_PREFIX + validate_volume_id(volume_id).lower(), "nqn")


def validate_port(value: object, field: str = "port") -> int:
    """Return ``value`` if it is a TCP port number (an ``int``, not a ``bool``, in 1..65535)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{field} must be an integer, got {type(value).__name__}")
    if not 1 <= value <= 65535:
        raise InvalidArgument(f"{field} must be in 1..65535, got {value}")
    return value


def validate_item_id(value: object, field: str = "id") -> str:
    """Return ``value`` if it is a RouterOS internal item id such as ``*1A`` (what REST calls ``.id``)."""
    text = _require_str(value, field)
    if not _ITEM_ID_RE.fullmatch(text):
        raise InvalidArgument(f"{field} must look like a RouterOS item id ('*' then hex digits), got {_show(value)}")
    return text


@dataclass(frozen=True, slots=True)
class RouterPath:
    """A validated, normalized path on the RDS, rooted at the RouterOS file-system root (never the root itself).

    Construct through :func:`parse_router_path`, :func:`confine` or :func:`backing_file_path`; the constructor
    re-validates, so an instance always holds safe segments.
    """

    segments: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.segments:
            raise InvalidArgument("path must name at least one directory below the root")
        for segment in self.segments:
            _check_segment(segment, "path")
        if len(self.disk_path) > PATH_MAX_LENGTH:
            raise InvalidArgument(f"path must be at most {PATH_MAX_LENGTH} characters")

    @property
    def disk_path(self) -> str:
        """The ``/disk file-path=`` form, with a leading slash: ``/storage-pool/metal-csi/pvc-1.img``."""
        return "/" + "/".join(self.segments)

    @property
    def file_name(self) -> str:
        """The ``/file name=`` form, without a leading slash: ``storage-pool/metal-csi/pvc-1.img``."""
        return "/".join(self.segments)

    def contains(self, other: RouterPath) -> bool:
        """True if ``other`` is this path or lies below it (segment-wise: ``/pool/a`` does not contain ``/pool/ab``)."""
        return other.segments[: len(self.segments)] == self.segments

    def child(self, name: str) -> RouterPath:
        """This path extended by one validated segment."""
        return RouterPath((*self.segments, _check_segment(name, "path")))

    def __str__(self) -> str:
        return self.disk_path


def validate_path_segment(value: object, field: str = "path") -> str:
    """Return ``value`` if it is a valid single path segment (a file or directory name, no slash)."""
    return _check_segment(_require_str(value, field), field)


def _check_segment(segment: str, field: str) -> str:
    if not _SEGMENT_RE.fullmatch(segment):
        raise InvalidArgument(
            f"{field} segments may only use {PATH_SEGMENT_CHARS} (no spaces or other characters), got {_show(segment)}"
        )
    if _ONLY_DOTS_RE.fullmatch(segment):
        raise InvalidArgument(f"{field} segments made only of dots are not allowed, got {_show(segment)}")
    if len(segment) > PATH_SEGMENT_MAX_LENGTH:
        raise InvalidArgument(f"{field} segments must be at most {PATH_SEGMENT_MAX_LENGTH} characters")
    return segment


def _normalize(parts: Iterable[str], field: str, floor: int) -> list[str]:
    """Resolve ``.`` and ``..`` and drop empty segments; refuse ``..`` that would climb above ``floor`` segments."""
    out: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if len(out) <= floor:
                raise InvalidArgument(f"{field} escapes its base directory")
            out.pop()
            continue
        out.append(_check_segment(part, field))
    return out


def parse_router_path(value: object, field: str = "path") -> RouterPath:
    """Parse either RouterOS spelling of a path (``/a/b`` or ``a/b``) into a :class:`RouterPath`.

    ``.`` and empty segments are dropped and ``..`` is resolved, but never above the root.
    """
    text = _require_str(value, field)
    if len(text) > PATH_MAX_LENGTH:
        raise InvalidArgument(f"{field} must be at most {PATH_MAX_LENGTH} characters")
    segments = _normalize(text.split("/"), field, floor=0)
    if not segments:
        raise InvalidArgument(f"{field} must name at least one directory below the root, got {_show(value)}")
    return RouterPath(tuple(segments))


def confine(base: object, relative_or_abs: object, field: str = "path") -> RouterPath:
    """Resolve ``relative_or_abs`` against ``base`` and refuse anything that leaves ``base``.

    A value with a leading slash is absolute and must already lie under ``base``; anything else is relative to
    ``base``. The check is segment-wise, so base ``/pool/a`` does not contain ``/pool/ab``, and ``..`` may walk
    back down only as far as ``base`` itself. ``base`` may be given in either RouterOS spelling.
    """
    root = parse_router_path(base, "base_path")
    text = _require_str(relative_or_abs, field)
    if len(text) > PATH_MAX_LENGTH:
        raise InvalidArgument(f"{field} must be at most {PATH_MAX_LENGTH} characters")
    segments = tuple(_normalize(text.split("/"), field, floor=0))
    if not text.startswith("/"):
        return RouterPath(root.segments + segments)
    if segments[: len(root.segments)] != root.segments:
        raise InvalidArgument(f"{field} {_show(text)} is outside the base path {root.disk_path}")
    return RouterPath(segments)


def backing_file_path(base: object, volume_id: object) -> RouterPath:
    """The backing file of a volume: ``<base>/<volume id>.img`` (docs/architecture.md §3)."""
    return parse_router_path(base, "base_path").child(validate_volume_id(volume_id) + ".img")
