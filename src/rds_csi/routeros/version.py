"""Which RouterOS releases the driver can work with, decided from ``/system resource print`` (sans-IO).

Every volume the driver creates sets, on ``/disk``: a file-backed disk (``type=file file-path= file-size=``), its
NVMe/TCP export (``nvme-tcp-export``, ``nvme-tcp-server-port``), the export's NQN (``nvme-tcp-server-nqn``) and,
with fencing, its allowed hosts (``nvme-tcp-server-allow-host-name``). Public per-release data on the RouterOS API
(the ``community.routeros`` collection's ``/disk`` field table, generated from each release) lists the export and
its port and allow list in every release it covers, file-backed disks from 7.17, and ``nvme-tcp-server-nqn`` only
from 7.21 (when ``nvme-tcp-name`` gave way to NQNs). The NQN is the last to arrive, so 7.21 is the minimum: on an
older release every create would be refused, or make an export under a name the nodes never connect to.

A version is compared by its numbers only: ``7.21rc2`` or ``7.21beta5`` counts as 7.21 (the release those
properties arrived in). A version that does not start with numbers is not refused; it is logged as unknown.
"""

from __future__ import annotations

import re

from rds_csi.core import errors
from rds_csi.routeros.models import SystemResource

MINIMUM_VERSION = (7, 21)
NEEDED_PROPERTIES = (
    "nvme-tcp-server-nqn",
    "nvme-tcp-export",
    "nvme-tcp-server-port",
    "nvme-tcp-server-allow-host-name",
    "file-path",
    "file-size",
)

_VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")


class UnsupportedRouterOS(errors.FailedPrecondition):
    """The RDS runs a RouterOS release without the ``/disk`` properties the driver sets."""


def version_numbers(version: str) -> tuple[int, int, int] | None:
    """``"7.21.2 (stable)"`` -> ``(7, 21, 2)``; ``None`` when the text does not start with a version."""
    match = _VERSION_RE.match(version)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def check_supported(resource: SystemResource) -> None:
    """Raise :class:`UnsupportedRouterOS` for a release older than :data:`MINIMUM_VERSION`."""
    numbers = version_numbers(resource.version)
    if numbers is None or numbers[:2] >= MINIMUM_VERSION:
        return
    minimum = ".".join(map(str, MINIMUM_VERSION))
    board = f" on {resource.board_name}" if resource.board_name else ""
    raise UnsupportedRouterOS(
        f"RouterOS {resource.version}{board} is older than {minimum}, the first release whose /disk has "
        f"{NEEDED_PROPERTIES[0]} (with {', '.join(NEEDED_PROPERTIES[1:])}), which this driver sets on every "
        f"volume; upgrade RouterOS to {minimum} or later"
    )
