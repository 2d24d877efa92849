"""HTTP plumbing shared by the REST API and the control endpoint: a threaded server that tracks its
connections so ``stop`` never waits on an idle keep-alive client, optional TLS with a self-signed
certificate kept in the state dir, and JSON replies."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import select
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rds_csi.observability.logging import log_event

log = logging.getLogger(__name__)

_HANDSHAKE_TIMEOUT = 10.0
_IDLE_TIMEOUT = 60.0


def ensure_certificate(state_dir: Path, host: str) -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for localhost, 127.0.0.1, ::1 and ``host``; made once, then reused."""
    cert_path, key_path = state_dir / "rest-cert.pem", state_dir / "rest-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    state_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        extra: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        extra = x509.DNSName(host)
    if extra not in names:
        names.append(extra)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rds-csi simulator")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class TrackedHTTPServer(ThreadingHTTPServer):
    """Joins its handler threads on close and can cut every open connection at once."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.tls = tls
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__((host, port), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Headers and body go out in separate writes; without this the body waits for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            # The handshake runs later in the handler thread, so a silent client cannot stall accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that aborts its TLS handshake or vanishes is routine here, not a traceback on stderr.
        log_event(log, "sim.http.request_failed", logging.DEBUG, client=client_address)

    def cut_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                log_event(log, "sim.http.cut_failed", logging.DEBUG)


class JsonHandler(BaseHTTPRequestHandler):
    """Keep-alive JSON replies; quiet logs; TLS handshake in the handler thread."""

    protocol_version = "HTTP/1.1"
    server: TrackedHTTPServer
    timeout = _IDLE_TIMEOUT

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(_HANDSHAKE_TIMEOUT)
            self.request.do_handshake()
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ssl.SSLError) as exc:
            log_event(log, "sim.http.connection_ended", logging.DEBUG, reason=exc)

    def log_message(self, format: str, *args: Any) -> None:
        log_event(log, "sim.http.request", logging.DEBUG, line=format % args)

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def read_json(self) -> Any:
        """The request body as JSON; an absent body is None. Raises ValueError on malformed JSON."""
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return None
        return json.loads(self.rfile.read(length).decode("utf-8"))

    def client_gone(self) -> bool:
        """True once the peer has closed its side (a TLS peer that sent close_notify first is not seen)."""
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            return bool(ready) and socket.socket.recv(self.connection, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (OSError, ValueError):
            return True

    def drop(self) -> None:
        """Cut the connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            log_event(log, "sim.http.drop_failed", logging.DEBUG)


class HttpFrontEnd:
    """Runs a ``TrackedHTTPServer`` in a thread; ``stop`` cuts connections and joins every thread."""

    def __init__(self, server: TrackedHTTPServer) -> None:
        self.server = server
        self.port: int = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="sim-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.cut_connections()
        self.server.server_close()
        self._thread.join()
