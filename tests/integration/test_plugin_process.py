"""The plugin as users run it: a subprocess on a unix socket, probed over real gRPC, stopped with SIGTERM."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.csi.proto import csi_pb2
from tests.integration.plugin_process import rds_csi_command, running_plugin, start_plugin

_Service = csi_pb2.PluginCapability.Service


def test_identity_calls_metrics_and_sigterm_cleanup(short_tmp: Path) -> None:
    sock = short_tmp / "csi.sock"
    with running_plugin(sock) as plugin:
        with grpc.insecure_channel(plugin.target) as channel:
            identity = plugin.identity(channel)
            info = identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=5)
            caps = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), timeout=5)
            probe = identity.Probe(csi_pb2.ProbeRequest(), timeout=5)

        assert info.name == DEFAULT_DRIVER_NAME
        assert info.vendor_version
        services = {c.service.type for c in caps.capabilities if c.HasField("service")}
        assert services == {_Service.CONTROLLER_SERVICE}
        expansion = [c.volume_expansion.type for c in caps.capabilities if c.HasField("volume_expansion")]
        assert expansion == [csi_pb2.PluginCapability.VolumeExpansion.ONLINE]
        assert probe.ready.value is True

        url = f"http://127.0.0.1:{plugin.metrics_port}"
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        assert 'rds_csi_csi_operations_total{code="OK",method="GetPluginInfo"} 1.0' in metrics
        assert "rds_csi_csi_operation_duration_seconds_bucket" in metrics
        assert urllib.request.urlopen(f"{url}/healthz", timeout=5).status == 200

        assert plugin.stop() == 0, plugin.output()
        assert not sock.exists()
        assert "event=plugin.stopped" in plugin.output()


def test_second_instance_refuses_live_socket_and_leaves_it_alone(short_tmp: Path) -> None:
    sock = short_tmp / "csi.sock"
    with running_plugin(sock) as first:
        second = start_plugin(sock)
        assert second.process.wait(20) == 1
        message = second.output()
        assert "another process is serving on" in message
        assert sock.exists()
        with grpc.insecure_channel(first.target) as channel:
            assert first.identity(channel).Probe(csi_pb2.ProbeRequest(), timeout=5).ready.value
        assert first.stop() == 0, first.output()


def test_stale_socket_from_a_crash_is_replaced(short_tmp: Path) -> None:
    sock = short_tmp / "csi.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # the file stays, nobody listens: what a killed plugin leaves behind
    with running_plugin(sock) as plugin:
        assert plugin.stop() == 0, plugin.output()


def test_non_socket_file_at_endpoint_is_never_deleted(short_tmp: Path) -> None:
    path = short_tmp / "csi.sock"
    path.write_text("precious")
    plugin = start_plugin(path)
    assert plugin.process.wait(20) == 1
    assert "is not a socket" in plugin.output()
    assert path.read_text() == "precious"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["plugin", "--bogus"], "--bogus"),
        (["plugin", "--node-id", "n", "--grpc-workers", "lots"], "--grpc-workers"),
        (["plugin", "--mode", "node"], "--node-id"),
        (["plugin", "--node-id", "n", "--endpoint", "http://x"], "--endpoint"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_flags_exit_2_with_one_line_naming_the_flag(args: list[str], named: str) -> None:
    result = subprocess.run([*rds_csi_command(), *args], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]


def test_invalid_host_nqn_file_exits_2_naming_the_option(short_tmp: Path) -> None:
    bad = short_tmp / "hostnqn"
    bad.write_text("worker-1\n")
    argv = [
        *rds_csi_command(), "plugin", "--mode", "node", "--node-id", "worker-1", "--kube-api", "off",
        "--endpoint", f"unix://{short_tmp}/csi.sock", "--metrics-address", "off", "--host-nqn-file", str(bad),
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("rds-csi: error: --host-nqn-file")
    assert "Traceback" not in result.stderr
    assert bad.read_text() == "worker-1\n"


def test_version_and_help() -> None:
    version = subprocess.run([*rds_csi_command(), "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert version.returncode == 0
    assert version.stdout.startswith("rds-csi ")
    helptext = subprocess.run(
        [*rds_csi_command(), "plugin", "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert helptext.returncode == 0
    assert "RDS_CSI_GRPC_WORKERS" in helptext.stdout
    assert "examples:" in helptext.stdout


def test_demo_runs_the_lifecycle_end_to_end() -> None:
    result = subprocess.run([*rds_csi_command(), "demo"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in (
        "CreateVolume pvc-demo-1 (1.5 GiB): allocated 1610612736 bytes",
        "CreateSnapshot",
        "from the snapshot",
        "node expansion required=True",
        "-> demo-node-2: FAILED_PRECONDITION",
        "published to: ['demo-node']",
        "0 volumes left",
        "demo finished: OK",
    ):
        assert step in result.stdout


def run_with_plugin(short_tmp: Path, lines: str, **options: str) -> subprocess.CompletedProcess[str]:
    """Run ``lines`` in a fresh interpreter where ``plugin`` is a controller Plugin built from ``options``."""
    settings = {"mode": "controller", "endpoint": f"unix://{short_tmp}/csi.sock", "metrics_address": "off", **options}
    script = (
        "import sys, threading\n"
        "from rds_csi.plugin.config import load_plugin_config\n"
        "from rds_csi.plugin.lifecycle import Plugin\n"
        f"plugin = Plugin(load_plugin_config({settings!r}, {{}}))\n"
    ) + lines
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)


def test_a_stop_that_hangs_dumps_every_thread_and_exits_1(short_tmp: Path) -> None:
    # Drives the watchdog itself: a real stop hang has no reliable trigger, which is why the watchdog exists.
    result = run_with_plugin(
        short_tmp,
        "plugin._shutdown_watchdog(threading.Event())\nprint('watchdog returned')\n",
        shutdown_timeout="0",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "plugin.shutdown_stuck" in result.stderr
    assert "Current thread" in result.stderr  # faulthandler's dump of the stuck process
    assert "watchdog returned" not in result.stdout


def test_an_exit_held_up_by_a_leftover_thread_is_cut_short_after_a_clean_stop(short_tmp: Path) -> None:
    result = run_with_plugin(
        short_tmp,
        "stopped = threading.Event()\n"
        "stopped.set()\n"
        "threading.Thread(target=plugin._shutdown_watchdog, args=(stopped, 0.5), daemon=True).start()\n"
        "threading.Thread(target=threading.Event().wait).start()  # never ends: interpreter exit waits for it\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plugin.exit_stuck" in result.stderr
    assert "Thread 0x" in result.stderr  # the leftover thread's stack is in the dump
