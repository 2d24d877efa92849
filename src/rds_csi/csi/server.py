"""The CSI gRPC server: unix socket (and optional TCP) endpoints, a sized thread pool, graceful shutdown.

A unix socket path that exists is only removed when nothing answers on it (a stale file from a crashed run);
a live socket means another plugin is serving there, and we refuse to start rather than steal it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc

from rds_csi.core.addresses import Endpoint
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

ServicerRegistration = Callable[[grpc.Server], None]


class EndpointInUse(RuntimeError):
    """Another process is already serving on the endpoint (or it is not ours to replace)."""


def _probe_unix_socket(path: str) -> bool:
    """True when a process accepts connections on the socket at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise EndpointInUse(f"cannot tell whether {path} is in use: {exc}") from exc
    finally:
        probe.close()
    return True


def prepare_unix_socket(path: str) -> None:
    """Make ``path`` bindable: create its directory, remove a stale socket, refuse a live one or a non-socket."""
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise EndpointInUse(f"{path} exists and is not a socket; refusing to replace it")
    if _probe_unix_socket(path):
        raise EndpointInUse(f"another process is serving on {path}")
    log_event(_log, "csi.stale_socket_removed", path=path)
    os.unlink(path)


@dataclass(frozen=True, slots=True)
class _BoundSocket:
    path: str
    inode: int


class CsiServer:
    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        registrations: Sequence[ServicerRegistration],
        interceptors: Sequence[grpc.ServerInterceptor[Any, Any]],
        workers: int,
    ) -> None:
        self._endpoints = tuple(endpoints)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="csi"),
            interceptors=list(interceptors),
            options=[("grpc.so_reuseport", 0)],
        )
        for register in registrations:
            register(self._server)
        self._sockets: list[_BoundSocket] = []
        self.tcp_ports: dict[Endpoint, int] = {}

    def start(self) -> None:
        for endpoint in self._endpoints:
            if endpoint.scheme == "unix":
                prepare_unix_socket(endpoint.address)
                self._bind(endpoint, f"unix://{endpoint.address}")
                self._sockets.append(_BoundSocket(endpoint.address, os.lstat(endpoint.address).st_ino))
            else:
                self.tcp_ports[endpoint] = self._bind(endpoint, endpoint.address)
        self._server.start()
        log_event(_log, "csi.listening", endpoints=",".join(str(e) for e in self._endpoints))

    def _bind(self, endpoint: Endpoint, target: str) -> int:
        try:
            port = int(self._server.add_insecure_port(target))
        except RuntimeError as exc:
            raise EndpointInUse(f"cannot listen on {endpoint}: {exc}") from exc
        if port == 0 and endpoint.scheme == "tcp":
            raise EndpointInUse(f"cannot listen on {endpoint}")
        return port

    def stop(self, timeout: float) -> None:
        """Stop accepting calls, let in-flight ones finish for up to ``timeout`` seconds, remove our sockets."""
        self._server.stop(grace=timeout).wait(timeout + 5)
        for bound in self._sockets:
            # Remove only the socket we created: a new instance may already have replaced it.
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(bound.path).st_ino == bound.inode:
                    os.unlink(bound.path)
        self._sockets.clear()
        log_event(_log, "csi.stopped")

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))
