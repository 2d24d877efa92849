"""What counts as a host name or IP address, for flags and StorageClass parameters alike (one rule, pure)."""

from __future__ import annotations

import re

_HOST_NAME_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")


def is_host(text: str) -> bool:
    """A DNS name or dotted IPv4 address, or an IPv6 address (without brackets)."""
    return bool(_HOST_NAME_RE.match(text) or (":" in text and _IPV6_RE.match(text)))
