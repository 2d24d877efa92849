"""Real simulators for the integration tests: real SSH (paramiko clients), real HTTPS (urllib3)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from rds_csi.simulator import FaultPlan, Simulator, SimulatorConfig

PASSWORD = "s3cret"
TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class ClientKeys:
    ed25519: Path
    rsa: Path
    stranger: Path
    authorized: Path


def _write_key(path: Path, private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


@pytest.fixture(scope="session")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> ClientKeys:
    base = tmp_path_factory.mktemp("client-keys")
    ed = _write_key(base / "id_ed25519", ed25519.Ed25519PrivateKey.generate())
    rs = _write_key(base / "id_rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    _write_key(base / "id_stranger", ed25519.Ed25519PrivateKey.generate())
    authorized = base / "authorized_keys"
    authorized.write_text(f"# the driver's keys\n{ed} driver@test\n{rs} rsa@test\n")
    return ClientKeys(base / "id_ed25519", base / "id_rsa", base / "id_stranger", authorized)


def make_config(tmp_path: Path, client_keys: ClientKeys, **overrides: object) -> SimulatorConfig:
    settings: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "faults": FaultPlan(profile="zero"),
        "users": {"admin": PASSWORD},
        "authorized_keys": (client_keys.authorized,),
    }
    settings.update(overrides)
    return SimulatorConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def sim(tmp_path: Path, client_keys: ClientKeys) -> Iterator[Simulator]:
    with Simulator(make_config(tmp_path, client_keys)) as simulator:
        yield simulator


def connect(
    sim: Simulator, *, user: str = "admin", key: Path | None = None, password: str | None = None
) -> paramiko.SSHClient:
    """An SSH client that pins the simulator's host key (no auto-add)."""
    client = paramiko.SSHClient()
    key_type, key_data = sim.host_public_key.split()
    client.get_host_keys().add(
        f"[127.0.0.1]:{sim.ssh_port}", key_type, paramiko.Ed25519Key(data=base64.b64decode(key_data))
    )
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    pkey = None
    if key is not None:
        pkey = paramiko.PKey.from_path(key)
    client.connect(
        "127.0.0.1",
        port=sim.ssh_port,
        username=user,
        pkey=pkey,
        password=password,
        look_for_keys=False,
        allow_agent=False,
        timeout=TIMEOUT,
        banner_timeout=TIMEOUT,
        auth_timeout=TIMEOUT,
    )
    return client


def run(client: paramiko.SSHClient, command: str, timeout: float = TIMEOUT) -> tuple[str, int]:
    _, stdout, _ = client.exec_command(command, timeout=timeout)
    output = stdout.read().decode()
    return output, stdout.channel.recv_exit_status()


@pytest.fixture
def ssh(sim: Simulator, client_keys: ClientKeys) -> Iterator[paramiko.SSHClient]:
    client = connect(sim, key=client_keys.ed25519)
    yield client
    client.close()


@pytest.fixture
def http(sim: Simulator) -> Iterator[urllib3.PoolManager]:
    manager = urllib3.PoolManager(
        ca_certs=str(sim.rest_certificate),
        retries=False,
        timeout=urllib3.Timeout(connect=TIMEOUT, read=TIMEOUT),
        headers=urllib3.make_headers(basic_auth=f"admin:{PASSWORD}"),
    )
    yield manager
    manager.clear()


def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
