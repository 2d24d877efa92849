"""The RouterOS release, read at start-up, after an outage and by health checks, over real SSH and REST: exported,
and an RDS without the /disk properties the driver sets refused with the reason."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rds_csi.core import errors
from rds_csi.observability.metrics import Metrics
from rds_csi.plugin.config import ConfigError
from rds_csi.routeros.client import RouterOSClient
from rds_csi.routeros.rest import RestSettings, RestTransport
from rds_csi.routeros.ssh import SshPool, SshSettings, SshTransport
from rds_csi.routeros.transport import Transport
from rds_csi.routeros.version import UnsupportedRouterOS
from rds_csi.simulator import FaultPlan, Simulator, SimulatorConfig, SystemInfo
from tests.support import SIM_PASSWORD, SIM_USER, SimulatorAccess, start_controller, write_client_key

OLD = "7.16 (stable)"
CURRENT = "7.21.2 (stable)"


def boot(directory: Path, version: str, ssh_port: int = 0, rest_port: int = 0) -> SimulatorAccess:
    key_file, public_file = write_client_key(directory)
    password_file = directory / "password"
    password_file.write_text(SIM_PASSWORD)
    simulator = Simulator(
        SimulatorConfig(
            state_dir=directory / "sim",
            ssh_port=ssh_port,
            rest_port=rest_port,
            control_port=None,
            persist_file=directory / "sim" / "model.json",
            faults=FaultPlan(profile="zero"),
            users={SIM_USER: SIM_PASSWORD},
            authorized_keys=(public_file,),
            system=SystemInfo(version=version),
        )
    ).start()
    return SimulatorAccess(simulator, key_file, password_file)


def connect(access: SimulatorAccess, backend: str, metrics: Metrics) -> RouterOSClient:
    sim = access.simulator
    transport: Transport
    if backend == "ssh":
        settings = SshSettings(
            host="127.0.0.1",
            port=sim.ssh_port,
            username=SIM_USER,
            key_file=str(access.key_file),
            pinned_host_key=sim.host_public_key,
            backoff_initial=0.05,
            backoff_max=0.1,
        )
        transport = SshTransport(SshPool(settings))
    else:
        rest = RestSettings(
            base_url=sim.rest_url.removesuffix("/rest"),
            username=SIM_USER,
            password=SIM_PASSWORD,
            ca_file=str(sim.rest_certificate),
        )
        transport = RestTransport(rest)
    return RouterOSClient(transport, command_timeout=2, metrics=metrics)


def info(metrics: Metrics) -> dict[tuple[str, str], float]:
    """The rds_csi_routeros_info series: (version, board) -> value."""
    (family,) = [f for f in metrics.registry.collect() if f.name == "rds_csi_routeros_info"]
    return {(s.labels["version"], s.labels["board"]): s.value for s in family.samples}


@pytest.fixture
def simulators(short_tmp: Path) -> Iterator[Callable[..., SimulatorAccess]]:
    running: list[SimulatorAccess] = []

    def make(version: str, **ports: int) -> SimulatorAccess:
        access = boot(short_tmp, version, **ports)
        running.append(access)
        return access

    yield make
    for access in running:
        access.simulator.stop()


BACKENDS = pytest.mark.parametrize("backend", ["ssh", "rest"])


@BACKENDS
def test_the_release_is_read_and_exported(simulators: Callable[..., SimulatorAccess], backend: str) -> None:
    metrics = Metrics()
    client = connect(simulators(CURRENT), backend, metrics)
    try:
        resource = client.identify()
        assert (resource.version, resource.board_name) == (CURRENT, "RDS2216")
        assert info(metrics) == {(CURRENT, "RDS2216"): 1.0}
        assert client.get_disk("pvc-none") is None
    finally:
        client.transport.close()


@BACKENDS
def test_a_release_without_the_disk_nvme_properties_is_refused_with_the_reason(
    simulators: Callable[..., SimulatorAccess], backend: str
) -> None:
    metrics = Metrics()
    access = simulators(OLD)
    client = connect(access, backend, metrics)
    try:
        with pytest.raises(UnsupportedRouterOS, match=r"RouterOS 7\.16 \(stable\) on RDS2216 is older than 7\.21"):
            client.identify()
        assert info(metrics) == {(OLD, "RDS2216"): 1.0}
        access.simulator.commands.clear()
        with pytest.raises(errors.FailedPrecondition, match="nvme-tcp-server-nqn"):
            client.get_disk("pvc-none")
        assert access.simulator.commands.entries() == []  # refused here, never sent
        with pytest.raises(UnsupportedRouterOS):
            client.check()  # readiness says why
    finally:
        client.transport.close()


@BACKENDS
def test_the_release_is_read_again_when_routeros_answers_after_an_outage(
    simulators: Callable[..., SimulatorAccess], backend: str
) -> None:
    metrics = Metrics()
    first = simulators(CURRENT)
    ports = {"ssh_port": first.simulator.ssh_port, "rest_port": first.simulator.rest_port}
    client = connect(first, backend, metrics)
    try:
        client.identify()
        first.simulator.stop()
        with pytest.raises(errors.Unavailable):
            client.get_disk("pvc-none")
        simulators(OLD, **ports)  # the RDS comes back on another release (a downgrade, say)
        assert client.get_disk("pvc-none") is None  # the command that found it reachable again
        assert info(metrics) == {(OLD, "RDS2216"): 1.0}
        with pytest.raises(UnsupportedRouterOS):
            client.list_disks()
    finally:
        client.transport.close()


def test_a_supported_release_read_by_a_health_check_lifts_the_refusal(
    simulators: Callable[..., SimulatorAccess],
) -> None:
    metrics = Metrics()
    old = simulators(OLD)
    ports = {"ssh_port": old.simulator.ssh_port, "rest_port": old.simulator.rest_port}
    client = connect(old, "ssh", metrics)
    try:
        with pytest.raises(UnsupportedRouterOS):
            client.identify()
        old.simulator.stop()
        simulators(CURRENT, **ports)  # upgraded; the pool replaces its dead connection without a failure to see
        client.check()
        assert info(metrics) == {(CURRENT, "RDS2216"): 1.0}
        assert client.get_disk("pvc-none") is None
    finally:
        client.transport.close()


@pytest.mark.parametrize("backend", ["ssh", "rest"])
def test_a_controller_pointed_at_an_unsupported_release_does_not_start(
    simulators: Callable[..., SimulatorAccess], short_tmp: Path, backend: str
) -> None:
    access = simulators(OLD)
    with pytest.raises(ConfigError) as refused:
        start_controller(access, backend, short_tmp / "c.sock")
    assert refused.value.option == "--routeros-address"
    assert "RouterOS 7.16 (stable) on RDS2216 is older than 7.21" in str(refused.value)
