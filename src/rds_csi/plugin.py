"""Wiring: builds the servicers, the gRPC server and the metrics endpoint from a ``PluginConfig``; lifecycle."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from rds_csi import __version__
from rds_csi._native import BACKEND as NATIVE_BACKEND
from rds_csi.backends import RouterOSBackend
from rds_csi.config import PluginConfig
from rds_csi.csi.controller import ControllerServicer
from rds_csi.csi.identity import IdentityServicer
from rds_csi.csi.interceptors import CsiCallInterceptor
from rds_csi.csi.server import CsiServer
from rds_csi.csi.validation import CapacityLimits, ParameterDefaults
from rds_csi.observability.health import HealthRegistry
from rds_csi.observability.http import ObservabilityServer
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics
from rds_csi.routeros.volumes import VolumeBackend

_log = logging.getLogger(__name__)


class Plugin:
    def __init__(self, config: PluginConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.health = HealthRegistry()
        self.metrics.build_info.labels(__version__, NATIVE_BACKEND).set(1)
        identity = IdentityServicer(
            driver_name=config.driver_name,
            version=__version__,
            controller=config.mode.runs_controller,
            health=self.health,
        )
        registrations = [identity.register]
        self.routeros: RouterOSBackend | None = None
        self.controller: ControllerServicer | None = None
        if config.mode.runs_controller:
            self.routeros = RouterOSBackend(config.routeros, self.metrics)
            self.health.register("routeros", self.routeros.client.check)
            volumes = VolumeBackend(
                self.routeros.client,
                base_path=config.volumes.base_path,
                capacity_cache_seconds=config.volumes.capacity_cache_seconds,
            )
            self.controller = ControllerServicer(
                volumes,
                ParameterDefaults(
                    volume_path=config.volumes.base_path,
                    nvme_address=config.volumes.nvme_address,
                    nvme_port=config.volumes.nvme_port,
                ),
                CapacityLimits(maximum_bytes=config.volumes.max_volume_bytes),
            )
            registrations.append(self.controller.register)
        self.server = CsiServer(
            endpoints=config.endpoint,
            registrations=registrations,
            interceptors=[CsiCallInterceptor(self.metrics, config.rpc_timeout)],
            workers=config.grpc_workers,
        )
        self.http: ObservabilityServer | None = None
        if config.metrics_address is not None:
            self.http = ObservabilityServer(config.metrics_address, self.metrics, self.health)
        self._stop_requested = threading.Event()

    def start(self) -> None:
        log_event(
            _log,
            "plugin.starting",
            mode=self.config.mode.value,
            driver=self.config.driver_name,
            version=__version__,
            native_backend=NATIVE_BACKEND,
            node_id=self.config.node_id or "-",
        )
        if self.http is not None:
            self.http.start()
        try:
            self.server.start()
        except Exception:
            if self.http is not None:
                self.http.stop()
            if self.routeros is not None:
                self.routeros.close()
            raise

    def stop(self) -> None:
        log_event(_log, "plugin.stopping", timeout_s=self.config.shutdown_timeout)
        self.server.stop(self.config.shutdown_timeout)
        if self.http is not None:
            self.http.stop()
        if self.routeros is not None:
            self.routeros.close()
        log_event(_log, "plugin.stopped")

    def request_stop(self) -> None:
        self._stop_requested.set()

    def run_until_signalled(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then shut down gracefully. Call from the main thread."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log_event(_log, "plugin.signal", signal=signal.Signals(signum).name)
            self._stop_requested.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            self._stop_requested.wait()
            self.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
