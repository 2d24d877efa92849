"""``rds-csi simulator`` with the switches that shape what it prints and takes: flag letters, the copy-from form it
accepts and the RouterOS release it reports, driven over real SSH and HTTPS as an operator would."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import paramiko
import urllib3

from rds_csi.routeros.ssh import host_key_fingerprint
from tests.integration.plugin_process import rds_csi_command
from tests.support import SIM_PASSWORD, write_client_key


def test_the_switches_reach_the_console_and_rest(short_tmp: Path) -> None:
    key_file, public_file = write_client_key(short_tmp)
    password_file = short_tmp / "pw"
    password_file.write_text(SIM_PASSWORD)
    state = short_tmp / "state"
    argv = [
        *rds_csi_command(), "simulator", "--ssh-port", "0", "--rest-port", "0", "--state-dir", str(state),
        "--password-file", str(password_file), "--authorized-keys", str(public_file), "--profile", "zero",
        "--disk-flags", "documented", "--no-flags-legend", "--copy-from-accepts", "disk",
        "--routeros-version", "7.20.6 (stable)",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("simulator ready "), ready
        fields = dict(part.split("=", 1) for part in ready.split()[2:])
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # checked against the ready line just below
        client.connect(
            "127.0.0.1", port=int(fields["ssh"].rsplit(":", 1)[1]), username="admin",
            pkey=paramiko.PKey.from_path(key_file), look_for_keys=False, allow_agent=False, timeout=10,
        )  # fmt: skip
        transport = client.get_transport()
        assert transport is not None
        assert host_key_fingerprint(transport.get_remote_server_key()) == fields["host_key"]

        def run(line: str) -> tuple[str, int]:
            _, stdout, _ = client.exec_command(line, timeout=10)
            return stdout.read().decode(), stdout.channel.recv_exit_status()

        add = "/disk add type=file slot=src file-path=/storage-pool/metal-csi/src.img file-size=1G nvme-tcp-export=yes"
        assert run(add) == ("", 0)
        detail, _ = run('/disk print detail where slot="src"')
        assert detail.startswith(" 0 Bt ") and "Flags:" not in detail
        copy = "/disk add type=file slot=cp file-path=/storage-pool/metal-csi/cp.img copy-from="
        assert run(copy + "/storage-pool/metal-csi/src.img") == ("input does not match any value of copy-from\n", 1)
        assert run(copy + '[find slot="src"]') == ("", 0)
        resource, _ = run("/system resource print")
        assert "version: 7.20.6 (stable)" in resource
        client.close()

        auth = base64.b64encode(f"admin:{SIM_PASSWORD}".encode()).decode()
        with urllib3.PoolManager(ca_certs=str(state / "rest-cert.pem"), retries=False) as http:
            reply = http.request(
                "GET", fields["rest"] + "/system/resource", headers={"Authorization": f"Basic {auth}"}, timeout=10
            )
        assert json.loads(reply.data)["version"] == "7.20.6 (stable)"
    finally:
        process.terminate()
        assert process.wait(10) == 0
