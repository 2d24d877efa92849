"""The API server emulator and a real client pointed at it (shared with the Kubernetes API tests), and the node
data path's fixtures: loop devices behind the connector, a node plugin using them, volumes laid out as the
kubelet lays them out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.kube.conftest import api, emulator  # noqa: F401
from tests.integration.node.harness import RunningNode, running_node
from tests.integration.node.kubelet import SIZE, MakeVolume, Volume, kubelet_staging, unmount_under
from tests.integration.node.loop_connector import MANAGED_PREFIX, LoopConnector


@pytest.fixture
def loops(short_tmp: Path) -> Iterator[LoopConnector]:
    images = short_tmp / "images"
    images.mkdir()
    connector = LoopConnector(images)
    try:
        yield connector
    finally:
        failures = unmount_under(short_tmp) + connector.detach_all()
        assert not failures, failures


@pytest.fixture
def node(short_tmp: Path, loops: LoopConnector) -> Iterator[RunningNode]:
    with running_node(short_tmp, "off", loops) as running:
        yield running


@pytest.fixture
def make_volume(short_tmp: Path, loops: LoopConnector) -> MakeVolume:
    def make(name: str, size: int = SIZE, *, block: bool = False) -> Volume:
        staging = kubelet_staging(short_tmp / "kubelet", name, block=block)
        staging.mkdir(parents=True)  # the kubelet creates the staging directory
        loops.export(MANAGED_PREFIX + name, size)
        return Volume(name, staging, short_tmp / "kubelet" / "pods")

    return make
