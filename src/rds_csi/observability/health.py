"""Named health checks, shared by the CSI Probe and the HTTP ``/healthz`` endpoint.

A check is a callable that returns ``None`` when healthy or raises with a reason. Backends register theirs
(the RouterOS backend registers a cheap command) when they are wired in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rds_csi.observability.logging import log_event

HealthCheck = Callable[[], None]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HealthReport:
    ready: bool
    failures: tuple[tuple[str, str], ...]  # (check name, reason)

    def describe(self) -> str:
        return "; ".join(f"{name}: {reason}" for name, reason in self.failures) or "ok"


class HealthRegistry:
    def __init__(self) -> None:
        self._checks: dict[str, HealthCheck] = {}
        self._lock = threading.Lock()

    def register(self, name: str, check: HealthCheck) -> None:
        with self._lock:
            if name in self._checks:
                raise ValueError(f"health check {name!r} registered twice")
            self._checks[name] = check

    def run(self) -> HealthReport:
        with self._lock:
            checks = list(self._checks.items())
        failures: list[tuple[str, str]] = []
        for name, check in checks:
            try:
                check()
            except Exception as exc:  # a check's failure is data, whatever its type
                reason = str(exc) or type(exc).__name__
                failures.append((name, reason))
                log_event(_log, "health.check_failed", logging.WARNING, check=name, reason=reason)
        return HealthReport(ready=not failures, failures=tuple(failures))
