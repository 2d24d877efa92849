"""Finds (and, only when told to, deletes) volumes on the RDS that no PersistentVolume claims.

Off by default; ``dry-run`` reports (log line, ``rds_csi_orphan_volumes{state}``, a Warning event on the
CSIDriver object) without touching anything. ``delete`` removes ripe orphans that are not published anywhere.
A pass that cannot list PVs does nothing: an unknown answer is never taken for "no PV".
"""

from __future__ import annotations

import logging
from typing import Protocol

from rds_csi.attach import AttachmentManager
from rds_csi.core import errors
from rds_csi.core.clock import Clock
from rds_csi.core.loop import PeriodicThread
from rds_csi.core.settings import OrphanMode
from rds_csi.kube import KubeApi
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics
from rds_csi.routeros.names import parse_router_path
from rds_csi.routeros.orphans import OrphanCandidate, OrphanScan, age_candidates, unclaimed
from rds_csi.routeros.volumes import VolumeBackend

_log = logging.getLogger(__name__)


class DriverEvents(Protocol):
    """Posts an event on the driver's CSIDriver object; expected to enqueue and return (``kube.EventRecorder``)."""

    def post_on_driver(self, subject: str, reason: str, message: str, *, warning: bool = False) -> None: ...


class OrphanReconciler:
    def __init__(
        self,
        volumes: VolumeBackend,
        kube: KubeApi,
        attachments: AttachmentManager,
        metrics: Metrics,
        clock: Clock,
        *,
        events: DriverEvents,
        driver_name: str,
        mode: OrphanMode,
        grace_seconds: float,
        interval: float,
    ) -> None:
        self._volumes = volumes
        self._kube = kube
        self._attachments = attachments
        self._events = events
        self._metrics = metrics
        self._clock = clock
        self._driver = driver_name
        self._mode = mode
        self._grace = grace_seconds
        self._interval = interval
        self._first_seen: dict[str, float] = {}
        self._reported: set[str] = set()
        self._loop = PeriodicThread("orphan-reconciler", self._pass, on_failure=self._failed, first_delay=interval)

    def scan_once(self) -> OrphanScan | None:
        """One pass. Returns None when the PVs or the RDS could not be listed (nothing is decided then)."""
        try:
            claimed = frozenset(pv.volume_handle or pv.name for pv in self._kube.list_pvs(self._driver))
            volumes = self._volumes.list_volumes()
            files = self._volumes.client.list_files(self._volumes.base)
        except errors.RdsCsiError as exc:
            log_event(_log, "orphans.scan_skipped", logging.WARNING, reason=exc.message)
            return None
        scan = age_candidates(
            unclaimed(volumes, files, self._volumes.base, claimed), self._first_seen, self._clock.now(), self._grace
        )
        self._first_seen = dict(scan.first_seen)
        self._metrics.orphans.labels("waiting").set(len(scan.waiting))
        self._metrics.orphans.labels("ripe").set(len(scan.ripe))
        for candidate in scan.ripe:
            self._handle(candidate)
        self._reported &= {c.volume_id for c in scan.ripe}
        return scan

    def _handle(self, candidate: OrphanCandidate) -> None:
        if self._mode is OrphanMode.DELETE and not self._attachments.published_nodes(candidate.volume_id):
            try:
                if candidate.kind == "volume":
                    self._volumes.delete_volume(candidate.volume_id)
                else:
                    self._volumes.client.remove_file(parse_router_path(candidate.path))
            except errors.RdsCsiError as exc:
                log_event(
                    _log, "orphans.delete_failed", logging.WARNING, volume_id=candidate.volume_id, error=exc.message
                )
                return
            self._metrics.orphans_deleted.inc()
            self._report(
                candidate, "OrphanVolumeDeleted", f"deleted {candidate.kind} {candidate.path}: no PV claims it"
            )
            return
        if candidate.volume_id not in self._reported:
            self._reported.add(candidate.volume_id)
            self._report(
                candidate,
                "OrphanVolumeFound",
                f"{candidate.kind} {candidate.path} has had no PV for at least {self._grace:.0f}s; "
                f"{'it is published, so it is kept' if self._mode is OrphanMode.DELETE else 'dry run: not deleted'}",
            )

    def _report(self, candidate: OrphanCandidate, reason: str, message: str) -> None:
        log_event(_log, "orphans." + reason, logging.WARNING, volume_id=candidate.volume_id, message=message)
        self._events.post_on_driver(candidate.volume_id, reason, message, warning=True)

    # ---- thread -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """The first pass runs one interval after the start (the controller's own start-up comes first)."""
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> bool:
        return self._loop.stop(timeout)

    def _pass(self) -> float:
        self.scan_once()
        return self._interval

    def _failed(self, failure: Exception) -> float:
        log_event(_log, "orphans.scan_failed", logging.ERROR, error=repr(failure))
        return self._interval
