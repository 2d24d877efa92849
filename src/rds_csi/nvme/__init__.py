"""The node's NVMe side: its host identity, and the NVMe/TCP data path from a volume's NQN to its block device.

- ``load_or_create_host_nqn(path)`` / ``load_or_create_host_id(path, host_nqn)``: the (host NQN, host ID) pair the
  kernel knows this node by, from nvme-cli's files, generated and saved when missing.
- ``HostNqnReporter``: keeps the ``HOST_NQN_ANNOTATION`` on this node's Node object, for storage-side fencing.
- ``target_from_volume_context(context)``: a volume's connect target, validated.
- ``NvmeConnector``: ``connect`` (already connected = success), ``wait_for_device`` (registered, non-zero size,
  its /dev node), ``disconnect`` (flush, then every controller) and ``disconnect_unused``; NQNs outside the
  managed prefix are never disconnected.
- ``NamespaceResolver``: NQN -> subsystem with its controllers and block devices, cached, fed by ``KernelUevents``.
- ``LinuxNvmeKernel``: the kernel interfaces the connector writes to (/dev/nvme-fabrics, delete_controller).
- ``block_size_bytes``, ``namespace_id``, ``rescan_controller``: ioctls on an open device (``rds_csi._native``).
"""

from __future__ import annotations

from rds_csi._native import (
    NvmeController,
    NvmeNamespace,
    NvmeSubsystem,
    block_size_bytes,
    namespace_id,
    rescan_controller,
)
from rds_csi.nvme.connector import Connection, NvmeConnector, resolve_ip
from rds_csi.nvme.fabrics import (
    ADDRESS_KEY,
    CTRL_LOSS_TMO_KEY,
    CTRL_LOSS_TMO_RANGE,
    KEEP_ALIVE_TMO_KEY,
    KEEP_ALIVE_TMO_RANGE,
    NQN_KEY,
    NR_IO_QUEUES_KEY,
    PORT_KEY,
    RECONNECT_DELAY_KEY,
    RECONNECT_DELAY_RANGE,
    FabricsTarget,
    HostIdentity,
    target_from_volume_context,
)
from rds_csi.nvme.hostid import HostId, HostIdOrigin, host_nqn_uuid, load_or_create_host_id, parse_host_id_file
from rds_csi.nvme.hostnqn import (
    HostNqn,
    HostNqnOrigin,
    load_or_create_host_nqn,
    machine_uuid,
    parse_host_nqn_file,
    uuid_host_nqn,
)
from rds_csi.nvme.kernel import LinuxNvmeKernel, NvmeKernel
from rds_csi.nvme.report import HOST_NQN_ANNOTATION, HostNqnReporter, NodeAnnotations, ReportSchedule
from rds_csi.nvme.resolver import NamespaceResolver, ResolverStats, Uevent, ready_namespace, wait_for_namespace
from rds_csi.nvme.uevents import KernelUevents

__all__ = [
    "ADDRESS_KEY",
    "CTRL_LOSS_TMO_KEY",
    "CTRL_LOSS_TMO_RANGE",
    "HOST_NQN_ANNOTATION",
    "KEEP_ALIVE_TMO_KEY",
    "KEEP_ALIVE_TMO_RANGE",
    "NQN_KEY",
    "NR_IO_QUEUES_KEY",
    "PORT_KEY",
    "RECONNECT_DELAY_KEY",
    "RECONNECT_DELAY_RANGE",
    "Connection",
    "FabricsTarget",
    "HostId",
    "HostIdOrigin",
    "HostIdentity",
    "HostNqn",
    "HostNqnOrigin",
    "HostNqnReporter",
    "KernelUevents",
    "LinuxNvmeKernel",
    "NamespaceResolver",
    "NodeAnnotations",
    "NvmeConnector",
    "NvmeController",
    "NvmeKernel",
    "NvmeNamespace",
    "NvmeSubsystem",
    "ReportSchedule",
    "ResolverStats",
    "Uevent",
    "block_size_bytes",
    "host_nqn_uuid",
    "load_or_create_host_id",
    "load_or_create_host_nqn",
    "machine_uuid",
    "namespace_id",
    "parse_host_id_file",
    "parse_host_nqn_file",
    "ready_namespace",
    "rescan_controller",
    "resolve_ip",
    "target_from_volume_context",
    "uuid_host_nqn",
    "wait_for_namespace",
]
