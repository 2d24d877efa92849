"""Refused credentials look the same over SSH and REST (UNAVAILABLE, saying so, result credentials_refused), and a
plain-http REST URL, which would send the password in clear text, is refused at start-up unless allowed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from rds_csi.core import errors
from rds_csi.csi.status import status_for
from rds_csi.observability.metrics import Metrics
from rds_csi.routeros.client import RouterOSClient
from rds_csi.routeros.rest import RestSettings, RestTransport
from rds_csi.routeros.ssh import SshPool, SshSettings, SshTransport
from rds_csi.routeros.transport import CredentialsRefused, Transport
from rds_csi.simulator import FaultPlan, Simulator, SimulatorConfig
from tests.integration.plugin_process import rds_csi_command
from tests.support import SIM_PASSWORD, SIM_USER, SimulatorAccess, write_client_key


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorAccess]:
    directory = tmp_path_factory.mktemp("cred")
    key_file, public_file = write_client_key(directory)
    simulator = Simulator(
        SimulatorConfig(
            state_dir=directory / "sim",
            control_port=None,
            faults=FaultPlan(profile="zero"),
            users={SIM_USER: SIM_PASSWORD},
            authorized_keys=(public_file,),
        )
    ).start()
    yield SimulatorAccess(simulator, key_file, directory / "unused")
    simulator.stop()


def stranger_key(directory: Path) -> Path:
    """A key of its own, which the simulator was never told about."""
    (directory / "stranger").mkdir()
    return write_client_key(directory / "stranger")[0]


def wrong_transport(sim: SimulatorAccess, how: str, directory: Path) -> Transport:
    simulator = sim.simulator
    if how == "rest-password":
        rest = RestSettings(
            base_url=simulator.rest_url.removesuffix("/rest"),
            username=SIM_USER,
            password=SIM_PASSWORD + "-wrong",
            ca_file=str(simulator.rest_certificate),
        )
        return RestTransport(rest)
    settings = SshSettings(
        host="127.0.0.1",
        port=simulator.ssh_port,
        username=SIM_USER,
        key_file=str(stranger_key(directory)) if how == "ssh-key" else None,
        password=SIM_PASSWORD + "-wrong" if how == "ssh-password" else None,
        pinned_host_key=simulator.host_public_key,
    )
    return SshTransport(SshPool(settings))


@pytest.mark.parametrize("how", ["ssh-password", "ssh-key", "rest-password"])
def test_refused_credentials_are_one_retryable_class_over_both_transports(
    sim: SimulatorAccess, short_tmp: Path, how: str
) -> None:
    metrics = Metrics()
    client = RouterOSClient(wrong_transport(sim, how, short_tmp), command_timeout=5, metrics=metrics)
    try:
        with pytest.raises(CredentialsRefused) as refused:
            client.list_disks()
    finally:
        client.transport.close()
    assert isinstance(refused.value, errors.Unavailable)
    assert "RouterOS refused the credentials" in refused.value.message
    assert status_for(refused.value) == (grpc.StatusCode.UNAVAILABLE, refused.value.message)
    sample = {"op": "disk_list", "result": "credentials_refused"}
    assert metrics.registry.get_sample_value("rds_csi_routeros_commands_total", sample) == 1


def test_a_plain_http_rest_url_is_refused_at_start_up_naming_the_flag(short_tmp: Path) -> None:
    password = short_tmp / "password"
    password.write_text("secret")
    argv = [
        *rds_csi_command(), "plugin", "--mode", "controller", "--routeros-transport", "rest",
        "--routeros-address", "192.0.2.1", "--routeros-rest-url", "http://192.0.2.1",
        "--routeros-password-file", str(password), "--kube-api", "off", "--state-dir", str(short_tmp / "state"),
        "--endpoint", f"unix://{short_tmp}/csi.sock", "--metrics-address", "off",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("rds-csi: error: --routeros-rest-url: http:// would send the RouterOS password in clear")
    assert "--routeros-insecure-allow-http" in line
