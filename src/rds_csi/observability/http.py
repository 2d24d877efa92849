"""The HTTP endpoint for Prometheus (``/metrics``) and the liveness/readiness probe (``/healthz``)."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rds_csi.core.addresses import HostPort
from rds_csi.observability.health import HealthRegistry
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics

_log = logging.getLogger(__name__)


class ObservabilityServer:
    def __init__(self, address: HostPort, metrics: Metrics, health: HealthRegistry) -> None:
        self._metrics = metrics
        self._health = health
        self._server = ThreadingHTTPServer((address.host, address.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        log_event(_log, "metrics.listening", port=self.port)

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever: forever, if it never ran
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        metrics, health = self._metrics, self._health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
                elif path == "/healthz":
                    report = health.run()
                    self._reply(200 if report.ready else 503, "text/plain", (report.describe() + "\n").encode())
                else:
                    self._reply(404, "text/plain", b"not found\n")

            def _reply(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log_event(_log, "metrics.request", logging.DEBUG, line=format % args)

        return Handler
