"""Connects the attachment authority (``rds_csi.attach``) to Kubernetes, or to a static node list without one.

With an API server: the table is rebuilt from our driver's VolumeAttachments before the controller serves
publishes, a watch keeps it current, Node deletions trigger the reconciler, and events go to PVCs. Without one:
only the configured node ids may attach, staleness can never be proven (so a conflict stays a conflict), and
events become log lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from rds_csi.attach import (
    DEFAULT_MIGRATION_TIMEOUT,
    AttachmentManager,
    Reconciler,
    VolumeAttachmentFact,
    migration_timeout_from_context,
)
from rds_csi.core import errors
from rds_csi.core.clock import Clock
from rds_csi.core.nqn import validate_host_nqn
from rds_csi.kube import KubeApi, NodeWatcher, PvInfo, VolumeAttachmentRecord, VolumeAttachmentWatcher
from rds_csi.nvme import HOST_NQN_ANNOTATION
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0


class StaticNodeFacts:
    """Facts without a Kubernetes API: configured nodes exist, nothing else is ever proven; every node's attach
    limit is the configured default."""

    def __init__(self, nodes: Iterable[str], default_volume_limit: int = 0) -> None:
        self._nodes = frozenset(nodes)
        self._default_volume_limit = default_volume_limit

    def volume_attachment_exists(self, volume_id: str, node_id: str) -> bool | None:
        return None

    def node_exists(self, node_id: str) -> bool | None:
        return True if node_id in self._nodes else None

    def node_known(self, node_id: str) -> bool:
        return node_id in self._nodes

    def host_nqn(self, node_id: str) -> str | None:
        return None  # no API to read node plugins' reports from: fenced volumes cannot be published

    def volume_limit(self, node_id: str) -> int:
        return self._default_volume_limit


class KubeNodeDirectory:
    """Is this a node of the cluster, which host NQN did its node plugin report, and how many volumes may it hold?
    API trouble propagates as ``Unavailable``, so the publish is retried rather than decided on a guess."""

    def __init__(self, api: KubeApi, driver_name: str, default_volume_limit: int = 0) -> None:
        """``default_volume_limit`` (0: none) applies to a node whose CSINode gives no limit for ``driver_name``."""
        self._api = api
        self._driver = driver_name
        self._default_volume_limit = default_volume_limit

    def node_known(self, node_id: str) -> bool:
        return self._api.node_exists(node_id)

    def host_nqn(self, node_id: str) -> str | None:
        try:
            raw = self._api.node_annotations(node_id).get(HOST_NQN_ANNOTATION)
        except errors.NotFound:
            return None
        if not raw:
            return None
        try:
            return validate_host_nqn(raw)
        except errors.InvalidArgument as exc:  # the node's report is wrong, not the CSI request
            raise errors.FailedPrecondition(
                f"node {errors.quote_input(node_id)}: annotation {HOST_NQN_ANNOTATION}: {exc.message}"
            ) from exc

    def volume_limit(self, node_id: str) -> int:
        """The node's CSINode entry for this driver (the limit its node plugin reported), else the default."""
        limit = self._api.csi_node_volume_limit(node_id, self._driver)
        return self._default_volume_limit if limit is None else limit


class LoggingEventSink:
    """Where events go without a Kubernetes API: one structured log line each."""

    def post(self, volume_id: str, reason: str, message: str, *, warning: bool = False) -> None:
        level = logging.WARNING if warning else logging.INFO
        log_event(_log, "attach.event", level, volume_id=volume_id, reason=reason, message=message)


def fact_from_record(record: VolumeAttachmentRecord, pv: PvInfo | None, clock: Clock) -> VolumeAttachmentFact:
    """A VolumeAttachment (plus its PV, when known) as the attachment rules see it."""
    age = max(0.0, time.time() - record.created_at.timestamp())
    context: Mapping[str, str] = pv.volume_attributes if pv is not None else {}
    try:
        timeout = migration_timeout_from_context(context)
    except errors.InvalidArgument:  # a hand-edited PV: fall back to the default window rather than lose the VA
        timeout = DEFAULT_MIGRATION_TIMEOUT
    return VolumeAttachmentFact(
        # The table is keyed by the CSI volume id: a pre-provisioned PV's name is not its volume handle.
        volume_id=pv.volume_handle if pv is not None and pv.volume_handle else record.volume_id,
        node_id=record.node_id,
        created_at=clock.now() - age,
        attached=record.attached,
        multi_node_block=pv is not None and "ReadWriteMany" in pv.access_modes and pv.volume_mode == "Block",
        migration_timeout=timeout,
        readonly=pv.read_only if pv is not None else None,
    )


class KubeAttachmentSync:
    """Rebuild from VolumeAttachments, then follow them; follow Node deletions into the reconciler."""

    def __init__(
        self,
        api: KubeApi,
        driver_name: str,
        manager: AttachmentManager,
        reconciler: Reconciler,
        *,
        clock: Clock,
        watch_clock: Clock,
    ) -> None:
        """``clock`` is the manager's (attachment times); ``watch_clock`` paces the watches' reconnect backoff."""
        self._api = api
        self._driver = driver_name
        self._manager = manager
        self._clock = clock
        self._pvs: dict[str, PvInfo] = {}
        self._va_watcher = VolumeAttachmentWatcher(api, driver_name, self._on_va_event, watch_clock)
        self._node_watcher = NodeWatcher(api, lambda _node: reconciler.trigger(), watch_clock)

    def start(self) -> None:
        """Rebuild the table from the API (raises ``Unavailable`` if it cannot), then start following it."""
        self._pvs = {pv.name: pv for pv in self._api.list_pvs(self._driver)}
        records, _version = self._api.list_volume_attachments(self._driver)
        # Every VolumeAttachment holds its node until it is gone or unpublished: one still attaching (its publish
        # may have been answered just before a restart) and one being deleted alike.
        self._manager.rebuild(fact_from_record(r, self._pvs.get(r.volume_id), self._clock) for r in records)
        log_event(_log, "attach.rebuilt", volume_attachments=len(records))
        self._va_watcher.start()
        self._node_watcher.start()
        if not self._va_watcher.synced.wait(READY_TIMEOUT):
            raise errors.Unavailable("the VolumeAttachment watch did not sync within a minute")

    def stop(self) -> None:
        self._va_watcher.stop()
        self._node_watcher.stop()

    @property
    def volume_attachments_version(self) -> str | None:
        """The resourceVersion up to which VolumeAttachment changes have been applied to the manager."""
        return self._va_watcher.delivered_version

    def _on_va_event(self, kind: str, record: VolumeAttachmentRecord) -> None:
        pv = self._pvs.get(record.volume_id)
        if pv is None and kind != "DELETED":
            try:
                pv = self._api.get_pv(record.volume_id)
                self._pvs[pv.name] = pv
            except errors.RdsCsiError:
                pv = None  # an attachment without its PV is still an attachment
        fact = fact_from_record(record, pv, self._clock)
        if kind == "DELETED":
            self._manager.apply_va_event("DELETED", fact)
        elif record.deleting:
            # On its way out: its node keeps holding the volume (since the rebuild, its publish or its first event)
            # until the attacher's unpublish or the deletion, but it must never attach a node the table let go.
            return
        elif kind in ("ADDED", "MODIFIED"):
            self._manager.apply_va_event("ADDED" if kind == "ADDED" else "MODIFIED", fact)
