"""``Simulator``: one model, one fault plan, and the SSH, REST and control front ends around them."""

from __future__ import annotations

import ipaddress
import logging
import signal
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType

from rds_csi.core.clock import Clock, SystemClock
from rds_csi.core.errors import InvalidArgument
from rds_csi.observability.logging import log_event
from rds_csi.routeros.ssh import host_key_fingerprint
from rds_csi.simulator.console import SystemInfo
from rds_csi.simulator.control import make_control_server
from rds_csi.simulator.engine import CommandLog, Engine, Trickle
from rds_csi.simulator.faults import FaultInjector, FaultPlan
from rds_csi.simulator.format import PLAIN_FLAGS, FlagColumn
from rds_csi.simulator.http import HttpFrontEnd, ensure_certificate
from rds_csi.simulator.images import ImageStore
from rds_csi.simulator.model import CopyFromAccepts, Model
from rds_csi.simulator.nvmet import NvmetDataPlane
from rds_csi.simulator.rest_server import make_rest_server
from rds_csi.simulator.ssh_server import SshServer, load_host_key, read_authorized_keys

log = logging.getLogger(__name__)


def _default_users() -> dict[str, str | None]:
    return {"admin": None}


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything a simulator needs, fixed at start-up. Ports 0 mean "any free port"; None disables."""

    state_dir: Path
    host: str = "127.0.0.1"
    ssh_port: int = 0
    rest_port: int | None = 0
    control_port: int | None = 0
    allow_non_loopback: bool = False
    rest_tls: bool = True
    persist_file: Path | None = None
    console_width: int = 80
    # How /disk entries show their flag letters over SSH (REST has none): only X, or every documented letter.
    flags: FlagColumn = PLAIN_FLAGS
    # Which copy-from form /disk add takes (a real RDS's is not documented): both, an image path, or a disk.
    copy_from_accepts: CopyFromAccepts = CopyFromAccepts.ANY
    faults: FaultPlan = field(default_factory=FaultPlan)
    faults_file: Path | None = None
    users: Mapping[str, str | None] = field(default_factory=_default_users)
    authorized_keys: tuple[Path, ...] = ()
    pool_size: int = 7_949_127_950_336
    pool_free: int = 5_963_595_964_416
    pool_mount_point: str = "storage-pool"
    base_directories: tuple[str, ...] = ("storage-pool/metal-csi",)
    system: SystemInfo = field(default_factory=SystemInfo)
    # The optional data plane: images as real files here, exports as kernel nvmet targets on nvmet_address.
    nvmet_data_dir: Path | None = None
    nvmet_address: str = "127.0.0.1"

    def __post_init__(self) -> None:
        # Named by the command-line flags (``rds-csi simulator``); in code they are the fields of the same name.
        for what, host in (("--host", self.host), ("--nvmet-address", self.nvmet_address)):
            if not self.allow_non_loopback and not _is_loopback(host):
                raise InvalidArgument(
                    f"{what}: refusing to listen on non-loopback {host!r} without --allow-non-loopback"
                )
        try:
            ipaddress.ip_address(self.nvmet_address)
        except ValueError:
            raise InvalidArgument(f"nvmet_address must be an IP address, not {self.nvmet_address!r}") from None
        for name in ("ssh_port", "rest_port", "control_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise InvalidArgument(f"{name} must be between 0 and 65535, not {port}")
        if not 20 <= self.console_width <= 1000:
            raise InvalidArgument(f"console_width must be between 20 and 1000, not {self.console_width}")
        if not self.users:
            raise InvalidArgument("at least one user is needed")
        if not 0 <= self.pool_free <= self.pool_size:
            raise InvalidArgument("pool_free must be between 0 and pool_size")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Simulator:
    """A RouterOS stand-in. ``start`` binds and returns at once; ``stop`` closes everything and joins."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Clock | None = None,
        wall_clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        plan = config.faults
        if config.faults_file is not None and config.faults_file.exists():
            plan = FaultPlan.from_file(config.faults_file)
        self.faults = FaultInjector(plan)
        data_plane = (
            NvmetDataPlane(ImageStore(config.nvmet_data_dir), config.nvmet_address)
            if config.nvmet_data_dir is not None
            else None
        )
        self.model = Model(
            pool_size=config.pool_size,
            pool_free=config.pool_free,
            pool_mount_point=config.pool_mount_point,
            base_directories=config.base_directories,
            persist_file=config.persist_file,
            wall_clock=wall_clock,
            data_plane=data_plane,
            copy_from_accepts=config.copy_from_accepts,
        )
        self._host_key = load_host_key(config.state_dir)
        self._engine = Engine(self.model, self.faults, config.system, clock or SystemClock(), config.flags)
        self._ssh: SshServer | None = None
        self._rest: HttpFrontEnd | None = None
        self._control: HttpFrontEnd | None = None
        self._rest_certificate: Path | None = None
        self._lock = threading.Lock()
        self._started = False

    # ---- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Simulator:
        with self._lock:
            if self._started:
                raise InvalidArgument("simulator already started")
            self._started = True
        config = self.config
        try:
            self._ssh = SshServer(
                self._engine,
                host=config.host,
                port=config.ssh_port,
                host_key=self._host_key,
                users=config.users,
                authorized=read_authorized_keys(config.authorized_keys),
                default_width=config.console_width,
            )
            self._ssh.start()
            if config.rest_port is not None:
                self._rest = make_rest_server(
                    self._engine, host=config.host, port=config.rest_port, users=config.users, tls=self._tls()
                )
                self._rest.start()
            if config.control_port is not None:
                self._control = make_control_server(
                    self.faults, self.model, self.commands, host=config.host, port=config.control_port
                )
                self._control.start()
        except BaseException:
            self.stop()
            raise
        log_event(
            log,
            "sim.started",
            host=config.host,
            ssh_port=self.ssh_port,
            rest_port=self._rest.port if self._rest else "-",
            control_port=self._control.port if self._control else "-",
        )
        return self

    def _tls(self) -> ssl.SSLContext | None:
        if not self.config.rest_tls:
            return None
        cert, key = ensure_certificate(self.config.state_dir, self.config.host)
        self._rest_certificate = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        return context

    def stop(self) -> None:
        """Stop every front end (hung commands end at once) and join their threads. Idempotent."""
        self._engine.stopping.set()
        for front in (self._control, self._rest):
            if front is not None:
                front.stop()
        if self._ssh is not None:
            self._ssh.stop()
        self._control = self._rest = None
        self._ssh = None
        self.model.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reload_faults(self) -> None:
        """Re-read ``faults_file`` (what SIGHUP does under ``run_forever``)."""
        if self.config.faults_file is None:
            raise InvalidArgument("no faults_file configured")
        self.faults.apply(FaultPlan.from_file(self.config.faults_file))
        log_event(log, "sim.faults_reloaded", file=self.config.faults_file)

    # ---- what clients need to know -------------------------------------------------------------------

    @property
    def trickles(self) -> list[Trickle]:
        """How every trickled answer (fault kind ``trickle``) ended, oldest first."""
        return self._engine.trickles

    @property
    def commands(self) -> CommandLog:
        """Every command received over SSH and REST, in order (also ``GET /sim/commands``)."""
        return self._engine.commands

    @property
    def ssh_port(self) -> int:
        if self._ssh is None:
            raise InvalidArgument("simulator is not running")
        return self._ssh.port

    @property
    def rest_port(self) -> int:
        if self._rest is None:
            raise InvalidArgument("REST is not running")
        return self._rest.port

    @property
    def control_port(self) -> int:
        if self._control is None:
            raise InvalidArgument("the control endpoint is not running")
        return self._control.port

    @property
    def rest_url(self) -> str:
        scheme = "https" if self.config.rest_tls else "http"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{scheme}://{host}:{self.rest_port}/rest"

    @property
    def rest_certificate(self) -> Path | None:
        """The self-signed certificate REST clients should trust (None with plain HTTP)."""
        return self._rest_certificate

    @property
    def host_public_key(self) -> str:
        """The host key as an OpenSSH public key line (``ssh-ed25519 AAAA...``), for known_hosts pinning."""
        return f"{self._host_key.get_name()} {self._host_key.get_base64()}"

    @property
    def host_key_fingerprint(self) -> str:
        return host_key_fingerprint(self._host_key)


def run_forever(config: SimulatorConfig, *, on_ready: Callable[[Simulator], None] | None = None) -> None:
    """Start a simulator, call ``on_ready``, serve until SIGINT/SIGTERM; SIGHUP reloads ``faults_file``.

    Must run in the main thread (signal handlers).
    """
    done = threading.Event()
    simulator = Simulator(config)

    def finish(signum: int, frame: FrameType | None) -> None:
        done.set()

    def reload(signum: int, frame: FrameType | None) -> None:
        try:
            simulator.reload_faults()
        except InvalidArgument as exc:
            log_event(log, "sim.faults_reload_failed", logging.ERROR, error=exc.message)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, finish)
    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGHUP, reload)
    try:
        with simulator:
            if on_ready is not None:
                on_ready(simulator)
            while not done.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
