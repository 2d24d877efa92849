"""The RouterOS SSH front end: exec channels only, one console command per exec request.

Like the device, it accepts ``user+<options>`` login names: ``c`` (no colours), ``t``/``e`` (terminal
detection) are accepted and ignored, ``<N>w`` sets the console width used for wrapping, ``<N>h`` the height.
"""

from __future__ import annotations

import hmac
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    MSG_CHANNEL_FAILURE,
    MSG_CHANNEL_SUCCESS,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.message import Message

from rds_csi.core.errors import InvalidArgument
from rds_csi.observability.logging import log_event
from rds_csi.simulator.engine import Engine

log = logging.getLogger(__name__)

_LOGIN_RE = re.compile(r"^(?P<user>[^+]+)(?:\+(?P<options>[a-z0-9]*))?$")
_WIDTH_RE = re.compile(r"(\d+)w")
_ACCEPT_POLL = 0.1
_JOIN_TIMEOUT = 5.0
_REPLY_TIMEOUT = 5.0


def split_login(login: str, default_width: int) -> tuple[str, int]:
    """``admin+ct120w`` -> (``admin``, 120); the width stays ``default_width`` when not given."""
    match = _LOGIN_RE.match(login)
    if match is None:
        return login, default_width
    width = _WIDTH_RE.search(match.group("options") or "")
    return match.group("user"), int(width.group(1)) if width else default_width


def load_host_key(state_dir: Path) -> paramiko.Ed25519Key:
    """The simulator's persistent Ed25519 host key: generated on first start, reused afterwards."""
    path = state_dir / "ssh_host_ed25519_key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    return paramiko.Ed25519Key(filename=str(path))


def read_authorized_keys(paths: Iterable[Path]) -> frozenset[tuple[str, str]]:
    """(type, base64) pairs from OpenSSH ``authorized_keys``/``.pub`` files; options prefixes are refused."""
    keys = set()
    for path in paths:
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) < 2 or fields[0] not in ("ssh-ed25519", "ssh-rsa"):
                raise InvalidArgument(f"{path}:{number}: not an ssh-ed25519 or ssh-rsa public key")
            keys.add((fields[0], fields[1]))
    return frozenset(keys)


class _Transport(paramiko.Transport):
    """Lets an exec worker wait until the request's reply is on the wire.

    paramiko answers a channel request only after ``check_channel_exec_request`` returns; a command that
    finishes first would close the channel before the client saw its exec accepted.
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._replies: dict[int, threading.Event] = {}
        self._replies_lock = threading.Lock()

    def expect_reply(self, remote_chanid: int) -> threading.Event:
        with self._replies_lock:
            return self._replies.setdefault(remote_chanid, threading.Event())

    def _send_user_message(self, data: Message) -> None:
        super()._send_user_message(data)  # type: ignore[misc]  # private in paramiko, absent from its stubs
        raw = data.asbytes()
        if len(raw) >= 5 and raw[0] in (MSG_CHANNEL_SUCCESS, MSG_CHANNEL_FAILURE):
            with self._replies_lock:
                event = self._replies.pop(int.from_bytes(raw[1:5], "big"), None)
            if event is not None:
                event.set()


class _Connection(paramiko.ServerInterface):
    """One client connection: authentication and the exec requests it makes."""

    def __init__(self, server: SshServer, transport: _Transport) -> None:
        self.server = server
        self.transport = transport
        self.width = server.default_width

    def _user(self, login: str) -> str | None:
        user, self.width = split_login(login, self.server.default_width)
        return user if user in self.server.users else None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password" if any(self.server.users.values()) else "publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        user = self._user(username)
        expected = self.server.users.get(user) if user is not None else None
        if expected and hmac.compare_digest(expected.encode(), password.encode()):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if self._user(username) is not None and (key.get_name(), key.get_base64()) in self.server.authorized:
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        return False

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        try:
            text = command.decode("utf-8")
        except UnicodeDecodeError:
            return False
        replied = self.transport.expect_reply(channel.remote_chanid)
        return self.server.spawn(f"sim-ssh-exec-{channel.get_id()}", self._exec, channel, text, replied)

    def _exec(self, channel: paramiko.Channel, text: str, replied: threading.Event) -> None:
        def gone() -> bool:
            return channel.closed or not self.transport.is_active()

        replied.wait(_REPLY_TIMEOUT)
        outcome = self.server.engine.console(text, self.width, gone)
        try:
            if outcome.drop:
                self.transport.close()
                return
            data = outcome.output.encode("utf-8")
            if data and outcome.trickle is not None:
                self.server.engine.trickle("ssh", data, outcome.trickle, channel.sendall, gone)
                if gone():
                    return
            elif data:
                channel.sendall(data)
            channel.send_exit_status(outcome.status)
            channel.shutdown_write()
            channel.close()
        except (OSError, EOFError, paramiko.SSHException):
            log_event(log, "sim.ssh.client_gone", logging.DEBUG, channel=channel.get_id())


class SshServer:
    """Loopback SSH listener; ``stop`` closes every connection and joins every thread it started."""

    def __init__(
        self,
        engine: Engine,
        *,
        host: str,
        port: int,
        host_key: paramiko.PKey,
        users: Mapping[str, str | None],
        authorized: frozenset[tuple[str, str]],
        default_width: int,
    ) -> None:
        self.engine = engine
        self.host_key = host_key
        self.users = dict(users)
        self.authorized = authorized
        self.default_width = default_width
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(64)
        self._listener.settimeout(_ACCEPT_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._transports: set[_Transport] = set()
        self._closed = False

    def start(self) -> None:
        self.spawn("sim-ssh-accept", self._accept_loop)

    def spawn(self, name: str, target: Callable[..., None], *args: object) -> bool:
        """Start a tracked thread, unless the server is stopping (then say no)."""

        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        with self._lock:
            if self._closed:
                return False
            thread = threading.Thread(target=run, name=name, daemon=True)
            self._threads.add(thread)
        thread.start()
        return True

    def _accept_loop(self) -> None:
        while not self.engine.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.spawn("sim-ssh-conn", self._serve, sock):
                sock.close()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        # Small request/reply packets: without this, delayed ACKs add ~40 ms to every exec.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = _Transport(sock)
        transport.add_server_key(self.host_key)
        with self._lock:
            if self._closed:
                transport.close()
                return
            self._transports.add(transport)
        try:
            transport.start_server(server=_Connection(self, transport))
            # Channels are served from their exec requests; accepting them keeps paramiko's queue empty, and
            # holding them matters: a paramiko channel closes itself when garbage-collected.
            channels: list[paramiko.Channel] = []
            while transport.is_active() and not self.engine.stopping.is_set():
                channel = transport.accept(timeout=_ACCEPT_POLL)
                channels = [c for c in channels if not c.closed]
                if channel is not None:
                    channels.append(channel)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            log_event(log, "sim.ssh.connection_ended", logging.DEBUG, reason=exc)
        finally:
            transport.close()
            if transport.is_alive():
                transport.join(_JOIN_TIMEOUT)
            with self._lock:
                self._transports.discard(transport)

    def stop(self) -> None:
        self.engine.stopping.set()
        with self._lock:
            self._closed = True
            transports = list(self._transports)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            log_event(log, "sim.ssh.listener_shutdown_failed", logging.DEBUG)
        self._listener.close()
        for transport in transports:
            transport.close()
        while True:
            with self._lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if not threads:
                return
            for thread in threads:
                thread.join(_JOIN_TIMEOUT)
                if thread.is_alive():
                    log_event(log, "sim.ssh.thread_stuck", logging.WARNING, thread=thread.name)
                    with self._lock:
                        self._threads.discard(thread)
