"""An emulated API server per test and a real client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rds_csi.kube import KubeApi, KubeSettings
from tests.kube_emulator import KubeEmulator

TOKEN = "test-token"
DRIVER = "rds.csi.srvlab.io"


@pytest.fixture
def emulator() -> Iterator[KubeEmulator]:
    with KubeEmulator(token=TOKEN) as emu:
        yield emu


@pytest.fixture
def api(emulator: KubeEmulator) -> Iterator[KubeApi]:
    kube = KubeApi(KubeSettings(base_url=emulator.url, token=TOKEN, request_timeout=2.0))
    try:
        yield kube
    finally:
        kube.close()
