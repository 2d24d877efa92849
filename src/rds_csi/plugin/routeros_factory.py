"""Builds the RouterOS client the controller uses, from configuration: real SSH, real REST, or the embedded
simulator (started on loopback and reached over real SSH, exactly as a real RDS would be)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics
from rds_csi.plugin.config import RouterOSConfig, RouterOSTransportKind
from rds_csi.routeros.client import RouterOSClient
from rds_csi.routeros.rest import RestSettings, RestTransport
from rds_csi.routeros.ssh import SshPool, SshSettings, SshTransport
from rds_csi.routeros.transport import Transport

if TYPE_CHECKING:
    from rds_csi.simulator import Simulator

_log = logging.getLogger(__name__)

SIMULATOR_USER = "rds-csi"


class RouterOSBackend:
    """The client plus whatever must be stopped with it (the embedded simulator, its temp dir)."""

    def __init__(self, config: RouterOSConfig, metrics: Metrics) -> None:
        self._simulator: Simulator | None = None
        self._temp_dir: Path | None = None
        try:
            transport = (
                self._embedded(config, metrics)
                if config.transport is RouterOSTransportKind.SIMULATOR
                else (self._remote(config, metrics))
            )
        except BaseException:
            if self._simulator is not None:
                self._simulator.stop()
            self.remove_private_dir()
            raise
        self.client = RouterOSClient(
            transport, command_timeout=config.command_timeout, metrics=metrics, copy_from_form=config.copy_from_form
        )

    @property
    def simulator(self) -> Simulator | None:
        return self._simulator

    def close(self) -> None:
        self.client.transport.close()
        if self._simulator is not None:
            self._simulator.stop()
        self.remove_private_dir()

    def remove_private_dir(self) -> None:
        """Remove the embedded simulator's temp dir (its SSH keys); also the last act of a process cut short."""
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def _remote(self, config: RouterOSConfig, metrics: Metrics) -> Transport:
        password = _read_secret(config.password_file) if config.password_file else None
        if config.transport is RouterOSTransportKind.REST:
            return RestTransport(
                RestSettings(
                    base_url=config.rest_url or f"https://{config.address}",
                    username=config.user,
                    password=password or "",
                    ca_file=config.ca_file,
                    insecure_skip_tls_verify=config.insecure_skip_tls_verify,
                    insecure_allow_http=config.insecure_allow_http,
                    pool_size=config.pool_size,
                )
            )
        settings = SshSettings(
            host=config.address,
            port=config.ssh_port,
            username=config.user,
            key_file=config.ssh_key,
            password=password,
            known_hosts_file=config.known_hosts,
            pinned_host_key=config.host_key,
            insecure_skip_host_key=config.insecure_skip_host_key,
            pool_size=config.pool_size,
        )
        return SshTransport(SshPool(settings, metrics=metrics))

    def _embedded(self, config: RouterOSConfig, metrics: Metrics) -> Transport:
        if config.simulator_state_dir:
            state_dir = Path(config.simulator_state_dir)
        else:
            self._temp_dir = state_dir = Path(tempfile.mkdtemp(prefix="rds-csi-sim-"))
        state_dir.mkdir(parents=True, exist_ok=True)
        key_file, public_file = ensure_client_key(state_dir)
        # Imported here: a plugin driving a real RDS never loads the simulator's SSH and REST servers.
        from rds_csi.simulator import FaultPlan, Simulator, SimulatorConfig  # noqa: PLC0415

        simulator = Simulator(
            SimulatorConfig(
                state_dir=state_dir,
                rest_port=None,
                control_port=None,
                persist_file=state_dir / "rds-model.json" if config.simulator_state_dir else None,
                faults=FaultPlan(profile="zero"),
                users={SIMULATOR_USER: None},
                authorized_keys=(public_file,),
            )
        )
        simulator.start()
        self._simulator = simulator
        log_event(
            _log, "routeros.embedded_simulator", logging.WARNING, ssh_port=simulator.ssh_port, state_dir=state_dir,
            note="no RDS configured: volumes live in the simulator, not on real storage",
        )  # fmt: skip
        settings = SshSettings(
            host="127.0.0.1",
            port=simulator.ssh_port,
            username=SIMULATOR_USER,
            key_file=str(key_file),
            pinned_host_key=simulator.host_public_key,
            pool_size=config.pool_size,
        )
        return SshTransport(SshPool(settings, metrics=metrics))


def _read_secret(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


def ensure_client_key(state_dir: Path) -> tuple[Path, Path]:
    """An Ed25519 client key (OpenSSH private key file and ``.pub``), generated once per directory."""
    key_file, public_file = state_dir / "client_ed25519", state_dir / "client_ed25519.pub"
    if not key_file.exists():
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        with contextlib.suppress(FileNotFoundError):
            key_file.unlink()
        key_file.touch(mode=0o600)
        key_file.write_bytes(private)
        public_file.write_bytes(public + b" rds-csi-embedded\n")
    return key_file, public_file
