"""Helpers for the CSI sanity conformance tests: request builders, a controller-capability gate, a status-code
check, and resource tracking that unpublishes, then deletes snapshots, then volumes, even when a test fails.

The tests talk to the plugin through whatever the conformance ``csi`` fixture provides; ``SanityTarget`` names
only the parts they use, so this module does not depend on how that fixture is built.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Protocol

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc

GiB = 1 << 30
MiB = 1 << 20
# The sanity suite's defaults: names up to 128 characters, idempotency checked by repeating a call 10 times,
# expansion by 1 GiB over the test volume size.
MAX_NAME_LENGTH = 128
IDEMPOTENT_COUNT = 10
EXPAND_INCREMENT = GiB
RPC_TIMEOUT = 30.0
SNAPSHOT_READY_TIMEOUT = 60.0

Rpc = csi_pb2.ControllerServiceCapability.RPC
Mode = csi_pb2.VolumeCapability.AccessMode.Mode


class SanityTarget(Protocol):
    """What the tests need from the conformance ``csi`` fixture, matched structurally."""

    @property
    def identity(self) -> csi_pb2_grpc.IdentityStub: ...
    @property
    def controller(self) -> csi_pb2_grpc.ControllerStub: ...
    @property
    def node(self) -> csi_pb2_grpc.NodeStub: ...
    @property
    def node_id(self) -> str: ...
    @property
    def parameters(self) -> Mapping[str, str]: ...
    @property
    def test_volume_size(self) -> int: ...


UniqueName = Callable[[str], str]


def expect_code(call: Callable[[], object], code: grpc.StatusCode) -> grpc.RpcError:
    """Run ``call`` and return the ``grpc.RpcError`` it raises; fail unless it carries ``code``."""
    try:
        response = call()
    except grpc.RpcError as error:
        assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
        return error
    pytest.fail(f"expected {code.name}, but the call succeeded: {response!r}")


def controller_capabilities(target: SanityTarget) -> frozenset[int]:
    response: csi_pb2.ControllerGetCapabilitiesResponse = target.controller.ControllerGetCapabilities(
        csi_pb2.ControllerGetCapabilitiesRequest(), timeout=RPC_TIMEOUT
    )
    return frozenset(capability.rpc.type for capability in response.capabilities if capability.HasField("rpc"))


def require_capability(target: SanityTarget, capability: Rpc.Type) -> None:
    """Skip the calling test, as csi-sanity does, when the controller does not advertise ``capability``."""
    if capability not in controller_capabilities(target):
        pytest.skip(f"the controller does not advertise {Rpc.Type.Name(capability)}")


def mount_capability() -> csi_pb2.VolumeCapability:
    """Single-node-writer on the driver's default filesystem: csi-sanity's default capability."""
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
    )


def volume_request(
    target: SanityTarget, name: str, required_bytes: int | None = None, limit_bytes: int = 0
) -> csi_pb2.CreateVolumeRequest:
    """A single-node-writer CreateVolume request; without ``required_bytes`` it carries no capacity range."""
    request = csi_pb2.CreateVolumeRequest(
        name=name, volume_capabilities=[mount_capability()], parameters=dict(target.parameters)
    )
    if required_bytes is not None:
        request.capacity_range.CopyFrom(csi_pb2.CapacityRange(required_bytes=required_bytes, limit_bytes=limit_bytes))
    return request


def sized_volume_request(target: SanityTarget, name: str) -> csi_pb2.CreateVolumeRequest:
    """csi-sanity's standard request: exactly the test volume size (required and limit)."""
    size = target.test_volume_size
    return volume_request(target, name, required_bytes=size, limit_bytes=size)


def snapshot_request(name: str, source_volume_id: str) -> csi_pb2.CreateSnapshotRequest:
    return csi_pb2.CreateSnapshotRequest(name=name, source_volume_id=source_volume_id)


def publish_request(volume_id: str, node_id: str, readonly: bool = False) -> csi_pb2.ControllerPublishVolumeRequest:
    return csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume_id, node_id=node_id, volume_capability=mount_capability(), readonly=readonly
    )


def unknown_volume_id() -> str:
    """A well-formed volume id that no test created (the sanity suite's generated ids look the same)."""
    return f"fake-vol-id-{secrets.token_hex(5)}"


def unknown_node_id() -> str:
    return f"fake-node-id-{secrets.token_hex(5)}"


def max_length_name(unique_name: UniqueName, prefix: str) -> str:
    """A unique name padded to exactly ``MAX_NAME_LENGTH`` characters."""
    return unique_name(prefix).ljust(MAX_NAME_LENGTH, "x")


def assert_snapshot_info(snapshot: csi_pb2.Snapshot) -> None:
    assert snapshot.snapshot_id, "snapshot without an id"
    assert snapshot.source_volume_id, f"snapshot {snapshot.snapshot_id} without a source volume id"
    assert snapshot.HasField("creation_time"), f"snapshot {snapshot.snapshot_id} without a creation time"
    assert snapshot.creation_time.seconds > 0 or snapshot.creation_time.nanos > 0, "zero creation time"


def list_volume_ids(target: SanityTarget, max_entries: int = 0) -> list[str]:
    """Every volume id ListVolumes reports, following next_token across pages."""
    ids: list[str] = []
    token = ""
    while True:
        response: csi_pb2.ListVolumesResponse = target.controller.ListVolumes(
            csi_pb2.ListVolumesRequest(max_entries=max_entries, starting_token=token), timeout=RPC_TIMEOUT
        )
        for entry in response.entries:
            assert entry.volume.volume_id, f"ListVolumes entry without a volume id: {entry}"
            ids.append(entry.volume.volume_id)
        token = response.next_token
        if not token:
            return ids


def list_snapshots(target: SanityTarget, request: csi_pb2.ListSnapshotsRequest) -> list[csi_pb2.Snapshot]:
    """Every snapshot matching ``request``'s filters, following next_token across pages."""
    snapshots: list[csi_pb2.Snapshot] = []
    page = csi_pb2.ListSnapshotsRequest()
    page.CopyFrom(request)
    while True:
        response: csi_pb2.ListSnapshotsResponse = target.controller.ListSnapshots(page, timeout=RPC_TIMEOUT)
        snapshots.extend(entry.snapshot for entry in response.entries)
        if not response.next_token:
            return snapshots
        page.starting_token = response.next_token


class CleanupError(AssertionError):
    """Resources a test created could not be released; the message lists each failure."""


class Resources:
    """Creates volumes, snapshots and publications through the controller and remembers them, so that
    ``cleanup()`` (run on leaving the ``with`` block) releases them all: publications first, then snapshots,
    then volumes, each group newest first. A resource the test itself deleted is forgotten.

    Every method raises the call's ``grpc.RpcError`` unchanged, so a test can hand it to ``expect_code``.
    """

    def __init__(self, target: SanityTarget) -> None:
        self.target = target
        # dicts keep insertion order and make repeated (idempotent) creations count once
        self._volumes: dict[str, None] = {}
        self._snapshots: dict[str, None] = {}
        self._publications: dict[tuple[str, str], None] = {}

    def __enter__(self) -> Resources:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            self.cleanup()
        except CleanupError as cleanup_error:
            if error is None:
                raise
            # the test's own failure is the one to report; the leak rides along on it
            error.add_note(str(cleanup_error))

    def create_volume(self, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.Volume:
        response: csi_pb2.CreateVolumeResponse = self.target.controller.CreateVolume(request, timeout=RPC_TIMEOUT)
        volume = response.volume
        assert volume.volume_id, f"CreateVolume({request.name}) answered without a volume id"
        self._volumes[volume.volume_id] = None
        return volume

    def delete_volume(self, volume_id: str) -> None:
        self.target.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id), timeout=RPC_TIMEOUT)
        self._volumes.pop(volume_id, None)

    def create_snapshot(self, request: csi_pb2.CreateSnapshotRequest) -> csi_pb2.Snapshot:
        response: csi_pb2.CreateSnapshotResponse = self.target.controller.CreateSnapshot(request, timeout=RPC_TIMEOUT)
        snapshot = response.snapshot
        assert snapshot.snapshot_id, f"CreateSnapshot({request.name}) answered without a snapshot id"
        self._snapshots[snapshot.snapshot_id] = None
        assert_snapshot_info(snapshot)
        return snapshot

    def create_ready_snapshot(self, request: csi_pb2.CreateSnapshotRequest) -> csi_pb2.Snapshot:
        """Repeat the (idempotent) CreateSnapshot until the snapshot is ready to use, within a deadline."""
        deadline = time.monotonic() + SNAPSHOT_READY_TIMEOUT
        snapshot = self.create_snapshot(request)
        while not snapshot.ready_to_use:
            assert time.monotonic() < deadline, f"snapshot {snapshot.snapshot_id} not ready after the deadline"
            time.sleep(0.1)
            snapshot = self.create_snapshot(request)
        return snapshot

    def create_snapshot_of_new_volume(self, volume_name: str, snapshot_name: str) -> csi_pb2.Snapshot:
        """A fresh test-size volume and a snapshot of it (csi-sanity's MustCreateSnapshotFromVolumeRequest)."""
        volume = self.create_volume(sized_volume_request(self.target, volume_name))
        return self.create_snapshot(snapshot_request(snapshot_name, volume.volume_id))

    def delete_snapshot(self, snapshot_id: str) -> None:
        self.target.controller.DeleteSnapshot(
            csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot_id), timeout=RPC_TIMEOUT
        )
        self._snapshots.pop(snapshot_id, None)

    def publish(self, request: csi_pb2.ControllerPublishVolumeRequest) -> csi_pb2.ControllerPublishVolumeResponse:
        response: csi_pb2.ControllerPublishVolumeResponse = self.target.controller.ControllerPublishVolume(
            request, timeout=RPC_TIMEOUT
        )
        self._publications[(request.volume_id, request.node_id)] = None
        return response

    def unpublish(self, volume_id: str, node_id: str) -> None:
        self.target.controller.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume_id, node_id=node_id), timeout=RPC_TIMEOUT
        )
        self._publications.pop((volume_id, node_id), None)

    def cleanup(self) -> None:
        """Release everything still recorded; try all of it, then raise ``CleanupError`` listing what failed."""
        failures: list[str] = []
        for volume_id, node_id in reversed(list(self._publications)):
            _attempt(failures, f"unpublish {volume_id} from {node_id}", self.unpublish, volume_id, node_id)
        for snapshot_id in reversed(list(self._snapshots)):
            _attempt(failures, f"delete snapshot {snapshot_id}", self.delete_snapshot, snapshot_id)
        for volume_id in reversed(list(self._volumes)):
            _attempt(failures, f"delete volume {volume_id}", self.delete_volume, volume_id)
        if failures:
            raise CleanupError("cleanup failed: " + "; ".join(failures))


def _attempt(failures: list[str], what: str, action: Callable[..., None], *args: str) -> None:
    try:
        action(*args)
    except grpc.RpcError as error:
        failures.append(f"{what}: {error.code().name} {error.details()}")


@pytest.fixture(name="resources")
def resources_fixture(csi: SanityTarget) -> Iterator[Resources]:
    """A ``Resources`` bound to the test's target, cleaned up at teardown (a leak fails the test there)."""
    with Resources(csi) as resources:
        yield resources
