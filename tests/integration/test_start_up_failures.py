"""Started the way a new user starts them, ``rds-csi plugin`` and ``rds-csi simulator`` either serve or stop
with one line naming the flag or file (exit 2 for bad configuration), and leave no private key behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import rds_csi
from tests.integration.plugin_process import free_port, rds_csi_command, start_plugin
from tests.support import SIM_PASSWORD

# Every temp dir the commands make starts with this (the embedded simulator's, the attachments', the simulator's).
PRIVATE_PREFIX = "rds-csi-"


@pytest.fixture
def temp_root(tmp_path: Path) -> Path:
    """The subprocess's TMPDIR: empty before, so what is left in it afterwards is exactly what the run left."""
    root = tmp_path / "temp-root"
    root.mkdir()
    return root


def leftovers(temp_root: Path) -> list[str]:
    return sorted(p.name for p in temp_root.iterdir() if p.name.startswith(PRIVATE_PREFIX))


def child_env(temp_root: Path) -> dict[str, str]:
    """TMPDIR at ``temp_root``; the same rds_csi as this test imports, from whatever directory the child runs in."""
    source = str(Path(rds_csi.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "TMPDIR": str(temp_root), "PYTHONPATH": path}


def run(argv: list[str], temp_root: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = child_env(temp_root)
    return subprocess.run(
        [*rds_csi_command(), *argv], capture_output=True, text=True, timeout=60, check=False, env=env, cwd=cwd
    )


def assert_one_line_naming(result: subprocess.CompletedProcess[str], status: int, *named: str) -> str:
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rds-csi: error: "), lines[0]
    assert "Traceback" not in result.stderr and "[Errno" not in result.stderr
    for name in named:
        assert name in lines[0]
    return lines[0]


# ---- the simulator ---------------------------------------------------------------------------------------


def simulator_argv(short_tmp: Path, *extra: str) -> list[str]:
    password_file = short_tmp / "pw"
    password_file.write_text(SIM_PASSWORD)
    return ["simulator", "--ssh-port", "0", "--rest-port", "0", "--password-file", str(password_file), *extra]


def test_simulator_missing_password_file_is_one_line_naming_the_flag(short_tmp: Path, temp_root: Path) -> None:
    result = run(["simulator", "--state-dir", str(short_tmp / "s"), "--password-file", "/nonexistent"], temp_root)
    assert_one_line_naming(result, 2, "--password-file", "/nonexistent")
    assert not (short_tmp / "s").exists()


def test_simulator_missing_faults_file_is_refused_naming_the_flag(short_tmp: Path, temp_root: Path) -> None:
    missing = short_tmp / "faults.json"
    result = run(simulator_argv(short_tmp, "--faults-file", str(missing)), temp_root)
    assert_one_line_naming(result, 2, "--faults-file", str(missing))
    assert leftovers(temp_root) == []


def test_simulator_non_loopback_host_names_the_flag_that_allows_it(short_tmp: Path, temp_root: Path) -> None:
    result = run(simulator_argv(short_tmp, "--host", "0.0.0.0"), temp_root)
    line = assert_one_line_naming(result, 2, "--host", "'0.0.0.0'", "--allow-non-loopback")
    assert "allow_non_loopback" not in line
    assert leftovers(temp_root) == []


@pytest.mark.skipif(Path("/sys/kernel/config/nvmet").is_dir(), reason="this kernel has nvmet (tests/e2e covers it)")
def test_refused_data_plane_creates_no_data_dir(short_tmp: Path, temp_root: Path) -> None:
    images = short_tmp / "images"
    result = run(simulator_argv(short_tmp, "--nvmet-data-dir", str(images)), temp_root)
    assert_one_line_naming(result, 1, "nvmet")
    assert not images.exists()
    assert leftovers(temp_root) == []


def test_persist_needs_a_named_state_dir(short_tmp: Path, temp_root: Path) -> None:
    result = run(simulator_argv(short_tmp, "--persist"), temp_root, cwd=short_tmp)
    assert_one_line_naming(result, 2, "--persist", "--state-dir")
    assert sorted(p.name for p in short_tmp.iterdir()) == ["pw"]


def test_simulator_without_state_dir_keeps_its_keys_in_a_private_dir_gone_after_sigterm(
    short_tmp: Path, temp_root: Path
) -> None:
    argv = [*rds_csi_command(), *simulator_argv(short_tmp)]
    env = child_env(temp_root)
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=short_tmp
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("simulator ready ")
        (private,) = leftovers(temp_root)
        assert (temp_root / private).stat().st_mode & 0o077 == 0  # nobody else may read the host key
    finally:
        process.terminate()
        assert process.wait(20) == 0
    assert leftovers(temp_root) == []
    assert sorted(p.name for p in short_tmp.iterdir()) == ["pw"]  # nothing written into the current directory


# ---- the plugin ------------------------------------------------------------------------------------------


def plugin_argv(short_tmp: Path, *extra: str) -> list[str]:
    return [
        "plugin", "--mode", "controller", "--endpoint", f"unix://{short_tmp}/csi.sock",
        "--metrics-address", f"127.0.0.1:{free_port()}", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "transport_flags"),
    [
        ("--routeros-ssh-key", ["--routeros-transport", "ssh", "--routeros-insecure-skip-host-key", "true"]),
        ("--routeros-known-hosts", ["--routeros-transport", "ssh", "--routeros-ssh-key", "{key}"]),
        ("--routeros-password-file", ["--routeros-transport", "rest"]),
        ("--routeros-ca-file", ["--routeros-transport", "rest", "--routeros-password-file", "{key}"]),
        ("--kube-token-file", ["--kube-api", "https://127.0.0.1:1"]),
    ],
)
def test_missing_file_named_by_a_flag_is_one_line_naming_it(
    short_tmp: Path, temp_root: Path, flag: str, transport_flags: list[str]
) -> None:
    present = short_tmp / "present"
    present.write_text("secret\n")
    missing = short_tmp / "missing"
    extra = [arg.replace("{key}", str(present)) for arg in transport_flags]
    argv = plugin_argv(short_tmp, "--routeros-address", "192.0.2.1", "--state-dir", str(short_tmp), *extra)
    result = run([*argv, flag, str(missing)], temp_root)
    assert_one_line_naming(result, 2, flag, str(missing))
    assert not (short_tmp / "csi.sock").exists()


def test_busy_metrics_port_is_one_line_naming_the_flag_and_leaves_nothing(short_tmp: Path, temp_root: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["plugin", "--mode", "controller", "--endpoint", f"unix://{short_tmp}/csi.sock"]
        result = run([*argv, "--metrics-address", f"127.0.0.1:{port}"], temp_root)
    assert_one_line_naming(result, 2, "--metrics-address", str(port))
    assert leftovers(temp_root) == []


@pytest.mark.parametrize("parent", ["file", "/proc"])
def test_unusable_socket_directory_is_one_line_naming_the_endpoint(
    short_tmp: Path, temp_root: Path, parent: str
) -> None:
    if parent == "file":
        (short_tmp / "file").write_text("not a directory")
        directory = short_tmp / "file"
    else:
        directory = Path("/proc") / "rds-csi-test"
    argv = ["plugin", "--mode", "controller", "--metrics-address", "off"]
    result = run([*argv, "--endpoint", f"unix://{directory}/csi.sock"], temp_root)
    assert_one_line_naming(result, 2, "--endpoint", str(directory))
    assert leftovers(temp_root) == []


def test_sigterm_stop_leaves_no_private_dir(short_tmp: Path, temp_root: Path) -> None:
    plugin = start_plugin(short_tmp / "csi.sock", env=child_env(temp_root))
    try:
        plugin.wait_ready()
        assert leftovers(temp_root)  # the embedded simulator's keys and the attachments, while it runs
    finally:
        assert plugin.stop() == 0, plugin.output()
    assert leftovers(temp_root) == []


def run_abandoned(short_tmp: Path, temp_root: Path, lines: str) -> subprocess.CompletedProcess[str]:
    """A controller Plugin built in a fresh interpreter whose watchdog ends it with ``os._exit``."""
    settings = {
        "mode": "controller", "endpoint": f"unix://{short_tmp}/csi.sock", "metrics_address": "off",
        "shutdown_timeout": "0",
    }  # fmt: skip
    script = (
        "import threading\n"
        "from rds_csi.plugin.config import load_plugin_config\n"
        "from rds_csi.plugin.lifecycle import Plugin\n"
        f"plugin = Plugin(load_plugin_config({settings!r}, {{}}))\n"
    ) + lines
    env = child_env(temp_root)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False, env=env
    )


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        ("plugin._shutdown_watchdog(threading.Event())\n", 1),  # a stop that hangs
        ("stopped = threading.Event()\nstopped.set()\nplugin._shutdown_watchdog(stopped, 0.1)\n", 0),  # exit hangs
    ],
)
def test_watchdog_exit_removes_the_private_dirs(short_tmp: Path, temp_root: Path, lines: str, status: int) -> None:
    result = run_abandoned(short_tmp, temp_root, lines)
    assert result.returncode == status, result.stderr
    assert leftovers(temp_root) == []
