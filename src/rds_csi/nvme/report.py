"""Reporting the host NQN to the controller: an annotation on this node's Node object.

The controller reads it when it fences a volume to this node (``fencing: "true"``), so it must be there before
the first such publish and must stay there. A background thread writes it at start, retrying with capped
backoff while the API server is not reachable yet (normal while a node boots), then re-checks it periodically and
restores it if someone removed or changed it. Nothing waits for it: the CSI server serves meanwhile.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from rds_csi.core.loop import PeriodicThread
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

HOST_NQN_ANNOTATION = "rds.csi.srvlab.io/host-nqn"
"""The Node annotation through which a node plugin reports the NVMe host NQN its kernel connects with."""


class NodeAnnotations(Protocol):
    """Read and merge-patch the annotations of a Node; failures raise ``rds_csi.core.errors`` exceptions."""

    def node_annotations(self, name: str) -> dict[str, str]: ...

    def annotate_node(self, name: str, annotations: Mapping[str, str]) -> None: ...


@dataclass(frozen=True, slots=True)
class ReportSchedule:
    """When to look again: ``recheck_interval`` after a good check, doubling backoff up to a cap after a failure."""

    recheck_interval: float = 300.0
    initial_backoff: float = 1.0
    max_backoff: float = 60.0

    def __post_init__(self) -> None:
        for name in ("recheck_interval", "initial_backoff", "max_backoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    def retry_delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1-based)."""
        # A bounded exponent: a long outage must not overflow the float (2.0 ** 1024 does, after ~17 h at a 60 s cap).
        return min(self.max_backoff, self.initial_backoff * 2.0 ** min(failures - 1, 64))


class HostNqnReporter:
    """Keeps ``HOST_NQN_ANNOTATION`` on the Node named ``node_id`` equal to ``host_nqn``."""

    def __init__(
        self, nodes: NodeAnnotations, node_id: str, host_nqn: str, schedule: ReportSchedule | None = None
    ) -> None:
        self._nodes = nodes
        self._node_id = node_id
        self._host_nqn = host_nqn
        self._schedule = schedule or ReportSchedule()
        self._loop = PeriodicThread("rds-csi-host-nqn-report", self._pass, on_failure=self._failed)
        self._failures = 0  # consecutive failed checks, for the backoff (touched only by the loop's thread)
        self._lock = threading.Lock()
        self._writes = 0
        self.reported = threading.Event()  # set once the annotation was seen (or made) correct; stays set

    @property
    def writes(self) -> int:
        """Annotation writes so far: the first report and every restoration."""
        with self._lock:
            return self._writes

    def ensure(self) -> bool:
        """Check the annotation once and write it if it is missing or different; True if it was written."""
        current = self._nodes.node_annotations(self._node_id).get(HOST_NQN_ANNOTATION)
        if current == self._host_nqn:
            return False
        self._nodes.annotate_node(self._node_id, {HOST_NQN_ANNOTATION: self._host_nqn})
        with self._lock:
            self._writes += 1
        log_event(
            _log,
            "node.host_nqn_reported",
            node_id=self._node_id,
            host_nqn=self._host_nqn,
            annotation=HOST_NQN_ANNOTATION,
            previous=current if current is not None else "-",
        )
        return True

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread (a check in flight is bounded by the API request timeout); False if it is still alive."""
        return self._loop.stop(timeout)

    def _pass(self) -> float:
        self.ensure()
        self._failures = 0
        self.reported.set()
        return self._schedule.recheck_interval

    def _failed(self, error: Exception) -> float:
        # Any failure, even one we do not understand, is retried: a dead reporter would leave fenced volumes
        # unpublishable to this node with nothing in the logs after the first line.
        self._failures += 1
        delay = self._schedule.retry_delay(self._failures)
        log_event(
            _log,
            "node.host_nqn_report_failed",
            logging.WARNING,
            node_id=self._node_id,
            error=str(error) or type(error).__name__,
            attempt=self._failures,
            retry_in_s=delay,
        )
        return delay
