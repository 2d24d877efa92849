"""Addresses: what counts as a host name or IP address (for flags and StorageClass parameters alike, one rule,
pure), and the address value types the layers above share."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HOST_NAME_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]{2,45}$")


def is_host(text: str) -> bool:
    """A DNS name or dotted IPv4 address, or an IPv6 address (without brackets)."""
    return bool(_HOST_NAME_RE.match(text) or (":" in text and _IPV6_RE.match(text)))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the CSI gRPC server listens: a unix socket path or a TCP host:port."""

    scheme: str  # "unix" or "tcp"
    address: str  # socket path, or "host:port"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}"


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"
