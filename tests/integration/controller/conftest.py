"""Fixtures the controller tests share: a private directory (it holds the plugins' unix sockets, so it is short)
and one simulator per test module, reached over SSH and REST by the controllers each module starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import SimulatorAccess, start_simulator
from tests.tempdirs import short_temp_dir


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with short_temp_dir("rds-ctl-") as path:
        yield path


@pytest.fixture(scope="module")
def sim(workdir: Path) -> Iterator[SimulatorAccess]:
    access = start_simulator(workdir)
    yield access
    access.simulator.stop()
