"""Static mode (no Kubernetes API) across controller restarts: real gRPC, the simulator over SSH, the state file.

The simulator (the RDS) outlives each controller, as real hardware does; the controller is stopped and started
again on the same state directory, and once killed outright.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from tests.integration.plugin_process import rds_csi_command, running_plugin
from tests.support import RunningController, SimulatorAccess, start_controller, start_simulator
from tests.tempdirs import short_temp_dir

GiB = 1 << 30
Mode = csi_pb2.VolumeCapability.AccessMode.Mode
CAP = csi_pb2.VolumeCapability(
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
    mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
)


class StaticController:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state_dir = directory / "attachments"
        self.sim: SimulatorAccess = start_simulator(directory)
        self.ctl = self._start()

    def _start(self) -> RunningController:
        socket = self.directory / f"ctl-{time.monotonic_ns()}.sock"
        return start_controller(self.sim, "ssh", socket, state_dir=str(self.state_dir))

    def restart(self) -> None:
        self.ctl.stop()
        self.ctl = self._start()

    def stop(self) -> None:
        self.ctl.stop()
        self.sim.simulator.stop()

    def create(self, name: str) -> csi_pb2.Volume:
        request = csi_pb2.CreateVolumeRequest(
            name=name, volume_capabilities=[CAP], capacity_range=csi_pb2.CapacityRange(required_bytes=GiB)
        )
        volume: csi_pb2.Volume = self.ctl.controller.CreateVolume(request, timeout=30).volume
        return volume

    def publish(self, volume: csi_pb2.Volume, node: str) -> None:
        request = csi_pb2.ControllerPublishVolumeRequest(
            volume_id=volume.volume_id, node_id=node, volume_capability=CAP, volume_context=volume.volume_context
        )
        self.ctl.controller.ControllerPublishVolume(request, timeout=30)

    def unpublish(self, volume: csi_pb2.Volume, node: str) -> None:
        request = csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=node)
        self.ctl.controller.ControllerUnpublishVolume(request, timeout=30)

    def delete(self, volume: csi_pb2.Volume) -> None:
        self.ctl.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id), timeout=30)

    def published(self, volume: csi_pb2.Volume) -> list[str]:
        got = self.ctl.controller.ControllerGetVolume(
            csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id), timeout=30
        )
        return list(got.status.published_node_ids)


@pytest.fixture
def static() -> Iterator[StaticController]:
    with short_temp_dir("rds-static-") as directory:  # holds the plugin's unix socket
        running = StaticController(directory)
        try:
            yield running
        finally:
            running.stop()


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    status: grpc.StatusCode = refused.value.code()
    return status


def test_a_restart_keeps_a_published_volume_from_a_second_node_and_from_deletion(static: StaticController) -> None:
    volume = static.create("pvc-static-held")
    static.publish(volume, "node-1")
    static.restart()
    assert static.published(volume) == ["node-1"]
    assert code_of(lambda: static.publish(volume, "node-2")) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: static.delete(volume)) == grpc.StatusCode.FAILED_PRECONDITION
    static.publish(volume, "node-1")  # the holder's repeat is still fine
    static.unpublish(volume, "node-1")
    static.restart()
    assert static.published(volume) == []  # the unpublish was kept too
    static.publish(volume, "node-2")
    static.unpublish(volume, "node-2")
    static.delete(volume)


def test_a_controller_killed_with_sigkill_comes_back_holding_what_it_published(short_tmp: Path) -> None:
    sock = short_tmp / "csi.sock"
    flags = [
        "--mode", "controller", "--kube-api", "off", "--static-nodes", "node-a,node-b",
        "--routeros-simulator-state-dir", str(short_tmp / "rds"), "--state-dir", str(short_tmp / "attachments"),
    ]  # fmt: skip
    with running_plugin(sock, flags) as first, grpc.insecure_channel(first.target) as channel:
        controller = csi_pb2_grpc.ControllerStub(channel)
        volume = controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name="pvc-killed", volume_capabilities=[CAP], capacity_range=csi_pb2.CapacityRange(required_bytes=GiB)
            ),
            timeout=30,
        ).volume
        controller.ControllerPublishVolume(publish_request(volume, "node-a"), timeout=30)
        first.process.kill()  # no shutdown at all: what the state file holds is all there is
        first.process.wait(10)
    with running_plugin(sock, flags) as second, grpc.insecure_channel(second.target) as channel:
        controller = csi_pb2_grpc.ControllerStub(channel)
        with pytest.raises(grpc.RpcError) as publish:
            controller.ControllerPublishVolume(publish_request(volume, "node-b"), timeout=30)
        assert publish.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "node-a" in (publish.value.details() or "")
        with pytest.raises(grpc.RpcError) as delete:
            controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id), timeout=30)
        assert delete.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert second.stop() == 0, second.output()


def publish_request(volume: csi_pb2.Volume, node: str) -> csi_pb2.ControllerPublishVolumeRequest:
    return csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id=node, volume_capability=CAP, volume_context=volume.volume_context
    )


def run_plugin_until_it_exits(*flags: str) -> subprocess.CompletedProcess[str]:
    argv = [*rds_csi_command(), "plugin", "--metrics-address", "off", *flags]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_a_controller_with_a_real_rds_and_no_kubernetes_api_will_not_start_without_a_state_dir(
    short_tmp: Path,
) -> None:
    result = run_plugin_until_it_exits(
        "--mode", "controller", "--kube-api", "off", "--endpoint", f"unix://{short_tmp}/csi.sock",
        "--routeros-transport", "ssh", "--routeros-address", "192.0.2.1", "--routeros-ssh-key", str(short_tmp / "k"),
        "--routeros-insecure-skip-host-key", "true",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("rds-csi: error: --state-dir: required when the controller runs without a Kubernetes API")


def test_a_corrupt_state_file_stops_the_start_naming_the_option_and_is_left_alone(short_tmp: Path) -> None:
    state = short_tmp / "attachments"
    state.mkdir()
    corrupt = '{"format": "rds-csi-attachments", "version": 1, "attachments": [{"volume_id": "pvc-a", '
    (state / "attachments.json").write_text(corrupt)
    result = run_plugin_until_it_exits(
        "--mode", "controller", "--kube-api", "off", "--endpoint", f"unix://{short_tmp}/csi.sock",
        "--state-dir", str(state),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rds-csi: error: --state-dir: state file {state / 'attachments.json'} is unreadable")
    assert "Traceback" not in result.stderr
    assert (state / "attachments.json").read_text() == corrupt
    assert not (short_tmp / "csi.sock").exists()  # it never served
