"""The conformance target: the plugin (controller mode) on a unix socket, backed by the simulator over real SSH or
real HTTPS REST. One simulator and one plugin per backend for the whole session; tests clean up after themselves."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rds_csi.csi.proto import csi_pb2_grpc
from tests.support import RunningController, SimulatorAccess, start_controller, start_simulator
from tests.tempdirs import short_temp_dir

GiB = 1 << 30


@dataclass
class CsiTarget:
    identity: csi_pb2_grpc.IdentityStub
    controller: csi_pb2_grpc.ControllerStub
    node: csi_pb2_grpc.NodeStub
    node_id: str
    parameters: dict[str, str]
    test_volume_size: int
    backend: str


@pytest.fixture(scope="session")
def conformance_dir() -> Iterator[Path]:
    with short_temp_dir("rds-conf-") as path:  # holds the controllers' sockets
        yield path


@pytest.fixture(scope="session")
def conformance_simulator(conformance_dir: Path) -> Iterator[SimulatorAccess]:
    access = start_simulator(conformance_dir)
    yield access
    access.simulator.stop()


@pytest.fixture(scope="session")
def _targets(conformance_dir: Path, conformance_simulator: SimulatorAccess) -> Iterator[dict[str, CsiTarget]]:
    controllers: list[RunningController] = []
    targets: dict[str, CsiTarget] = {}
    try:
        for backend in ("ssh", "rest"):
            running = start_controller(conformance_simulator, backend, conformance_dir / f"{backend}.sock")
            controllers.append(running)
            targets[backend] = CsiTarget(
                identity=running.identity,
                controller=running.controller,
                node=running.node,
                node_id="sanity-node-1",
                parameters={},
                test_volume_size=10 * GiB,
                backend=backend,
            )
        yield targets
    finally:
        for running in controllers:
            running.stop()


@pytest.fixture(params=["ssh", "rest"])
def csi(request: pytest.FixtureRequest, _targets: dict[str, CsiTarget]) -> CsiTarget:
    return _targets[str(request.param)]


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make
