"""The SSH front end with real clients: every command, authentication, widths, pooling, concurrency."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from rds_csi.simulator import Simulator

from .conftest import PASSWORD, TIMEOUT, ClientKeys, connect, make_config, run

ADD = (
    "/disk add type=file slot={slot} file-path=/storage-pool/metal-csi/{slot}.img file-size={size} "
    'nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn="nqn.2000-02.com.mikrotik:{slot}"'
)


def test_volume_lifecycle_over_ssh_runs_every_driver_command(ssh: paramiko.SSHClient) -> None:
    assert run(ssh, ADD.format(slot="pvc-1", size="10G")) == ("", 0)
    detail, status = run(ssh, '/disk print detail where slot="pvc-1"')
    assert status == 0
    assert detail.startswith(' 0  type=file slot="pvc-1"')
    assert "file-size=10.0GiB" in detail
    assert run(ssh, '/disk set [find slot="pvc-1"] file-size=20G') == ("", 0)
    assert '"pvc-1"' in run(ssh, "/disk print terse where slot=pvc-1")[0]
    assert "file-size=21474836480" in run(ssh, "/disk print as-value where slot=pvc-1")[0]
    monitor, status = run(ssh, '/disk monitor-traffic "pvc-1" once')
    assert status == 0
    assert "slot: pvc-1" in monitor
    files, _ = run(ssh, '/file print detail where name~"storage-pool/metal-csi"')
    assert "name=storage-pool/metal-csi/pvc-1.img" in files
    assert run(ssh, '/disk remove [find slot="pvc-1"]') == ("", 0)
    assert run(ssh, '/file remove [find name="storage-pool/metal-csi/pvc-1.img"]') == ("", 0)
    assert run(ssh, '/disk print detail where slot="pvc-1"') == ("", 0)
    resources, status = run(ssh, "/system resource print")
    assert status == 0
    assert "platform: MikroTik" in resources


def test_failure_is_printed_on_stdout_with_nonzero_status(ssh: paramiko.SSHClient) -> None:
    assert run(ssh, "/disk remove pvc-ghost") == ("failure: no such item\n", 1)
    assert run(ssh, ADD.format(slot="huge", size="100T")) == ("failure: not enough space\n", 1)
    output, status = run(ssh, "/disk print; /disk remove [find]")
    assert status == 1
    assert output.startswith("expected end of command")


def test_rsa_key_and_password_authenticate(sim: Simulator, client_keys: ClientKeys) -> None:
    for client in (connect(sim, key=client_keys.rsa), connect(sim, password=PASSWORD)):
        with client:
            assert run(client, "/system resource print")[1] == 0


@pytest.mark.parametrize("credentials", ["stranger-key", "wrong-password", "unknown-user"])
def test_bad_credentials_are_refused(sim: Simulator, client_keys: ClientKeys, credentials: str) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        if credentials == "stranger-key":
            connect(sim, key=client_keys.stranger)
        elif credentials == "wrong-password":
            connect(sim, password="nope")
        else:
            connect(sim, user="mallory", key=client_keys.ed25519)


def test_login_suffix_sets_console_width(sim: Simulator, client_keys: ClientKeys) -> None:
    with connect(sim, user="admin+ct40w", key=client_keys.ed25519) as client:
        run(client, ADD.format(slot="pvc-w", size="1G"))
        output, _ = run(client, "/disk print detail")
    assert max(len(line) for line in output.splitlines()) <= 38


def test_many_sequential_exec_channels_share_one_connection(ssh: paramiko.SSHClient) -> None:
    for n in range(40):
        assert run(ssh, f"/disk print terse where slot=pvc-{n}") == ("", 0)


def test_shell_request_is_refused(ssh: paramiko.SSHClient) -> None:
    transport = ssh.get_transport()
    assert transport is not None
    channel = transport.open_session(timeout=TIMEOUT)
    with pytest.raises(paramiko.SSHException):
        channel.invoke_shell()


def test_twenty_concurrent_clients_each_manage_their_volume(sim: Simulator, client_keys: ClientKeys) -> None:
    errors: list[str] = []

    def worker(n: int) -> None:
        try:
            with connect(sim, key=client_keys.ed25519) as client:
                slot = f"pvc-c{n}"
                assert run(client, ADD.format(slot=slot, size="1G")) == ("", 0)
                assert f'slot="{slot}"' in run(client, f"/disk print terse where slot={slot}")[0]
                assert run(client, f"/disk remove [find slot={slot}]") == ("", 0)
        except (AssertionError, paramiko.SSHException, OSError) as exc:
            errors.append(f"{n}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert [r["slot"] for r in sim.model.disk_records()] == ["storage-pool"]


def test_host_key_is_persistent_across_restarts(tmp_path: Path, client_keys: ClientKeys) -> None:
    config = make_config(tmp_path, client_keys)
    with Simulator(config) as first:
        fingerprint = first.host_key_fingerprint
    with Simulator(config) as second:
        assert second.host_key_fingerprint == fingerprint
        assert second.host_public_key.startswith("ssh-ed25519 ")


def test_openssh_client_prints_disk_detail(sim: Simulator, client_keys: ClientKeys, tmp_path: Path) -> None:
    ssh_binary = shutil.which("ssh")
    if ssh_binary is None:
        pytest.skip("OpenSSH client (ssh) is not installed")
    sim.model.add_disk(
        {"type": "file", "slot": "pvc-o", "file-path": "/storage-pool/metal-csi/pvc-o.img", "file-size": "5G"}
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sim.ssh_port} {sim.host_public_key}\n")
    result = subprocess.run(
        [
            ssh_binary,
            "-F",
            "/dev/null",
            "-i",
            str(client_keys.ed25519),
            "-p",
            str(sim.ssh_port),
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "admin+c80w@127.0.0.1",
            "/disk print detail",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert 'slot="pvc-o"' in result.stdout
    assert "file-size=5.0GiB" in result.stdout
