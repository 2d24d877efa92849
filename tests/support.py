"""Helpers shared by integration and conformance tests: a simulator with SSH and REST, and a client key for it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from rds_csi.core.clock import Clock
from rds_csi.csi.proto import csi_pb2_grpc
from rds_csi.plugin.config import load_plugin_config
from rds_csi.plugin.lifecycle import Plugin
from rds_csi.plugin.routeros_factory import ensure_client_key
from rds_csi.simulator import FaultPlan, Simulator, SimulatorConfig
from tests.integration.plugin_process import rds_csi_command

SIM_USER = "admin"
STATIC_NODES = ("sanity-node-1", "node-1", "node-2", "node-3")
SIM_PASSWORD = "sim-password"


@dataclass(frozen=True)
class SimulatorAccess:
    simulator: Simulator
    key_file: Path
    password_file: Path

    def plugin_flags(self, backend: str) -> dict[str, str | None]:
        """The plugin options that point a controller at this simulator over ``backend`` (ssh or rest)."""
        sim = self.simulator
        if backend == "ssh":
            return {
                "routeros_transport": "ssh",
                "routeros_address": "127.0.0.1",
                "routeros_ssh_port": str(sim.ssh_port),
                "routeros_user": SIM_USER,
                "routeros_ssh_key": str(self.key_file),
                "routeros_host_key": sim.host_public_key,
            }
        assert sim.rest_certificate is not None
        return {
            "routeros_transport": "rest",
            "routeros_address": "127.0.0.1",
            "routeros_rest_url": sim.rest_url.removesuffix("/rest"),
            "routeros_user": SIM_USER,
            "routeros_password_file": str(self.password_file),
            "routeros_ca_file": str(sim.rest_certificate),
        }


def write_client_key(directory: Path) -> tuple[Path, Path]:
    return ensure_client_key(directory)


def start_simulator(
    directory: Path, profile: str = "zero", *, persist: bool = False, nvmet_data_dir: Path | None = None
) -> SimulatorAccess:
    """A simulator with SSH (key auth) and HTTPS REST (password auth) on loopback ephemeral ports. ``persist``
    keeps its state in ``directory`` across restarts; with ``nvmet_data_dir`` its disks are real NVMe/TCP
    targets (the kernel's nvmet) on 127.0.0.1."""
    key_file, public_file = write_client_key(directory)
    password_file = directory / "password"
    password_file.write_text(SIM_PASSWORD)
    simulator = Simulator(
        SimulatorConfig(
            state_dir=directory / "sim",
            control_port=None,
            faults=FaultPlan(profile=profile),
            users={SIM_USER: SIM_PASSWORD},
            authorized_keys=(public_file,),
            persist_file=directory / "sim" / "model.json" if persist else None,
            nvmet_data_dir=nvmet_data_dir,
        )
    ).start()
    return SimulatorAccess(simulator, key_file, password_file)


@dataclass
class SimulatorProcess:
    """``rds-csi simulator`` as a separate process: what the driver then holds (threads, sockets) is its own."""

    process: subprocess.Popen[str]
    ssh_port: int
    rest_url: str
    control_url: str
    key_file: Path
    password_file: Path
    certificate: Path
    host_key: str  # SHA256 fingerprint, as the ready line prints it

    def add_fault(self, **rule: object) -> None:
        request = urllib.request.Request(
            f"{self.control_url}/faults/rules", data=json.dumps(rule).encode(), method="POST"
        )
        urllib.request.urlopen(request, timeout=5).read()

    def clear_faults(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.control_url}/faults", method="DELETE"), timeout=5)

    def state(self) -> dict[str, Any]:
        """What the simulated RDS holds (disks and files, as its REST API shows them), read past the driver."""
        with urllib.request.urlopen(f"{self.control_url}/state", timeout=10) as answer:
            state: dict[str, Any] = json.load(answer)
        return state

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def spawn_simulator(directory: Path, *, profile: str = "zero", persist: bool = False) -> SimulatorProcess:
    """``persist`` keeps the model in its state directory (``--persist``); ``profile`` is its latency profile."""
    key_file, public_file = write_client_key(directory)
    password_file = directory / "password"
    password_file.write_text(SIM_PASSWORD)
    state = directory / "sim-process"
    argv = [
        *rds_csi_command(), "simulator", "--ssh-port", "0", "--rest-port", "0", "--control-port", "0",
        "--profile", profile, "--state-dir", str(state), "--user", SIM_USER,
        "--password-file", str(password_file), "--authorized-keys", str(public_file),
        *(["--persist"] if persist else []),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    fields: dict[str, str] = {}
    for line in process.stdout:  # the first line that says "ready" carries the ports
        if line.startswith("simulator ready "):
            fields = dict(part.split("=", 1) for part in line.split()[2:])
            break
    if not fields:
        process.kill()
        raise RuntimeError(f"simulator did not start: {process.communicate()[0]}")
    return SimulatorProcess(
        process=process,
        ssh_port=int(fields["ssh"].rsplit(":", 1)[1]),
        rest_url=fields["rest"].removesuffix("/rest"),
        control_url=fields["control"],
        key_file=key_file,
        password_file=password_file,
        certificate=state / "rest-cert.pem",
        host_key=fields["host_key"],
    )


@dataclass
class RunningController:
    """A controller plugin, in this process, on a unix socket, with real gRPC stubs to it."""

    plugin: Plugin
    channel: grpc.Channel
    identity: csi_pb2_grpc.IdentityStub
    controller: csi_pb2_grpc.ControllerStub
    node: csi_pb2_grpc.NodeStub

    def stop(self) -> None:
        self.channel.close()
        self.plugin.stop()


def start_controller(
    access: SimulatorAccess, backend: str, socket_path: Path, clock: Clock | None = None, **flags: str | None
) -> RunningController:
    options: dict[str, str | None] = {
        "mode": "controller",
        "endpoint": f"unix://{socket_path}",
        "metrics_address": "off",
        "log_level": "warning",
        "kube_api": "off",
        "static_nodes": ",".join(STATIC_NODES),
        **access.plugin_flags(backend),
        **flags,
    }
    if options["kube_api"] == "off":
        # Static mode keeps its attachments on disk; a restart that passes the same state_dir finds them again.
        options.setdefault("state_dir", str(socket_path.parent / f"{socket_path.stem}-attachments"))
    plugin = Plugin(load_plugin_config(options, {}), clock)
    plugin.start()
    channel = grpc.insecure_channel(f"unix://{socket_path}")
    return RunningController(
        plugin,
        channel,
        csi_pb2_grpc.IdentityStub(channel),
        csi_pb2_grpc.ControllerStub(channel),
        csi_pb2_grpc.NodeStub(channel),
    )


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; the last answer is returned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
