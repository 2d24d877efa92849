"""Every fault class over real SSH and REST, set through the Python API, the control endpoint and SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import paramiko
import pytest
import urllib3

from rds_csi.simulator import FaultPlan, FaultRule, Simulator
from rds_csi.simulator.faults import GARBAGE

from .conftest import TIMEOUT, ClientKeys, connect, make_config, run, wait_for

SHORT = 0.5


def rest_get(sim: Simulator, path: str = "/disk", timeout: float = TIMEOUT) -> urllib3.BaseHTTPResponse:
    headers = urllib3.make_headers(basic_auth="admin:s3cret")
    with urllib3.PoolManager(ca_certs=str(sim.rest_certificate), retries=False) as http:
        return http.request("GET", sim.rest_url + path, headers=headers, timeout=timeout)


def control(sim: Simulator, method: str, path: str, body: object = None) -> dict[str, object]:
    url = f"http://127.0.0.1:{sim.control_port}{path}"
    response = urllib3.request(method, url, body=None if body is None else json.dumps(body), timeout=TIMEOUT)
    assert response.status == 200, response.data
    reply: dict[str, object] = json.loads(response.data)
    return reply


def test_error_fault_fails_ssh_and_rest(sim: Simulator, ssh: paramiko.SSHClient) -> None:
    sim.faults.add_rule(FaultRule(op="print", kind="error", message="not enough space"))
    assert run(ssh, "/disk print") == ("failure: not enough space\n", 1)
    response = rest_get(sim)
    assert response.status == 400
    assert json.loads(response.data)["detail"] == "failure: not enough space"


def test_hang_fault_times_out_clients_and_does_not_block_stop(tmp_path: Path, client_keys: ClientKeys) -> None:
    sim = Simulator(make_config(tmp_path, client_keys, faults=FaultPlan("zero", (FaultRule(kind="hang"),))))
    sim.start()
    try:
        client = connect(sim, key=client_keys.ed25519)
        with pytest.raises(TimeoutError):
            run(client, "/disk print", timeout=SHORT)
        with pytest.raises(urllib3.exceptions.ReadTimeoutError):
            rest_get(sim, timeout=SHORT)
    finally:
        started = time.monotonic()
        sim.stop()
        assert time.monotonic() - started < 3
    client.close()


def test_drop_fault_cuts_the_connection(sim: Simulator, client_keys: ClientKeys) -> None:
    sim.faults.add_rule(FaultRule(kind="drop", times=2))
    client = connect(sim, key=client_keys.ed25519)
    status: int | None
    try:
        _, status = run(client, "/disk print")
    except (paramiko.SSHException, EOFError):
        status = None
    assert status in (None, -1)  # paramiko's "no exit status was sent"
    transport = client.get_transport()
    wait_for(lambda: transport is None or not transport.is_active(), what="transport to close")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        rest_get(sim)


def test_garbage_fault_answers_unparseable_text(sim: Simulator, ssh: paramiko.SSHClient) -> None:
    sim.faults.add_rule(FaultRule(kind="garbage", times=2))
    assert run(ssh, "/disk print detail") == (GARBAGE, 0)
    response = rest_get(sim)
    assert response.status == 200
    with pytest.raises(ValueError):
        json.loads(response.data)


def rest(sim: Simulator, method: str, path: str, body: object = None) -> urllib3.BaseHTTPResponse:
    headers = urllib3.make_headers(basic_auth="admin:s3cret")
    data = None if body is None else json.dumps(body)
    with urllib3.PoolManager(ca_certs=str(sim.rest_certificate), retries=False) as http:
        return http.request(method, sim.rest_url + path, body=data, headers=headers, timeout=TIMEOUT)


ADD = "/disk add type=file slot={0} file-path=/storage-pool/{0}.img file-size=1G"


def slots(sim: Simulator) -> list[str]:
    return [str(r["slot"]) for r in sim.model.disk_records()[1:]]


def test_lost_reply_fault_commits_the_change_then_cuts_the_connection(sim: Simulator, client_keys: ClientKeys) -> None:
    sim.faults.add_rule(FaultRule(op="add", kind="lost-reply", times=2))
    client = connect(sim, key=client_keys.ed25519)
    try:
        _, status = run(client, ADD.format("ssh-lost"))
    except (paramiko.SSHException, EOFError):
        status = None
    finally:
        client.close()
    assert status in (None, -1)  # no exit status: the client cannot tell whether it happened...
    add = {"type": "file", "slot": "rest-lost", "file-path": "/storage-pool/rest-lost.img", "file-size": "1G"}
    with pytest.raises(urllib3.exceptions.ProtocolError):
        rest(sim, "PUT", "/disk", add)
    assert slots(sim) == ["ssh-lost", "rest-lost"]  # ...but it did


def test_ignore_fault_answers_success_and_changes_nothing(sim: Simulator, ssh: paramiko.SSHClient) -> None:
    assert run(ssh, ADD.format("kept")) == ("", 0)
    sim.faults.add_rule(FaultRule(op="remove", kind="ignore", times=2))
    assert run(ssh, "/disk remove kept") == ("", 0)
    assert rest(sim, "DELETE", "/disk/kept").status == 204
    assert slots(sim) == ["kept"]


def test_short_copy_fault_copies_half_of_the_source_over_ssh_and_rest(sim: Simulator, ssh: paramiko.SSHClient) -> None:
    assert run(ssh, ADD.format("whole")) == ("", 0)
    sim.faults.add_rule(FaultRule(op="add", kind="short-copy", times=2))
    assert run(ssh, "/disk add type=file slot=half1 file-path=/storage-pool/half1.img copy-from=whole") == ("", 0)
    copy = {"type": "file", "slot": "half2", "file-path": "/storage-pool/half2.img", "copy-from": "whole"}
    assert rest(sim, "PUT", "/disk", copy).status == 201
    sizes = {r["slot"]: r["size"] for r in sim.model.disk_records()[1:]}
    assert sizes == {"whole": 1 << 30, "half1": 1 << 29, "half2": 1 << 29}


def test_command_log_lists_ssh_and_rest_commands_in_order_with_their_faults(
    sim: Simulator, ssh: paramiko.SSHClient
) -> None:
    control(sim, "POST", "/sim/faults/rules", {"op": "remove", "menu": "file", "kind": "error", "message": "busy"})
    run(ssh, ADD.format("logged"))
    run(ssh, "/disk remove logged")
    run(ssh, '/file remove [find name="storage-pool/logged.img"]')
    rest(sim, "GET", "/disk?slot=logged")
    run(ssh, "/disk frobnicate")
    logged = control_list(sim, "GET", "/sim/commands")
    assert [(e["transport"], e["menu"], e["op"], e["fault"]) for e in logged] == [
        ("ssh", "disk", "add", None),
        ("ssh", "disk", "remove", None),
        ("ssh", "file", "remove", "error"),
        ("rest", "disk", "print", None),
        ("ssh", None, "any", None),
    ]
    assert logged[1]["command"] == "/disk remove logged"
    assert logged[3]["command"] == "GET /rest/disk"
    assert [e.command for e in sim.commands.entries()] == [e["command"] for e in logged]
    assert control_list(sim, "DELETE", "/sim/commands") == []
    assert sim.commands.entries() == []


def control_list(sim: Simulator, method: str, path: str) -> list[dict[str, object]]:
    response = urllib3.request(method, f"http://127.0.0.1:{sim.control_port}{path}", timeout=TIMEOUT)
    assert response.status == 200, response.data
    reply: list[dict[str, object]] = json.loads(response.data)
    return reply


def test_control_endpoint_sets_fail_after_n(sim: Simulator, ssh: paramiko.SSHClient) -> None:
    rule = {"op": "add", "kind": "error", "message": "not enough space", "after": 1, "times": 1}
    control(sim, "PUT", "/sim/faults", {"profile": "zero", "rules": [rule]})
    add = "/disk add type=file slot={0} file-path=/storage-pool/{0}.img file-size=1G"
    assert run(ssh, add.format("a")) == ("", 0)
    assert run(ssh, add.format("b")) == ("failure: not enough space\n", 1)
    assert run(ssh, add.format("c")) == ("", 0)
    snapshot = control(sim, "GET", "/sim/faults")
    assert snapshot["counters"] == [{"seen": 3, "fired": 1}]
    control(sim, "POST", "/sim/faults/rules", {"op": "remove", "kind": "error", "message": "busy"})
    assert run(ssh, "/disk remove a") == ("failure: busy\n", 1)
    assert control(sim, "DELETE", "/sim/faults")["rules"] == []
    disks = control(sim, "GET", "/sim/state")["disks"]
    assert isinstance(disks, list)
    assert [d["slot"] for d in disks] == ["storage-pool", "a", "c"]


def test_control_endpoint_rejects_bad_plans(sim: Simulator) -> None:
    url = f"http://127.0.0.1:{sim.control_port}/sim/faults"
    response = urllib3.request("PUT", url, body=json.dumps({"profile": "warp"}), timeout=TIMEOUT)
    assert response.status == 400
    assert sim.faults.plan.profile == "zero"


def test_realistic_profile_delays_add(sim: Simulator, ssh: paramiko.SSHClient) -> None:
    sim.faults.set_profile("realistic")
    started = time.monotonic()
    run(ssh, "/disk add type=file slot=slow file-path=/storage-pool/slow.img file-size=1G")
    assert time.monotonic() - started >= 0.4


def test_sighup_reloads_the_faults_file_and_sigterm_stops(tmp_path: Path) -> None:
    faults_file = tmp_path / "faults.json"
    faults_file.write_text(json.dumps({"profile": "zero"}))
    ready = tmp_path / "ready.json"
    script = textwrap.dedent(
        f"""
        import json, pathlib
        from rds_csi.simulator import SimulatorConfig, run_forever
        config = SimulatorConfig(state_dir=pathlib.Path({str(tmp_path / "state")!r}),
                                 faults_file=pathlib.Path({str(faults_file)!r}), rest_port=None)
        def ready(sim):
            pathlib.Path({str(ready)!r}).write_text(json.dumps({{"control": sim.control_port}}))
        run_forever(config, on_ready=ready)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        wait_for(ready.exists, timeout=20, what="the simulator process to start")
        port = json.loads(ready.read_text())["control"]

        def plan() -> dict[str, object]:
            reply: dict[str, object] = json.loads(
                urllib3.request("GET", f"http://127.0.0.1:{port}/sim/faults", timeout=TIMEOUT).data
            )
            return reply

        assert plan()["profile"] == "zero"
        faults_file.write_text(json.dumps({"profile": "realistic", "rules": [{"kind": "drop"}]}))
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: plan()["profile"] == "realistic", what="the reload")
        assert plan()["rules"] == [
            {
                "op": "any",
                "kind": "drop",
                "menu": "any",
                "message": "not enough space",
                "after": 0,
                "times": None,
                "probability": 1.0,
            }
        ]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
