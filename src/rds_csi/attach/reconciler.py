"""The thread that runs the attachment reconciler: once at start, every ``interval`` seconds, and on ``trigger()``.

Triggers (a Node deleted, RouterOS reconnected) that arrive while a pass runs coalesce into one more pass. The
interval is wall time (``threading.Event.wait``), because a trigger must be able to cut the wait short. The
pass itself (``AttachmentManager.reconcile``) fetches its facts without holding any table lock.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Final, Protocol

from rds_csi.attach.manager import ReconcileReport

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
        self._name = name
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        self._passes = 0
        self._failures = 0
        self._last_report: ReconcileReport | None = None

    def start(self) -> None:
        """Start the thread; its first pass runs at once. A reconciler starts once."""
        with self._state:
            if self._thread is not None:
                raise RuntimeError(f"{self._name} was already started")
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def trigger(self) -> None:
        """Ask for a pass now (or right after the one running)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Let a running pass finish, end the thread; False if it is still running after ``timeout`` seconds."""
        self._stopping.set()
        self._wake.set()
        with self._state:
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

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

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                report = self._target.reconcile()
            except Exception:
                _log.exception("attach.reconciler.failed")
                with self._state:
                    self._failures += 1
            else:
                with self._state:
                    self._passes += 1
                    self._last_report = report
            self._wake.wait(self._interval)
