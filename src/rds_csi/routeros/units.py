"""RouterOS numbers as printed and as accepted.

Printed forms (parsed here):

* plain integers, with digits optionally grouped by single spaces: ``53 687 091 200``;
* human sizes with binary units and (usually) one decimal: ``50.0GiB``, ``1024.0MiB``, ``1924.1KiB``; also the
  input-style single-letter suffixes ``k``/``K``/``M``/``G``/``T``/``P`` (binary) that REST and ``terse`` output
  may echo back. A human size is an approximation (one decimal of its unit); the result is the nearest byte;
* percentages: ``25%``;
* rates in bits per second with decimal prefixes: ``0bps``, ``640kbps``, ``12.8Mbps``, ``1.2Gbps``;
* durations: ``0ms``, ``1w2d3h4m5s6ms7us`` style, or ``[Nw][Nd]HH:MM:SS[.fraction]``.

Accepted form (rendered here): ``file-size`` is always written as a whole number of MiB with RouterOS's binary
``M`` suffix (``file-size=1536M``). :func:`round_up_allocation` rounds a request **up** to that unit; nothing in
this module ever rounds a size down.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from rds_csi.core.errors import Internal, InvalidArgument

MIB = 1024 * 1024
"""The allocation unit: every ``file-size`` we render is a whole number of MiB."""

MAX_FILE_SIZE = 1 << 60
"""Largest ``file-size`` we will ever ask for (1 EiB): far beyond any RDS, far inside RouterOS's 64-bit range."""

_BINARY_UNITS = {
    "": 1,
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
    "PiB": 1 << 50,
    "EiB": 1 << 60,
    "k": 1 << 10,
    "K": 1 << 10,
    "M": 1 << 20,
    "G": 1 << 30,
    "T": 1 << 40,
    "P": 1 << 50,
}
_RATE_UNITS = {"bps": 1, "kbps": 10**3, "Mbps": 10**6, "Gbps": 10**9, "Tbps": 10**12}

_GROUPED_INT_RE = re.compile(r"[0-9]+(?: [0-9]+)*")
_SIZE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?(B|KiB|MiB|GiB|TiB|PiB|EiB|k|K|M|G|T|P)")
_PERCENT_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?%")
_RATE_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?(bps|kbps|Mbps|Gbps|Tbps)")
_UNIT_DURATION_RE = re.compile(
    r"(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m(?!s))?(?:([0-9]+)s)?(?:([0-9]+)ms)?(?:([0-9]+)us)?"
)
_CLOCK_DURATION_RE = re.compile(r"(?:([0-9]+)w)?(?:([0-9]+)d)?([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?")


def _bad(kind: str, text: str) -> Internal:
    # A value RouterOS printed that we cannot read is a backend answer we do not understand, not a user error.
    return Internal(f"cannot parse RouterOS {kind} {text!r}")


def parse_int(text: str) -> int:
    """Parse a non-negative integer, tolerating RouterOS digit grouping (``53 687 091 200``).

    Any single spaces between digit runs are accepted, because a console wrap may land inside a grouped number.
    """
    stripped = text.strip()
    if not _GROUPED_INT_RE.fullmatch(stripped):
        raise _bad("integer", text)
    return int(stripped.replace(" ", ""))


def parse_size(text: str) -> int:
    """Parse a byte count: a (grouped) integer, or a decimal with a binary unit (``50.0GiB``, ``1.5G``)."""
    stripped = text.strip()
    if _GROUPED_INT_RE.fullmatch(stripped):
        return int(stripped.replace(" ", ""))
    match = _SIZE_RE.fullmatch(stripped)
    if match is None:
        raise _bad("size", text)
    value = Decimal(match.group(1)) * _BINARY_UNITS[match.group(2)]
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def parse_percent(text: str) -> float:
    """Parse ``25%`` (or ``2.5 %``) into ``25.0``."""
    match = _PERCENT_RE.fullmatch(text.strip())
    if match is None:
        raise _bad("percentage", text)
    return float(match.group(1))


def parse_rate(text: str) -> int:
    """Parse a bit rate (``12.8Mbps``) into whole bits per second (decimal prefixes, nearest bit)."""
    match = _RATE_RE.fullmatch(text.strip())
    if match is None:
        raise _bad("rate", text)
    value = Decimal(match.group(1)) * _RATE_UNITS[match.group(2)]
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def parse_duration(text: str) -> timedelta:
    """Parse a RouterOS duration: ``0ms``, ``2d20h12m20s``, ``1w2d03:04:05`` or ``00:00:01.5``."""
    stripped = text.strip()
    match = _UNIT_DURATION_RE.fullmatch(stripped)
    if stripped and match is not None:
        weeks, days, hours, minutes, seconds, millis, micros = (int(g) if g else 0 for g in match.groups())
        return timedelta(
            weeks=weeks,
            days=days,
            hours=hours,
            minutes=minutes,
            seconds=seconds,
            milliseconds=millis,
            microseconds=micros,
        )
    clock = _CLOCK_DURATION_RE.fullmatch(stripped)
    if clock is None:
        raise _bad("duration", text)
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in clock.groups()[:5])
    fraction = Decimal("0." + clock.group(6)) if clock.group(6) else Decimal(0)
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds + float(fraction))


def _check_size_request(size_bytes: object, field: str) -> int:
    if isinstance(size_bytes, bool) or not isinstance(size_bytes, int):
        raise InvalidArgument(f"{field} must be an integer number of bytes, got {type(size_bytes).__name__}")
    if size_bytes <= 0:
        raise InvalidArgument(f"{field} must be positive, got {size_bytes}")
    if size_bytes > MAX_FILE_SIZE:
        raise InvalidArgument(f"{field} must be at most {MAX_FILE_SIZE} bytes, got {size_bytes}")
    return size_bytes


def round_up_allocation(size_bytes: object, field: str = "size_bytes") -> int:
    """Round a positive byte count **up** to the allocation unit (whole MiB) RouterOS is given.

    Raises ``InvalidArgument`` (naming ``field``) for non-integers, zero, negatives and sizes above
    :data:`MAX_FILE_SIZE`.
    """
    size = _check_size_request(size_bytes, field)
    return -(-size // MIB) * MIB


def format_file_size(size_bytes: object, field: str = "size_bytes") -> str:
    """Render an allocation for ``file-size=``: ``<n>M`` with ``n`` whole MiB.

    The size must already be a whole number of MiB (use :func:`round_up_allocation`); anything else is refused
    rather than silently rounded, so a rendered command can never ask for less than was decided.
    """
    size = _check_size_request(size_bytes, field)
    if size % MIB:
        raise InvalidArgument(f"{field} must be a whole number of MiB (round it up first), got {size}")
    return f"{size // MIB}M"
