"""Turn RouterOS error texts into domain exceptions, in one place (docs/architecture.md §5).

RouterOS reports problems as text: the console prints ``failure: <reason>`` for a refused action, and parser
errors such as ``syntax error (line 1 column 5)``, ``expected end of command (line 1 column 20)``,
``bad command name foo (line 1 column 7)`` or ``input does not match any value of interface``; REST wraps the same
texts as ``{"error":400,"message":"Bad Request","detail":"failure: ..."}``. Both transports hand the text to
:func:`classify_failure` (REST via :func:`classify_rest_error`), so a given RouterOS answer means the same thing
whichever way it arrived.

Rules, checked in this order (case-insensitive substrings of the reason):

=====================  ==========================================================================================
``InvalidArgument``    syntax error, expected ..., bad command name, no such command, invalid value/argument,
                       input does not match, unknown parameter, missing value, ambiguous value, out of range
``AlreadyExists``      already exists, already have, already used, duplicate
``ResourceExhausted``  not enough space, no space, out of space, disk full, not enough free space
``Unavailable``        busy, timeout / timed out, try again, connection lost/closed/reset, not ready, in use
``NotFound``           no such item, invalid internal item number, not found, no such file, no such disk, does not exist
``Internal``           anything else; the message always carries the RouterOS text
=====================  ==========================================================================================

Syntax rules come first because a malformed command can mention anything (``no such command`` is not a missing
item). Every exception's message keeps the original RouterOS text for the operator.
"""

from __future__ import annotations

import json
import re

from rds_csi.core.errors import (
    AlreadyExists,
    Internal,
    InvalidArgument,
    NotFound,
    RdsCsiError,
    ResourceExhausted,
    Unavailable,
)
from rds_csi.routeros.transport import CredentialsRefused

_RULES: tuple[tuple[type[RdsCsiError], re.Pattern[str]], ...] = (
    (
        InvalidArgument,
        re.compile(
            r"syntax error|\bexpected |bad command name|no such command|invalid (?:value|argument|parameter)"
            r"|input does not match|unknown parameter|missing value|ambiguous value|out of range",
            re.IGNORECASE,
        ),
    ),
    (AlreadyExists, re.compile(r"already exists|already have|already used|duplicate", re.IGNORECASE)),
    (
        ResourceExhausted,
        re.compile(r"not enough (?:free |disk )?space|no (?:free )?space|out of space|disk (?:is )?full", re.I),
    ),
    (
        Unavailable,
        re.compile(
            r"busy|timeout|timed out|try again|connection (?:lost|closed|reset|refused)|not ready|in use",
            re.IGNORECASE,
        ),
    ),
    (
        NotFound,
        re.compile(
            r"no such item|invalid internal item number|not found|no such file|no such disk|does not exist", re.I
        ),
    ),
)

_FAILURE_PREFIX_RE = re.compile(r"^\s*failure:\s*", re.IGNORECASE)
# Lines a RouterOS console prints instead of output when a command is refused or cannot be parsed.
_ERROR_LINE_RE = re.compile(
    r"^\s*(?:failure:|syntax error|expected |bad command name|no such command|no such item"
    r"|input does not match|invalid value|ambiguous value|missing value|action timed out)",
    re.IGNORECASE,
)

_MAX_TEXT = 500


def _clean(text: str) -> str:
    reason = " ".join(text.split())
    return reason if len(reason) <= _MAX_TEXT else reason[: _MAX_TEXT - 3] + "..."


def classify_failure(text: str) -> RdsCsiError:
    """The domain exception for a RouterOS error text (with or without the ``failure:`` prefix).

    Returns the exception rather than raising it, so callers decide how to chain it (``raise ... from``).
    """
    cleaned = _clean(text)
    reason = _FAILURE_PREFIX_RE.sub("", cleaned)
    for error_type, pattern in _RULES:
        if pattern.search(reason):
            return error_type(f"RouterOS: {cleaned}")
    return Internal(f"RouterOS failure not understood: {cleaned or '(empty)'}")


def find_failure(output: str) -> str | None:
    """The first line of console ``output`` that reports an error, or ``None`` if there is none.

    SSH exec also signals failure through a non-zero exit status; this catches the texts RouterOS prints even
    when a session does not carry the status through, and never matches ordinary ``print`` output (whose lines
    start with an index, a ``Flags:`` legend or a ``key=value``).
    """
    for line in output.splitlines():
        if _ERROR_LINE_RE.match(line):
            return line.strip()
    return None


def classify_rest_error(status: int, body: str) -> RdsCsiError:
    """The domain exception for a REST error answer (HTTP ``status`` and the raw response ``body``).

    400 carries RouterOS's reason in ``detail`` (``message`` if there is no detail) and is classified like
    console text; 404 is ``NotFound`` (unknown ``.id``); 401/403 are ``CredentialsRefused`` (as a refused SSH
    login is); 408, 429 and 5xx are ``Unavailable``; everything else is ``Internal`` with the status.
    """
    text = body
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        detail = parsed.get("detail") or parsed.get("message")
        if isinstance(detail, str):
            text = detail
    if status == 400:
        return classify_failure(text)
    if status == 404:
        return NotFound(f"RouterOS REST 404: {_clean(text)}")
    if status in (401, 403):
        return CredentialsRefused(f"RouterOS refused the credentials (REST {status}: {_clean(text)})")
    if status in (408, 429) or 500 <= status <= 599:
        return Unavailable(f"RouterOS REST {status}: {_clean(text)}")
    return Internal(f"RouterOS REST {status}: {_clean(text)}")
