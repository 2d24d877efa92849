"""Typed records read from RouterOS, identical whichever transport (console text or REST JSON) produced them.

Optional fields are ``None`` when RouterOS did not print them; sizes are bytes, rates bits per second, times
:class:`datetime.timedelta`. Constructed by :mod:`rds_csi.routeros.parse`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Disk:
    """One ``/disk`` entry.

    ``size_bytes`` is the exact block-device size (``size=53 687 091 200``); ``file_size_bytes`` the backing file
    size, which the console prints rounded to one decimal of a unit (``50.0GiB``) and REST prints exactly.
    ``allowed_hosts`` is empty when any host may connect. ``item_id`` (``*1A``) is only known from REST;
    ``flags`` holds the console's flag letters (``X`` = disabled).
    """

    slot: str
    type: str
    file_path: str | None = None
    size_bytes: int | None = None
    file_size_bytes: int | None = None
    nvme_export: bool = False
    port: int | None = None
    nqn: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    mount_point: str | None = None
    disabled: bool = False
    item_id: str | None = None
    flags: frozenset[str] = frozenset()

    @property
    def capacity_bytes(self) -> int:
        """The size to reason with: ``size`` is exact; ``file-size`` is printed rounded (``50.0GiB``) on the
        console, so it is only a fallback (0 when neither was printed)."""
        return self.size_bytes or self.file_size_bytes or 0


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One ``/file`` entry: ``name`` has no leading slash; directories have no size.

    ``last_modified`` is the router's local time as printed, or ``None`` if absent or in an unknown format (it is
    informational and must never make a listing fail).
    """

    name: str
    type: str
    size_bytes: int | None = None
    last_modified: datetime | None = None
    item_id: str | None = None

    @property
    def is_directory(self) -> bool:
        """True for directories (and the ``disk`` type RouterOS uses for mount points)."""
        return self.type in ("directory", "disk")


@dataclass(frozen=True, slots=True)
class PoolCapacity:
    """Size and free space of the storage pool partition, in bytes."""

    size_bytes: int
    free_bytes: int

    @property
    def used_bytes(self) -> int:
        """Bytes in use (never negative)."""
        return max(self.size_bytes - self.free_bytes, 0)


@dataclass(frozen=True, slots=True)
class DiskTraffic:
    """One ``/disk monitor-traffic ... once`` sample."""

    slot: str
    read_ops_per_second: int | None = None
    write_ops_per_second: int | None = None
    read_rate_bps: int | None = None
    write_rate_bps: int | None = None
    read_time: timedelta | None = None
    write_time: timedelta | None = None
    in_flight_ops: int | None = None
    active_time: timedelta | None = None
    wait_time: timedelta | None = None


@dataclass(frozen=True, slots=True)
class SystemResource:
    """The fields of ``/system resource print`` the driver reports on (health checks, ``doctor``)."""

    version: str
    uptime: timedelta | None = None
    cpu_load_percent: float | None = None
    free_memory_bytes: int | None = None
    total_memory_bytes: int | None = None
    free_hdd_bytes: int | None = None
    total_hdd_bytes: int | None = None
    board_name: str | None = None
    architecture: str | None = None
