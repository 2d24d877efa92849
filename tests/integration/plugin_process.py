"""Start ``rds-csi plugin`` as a real subprocess and talk to it through grpcio over its unix socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc


def rds_csi_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("rds-csi")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rds_csi.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PluginProcess:
    process: subprocess.Popen[str]
    socket_path: Path
    metrics_port: int

    @property
    def target(self) -> str:
        return f"unix://{self.socket_path}"

    def identity(self, channel: grpc.Channel) -> csi_pb2_grpc.IdentityStub:
        return csi_pb2_grpc.IdentityStub(channel)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"plugin exited with {self.process.returncode}: {self.output()}")
            if self.socket_path.exists():
                with grpc.insecure_channel(self.target) as channel:
                    try:
                        self.identity(channel).Probe(csi_pb2.ProbeRequest(), timeout=2)
                        return
                    except grpc.RpcError:
                        pass
            time.sleep(0.05)
        raise TimeoutError(f"plugin not ready after {timeout}s")

    def output(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        out, _ = self.process.communicate()
        return out

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"plugin still running {timeout}s after SIGTERM:\n{self.output()}") from None


def start_plugin(socket_path: Path, extra: Sequence[str] = (), env: dict[str, str] | None = None) -> PluginProcess:
    port = free_port()
    argv = [
        *rds_csi_command(),
        "plugin",
        "--mode",
        "all",
        "--node-id",
        "node-1",
        "--endpoint",
        f"unix://{socket_path}",
        "--metrics-address",
        f"127.0.0.1:{port}",
        # The node service generates a host NQN and ID when the files are missing: never the machine's /etc/nvme.
        "--host-nqn-file",
        str(socket_path.parent / "hostnqn"),
        "--host-id-file",
        str(socket_path.parent / "hostid"),
        *extra,
    ]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return PluginProcess(process, socket_path, port)


@contextmanager
def running_plugin(socket_path: Path, extra: Sequence[str] = ()) -> Iterator[PluginProcess]:
    plugin = start_plugin(socket_path, extra)
    try:
        plugin.wait_ready()
        yield plugin
    finally:
        if plugin.process.poll() is None:
            plugin.process.kill()
            plugin.process.wait(10)
