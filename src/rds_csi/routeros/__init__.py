"""The RouterOS storage backend: validated commands, sans-IO parsers, error classification, transports.

The I/O-free core, usable on its own and shared by both transports:

* :mod:`.names` — validation of slots / volume ids, NQNs, ports and paths (``confine`` keeps every path under
  the configured base); errors are ``InvalidArgument`` naming the field.
* :mod:`.units` — RouterOS numbers (grouped digits, ``50.0GiB``, ``12.8Mbps``, ``25%``, durations) and the
  ``file-size`` allocation unit (whole MiB, rounded up, rendered ``<n>M``).
* :mod:`.commands` — :class:`Command` values from ``build_*`` functions; :func:`render_cli` (one quoted console
  line) and :func:`to_rest` (a :class:`RestRequest`, with a lookup step where REST needs an ``.id``).
* :mod:`.parse` / :mod:`.models` — console text or REST JSON to :class:`Disk`, :class:`FileEntry`,
  :class:`PoolCapacity`, :class:`DiskTraffic`, :class:`SystemResource`.
* :mod:`.failures` — ``classify_failure`` / ``classify_rest_error``: RouterOS error text to ``rds_csi.core.errors``.
"""

from __future__ import annotations

from rds_csi.core.nqn import validate_host_nqn, validate_nqn
from rds_csi.routeros.commands import (
    Arg,
    Command,
    Condition,
    Operator,
    RestRequest,
    build_disk_add,
    build_disk_get,
    build_disk_list,
    build_disk_remove,
    build_disk_resize,
    build_disk_set_allowed_hosts,
    build_disk_traffic,
    build_file_list,
    build_file_remove,
    build_health,
    build_pool_capacity,
    quote,
    render_cli,
    to_rest,
)
from rds_csi.routeros.failures import classify_failure, classify_rest_error, find_failure
from rds_csi.routeros.models import Disk, DiskTraffic, FileEntry, PoolCapacity, SystemResource
from rds_csi.routeros.names import (
    RouterPath,
    backing_file_path,
    confine,
    nqn_for_volume,
    parse_router_path,
    validate_port,
    validate_slot,
    validate_volume_id,
)
from rds_csi.routeros.parse import (
    disk_from_rest,
    disks_from_rest,
    files_from_rest,
    parse_detail,
    parse_disks,
    parse_files,
    parse_key_values,
    parse_pool_capacity,
    parse_system_resource,
    parse_traffic,
    pool_capacity_from_rest,
    system_resource_from_rest,
    traffic_from_rest,
)
from rds_csi.routeros.units import format_file_size, round_up_allocation

__all__ = [
    "Arg",
    "Command",
    "Condition",
    "Disk",
    "DiskTraffic",
    "FileEntry",
    "Operator",
    "PoolCapacity",
    "RestRequest",
    "RouterPath",
    "SystemResource",
    "backing_file_path",
    "build_disk_add",
    "build_disk_get",
    "build_disk_list",
    "build_disk_remove",
    "build_disk_resize",
    "build_disk_set_allowed_hosts",
    "build_disk_traffic",
    "build_file_list",
    "build_file_remove",
    "build_health",
    "build_pool_capacity",
    "classify_failure",
    "classify_rest_error",
    "confine",
    "disk_from_rest",
    "disks_from_rest",
    "files_from_rest",
    "find_failure",
    "format_file_size",
    "nqn_for_volume",
    "parse_detail",
    "parse_disks",
    "parse_files",
    "parse_key_values",
    "parse_pool_capacity",
    "parse_router_path",
    "parse_system_resource",
    "parse_traffic",
    "pool_capacity_from_rest",
    "quote",
    "render_cli",
    "round_up_allocation",
    "system_resource_from_rest",
    "to_rest",
    "traffic_from_rest",
    "validate_host_nqn",
    "validate_nqn",
    "validate_port",
    "validate_slot",
    "validate_volume_id",
]
