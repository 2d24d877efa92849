"""REST transport to RouterOS 7 (``/rest``, JSON, every value a string) over the HTTP stack the kubernetes
client already brings (urllib3). TLS verification is on unless explicitly disabled.

Like the SSH transport, failures are classified by whether the request may have reached the router: a refused
connection is safe to retry; a timeout or dropped connection after a non-GET request was sent raises
``CommandOutcomeUnknown`` so the caller re-reads state.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, EmptyPoolError, HTTPError, NewConnectionError, SSLError

from rds_csi import errors
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

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError("REST base URL must start with https:// (or http:// for a lab)")
        if self.pool_size < 1:
            raise ValueError("pool size must be at least 1")


class RestTransport:
    name = "rest"

    def __init__(self, settings: RestSettings) -> None:
        self.settings = settings
        self._base = settings.base_url.rstrip("/")
        verify = not settings.insecure_skip_tls_verify
        if not verify:
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
        self._auth = urllib3.make_headers(basic_auth=f"{settings.username}:{settings.password}")

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
        except EmptyPoolError as exc:
            raise errors.Unavailable(f"all {self.settings.pool_size} RouterOS REST connections stayed busy") from exc
        except (NewConnectionError, ConnectTimeoutError) as exc:
            raise errors.Unavailable(f"cannot connect to RouterOS REST at {self._base}: {exc}") from exc
        except SSLError as exc:
            raise errors.Unavailable(f"RouterOS REST TLS failure at {self._base}: {exc}") from exc
        except HTTPError as exc:
            if request.is_read:
                raise errors.Unavailable(f"RouterOS REST {method} {path} failed: {exc}") from exc
            raise CommandOutcomeUnknown(f"RouterOS REST {method} {path}: reply lost: {exc}") from exc
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
