"""The thread that runs the attachment reconciler: once at start, every ``interval`` seconds, and on ``trigger()``.

Triggers (a Node deleted, RouterOS reconnected) that arrive while a pass runs coalesce into one more pass
(``rds_csi.core.loop``). The pass itself (``AttachmentManager.reconcile``) fetches its facts without holding any
table lock.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Final, Protocol

from rds_csi.attach.manager import ReconcileReport
from rds_csi.core.loop import PeriodicThread

_log = logging.getLogger(__name__)

DEFAULT_INTERVAL: Final = 300.0


class Reconcilable(Protocol):
    def reconcile(self) -> ReconcileReport: ...


class Reconciler:
    def __init__(
        self, target: Reconcilable, interval: float = DEFAULT_INTERVAL, *, name: str = "attachment-reconciler"
    ) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"reconcile interval must be a positive number of seconds, got {interval!r}")
        self._target = target
        self._interval = float(interval)
        self._loop = PeriodicThread(name, self._pass, on_failure=self._failed)
        self._state = threading.Lock()
        self._passes = 0
        self._failures = 0
        self._last_report: ReconcileReport | None = None

    def start(self) -> None:
        """Start the thread; its first pass runs at once. A reconciler starts once."""
        self._loop.start()

    def trigger(self) -> None:
        """Ask for a pass now (or right after the one running)."""
        self._loop.trigger()

    def stop(self, timeout: float = 30.0) -> bool:
        """Let a running pass finish, end the thread; False if it is still running after ``timeout`` seconds."""
        return self._loop.stop(timeout)

    @property
    def passes(self) -> int:
        """Passes that completed."""
        with self._state:
            return self._passes

    @property
    def failures(self) -> int:
        """Passes that raised (logged; the thread carries on)."""
        with self._state:
            return self._failures

    @property
    def last_report(self) -> ReconcileReport | None:
        with self._state:
            return self._last_report

    def _pass(self) -> float:
        report = self._target.reconcile()
        with self._state:
            self._passes += 1
            self._last_report = report
        return self._interval

    def _failed(self, failure: Exception) -> float:
        _log.error("attach.reconciler.failed", exc_info=failure)
        with self._state:
            self._failures += 1
        return self._interval
