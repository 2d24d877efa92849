"""REST transport to RouterOS 7 (``/rest``, JSON, every value a string) over the HTTP stack the kubernetes
client already brings (urllib3). TLS verification is on unless explicitly disabled.

Like the SSH transport, failures are classified by whether the request may have reached the router: a refused
connection is safe to retry; a timeout or dropped connection after a non-GET request was sent raises
``CommandOutcomeUnknown`` so the caller re-reads state.

Each request's whole exchange (connect, TLS handshake, request, status line, headers and body) is bounded by its
timeout, the time left of the call it serves. urllib3's timeouts bound each socket read, so an answer that trickles
in a byte at a time would never trip them; a watchdog thread therefore cuts the connection of any request still
running at its deadline (it shuts the socket down, so the blocked read returns at once and the connection is
discarded, never reused).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import json
import logging
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, EmptyPoolError, HTTPError, NewConnectionError, SSLError

from rds_csi.core import errors
from rds_csi.observability.logging import log_event
from rds_csi.routeros.commands import Command, RestRequest, to_rest
from rds_csi.routeros.failures import classify_rest_error
from rds_csi.routeros.parse import rest_records
from rds_csi.routeros.transport import CommandOutcomeUnknown, Record

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RestSettings:
    base_url: str  # e.g. https://rds.example:443 (no trailing /rest)
    username: str
    password: str
    ca_file: str | None = None
    insecure_skip_tls_verify: bool = False
    pool_size: int = 4
    connect_timeout: float = 5.0
    # Plain HTTP sends the password in clear text with every request: only when explicitly allowed.
    insecure_allow_http: bool = False

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError("REST base URL must start with https://")
        if self.base_url.startswith("http://") and not self.insecure_allow_http:
            raise ValueError("REST over http:// sends the RouterOS password in clear text; use https://")
        if self.pool_size < 1:
            raise ValueError("pool size must be at least 1")


class _Exchange:
    """One request in flight: the connection it uses, which the watchdog cuts if it still runs at ``deadline``."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.connection: _DeadlineBoundConnection | None = None
        self.finished = False
        self.cut = False


_EXCHANGE: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar("rds_csi_rest_exchange", default=None)
# Guards which exchange owns which connection: a connection the pool hands to the next request must never be cut for
# the previous one's deadline.
_OWNERSHIP = threading.Lock()


class _DeadlineBoundConnection(HTTPConnection):
    """A connection that joins the exchange of the request using it (urllib3 calls these in that request's thread)."""

    owner: _Exchange | None = None

    def connect(self) -> None:
        self._join_exchange()
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._join_exchange()
        super().request(*args, **kwargs)

    def _join_exchange(self) -> None:
        exchange = _EXCHANGE.get()
        if exchange is not None:
            with _OWNERSHIP:
                exchange.connection, self.owner = self, exchange


class _DeadlineBoundHTTPSConnection(_DeadlineBoundConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineBoundConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineBoundHTTPSConnection


class _Watchdog:
    """One thread per transport (started with the first request): at each exchange's deadline, if it still runs, shut
    down the socket of the connection it uses."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, _Exchange]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, exchange: _Exchange) -> None:
        with self._wake:
            if self._closed:
                return
            heapq.heappush(self._due, (exchange.deadline, next(self._order), exchange))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="routeros-rest-watchdog", daemon=True)
                self._thread.start()
            self._wake.notify()

    @staticmethod
    def finish(exchange: _Exchange) -> None:
        with _OWNERSHIP:
            exchange.finished = True

    def close(self) -> None:
        with self._wake:
            self._closed = True
            thread, self._thread = self._thread, None
            self._wake.notify()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        with self._wake:
            while not self._closed:
                while self._due and self._due[0][2].finished:
                    heapq.heappop(self._due)
                if not self._due:
                    self._wake.wait()
                    continue
                remaining = self._due[0][0] - time.monotonic()
                if remaining > 0:
                    self._wake.wait(remaining)
                    continue
                _cut(heapq.heappop(self._due)[2])


def _cut(exchange: _Exchange) -> None:
    with _OWNERSHIP:
        if exchange.finished:
            return
        exchange.cut = True
        connection = exchange.connection
        # Released to the pool and taken by the next request already: that one is not this deadline's to cut.
        sock = connection.sock if connection is not None and connection.owner is exchange else None
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by its own thread: nothing left to cut
            # The plain socket call: it wakes the thread blocked in a read without touching the TLS state it holds.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class RestTransport:
    name = "rest"

    def __init__(self, settings: RestSettings) -> None:
        self.settings = settings
        self._base = settings.base_url.rstrip("/")
        verify = not settings.insecure_skip_tls_verify
        if self._base.startswith("http://"):
            log_event(_log, "routeros.rest.plain_http", logging.WARNING, url=self._base, note="password in clear text")
        elif not verify:
            log_event(_log, "routeros.rest.tls_verification_disabled", logging.WARNING, url=self._base)
        self._http = urllib3.PoolManager(
            num_pools=2,
            maxsize=settings.pool_size,
            block=True,
            cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
            ca_certs=settings.ca_file,
            assert_hostname=None if verify else False,
            retries=False,
        )
        self._http.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        self._auth = urllib3.make_headers(basic_auth=f"{settings.username}:{settings.password}")
        self._watchdog = _Watchdog()

    def execute(self, command: Command, timeout: float) -> list[Record]:
        """``timeout`` bounds the whole command: a lookup and its per-item requests share it."""
        request = to_rest(command)
        if request.lookup is None:
            return self._send(request, timeout)
        deadline = time.monotonic() + timeout
        results: list[Record] = []
        for index, item_id in enumerate(request.lookup.item_ids(self._send(request.lookup, timeout))):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if index == 0:
                    raise errors.Unavailable(f"RouterOS REST: no time left after the lookup ({timeout:g}s)")
                raise CommandOutcomeUnknown(f"RouterOS REST: {index} item(s) changed, then no time left ({timeout:g}s)")
            results.extend(self._send(request.with_id(item_id), remaining))
        return results

    def close(self) -> None:
        self._watchdog.close()
        self._http.clear()

    def _send(self, request: RestRequest, timeout: float) -> list[Record]:
        payload = self._call(request, timeout)
        if payload is None:
            return []
        return [dict(r) for r in request.select(rest_records(payload))] if request.is_read else rest_records(payload)

    def _call(self, request: RestRequest, timeout: float) -> Any:
        method, path, query, body = request.method, request.path, request.query_params(), request.json_body()
        url = self._base + path
        if query:
            url += "?" + urllib.parse.urlencode(dict(query))
        exchange = _Exchange(time.monotonic() + timeout)
        self._watchdog.watch(exchange)
        joined = _EXCHANGE.set(exchange)
        try:
            response = self._http.request(
                method,
                url,
                body=json.dumps(body).encode() if body is not None else None,
                headers={**self._auth, "Content-Type": "application/json"} if body is not None else self._auth,
                timeout=urllib3.Timeout(connect=min(self.settings.connect_timeout, timeout), read=timeout),
                preload_content=True,
                pool_timeout=timeout,
            )
        except HTTPError as exc:
            if exchange.cut:
                message = f"RouterOS REST {method} {path}: no complete answer within {timeout:g}s"
                if request.is_read:
                    raise errors.Unavailable(message) from exc
                raise CommandOutcomeUnknown(message) from exc
            raise self._failure(request, exc) from exc
        finally:
            _EXCHANGE.reset(joined)
            self._watchdog.finish(exchange)
        text = response.data.decode(errors="replace")
        if response.status >= 400:
            raise classify_rest_error(response.status, text)
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            message = f"RouterOS REST {method} {path} answered non-JSON: {text[:200]!r}"
            if request.is_read:
                raise errors.Internal(message) from exc
            # An answer to a change that we cannot read says nothing about whether the change happened.
            raise CommandOutcomeUnknown(message) from exc

    def _failure(self, request: RestRequest, exc: HTTPError) -> errors.RdsCsiError:
        """The domain error for a request that failed in transport (not at its deadline)."""
        if isinstance(exc, EmptyPoolError):
            return errors.Unavailable(f"all {self.settings.pool_size} RouterOS REST connections stayed busy")
        if isinstance(exc, NewConnectionError | ConnectTimeoutError):
            return errors.Unavailable(f"cannot connect to RouterOS REST at {self._base}: {exc}")
        if isinstance(exc, SSLError):
            return errors.Unavailable(f"RouterOS REST TLS failure at {self._base}: {exc}")
        if request.is_read:
            return errors.Unavailable(f"RouterOS REST {request.method} {request.path} failed: {exc}")
        return CommandOutcomeUnknown(f"RouterOS REST {request.method} {request.path}: reply lost: {exc}")
