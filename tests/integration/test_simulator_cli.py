"""``rds-csi simulator`` as an operator runs it: quick to start, driven with plain ``ssh`` and ``curl``."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.plugin_process import free_port, rds_csi_command
from tests.support import SIM_PASSWORD, write_client_key

pytestmark = pytest.mark.skipif(
    shutil.which("ssh") is None or shutil.which("curl") is None, reason="needs the OpenSSH client and curl"
)


def test_simulator_starts_fast_and_answers_plain_ssh_and_curl(short_tmp: Path) -> None:
    key_file, public_file = write_client_key(short_tmp)
    password_file = short_tmp / "pw"
    password_file.write_text(SIM_PASSWORD)
    ssh_port, rest_port = free_port(), free_port()
    argv = [
        *rds_csi_command(), "simulator", "--ssh-port", str(ssh_port), "--rest-port", str(rest_port),
        "--state-dir", str(short_tmp / "state"), "--password-file", str(password_file),
        "--authorized-keys", str(public_file), "--profile", "zero",
    ]  # fmt: skip
    started = time.monotonic()
    # The ready line is on stdout; structured logs go to stderr.
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        startup = time.monotonic() - started
        assert ready.startswith("simulator ready "), ready
        assert startup < 2.0 + 1.5  # the 2 s, plus this interpreter's own start-up on a loaded box

        ssh = [
            "ssh", "-i", str(key_file), "-p", str(ssh_port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "admin@127.0.0.1",
        ]  # fmt: skip
        add = subprocess.run(
            [*ssh, '/disk add type=file file-path=/storage-pool/metal-csi/pvc-cli.img file-size=2G slot="pvc-cli" '
             "nvme-tcp-export=yes"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert add.returncode == 0, add.stderr
        printed = subprocess.run(
            [*ssh, '/disk print detail where slot="pvc-cli"'], capture_output=True, text=True, timeout=30, check=False
        )
        assert 'slot="pvc-cli"' in printed.stdout
        assert "size=2 147 483 648" in printed.stdout  # the device's digit grouping
        failed = subprocess.run(
            [*ssh, '/disk remove [find slot="pvc-cli"]; /system reboot'],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert failed.returncode != 0  # an injected second command is a syntax error, not a reboot

        curl = subprocess.run(
            ["curl", "-sk", "-u", f"admin:{SIM_PASSWORD}", f"https://127.0.0.1:{rest_port}/rest/disk?slot=pvc-cli"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert '"slot": "pvc-cli"' in curl.stdout or '"slot":"pvc-cli"' in curl.stdout
    finally:
        process.terminate()
        assert process.wait(10) == 0


@pytest.mark.skipif(Path("/sys/kernel/config/nvmet").is_dir(), reason="this kernel has nvmet (tests/e2e covers it)")
def test_data_plane_without_nvmet_is_refused_with_the_reason(short_tmp: Path) -> None:
    password_file = short_tmp / "pw"
    password_file.write_text(SIM_PASSWORD)
    argv = [
        *rds_csi_command(), "simulator", "--ssh-port", "0", "--rest-port", "0", "--state-dir", str(short_tmp / "s"),
        "--password-file", str(password_file), "--nvmet-data-dir", str(short_tmp / "images"),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "load the nvmet and nvmet-tcp kernel modules" in result.stderr
    assert "simulator ready" not in result.stdout


def test_data_plane_address_must_be_loopback_unless_allowed(short_tmp: Path) -> None:
    password_file = short_tmp / "pw"
    password_file.write_text(SIM_PASSWORD)
    argv = [
        *rds_csi_command(), "simulator", "--state-dir", str(short_tmp / "s"), "--password-file", str(password_file),
        "--nvmet-data-dir", str(short_tmp / "images"), "--nvmet-address", "192.0.2.10",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    refusal = "--nvmet-address: refusing to listen on non-loopback '192.0.2.10' without --allow-non-loopback"
    assert refusal in result.stderr
