"""NVMe Qualified Names: the one grammar every layer checks NQNs against.

Pure and import-free of the domain packages (like ``errors``), because both sides of an attachment need it: the
RouterOS layer validates the NQNs it puts into commands, and the node's NVMe layer validates the host NQN it reads
from or writes to disk. Failures raise :class:`rds_csi.core.errors.InvalidArgument` whose message starts with the name
of the offending field.
"""

from __future__ import annotations

import re

from rds_csi.core.errors import InvalidArgument, quote_input

NQN_MAX_BYTES = 223
"""NVMe limit for an NQN, in bytes of its UTF-8 encoding."""

UUID_NQN_PREFIX = "nqn.2014-08.org.nvmexpress:uuid:"
"""The NVMe-defined form of an NQN that names a host by a UUID alone (what ``nvme gen-hostnqn`` prints)."""

# NQN grammar (NVMe Base Specification, "NVMe Qualified Names"): ``nqn.<yyyy-mm>.<reverse domain>`` then an optional
# ``:<string>``. The spec lets the string be any UTF-8; we accept a conservative ASCII subset that every real host
# NQN generator stays within and that cannot collide with the ``,`` RouterOS uses to separate list items.
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_NQN_RE = re.compile(
    rf"nqn\.[0-9]{{4}}-(?:0[1-9]|1[0-2])\.{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*(?::[A-Za-z0-9._:@+-]+)?"
)
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def require_str(value: object, field: str) -> str:
    """``value`` itself if it is a ``str``; ``InvalidArgument`` naming ``field`` otherwise."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string, got {type(value).__name__}")
    return value


def validate_nqn(value: object, field: str = "nqn") -> str:
    """Return ``value`` if it is an NVMe NQN within our accepted grammar and at most 223 bytes.

    Accepted: ``nqn.YYYY-MM.<reverse.domain>`` optionally followed by ``:<string>`` where the string uses
    ``A-Z a-z 0-9 . _ : @ + -``; the ``nqn.2014-08.org.nvmexpress:uuid:`` form must carry a well-formed UUID.
    """
    text = require_str(value, field)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > NQN_MAX_BYTES:
        raise InvalidArgument(f"{field} must be at most {NQN_MAX_BYTES} bytes, got {size} bytes")
    if not _NQN_RE.fullmatch(text):
        raise InvalidArgument(f"{field} is not a valid NVMe qualified name: {quote_input(value)}")
    if text.startswith(UUID_NQN_PREFIX) and not _UUID_RE.fullmatch(text[len(UUID_NQN_PREFIX) :]):
        raise InvalidArgument(f"{field} has the UUID form but no valid UUID: {quote_input(value)}")
    return text


def validate_host_nqn(value: object) -> str:
    """Return ``value`` if it is a valid host NQN (see :func:`validate_nqn`), reported as ``host_nqn``."""
    return validate_nqn(value, "host_nqn")
