"""SSH transport to RouterOS: a pool of persistent authenticated paramiko connections running exec commands.

``SshPool`` moves strings only: a rendered command line in, exit status and output out; ``SshTransport`` renders
commands and hands the text to the sans-IO parsers.

Failures are classified by *when* they happened, because that decides whether a retry is safe: before the
command was sent (connect, open channel) the pool retries on a fresh connection; after it was sent, a lost reply
raises ``CommandOutcomeUnknown`` so the caller re-reads state instead of repeating the command.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import random
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import paramiko

from rds_csi.core import errors
from rds_csi.core.clock import Clock, SystemClock
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics
from rds_csi.routeros.commands import Command, render_cli
from rds_csi.routeros.failures import classify_failure, find_failure
from rds_csi.routeros.parse import parse_detail, parse_key_values
from rds_csi.routeros.transport import CommandOutcomeUnknown, CredentialsRefused, Record

_log = logging.getLogger(__name__)

_READ_CHUNK = 65536


class HostKeyMismatch(errors.Unavailable):
    """The server's host key is not the one we trust. Never proceed: this is what a man in the middle looks like."""


@dataclass(frozen=True, slots=True)
class SshSettings:
    host: str
    username: str
    port: int = 22
    key_file: str | None = None
    password: str | None = None
    known_hosts_file: str | None = None
    # "ssh-ed25519 AAAA..." (type and base64 key) or "SHA256:<base64>" (the OpenSSH fingerprint form).
    pinned_host_key: str | None = None
    insecure_skip_host_key: bool = False
    pool_size: int = 4
    connect_timeout: float = 10.0
    keepalive_interval: int = 15
    backoff_initial: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        if self.key_file is None and self.password is None:
            raise ValueError("SSH needs a private key file or a password")
        if not (self.known_hosts_file or self.pinned_host_key or self.insecure_skip_host_key):
            raise ValueError("SSH host key verification needs a known_hosts file or a pinned key")
        if self.pool_size < 1:
            raise ValueError("pool size must be at least 1")


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_status: int
    stdout: str
    stderr: str


def host_key_fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(slots=True)
class _Ticket:
    """A thread waiting for a connection; served strictly in arrival order."""

    ready: threading.Event = field(default_factory=threading.Event)
    granted: bool = False
    conn: _Connection | None = None


class _Connection:
    def __init__(self, transport: paramiko.Transport) -> None:
        self.transport = transport

    def alive(self) -> bool:
        return bool(self.transport.is_active())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()


class SshPool:
    """Up to ``pool_size`` connections; each command borrows one, so that many run in parallel."""

    def __init__(
        self,
        settings: SshSettings,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._waiters: deque[_Ticket] = deque()
        self._open = 0
        self._busy = 0
        self._closed = False
        self._consecutive_failures = 0
        self._next_connect_at = 0.0
        self._key = paramiko.PKey.from_path(settings.key_file) if settings.key_file else None
        self._known_hosts = paramiko.HostKeys(settings.known_hosts_file) if settings.known_hosts_file else None
        if settings.insecure_skip_host_key:
            log_event(
                _log, "routeros.ssh.host_key_verification_disabled", logging.WARNING,
                host=settings.host, port=settings.port,
            )  # fmt: skip

    # ---- public -------------------------------------------------------------------------------------------------

    def run(self, line: str, timeout: float) -> ExecResult:
        """Run one command line. Raises ``Unavailable`` (or ``CommandOutcomeUnknown``) on transport failures."""
        deadline = self._clock.now() + timeout
        while True:
            conn = self._acquire(deadline)
            try:
                channel = self._open_channel(conn, deadline)
            except errors.Unavailable:
                self._discard(conn)
                raise
            except Exception as exc:
                # Nothing was sent: a pooled connection died while idle. Replace it and try again.
                log_event(_log, "routeros.ssh.stale_connection", logging.INFO, error=repr(exc))
                self._discard(conn)
                if self._clock.now() >= deadline:
                    raise errors.Unavailable(f"RouterOS SSH: no usable connection within {timeout:g}s") from exc
                continue
            try:
                result = self._exec(channel, line, deadline, timeout)
            except BaseException:
                self._discard(conn)
                raise
            self._release(conn)
            return result

    def stats(self) -> tuple[int, int]:
        """(open connections, busy connections)."""
        with self._lock:
            return self._open, self._busy

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            for ticket in self._waiters:
                ticket.ready.set()  # not granted: the waiter sees the pool closed
        for conn in idle:
            conn.close()
        self._publish_stats()

    # ---- pool bookkeeping ---------------------------------------------------------------------------------------

    def _acquire(self, deadline: float) -> _Connection:
        while True:
            conn: _Connection | None
            ticket: _Ticket | None = None
            with self._lock:
                if self._closed:
                    raise errors.Unavailable("RouterOS SSH pool is closed")
                # Nobody overtakes a waiter: otherwise a thread that releases and re-acquires in a loop (an RPC
                # issuing several commands) can starve the others past their timeout.
                if self._idle and not self._waiters:
                    conn = self._idle.pop()
                    self._busy += 1
                elif self._open < self.settings.pool_size and not self._waiters:
                    self._open += 1
                    self._busy += 1
                    conn = None
                else:
                    ticket = _Ticket()
                    self._waiters.append(ticket)
            if ticket is not None:
                ticket.ready.wait(max(0.0, deadline - self._clock.now()))
                with self._lock:
                    if not ticket.granted:
                        self._waiters.remove(ticket)
                        if self._closed:
                            raise errors.Unavailable("RouterOS SSH pool is closed")
                        raise errors.Unavailable(
                            f"all {self.settings.pool_size} RouterOS SSH connections stayed busy; retry later"
                        )
                conn = ticket.conn  # None: we were handed the right to open a new connection
            self._publish_stats()
            if conn is None:
                try:
                    return self._connect(deadline)
                except BaseException:
                    self._forget_slot()
                    raise
            if conn.alive():
                return conn
            self._discard(conn)

    def _hand_over(self, conn: _Connection | None) -> bool:
        """Give a busy slot (a connection, or None: "open a new one") to the longest waiter; caller holds the lock."""
        if not self._waiters or self._closed:
            return False
        ticket = self._waiters.popleft()
        ticket.conn, ticket.granted = conn, True
        ticket.ready.set()
        return True

    def _release(self, conn: _Connection) -> None:
        with self._lock:
            closed = self._closed
            if closed:
                self._open -= 1
                self._busy -= 1
            elif not self._hand_over(conn):
                self._idle.append(conn)
                self._busy -= 1
        if closed:
            conn.close()
        self._publish_stats()

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._forget_slot()

    def _forget_slot(self) -> None:
        with self._lock:
            if not self._hand_over(None):
                self._busy -= 1
                self._open -= 1
        self._publish_stats()

    def _publish_stats(self) -> None:
        if self._metrics is not None:
            open_, busy = self.stats()
            self._metrics.routeros_pool_connections.labels("open").set(open_)
            self._metrics.routeros_pool_connections.labels("busy").set(busy)

    # ---- connecting ---------------------------------------------------------------------------------------------

    def _connect(self, deadline: float) -> _Connection:
        """Open and authenticate one connection, waiting out the reconnect backoff if it fits the deadline."""
        s = self.settings
        while True:
            wait = self._next_connect_at - self._clock.now()
            if wait > 0:
                if self._clock.now() + wait >= deadline:
                    raise errors.Unavailable(
                        f"RouterOS SSH {s.host}:{s.port} unreachable after {self._consecutive_failures} attempts; "
                        f"next attempt in {wait:.1f}s"
                    )
                self._clock.sleep(wait)
            try:
                conn = self._handshake(min(s.connect_timeout, max(0.1, deadline - self._clock.now())))
            except (HostKeyMismatch, CredentialsRefused):
                self._note_connect_failure()  # back off: RouterOS may block a source that keeps failing to log in
                raise
            except (OSError, EOFError, paramiko.SSHException) as exc:
                self._note_connect_failure()
                log_event(
                    _log, "routeros.ssh.connect_failed", logging.WARNING, host=s.host, port=s.port,
                    failures=self._consecutive_failures, error=str(exc) or type(exc).__name__,
                )  # fmt: skip
                if self._clock.now() >= deadline:
                    raise errors.Unavailable(f"cannot connect to RouterOS SSH at {s.host}:{s.port}: {exc}") from exc
                continue
            if self._consecutive_failures and self._metrics is not None:
                self._metrics.routeros_reconnects.inc()
            self._consecutive_failures = 0
            self._next_connect_at = 0.0
            return conn

    def _note_connect_failure(self) -> None:
        s = self.settings
        self._consecutive_failures += 1
        ceiling = min(s.backoff_max, s.backoff_initial * 2 ** (self._consecutive_failures - 1))
        # Full jitter in the upper half: spreads reconnect storms from many controllers, keeps progress.
        self._next_connect_at = self._clock.now() + ceiling * self._rng.uniform(0.5, 1.0)

    def _handshake(self, timeout: float) -> _Connection:
        s = self.settings
        sock = socket.create_connection((s.host, s.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = paramiko.Transport(sock)
        except BaseException:
            sock.close()
            raise
        conn = _Connection(transport)
        try:
            transport.banner_timeout = timeout
            transport.auth_timeout = timeout
            transport.start_client(timeout=timeout)
            self._verify_host_key(transport.get_remote_server_key())
            if self._key is not None:
                transport.auth_publickey(s.username, self._key)
            else:
                transport.auth_password(s.username, s.password or "")
            if not transport.is_authenticated():
                raise paramiko.AuthenticationException("authentication did not complete")
            transport.set_keepalive(s.keepalive_interval)
        except paramiko.AuthenticationException as exc:
            conn.close()
            how = "key" if self._key is not None else "password"
            raise CredentialsRefused(
                f"RouterOS refused the credentials of user {s.username!r} (SSH {how}) at {s.host}:{s.port}: {exc}"
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _verify_host_key(self, key: paramiko.PKey) -> None:
        s = self.settings
        if s.insecure_skip_host_key:
            return
        offered = f"{key.get_name()} {key.get_base64()}"
        fingerprint = host_key_fingerprint(key)
        if s.pinned_host_key:
            pinned = s.pinned_host_key.strip()
            pinned_key = " ".join(pinned.split()[:2])
            if pinned in (fingerprint, fingerprint + "=") or pinned_key == offered:
                return
        elif self._known_hosts is not None:
            name = s.host if s.port == 22 else f"[{s.host}]:{s.port}"
            known = self._known_hosts.lookup(name)
            if known is not None and key.get_name() in known and known[key.get_name()] == key:
                return
        raise HostKeyMismatch(
            f"RouterOS SSH host key for {s.host}:{s.port} is not trusted (offered {key.get_name()} {fingerprint}); "
            "add it to the known_hosts file or pin it"
        )

    # ---- running one command ------------------------------------------------------------------------------------

    def _open_channel(self, conn: _Connection, deadline: float) -> paramiko.Channel:
        remaining = deadline - self._clock.now()
        if remaining <= 0:
            raise errors.Unavailable("RouterOS SSH: deadline passed before the command could be sent")
        channel = conn.transport.open_session(timeout=remaining)
        channel.settimeout(remaining)
        return channel

    def _exec(self, channel: paramiko.Channel, line: str, deadline: float, timeout: float) -> ExecResult:
        try:
            channel.exec_command(line)
        except Exception as exc:
            raise CommandOutcomeUnknown(f"RouterOS SSH: connection lost while sending the command: {exc}") from exc
        try:
            stdout = self._read_all(channel, channel.recv, deadline)
            stderr = self._read_all(channel, channel.recv_stderr, deadline)
            if not channel.status_event.wait(max(0.0, deadline - self._clock.now())):
                raise TimeoutError
        except TimeoutError as exc:
            raise CommandOutcomeUnknown(f"RouterOS SSH: no complete reply within {timeout:g}s") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise CommandOutcomeUnknown(f"RouterOS SSH: connection lost before the reply: {exc}") from exc
        finally:
            channel.close()
        if channel.exit_status < 0:
            # The server closed the channel without an exit status: the session died mid-command.
            raise CommandOutcomeUnknown("RouterOS SSH: the channel closed without an exit status")
        return ExecResult(channel.exit_status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def _read_all(self, channel: paramiko.Channel, recv: Callable[[int], bytes], deadline: float) -> bytes:
        chunks = bytearray()
        while True:
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                raise TimeoutError
            channel.settimeout(remaining)
            data = recv(_READ_CHUNK)
            if not data:
                return bytes(chunks)
            chunks += data


class SshTransport:
    name = "ssh"

    def __init__(self, pool: SshPool) -> None:
        self._pool = pool

    def execute(self, command: Command, timeout: float) -> list[Record]:
        result = self._pool.run(render_cli(command), timeout)
        output = result.stdout + result.stderr
        failure = find_failure(output)
        if failure is not None or result.exit_status != 0:
            raise classify_failure(failure or output.strip() or f"exit status {result.exit_status}")
        return records_from_console(command, result.stdout)

    def pool_stats(self) -> tuple[int, int]:
        """(open, busy) connections."""
        return self._pool.stats()

    def close(self) -> None:
        self._pool.close()


def records_from_console(command: Command, text: str) -> list[Record]:
    """Console text -> records: ``print detail``/``terse`` lists, ``key: value`` blocks for ``print`` and
    ``monitor-traffic``. ``add``, ``set`` and ``remove`` print nothing when they succeed: any output is an answer
    we cannot read, so whether the change happened is unknown (the caller re-reads or repeats, never assumes)."""
    if command.verb == "print" and ("detail" in command.flags or "terse" in command.flags):
        return parse_detail(text)
    if command.verb in ("print", "monitor-traffic"):
        block = parse_key_values(text)
        return [block] if block else []
    if text.strip():
        raise CommandOutcomeUnknown(
            f"RouterOS answered /{' '.join(command.menu)} {command.verb} with output it never prints on success: "
            f"{text.strip()[:200]!r}"
        )
    return []
