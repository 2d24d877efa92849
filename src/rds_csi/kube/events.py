"""Kubernetes events on PVCs (and on the driver's CSIDriver object), posted best effort from a background worker.

``post()`` only enqueues, so a slow or hung API server never delays a CSI operation: a full queue drops the
event and counts it. The worker finds the PVC through the PV's claimRef (cached for a while) or through a claim
the provisioner told us about, and posts one core/v1 Event per call.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from rds_csi.core.clock import Clock, SystemClock
from rds_csi.core.errors import InvalidArgument, NotFound, RdsCsiError
from rds_csi.kube.api import ClaimRef, EventSpec, KubeApi
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics

_log = logging.getLogger(__name__)

COMPONENT = "rds-csi-controller"
DRIVER_EVENT_NAMESPACE = "default"  # where events about the cluster-scoped CSIDriver object are stored


@dataclass(frozen=True, slots=True)
class _Pending:
    volume_id: str
    reason: str
    message: str
    warning: bool
    timestamp: datetime
    on_driver: bool = False  # about the CSIDriver object, not a volume's PVC (volume_id is then only for logs)


_STOP = object()


class EventRecorder:
    """``EventSink`` for the controller. Live once constructed; ``stop()`` drains what it can and ends it."""

    def __init__(
        self,
        api: KubeApi,
        driver_name: str,
        metrics: Metrics | None,
        queue_size: int = 1000,
        post_timeout: float = 5.0,
        *,
        clock: Clock | None = None,
        claim_ttl: float = 300.0,
    ) -> None:
        if queue_size < 1 or post_timeout <= 0:
            raise InvalidArgument(f"event queue size and post timeout must be positive: {queue_size}, {post_timeout}")
        self._api = api
        self._driver_name = driver_name
        self._metrics = metrics
        self._post_timeout = post_timeout
        self._clock = clock or SystemClock()
        self._claim_ttl = claim_ttl
        self._queue: queue.Queue[_Pending | object] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._explicit: dict[str, tuple[str, str]] = {}
        self._claims: dict[str, tuple[ClaimRef, float]] = {}  # volume id -> (claim, expiry on the clock)
        self._stopping = threading.Event()
        self._drain_deadline = float("inf")
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name="rds-csi-events", daemon=True)
        self._thread.start()

    def post(self, volume_id: str, reason: str, message: str, *, warning: bool = False) -> None:
        """Queue an event on the PVC of ``volume_id``; never blocks, never raises."""
        self._enqueue(_Pending(volume_id, reason, message, warning, datetime.now(UTC)))

    def _enqueue(self, pending: _Pending) -> None:
        if self._stopping.is_set():
            self._drop(pending, "stopped")
            return
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            self._drop(pending, "queue_full")
        else:
            self._dropping = False

    def post_on_driver(self, subject: str, reason: str, message: str, *, warning: bool = False) -> None:
        """Queue an event on the driver's CSIDriver object, for what no PVC owns (``subject``, e.g. an orphaned
        volume's id, goes to the logs); never blocks, never raises."""
        self._enqueue(_Pending(subject, reason, message, warning, datetime.now(UTC), on_driver=True))

    def remember_claim(self, volume_id: str, namespace: str, name: str) -> None:
        """The PVC of a volume as the provisioner named it (extra create metadata); wins over the PV lookup."""
        with self._lock:
            self._explicit[volume_id] = (namespace, name)
            self._claims.pop(volume_id, None)

    def stop(self, timeout: float = 5.0) -> None:
        """Post what is queued until ``timeout`` runs out, then drop the rest; returns within ``timeout``."""
        deadline = time.monotonic() + timeout
        self._drain_deadline = deadline
        self._stopping.set()
        if not self._thread.is_alive():
            return
        # If the marker does not fit, the worker still quits: it checks the deadline before each event.
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=max(0.0, timeout))
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _drop(self, pending: _Pending, why: str) -> None:
        if self._metrics is not None:
            self._metrics.events_dropped.inc()
        if not self._dropping:  # one line per burst: a flood of identical warnings helps nobody
            self._dropping = True
            log_event(
                _log,
                "kube.event.dropped",
                logging.WARNING,
                volume_id=pending.volume_id,
                reason=pending.reason,
                why=why,
            )

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, _Pending)
            if self._stopping.is_set() and time.monotonic() >= self._drain_deadline:
                self._drop(item, "stopped")
                self._discard_queued()
                return
            self._deliver(item)

    def _discard_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Pending):
                self._drop(item, "stopped")

    def _deliver(self, pending: _Pending) -> None:
        result = "failed"
        try:
            self._api.create_event(self._spec(pending), timeout=self._post_timeout)
            result = "posted"
        except RdsCsiError as error:
            log_event(
                _log,
                "kube.event.failed",
                logging.WARNING,
                volume_id=pending.volume_id,
                reason=pending.reason,
                error=error.message,
            )
        except Exception:
            # The worker must outlive any bug in one delivery, or every later event is lost with it.
            _log.exception("kube.event.failed volume_id=%s reason=%s", pending.volume_id, pending.reason)
        if self._metrics is not None:
            self._metrics.events_posted.labels(reason=pending.reason, result=result).inc()

    def _spec(self, pending: _Pending) -> EventSpec:
        if pending.on_driver:
            return EventSpec(
                claim=ClaimRef(DRIVER_EVENT_NAMESPACE, self._driver_name),
                reason=pending.reason,
                message=pending.message,
                warning=pending.warning,
                component=COMPONENT,
                timestamp=pending.timestamp,
                kind="CSIDriver",
                api_version="storage.k8s.io/v1",
                cluster_scoped=True,
            )
        return EventSpec(
            claim=self._claim_of(pending.volume_id),
            reason=pending.reason,
            message=pending.message,
            warning=pending.warning,
            component=COMPONENT,
            timestamp=pending.timestamp,
        )

    def _claim_of(self, volume_id: str) -> ClaimRef:
        now = self._clock.now()
        with self._lock:
            cached = self._claims.get(volume_id)
            explicit = self._explicit.get(volume_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        claim = self._resolve_explicit(*explicit) if explicit is not None else self._resolve_from_pv(volume_id)
        with self._lock:
            self._claims[volume_id] = (claim, now + self._claim_ttl)
        return claim

    def _resolve_explicit(self, namespace: str, name: str) -> ClaimRef:
        try:
            return self._api.get_claim(namespace, name)
        except RdsCsiError:
            # The uid only ties the event to this incarnation of the claim; without it the event still lands.
            return ClaimRef(namespace, name)

    def _resolve_from_pv(self, volume_id: str) -> ClaimRef:
        try:
            pv = self._api.get_pv(volume_id)
        except NotFound:
            # A pre-provisioned PV may carry our volume id as its handle under another name.
            matches = [info for info in self._api.list_pvs(self._driver_name) if info.volume_handle == volume_id]
            if not matches:
                raise
            pv = matches[0]
        if pv.claim_namespace is None or pv.claim_name is None:
            raise NotFound(f"persistent volume {pv.name} is bound to no claim")
        return ClaimRef(pv.claim_namespace, pv.claim_name, pv.claim_uid)
