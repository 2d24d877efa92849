"""The REST front end over real HTTPS: RouterOS semantics, errors, auth, and the model shared with SSH."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import paramiko
import pytest
import urllib3

from rds_csi.simulator import Simulator

from .conftest import PASSWORD, TIMEOUT, ClientKeys, make_config, run

GIB = 1024**3


def call(http: urllib3.PoolManager, sim: Simulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body)
    response = http.request(method, sim.rest_url + path, body=data)
    return response.status, (json.loads(response.data) if response.data else None)


def new_disk(slot: str, size: str = "1G") -> dict[str, str]:
    return {"type": "file", "slot": slot, "file-path": f"/storage-pool/metal-csi/{slot}.img", "file-size": size}


def test_put_adds_and_returns_the_new_object_with_string_values(http: urllib3.PoolManager, sim: Simulator) -> None:
    status, created = call(http, sim, "PUT", "/disk", {**new_disk("pvc-r"), "nvme-tcp-export": "yes"})
    assert status == 201
    assert created["slot"] == "pvc-r"
    assert created[".id"].startswith("*")
    assert created["file-size"] == str(GIB)
    assert created["nvme-tcp-export"] == "true"
    assert all(isinstance(v, str) for v in created.values())


def test_get_filters_by_query_and_proplist(http: urllib3.PoolManager, sim: Simulator) -> None:
    for slot in ("pvc-a", "pvc-b"):
        call(http, sim, "PUT", "/disk", new_disk(slot))
    status, listed = call(http, sim, "GET", "/disk?slot=pvc-b&.proplist=slot,file-size")
    assert status == 200
    assert listed == [{"slot": "pvc-b", "file-size": str(GIB)}]
    assert len(call(http, sim, "GET", "/disk")[1]) == 3


def test_get_patch_delete_by_id(http: urllib3.PoolManager, sim: Simulator) -> None:
    _, created = call(http, sim, "PUT", "/disk", new_disk("pvc-i"))
    item = "/disk/" + created[".id"]
    assert call(http, sim, "GET", item)[1]["slot"] == "pvc-i"
    status, patched = call(http, sim, "PATCH", item, {"file-size": "2G", "nvme-tcp-server-port": "4421"})
    assert status == 200
    assert (patched["file-size"], patched["nvme-tcp-server-port"]) == (str(2 * GIB), "4421")
    assert call(http, sim, "DELETE", item) == (204, None)
    assert call(http, sim, "GET", item) == (404, {"error": 404, "message": "Not Found"})
    assert call(http, sim, "DELETE", item)[0] == 404


def test_post_print_with_query_words(http: urllib3.PoolManager, sim: Simulator) -> None:
    for slot in ("pvc-1", "pvc-2", "pvc-3"):
        call(http, sim, "PUT", "/disk", new_disk(slot))
    query = {".query": ["slot=pvc-1", "slot=pvc-3", "#|"], ".proplist": ["slot"]}
    assert call(http, sim, "POST", "/disk/print", query) == (200, [{"slot": "pvc-1"}, {"slot": "pvc-3"}])
    partition = {".query": ["mount-point=storage-pool"], ".proplist": "size,free"}
    assert list(call(http, sim, "POST", "/disk/print", partition)[1][0]) == ["size", "free"]


def test_post_commands_add_set_remove_monitor(http: urllib3.PoolManager, sim: Simulator) -> None:
    status, reply = call(http, sim, "POST", "/disk/add", new_disk("pvc-p"))
    assert status == 200
    disk_id = reply["ret"]
    assert call(http, sim, "POST", "/disk/set", {".id": disk_id, "disabled": "yes"}) == (200, [])
    status, monitor = call(http, sim, "POST", "/disk/monitor-traffic", {"numbers": "pvc-p", "once": ""})
    assert status == 200
    assert monitor[0]["slot"] == "pvc-p"
    assert monitor[0]["write-rate"] == "0"
    assert call(http, sim, "POST", "/disk/remove", {"numbers": "pvc-p"}) == (200, [])
    assert call(http, sim, "GET", "/disk?slot=pvc-p")[1] == []


def test_failures_are_400_with_failure_detail(http: urllib3.PoolManager, sim: Simulator) -> None:
    assert call(http, sim, "PUT", "/disk", new_disk("pvc-x", "100T")) == (
        400,
        {"error": 400, "message": "Bad Request", "detail": "failure: not enough space"},
    )
    call(http, sim, "PUT", "/disk", new_disk("pvc-x"))
    assert call(http, sim, "PUT", "/disk", new_disk("pvc-x"))[1]["detail"] == (
        "failure: disk with such slot already exists"
    )
    assert call(http, sim, "PUT", "/disk", {**new_disk("pvc-y"), "colour": "red"})[1]["detail"] == (
        "unknown parameter colour"
    )
    assert call(http, sim, "POST", "/disk/remove", {".id": "*7F"})[1]["detail"] == "failure: no such item"
    assert call(http, sim, "GET", "/nothing")[1]["detail"] == "no such command prefix"


def test_file_menu_and_system_resource(http: urllib3.PoolManager, sim: Simulator) -> None:
    _, created = call(http, sim, "PUT", "/disk", new_disk("pvc-f"))
    call(http, sim, "DELETE", "/disk/" + created[".id"])
    _, files = call(http, sim, "GET", "/file?name=storage-pool/metal-csi/pvc-f.img")
    assert files[0]["type"] == ".img file"
    assert files[0]["size"] == str(GIB)
    assert call(http, sim, "DELETE", "/file/" + files[0][".id"]) == (204, None)
    status, resource = call(http, sim, "GET", "/system/resource")
    assert status == 200
    assert resource["board-name"] == "RDS2216"
    assert resource["version"] == sim.config.system.version
    assert (resource["cpu-load"], resource["cpu-frequency"], resource["free-memory"]) == ("1", "2000", str(30 * GIB))


@pytest.mark.parametrize("auth", [None, f"admin:{PASSWORD}x", "ghost:whatever"])
def test_bad_or_missing_credentials_are_401(sim: Simulator, auth: str | None) -> None:
    headers = {} if auth is None else urllib3.make_headers(basic_auth=auth)
    with urllib3.PoolManager(ca_certs=str(sim.rest_certificate), retries=False) as http:
        response = http.request("GET", sim.rest_url + "/disk", headers=headers, timeout=TIMEOUT)
    assert response.status == 401
    assert json.loads(response.data) == {"error": 401, "message": "Unauthorized"}
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_tls_is_verified_against_the_simulator_certificate(sim: Simulator) -> None:
    with (
        urllib3.PoolManager(cert_reqs="CERT_REQUIRED", retries=False) as http,
        pytest.raises(urllib3.exceptions.SSLError),
    ):
        http.request("GET", sim.rest_url + "/disk", timeout=TIMEOUT)


def test_plain_http_when_tls_is_off(tmp_path: Path, client_keys: ClientKeys) -> None:
    with Simulator(make_config(tmp_path, client_keys, rest_tls=False)) as sim:
        assert sim.rest_url.startswith("http://")
        assert sim.rest_certificate is None
        headers = urllib3.make_headers(basic_auth=f"admin:{PASSWORD}")
        response = urllib3.request("GET", sim.rest_url + "/disk", headers=headers, timeout=TIMEOUT, retries=False)
        assert response.status == 200


def test_rest_and_ssh_share_one_model(http: urllib3.PoolManager, sim: Simulator, ssh: paramiko.SSHClient) -> None:
    call(http, sim, "PUT", "/disk", new_disk("pvc-shared"))
    assert 'slot="pvc-shared"' in run(ssh, "/disk print terse where slot=pvc-shared")[0]
    run(ssh, "/disk remove pvc-shared")
    assert call(http, sim, "GET", "/disk?slot=pvc-shared")[1] == []
