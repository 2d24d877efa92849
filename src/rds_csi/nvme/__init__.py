"""The node's NVMe side. So far: the host NQN this node connects with, and its report to the controller.

- ``load_or_create_host_nqn(path)``: the host NQN from nvme-cli's file, generated and saved when missing.
- ``load_or_create_host_id(path, host_nqn)``: the host ID from nvme-cli's file, derived from the NQN and saved when
  missing.
- ``HostNqnReporter``: keeps the ``HOST_NQN_ANNOTATION`` on this node's Node object, for storage-side fencing.
"""

from __future__ import annotations

from rds_csi.nvme.hostid import HostId, HostIdOrigin, host_nqn_uuid, load_or_create_host_id, parse_host_id_file
from rds_csi.nvme.hostnqn import (
    HostNqn,
    HostNqnOrigin,
    load_or_create_host_nqn,
    machine_uuid,
    parse_host_nqn_file,
    uuid_host_nqn,
)
from rds_csi.nvme.report import HOST_NQN_ANNOTATION, HostNqnReporter, NodeAnnotations, ReportSchedule

__all__ = [
    "HOST_NQN_ANNOTATION",
    "HostId",
    "HostIdOrigin",
    "HostNqn",
    "HostNqnOrigin",
    "HostNqnReporter",
    "NodeAnnotations",
    "ReportSchedule",
    "host_nqn_uuid",
    "load_or_create_host_id",
    "load_or_create_host_nqn",
    "machine_uuid",
    "parse_host_id_file",
    "parse_host_nqn_file",
    "uuid_host_nqn",
]
