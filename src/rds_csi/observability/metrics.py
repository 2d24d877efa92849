"""Every Prometheus metric of the driver, defined once, on a registry owned by the plugin instance.

Names follow ``rds_csi_<area>_<what>_<unit>``; labels are bounded sets (never volume ids or node names).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# The *_created series double the scrape size and nobody alerts on them.
disable_created_metrics()  # type: ignore[no-untyped-call]

NAMESPACE = "rds_csi"

# CSI calls run from milliseconds (Identity) to tens of seconds (format + mount of a large volume).
CSI_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ROUTEROS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ATTACHMENT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Node steps: a bind mount takes milliseconds, a stage that formats a large volume tens of seconds.
NODE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# An NVMe/TCP connect: a round trip or two on a LAN, seconds when the target is slow to admit the host.
NVME_CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MIGRATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    """All metric families. Create one per process (tests create one per plugin instance)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        self.csi_operations = Counter(
            "csi_operations",
            "CSI calls by method and gRPC status code",
            ["method", "code"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.csi_operation_duration = Histogram(
            "csi_operation_duration_seconds",
            "CSI call latency by method",
            ["method"],
            namespace=NAMESPACE,
            registry=r,
            buckets=CSI_BUCKETS,
        )
        self.csi_inflight = Gauge(
            "csi_operations_in_flight",
            "CSI calls being served now",
            namespace=NAMESPACE,
            registry=r,
        )

        self.routeros_commands = Counter(
            "routeros_commands",
            "RouterOS commands by operation and result",
            ["op", "result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.routeros_command_duration = Histogram(
            "routeros_command_duration_seconds",
            "RouterOS command latency by operation",
            ["op"],
            namespace=NAMESPACE,
            registry=r,
            buckets=ROUTEROS_BUCKETS,
        )
        self.routeros_pool_connections = Gauge(
            "routeros_pool_connections",
            "RouterOS connections in the pool by state",
            ["state"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.routeros_info = Gauge(
            "routeros_info",
            "The RouterOS release and board of the RDS, as last read (1)",
            ["version", "board"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.routeros_copy_from_form = Gauge(
            "routeros_copy_from_form",
            "The copy-from form sent to RouterOS is 1: the configured one until a copy proves which one the RDS takes",
            ["form"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.routeros_reconnects = Counter(
            "routeros_reconnects",
            "RouterOS connections (re)opened after a failure",
            namespace=NAMESPACE,
            registry=r,
        )

        self.attachment_attach = Counter(
            "attachment_attach",
            "Volumes attached to a node",
            namespace=NAMESPACE,
            registry=r,
        )
        self.attachment_detach = Counter(
            "attachment_detach",
            "Volumes detached from a node",
            namespace=NAMESPACE,
            registry=r,
        )
        self.attachment_conflicts = Counter(
            "attachment_conflicts",
            "Publishes refused because another node holds the volume",
            namespace=NAMESPACE,
            registry=r,
        )
        self.attachment_reconcile = Counter(
            "attachment_reconcile",
            "Reconciler actions",
            ["action"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.attachment_operation_duration = Histogram(
            "attachment_operation_duration_seconds",
            "Publish/unpublish decision latency",
            ["operation"],
            namespace=NAMESPACE,
            registry=r,
            buckets=ATTACHMENT_BUCKETS,
        )
        self.attachment_grace_period_used = Counter(
            "attachment_grace_period_used",
            "Conflicting publishes answered ABORTED inside the grace period",
            namespace=NAMESPACE,
            registry=r,
        )
        self.attachment_stale_cleared = Counter(
            "attachment_stale_cleared",
            "Attachments cleared because their node or VolumeAttachment is gone",
            namespace=NAMESPACE,
            registry=r,
        )
        self.attachments_active = Gauge(
            "attachments_active",
            "Node attachments held now",
            namespace=NAMESPACE,
            registry=r,
        )
        self.migrations = Counter(
            "migration",
            "KubeVirt live migrations by result (started, completed, failed)",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.migration_duration = Histogram(
            "migration_duration_seconds",
            "Live-migration window length, start to completion",
            namespace=NAMESPACE,
            registry=r,
            buckets=MIGRATION_BUCKETS,
        )
        self.migrations_active = Gauge(
            "migration_active",
            "Live migrations in progress",
            namespace=NAMESPACE,
            registry=r,
        )

        self.orphans = Gauge(
            "orphan_volumes",
            "Volumes on the RDS that no PersistentVolume claims, by state (waiting, ripe)",
            ["state"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.orphans_deleted = Counter(
            "orphan_volumes_deleted",
            "Orphaned volumes deleted (--orphan-reconcile delete)",
            namespace=NAMESPACE,
            registry=r,
        )

        self.node_operations = Counter(
            "node_operations",
            "Node volume operations (stage, unstage, publish, unpublish, expand) by result",
            ["operation", "result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.node_operation_duration = Histogram(
            "node_operation_duration_seconds",
            "Node volume operation latency by operation and result",
            ["operation", "result"],
            namespace=NAMESPACE,
            registry=r,
            buckets=NODE_BUCKETS,
        )
        self.node_formats = Counter(
            "node_formats",
            "Blank devices formatted at stage, by file system",
            ["fs_type"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.node_formats_refused = Counter(
            "node_formats_refused",
            "Formats refused to protect data (signature, ambivalent, probe-failed, timeout, unreadable)",
            ["reason"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.node_stale_mounts = Counter(
            "node_stale_mounts",
            "Staging mounts using a device the volume no longer has, by action (found: per recovery pass; recovered)",
            ["action"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.node_orphans_disconnected = Counter(
            "node_orphans_disconnected",
            "Managed NVMe subsystems disconnected because no staged volume claimed them",
            namespace=NAMESPACE,
            registry=r,
        )
        self.nvme_connect_duration = Histogram(
            "nvme_connect_duration_seconds",
            "NVMe/TCP connect latency by result",
            ["result"],
            namespace=NAMESPACE,
            registry=r,
            buckets=NVME_CONNECT_BUCKETS,
        )

        self.events_posted = Counter(
            "events_posted",
            "Kubernetes events by reason and result (posted, failed)",
            ["reason", "result"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.events_dropped = Counter(
            "events_dropped",
            "Kubernetes events dropped because the queue was full",
            namespace=NAMESPACE,
            registry=r,
        )

        self.build_info = Gauge(
            "build_info",
            "Version and native backend of the running driver",
            ["version", "native_backend"],
            namespace=NAMESPACE,
            registry=r,
        )
