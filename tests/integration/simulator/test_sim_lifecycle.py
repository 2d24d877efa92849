"""Start, stop and restart: quick start, no leaked threads (even when clients vanish), persistence."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rds_csi.core.errors import InvalidArgument
from rds_csi.simulator import FaultPlan, FaultRule, Simulator, SimulatorConfig

from .conftest import ClientKeys, connect, make_config, run, wait_for


def test_start_is_quick_and_stop_returns_threads_to_baseline(tmp_path: Path, client_keys: ClientKeys) -> None:
    baseline = threading.active_count()
    sim = Simulator(make_config(tmp_path, client_keys))
    started = time.monotonic()
    sim.start()
    assert time.monotonic() - started < 2
    clients = [connect(sim, key=client_keys.ed25519) for _ in range(5)]
    for client in clients:
        assert run(client, "/disk print")[1] == 0
    sim.stop()
    for client in clients:
        client.close()
    wait_for(lambda: threading.active_count() == baseline, what=f"threads back to {baseline}")


def test_clients_vanishing_mid_hang_leave_no_server_threads(tmp_path: Path, client_keys: ClientKeys) -> None:
    plan = FaultPlan("zero", (FaultRule(op="print", kind="hang"),))
    with Simulator(make_config(tmp_path, client_keys, faults=plan)) as sim:
        baseline = threading.active_count()
        for _ in range(3):
            client = connect(sim, key=client_keys.ed25519)
            transport = client.get_transport()
            assert transport is not None
            transport.open_session().exec_command("/disk print")
            client.close()
        wait_for(lambda: threading.active_count() <= baseline, what="server threads of vanished clients to end")


def test_non_loopback_host_is_refused_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="non-loopback"):
        SimulatorConfig(state_dir=tmp_path, host="0.0.0.0")
    assert SimulatorConfig(state_dir=tmp_path, host="0.0.0.0", allow_non_loopback=True).host == "0.0.0.0"


def test_persisted_disks_survive_a_restart(tmp_path: Path, client_keys: ClientKeys) -> None:
    config = make_config(tmp_path, client_keys, persist_file=tmp_path / "rds.json")
    with Simulator(config) as first, connect(first, key=client_keys.ed25519) as client:
        add = "/disk add type=file slot=keep file-path=/storage-pool/metal-csi/keep.img file-size=2G"
        assert run(client, add) == ("", 0)
    with Simulator(config) as second, connect(second, key=client_keys.ed25519) as client:
        assert 'slot="keep"' in run(client, "/disk print terse where slot=keep")[0]


def test_ports_are_reported_and_fixed_ports_are_honoured(tmp_path: Path, client_keys: ClientKeys) -> None:
    with Simulator(make_config(tmp_path, client_keys, control_port=None)) as sim:
        ssh_port = sim.ssh_port
        assert sim.rest_port > 0
        with pytest.raises(InvalidArgument):
            _ = sim.control_port
    with Simulator(make_config(tmp_path, client_keys, ssh_port=ssh_port, control_port=None)) as again:
        assert again.ssh_port == ssh_port
