"""csi-sanity Controller cases (volumes, snapshots, expansion, modification), reproduced against the running
plugin. Publish/unpublish cases live in test_sanity_controller_publish.py.

Cases for an RPC the controller does not advertise are skipped, as csi-sanity skips them.
"""

from __future__ import annotations

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from tests.conformance.sanity_helpers import (
    EXPAND_INCREMENT,
    RPC_TIMEOUT,
    GiB,
    MiB,
    Resources,
    Rpc,
    SanityTarget,
    UniqueName,
    assert_snapshot_info,
    controller_capabilities,
    expect_code,
    list_snapshots,
    list_volume_ids,
    max_length_name,
    mount_capability,
    require_capability,
    resources_fixture,  # noqa: F401 (importing registers the fixture)
    sized_volume_request,
    snapshot_request,
    unknown_volume_id,
    volume_request,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS

# The capabilities csi-sanity (v5) knows. GET_SNAPSHOT is newer than the suite, which would fail a driver
# advertising it, so it is deliberately absent here too.
SANITY_KNOWN_CAPABILITIES = frozenset(
    {
        Rpc.CREATE_DELETE_VOLUME,
        Rpc.PUBLISH_UNPUBLISH_VOLUME,
        Rpc.LIST_VOLUMES,
        Rpc.GET_CAPACITY,
        Rpc.CREATE_DELETE_SNAPSHOT,
        Rpc.LIST_SNAPSHOTS,
        Rpc.PUBLISH_READONLY,
        Rpc.CLONE_VOLUME,
        Rpc.EXPAND_VOLUME,
        Rpc.MODIFY_VOLUME,
        Rpc.LIST_VOLUMES_PUBLISHED_NODES,
        Rpc.GET_VOLUME,
        Rpc.VOLUME_CONDITION,
        Rpc.SINGLE_NODE_MULTI_WRITER,
    }
)
# csi-sanity's default mutable parameters (its config value, empty unless a run sets it) and the key it uses
# to check that unknown mutable parameters are refused.
TEST_MUTABLE_PARAMETERS: dict[str, str] = {}
UNKNOWN_MUTABLE_PARAMETERS = {"XXX_FakeKey": "XXX_FakeValue"}


def _validate(
    csi: SanityTarget, volume_id: str, *capabilities: csi_pb2.VolumeCapability
) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
    response: csi_pb2.ValidateVolumeCapabilitiesResponse = csi.controller.ValidateVolumeCapabilities(
        csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id=volume_id, volume_capabilities=capabilities),
        timeout=RPC_TIMEOUT,
    )
    return response


def _expand(csi: SanityTarget, volume_id: str, required_bytes: int | None) -> csi_pb2.ControllerExpandVolumeResponse:
    request = csi_pb2.ControllerExpandVolumeRequest(volume_id=volume_id, volume_capability=mount_capability())
    if required_bytes is not None:
        request.capacity_range.required_bytes = required_bytes
    response: csi_pb2.ControllerExpandVolumeResponse = csi.controller.ControllerExpandVolume(
        request, timeout=RPC_TIMEOUT
    )
    return response


def _modify(csi: SanityTarget, volume_id: str, mutable_parameters: dict[str, str]) -> object:
    return csi.controller.ControllerModifyVolume(
        csi_pb2.ControllerModifyVolumeRequest(volume_id=volume_id, mutable_parameters=mutable_parameters),
        timeout=RPC_TIMEOUT,
    )


# --- ControllerGetCapabilities -------------------------------------------------------------------------------


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerGetCapabilities should return appropriate capabilities"
)
def test_controller_capabilities_are_all_known_to_sanity(csi: SanityTarget) -> None:
    response: csi_pb2.ControllerGetCapabilitiesResponse = csi.controller.ControllerGetCapabilities(
        csi_pb2.ControllerGetCapabilitiesRequest(), timeout=RPC_TIMEOUT
    )
    for capability in response.capabilities:
        assert capability.HasField("rpc"), f"capability without an rpc: {capability}"
        assert capability.rpc.type in SANITY_KNOWN_CAPABILITIES, f"unknown capability: {capability}"


# --- GetCapacity ---------------------------------------------------------------------------------------------


@pytest.mark.conformance(
    "Controller Service [Controller Server] GetCapacity should return capacity (no optional values added)"
)
def test_get_capacity_without_arguments_succeeds(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.GET_CAPACITY)
    response: csi_pb2.GetCapacityResponse = csi.controller.GetCapacity(
        csi_pb2.GetCapacityRequest(), timeout=RPC_TIMEOUT
    )
    assert response.available_capacity >= 0


# --- ListVolumes ---------------------------------------------------------------------------------------------


@pytest.mark.conformance(
    "Controller Service [Controller Server] ListVolumes should return appropriate values (no optional values added)"
)
def test_list_volumes_entries_carry_volume_ids(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.LIST_VOLUMES)
    list_volume_ids(csi)  # asserts an id on every entry of every page


@pytest.mark.conformance(
    "Controller Service [Controller Server] ListVolumes should fail when an invalid starting_token is passed"
)
def test_list_volumes_with_invalid_token_is_aborted(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.LIST_VOLUMES)
    expect_code(
        lambda: csi.controller.ListVolumes(
            csi_pb2.ListVolumesRequest(starting_token="invalid-token"), timeout=RPC_TIMEOUT
        ),
        grpc.StatusCode.ABORTED,
    )


@pytest.mark.conformance(
    "Controller Service [Controller Server] ListVolumes check the presence of new volumes and absence of deleted ones in the volume list"  # noqa: E501
)
def test_list_volumes_shows_created_and_hides_deleted_volume(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.LIST_VOLUMES)
    before = list_volume_ids(csi)
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-list")))

    with_volume = list_volume_ids(csi)
    assert volume.volume_id in with_volume
    assert len(with_volume) == len(before) + 1

    resources.delete_volume(volume.volume_id)
    after = list_volume_ids(csi)
    assert volume.volume_id not in after
    assert len(after) == len(before)


@pytest.mark.conformance(
    "Controller Service [Controller Server] ListVolumes pagination should detect volumes added between pages and accept tokens when the last volume from a page is deleted"  # noqa: E501
)
def test_list_volumes_token_survives_deleting_the_page_and_adding_a_volume(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    # csi-sanity keeps this case pending (it is fragile for drivers whose tokens are list offsets); here the
    # volume set is under the test's control, so it runs.
    require_capability(csi, Rpc.LIST_VOLUMES)
    page_size = 2
    existing = set(list_volume_ids(csi))
    while len(existing) < page_size + 1:
        existing.add(resources.create_volume(volume_request(csi, unique_name("sanity-page"))).volume_id)
    total = len(existing)

    first: csi_pb2.ListVolumesResponse = csi.controller.ListVolumes(
        csi_pb2.ListVolumesRequest(max_entries=page_size), timeout=RPC_TIMEOUT
    )
    assert len(first.entries) == page_size
    assert first.next_token, "a partial page must come with a next_token"
    for entry in first.entries:
        assert entry.volume.volume_id in existing, f"listed a volume that does not exist: {entry.volume}"
        resources.delete_volume(entry.volume.volume_id)
        existing.discard(entry.volume.volume_id)
    existing.add(resources.create_volume(volume_request(csi, unique_name("sanity-page-new"))).volume_id)

    rest: csi_pb2.ListVolumesResponse = csi.controller.ListVolumes(
        csi_pb2.ListVolumesRequest(starting_token=first.next_token), timeout=RPC_TIMEOUT
    )
    ids = [entry.volume.volume_id for entry in rest.entries]
    # Missing volumes are tolerated (the spec allows it across changes); duplicates and ghosts are not.
    assert len(ids) <= total - page_size + 1
    assert len(set(ids)) == len(ids), f"duplicate entries: {ids}"
    assert set(ids) <= existing, f"listed volumes that do not exist: {set(ids) - existing}"


# --- CreateVolume --------------------------------------------------------------------------------------------


@pytest.mark.conformance("Controller Service [Controller Server] CreateVolume should fail when no name is provided")
def test_create_volume_without_name_is_invalid_argument(csi: SanityTarget, resources: Resources) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    expect_code(lambda: resources.create_volume(volume_request(csi, "")), INVALID)


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should fail when no volume capabilities are provided"
)
def test_create_volume_without_capabilities_is_invalid_argument(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    request = volume_request(csi, unique_name("sanity-no-caps"))
    del request.volume_capabilities[:]
    expect_code(lambda: resources.create_volume(request), INVALID)


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should return appropriate values SingleNodeWriter NoCapacity"
)
def test_create_volume_without_capacity_gets_at_least_the_minimum_size(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-no-capacity")))
    # The driver's minimum is 1 GiB, so a volume of unspecified size still reports at least that.
    assert volume.capacity_bytes >= GiB


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should return appropriate values SingleNodeWriter WithCapacity 1Gi"  # noqa: E501
)
def test_create_volume_with_capacity_gets_at_least_the_request_in_whole_mib(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    size = csi.test_volume_size
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-capacity"), required_bytes=size))
    assert volume.capacity_bytes >= size
    assert volume.capacity_bytes % MiB == 0


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should not fail when requesting to create a volume with already existing name and same capacity"  # noqa: E501
)
def test_create_volume_twice_with_same_name_and_size_returns_the_same_volume(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    size = csi.test_volume_size
    request = volume_request(csi, unique_name("sanity-twice"), required_bytes=size)
    first = resources.create_volume(request)
    second = resources.create_volume(request)
    assert second.volume_id == first.volume_id
    assert first.capacity_bytes >= size
    assert second.capacity_bytes >= size


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should fail when requesting to create a volume with already existing name and different capacity"  # noqa: E501
)
def test_create_volume_with_existing_name_and_other_size_is_already_exists(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    name = unique_name("sanity-twice-different")
    resources.create_volume(sized_volume_request(csi, name))
    double = 2 * csi.test_volume_size
    expect_code(
        lambda: resources.create_volume(volume_request(csi, name, required_bytes=double, limit_bytes=double)),
        ALREADY_EXISTS,
    )


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should not fail when creating volume with maximum-length name"
)
def test_create_volume_with_maximum_length_name_succeeds(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    size = csi.test_volume_size
    volume = resources.create_volume(
        volume_request(csi, max_length_name(unique_name, "sanity-maxlen"), required_bytes=size)
    )
    assert volume.capacity_bytes >= size


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should create volume from an existing source snapshot"
)
def test_create_volume_from_snapshot_reports_the_snapshot_as_source(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    source = resources.create_volume(sized_volume_request(csi, unique_name("sanity-source-vol")))
    snapshot = resources.create_ready_snapshot(snapshot_request(unique_name("sanity-snap"), source.volume_id))

    request = sized_volume_request(csi, unique_name("sanity-from-snap"))
    request.volume_content_source.snapshot.snapshot_id = snapshot.snapshot_id
    volume = resources.create_volume(request)
    assert volume.content_source.snapshot.snapshot_id == snapshot.snapshot_id


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should fail when the volume source snapshot is not found"
)
def test_create_volume_from_unknown_snapshot_is_not_found(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    request = sized_volume_request(csi, unique_name("sanity-from-missing-snap"))
    request.volume_content_source.snapshot.snapshot_id = "non-existing-snapshot-id"
    expect_code(lambda: resources.create_volume(request), NOT_FOUND)


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should create volume from an existing source volume"
)
def test_create_volume_from_volume_reports_the_volume_as_source(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CLONE_VOLUME)
    source = resources.create_volume(sized_volume_request(csi, unique_name("sanity-source-vol")))

    request = sized_volume_request(csi, unique_name("sanity-from-vol"))
    request.volume_content_source.volume.volume_id = source.volume_id
    volume = resources.create_volume(request)
    # external-provisioner rejects a clone whose response drops the content source, so this is required here.
    assert volume.content_source.volume.volume_id == source.volume_id


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should fail when the volume source volume is not found"
)
def test_create_volume_from_unknown_volume_is_not_found(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CLONE_VOLUME)
    request = sized_volume_request(csi, unique_name("sanity-from-missing-vol"))
    request.volume_content_source.volume.volume_id = unknown_volume_id()
    expect_code(lambda: resources.create_volume(request), NOT_FOUND)


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should create volume with a volume attribute class"
)
def test_create_volume_with_mutable_parameters_succeeds(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.MODIFY_VOLUME)
    request = sized_volume_request(csi, unique_name("sanity-mutable"))
    request.mutable_parameters.update(TEST_MUTABLE_PARAMETERS)
    assert resources.create_volume(request).volume_id


@pytest.mark.conformance(
    "Controller Service [Controller Server] CreateVolume should not create volume with an invalid volume attribute class"  # noqa: E501
)
def test_create_volume_with_unknown_mutable_parameter_is_invalid_argument(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.MODIFY_VOLUME)
    request = sized_volume_request(csi, unique_name("sanity-mutable-bad"))
    request.mutable_parameters.update(UNKNOWN_MUTABLE_PARAMETERS)
    expect_code(lambda: resources.create_volume(request), INVALID)


# --- DeleteVolume --------------------------------------------------------------------------------------------


@pytest.mark.conformance(
    "Controller Service [Controller Server] DeleteVolume should fail when no volume id is provided"
)
def test_delete_volume_without_id_is_invalid_argument(csi: SanityTarget, resources: Resources) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    expect_code(lambda: resources.delete_volume(""), INVALID)


@pytest.mark.conformance(
    "Controller Service [Controller Server] DeleteVolume should succeed when an invalid volume id is used"
)
def test_delete_volume_with_unknown_id_succeeds(csi: SanityTarget, resources: Resources) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    resources.delete_volume("fake-vol-id")


@pytest.mark.conformance(
    "Controller Service [Controller Server] DeleteVolume should return appropriate values (no optional values added)"
)
def test_delete_volume_removes_the_volume(csi: SanityTarget, resources: Resources, unique_name: UniqueName) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_VOLUME)
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-delete"), csi.test_volume_size))
    resources.delete_volume(volume.volume_id)
    expect_code(lambda: _validate(csi, volume.volume_id, mount_capability()), NOT_FOUND)


# --- ValidateVolumeCapabilities ------------------------------------------------------------------------------


@pytest.mark.conformance(
    "Controller Service [Controller Server] ValidateVolumeCapabilities should fail when no volume id is provided"
)
def test_validate_capabilities_without_volume_id_is_invalid_argument(csi: SanityTarget) -> None:
    expect_code(lambda: _validate(csi, "", mount_capability()), INVALID)


@pytest.mark.conformance(
    "Controller Service [Controller Server] ValidateVolumeCapabilities should fail when no volume capabilities are provided"  # noqa: E501
)
def test_validate_capabilities_without_capabilities_is_invalid_argument(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-validate-nocaps"), csi.test_volume_size))
    expect_code(lambda: _validate(csi, volume.volume_id), INVALID)


@pytest.mark.conformance(
    "Controller Service [Controller Server] ValidateVolumeCapabilities should return appropriate values (no optional values added)"  # noqa: E501
)
def test_validate_capabilities_confirms_single_node_writer_mount(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-validate"), csi.test_volume_size))
    response = _validate(csi, volume.volume_id, mount_capability())
    # The spec lets a driver decline without an error; this driver supports the pair, so it must confirm it.
    assert response.HasField("confirmed"), f"not confirmed: {response.message}"
    assert list(response.confirmed.volume_capabilities) == [mount_capability()]


@pytest.mark.conformance(
    "Controller Service [Controller Server] ValidateVolumeCapabilities should fail when the requested volume does not exist"  # noqa: E501
)
def test_validate_capabilities_of_unknown_volume_is_not_found(csi: SanityTarget) -> None:
    expect_code(lambda: _validate(csi, unknown_volume_id(), mount_capability()), NOT_FOUND)


# --- ListSnapshots [Controller Server] -----------------------------------------------------------------------


@pytest.mark.conformance(
    "ListSnapshots [Controller Server] should return appropriate values (no optional values added)"
)
def test_list_snapshots_entries_carry_snapshot_info(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.LIST_SNAPSHOTS)
    for snapshot in list_snapshots(csi, csi_pb2.ListSnapshotsRequest()):
        assert_snapshot_info(snapshot)


def _three_snapshots(resources: Resources, unique_name: UniqueName, tag: str) -> csi_pb2.Snapshot:
    """Two unrelated snapshots around a target one (each of its own volume); returns the target."""
    resources.create_snapshot_of_new_volume(unique_name(f"{tag}-vol-a"), unique_name(f"{tag}-snap-a"))
    target = resources.create_snapshot_of_new_volume(unique_name(f"{tag}-vol-t"), unique_name(f"{tag}-snap-t"))
    resources.create_snapshot_of_new_volume(unique_name(f"{tag}-vol-b"), unique_name(f"{tag}-snap-b"))
    return target


@pytest.mark.conformance(
    "ListSnapshots [Controller Server] should return snapshots that match the specified snapshot id"
)
def test_list_snapshots_by_snapshot_id_returns_only_that_snapshot(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.LIST_SNAPSHOTS)
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    target = _three_snapshots(resources, unique_name, "sanity-list-by-id")

    found = list_snapshots(csi, csi_pb2.ListSnapshotsRequest(snapshot_id=target.snapshot_id))
    assert [snapshot.snapshot_id for snapshot in found] == [target.snapshot_id]
    assert_snapshot_info(found[0])


@pytest.mark.conformance(
    "ListSnapshots [Controller Server] should return empty when the specified snapshot id does not exist"
)
def test_list_snapshots_by_unknown_snapshot_id_is_empty(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.LIST_SNAPSHOTS)
    assert list_snapshots(csi, csi_pb2.ListSnapshotsRequest(snapshot_id="none-exist-id")) == []


@pytest.mark.conformance(
    "ListSnapshots [Controller Server] should return snapshots that match the specified source volume id"
)
def test_list_snapshots_by_source_volume_returns_only_its_snapshot(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.LIST_SNAPSHOTS)
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    target = _three_snapshots(resources, unique_name, "sanity-list-by-src")

    found = list_snapshots(csi, csi_pb2.ListSnapshotsRequest(source_volume_id=target.source_volume_id))
    assert [snapshot.snapshot_id for snapshot in found] == [target.snapshot_id]
    assert found[0].source_volume_id == target.source_volume_id
    assert_snapshot_info(found[0])


@pytest.mark.conformance(
    "ListSnapshots [Controller Server] should return empty when the specified source volume id does not exist"
)
def test_list_snapshots_by_unknown_source_volume_is_empty(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.LIST_SNAPSHOTS)
    assert list_snapshots(csi, csi_pb2.ListSnapshotsRequest(source_volume_id=unknown_volume_id())) == []


@pytest.mark.conformance("ListSnapshots [Controller Server] check the presence of new snapshots in the snapshot list")
def test_list_snapshots_shows_created_and_hides_deleted_snapshot(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.LIST_SNAPSHOTS)
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    everything = csi_pb2.ListSnapshotsRequest()
    before = len(list_snapshots(csi, everything))
    snapshot = resources.create_snapshot_of_new_volume(unique_name("sanity-list-vol"), unique_name("sanity-list-snap"))

    listed = [entry.snapshot_id for entry in list_snapshots(csi, everything)]
    assert snapshot.snapshot_id in listed
    assert len(listed) == before + 1

    resources.delete_snapshot(snapshot.snapshot_id)
    listed = [entry.snapshot_id for entry in list_snapshots(csi, everything)]
    assert snapshot.snapshot_id not in listed
    assert len(listed) == before


@pytest.mark.conformance(
    "ListSnapshots [Controller Server] should return next token when a limited number of entries are requested"
)
def test_list_snapshots_with_max_entries_pages_through_all_snapshots(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.LIST_SNAPSHOTS)
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    minimum, page_size = 5, 2
    total = len(list_snapshots(csi, csi_pb2.ListSnapshotsRequest()))
    while total < minimum:
        resources.create_snapshot_of_new_volume(unique_name("sanity-page-vol"), unique_name("sanity-page-snap"))
        total += 1

    first: csi_pb2.ListSnapshotsResponse = csi.controller.ListSnapshots(
        csi_pb2.ListSnapshotsRequest(max_entries=page_size), timeout=RPC_TIMEOUT
    )
    assert len(first.entries) == page_size
    assert first.next_token, "a partial page must come with a next_token"

    rest: csi_pb2.ListSnapshotsResponse = csi.controller.ListSnapshots(
        csi_pb2.ListSnapshotsRequest(starting_token=first.next_token), timeout=RPC_TIMEOUT
    )
    assert len(rest.entries) == total - page_size
    first_ids = {entry.snapshot.snapshot_id for entry in first.entries}
    assert first_ids.isdisjoint(entry.snapshot.snapshot_id for entry in rest.entries)


# --- DeleteSnapshot [Controller Server] ----------------------------------------------------------------------


@pytest.mark.conformance("DeleteSnapshot [Controller Server] should fail when no snapshot id is provided")
def test_delete_snapshot_without_id_is_invalid_argument(csi: SanityTarget, resources: Resources) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    expect_code(lambda: resources.delete_snapshot(""), INVALID)


@pytest.mark.conformance("DeleteSnapshot [Controller Server] should succeed when an invalid snapshot id is used")
def test_delete_snapshot_with_unknown_id_succeeds(csi: SanityTarget, resources: Resources) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    resources.delete_snapshot("reallyfakesnapshotid")


@pytest.mark.conformance(
    "DeleteSnapshot [Controller Server] should return appropriate values (no optional values added)"
)
def test_delete_snapshot_removes_the_snapshot(csi: SanityTarget, resources: Resources, unique_name: UniqueName) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    snapshot = resources.create_snapshot_of_new_volume(unique_name("sanity-del-vol"), unique_name("sanity-del-snap"))
    resources.delete_snapshot(snapshot.snapshot_id)
    if Rpc.LIST_SNAPSHOTS in controller_capabilities(csi):
        assert list_snapshots(csi, csi_pb2.ListSnapshotsRequest(snapshot_id=snapshot.snapshot_id)) == []


# --- CreateSnapshot [Controller Server] ----------------------------------------------------------------------


@pytest.mark.conformance("CreateSnapshot [Controller Server] should fail when no name is provided")
def test_create_snapshot_without_name_is_invalid_argument(csi: SanityTarget, resources: Resources) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    expect_code(lambda: resources.create_snapshot(snapshot_request("", "testId")), INVALID)


@pytest.mark.conformance("CreateSnapshot [Controller Server] should fail when no source volume id is provided")
def test_create_snapshot_without_source_volume_is_invalid_argument(csi: SanityTarget, resources: Resources) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    expect_code(lambda: resources.create_snapshot(snapshot_request("name", "")), INVALID)


@pytest.mark.conformance(
    "CreateSnapshot [Controller Server] should succeed when requesting to create a snapshot with already existing name and same source volume ID"  # noqa: E501
)
def test_create_snapshot_twice_with_same_name_and_source_returns_the_same_snapshot(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    volume = resources.create_volume(sized_volume_request(csi, unique_name("sanity-snap-twice-vol")))
    request = snapshot_request(unique_name("sanity-snap-twice"), volume.volume_id)
    first = resources.create_snapshot(request)
    second = resources.create_snapshot(request)
    assert second.snapshot_id == first.snapshot_id
    assert second.source_volume_id == volume.volume_id


@pytest.mark.conformance(
    "CreateSnapshot [Controller Server] should fail when requesting to create a snapshot with already existing name and different source volume ID"  # noqa: E501
)
def test_create_snapshot_with_existing_name_and_other_source_is_already_exists(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    name = unique_name("sanity-snap-clash")
    resources.create_snapshot_of_new_volume(unique_name("sanity-snap-clash-vol"), name)
    other = resources.create_volume(sized_volume_request(csi, unique_name("sanity-snap-clash-other")))
    expect_code(lambda: resources.create_snapshot(snapshot_request(name, other.volume_id)), ALREADY_EXISTS)


@pytest.mark.conformance(
    "CreateSnapshot [Controller Server] should succeed when creating snapshot with maximum-length name"
)
def test_create_snapshot_with_maximum_length_name_succeeds_twice(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.CREATE_DELETE_SNAPSHOT)
    volume = resources.create_volume(sized_volume_request(csi, unique_name("sanity-snap-maxlen-vol")))
    request = snapshot_request(max_length_name(unique_name, "sanity-snap-maxlen"), volume.volume_id)
    assert resources.create_snapshot(request).snapshot_id == resources.create_snapshot(request).snapshot_id


# --- ExpandVolume [Controller Server] ------------------------------------------------------------------------


@pytest.mark.conformance("ExpandVolume [Controller Server] should fail if no volume id is given")
def test_expand_volume_without_id_is_invalid_argument(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.EXPAND_VOLUME)
    expect_code(lambda: _expand(csi, "", csi.test_volume_size + EXPAND_INCREMENT), INVALID)


@pytest.mark.conformance("ExpandVolume [Controller Server] should fail if no capacity range is given")
def test_expand_volume_without_capacity_range_is_invalid_argument(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.EXPAND_VOLUME)
    # csi-sanity also leaves the id empty here; a real volume makes the missing range the only fault.
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-expand-norange"), csi.test_volume_size))
    expect_code(lambda: _expand(csi, volume.volume_id, None), INVALID)


@pytest.mark.conformance("ExpandVolume [Controller Server] should work")
def test_expand_volume_grows_to_the_requested_size(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.EXPAND_VOLUME)
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-expand"), csi.test_volume_size))
    target_size = csi.test_volume_size + EXPAND_INCREMENT
    assert _expand(csi, volume.volume_id, target_size).capacity_bytes == target_size


# --- ModifyVolume [Controller Server] ------------------------------------------------------------------------


@pytest.mark.conformance("ModifyVolume [Controller Server] should fail if no volume id is given")
def test_modify_volume_without_id_is_invalid_argument(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.MODIFY_VOLUME)
    expect_code(lambda: _modify(csi, "", TEST_MUTABLE_PARAMETERS), INVALID)


@pytest.mark.conformance("ModifyVolume [Controller Server] should fail if volume does not exist")
def test_modify_unknown_volume_is_not_found(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.MODIFY_VOLUME)
    expect_code(lambda: _modify(csi, "non-existing-volume-id", TEST_MUTABLE_PARAMETERS), NOT_FOUND)


def _volume_for_modification(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName, mutable_parameters: dict[str, str] | None
) -> str:
    request = sized_volume_request(csi, unique_name("sanity-modify"))
    if mutable_parameters is not None:
        request.mutable_parameters.update(mutable_parameters)
    return resources.create_volume(request).volume_id


@pytest.mark.conformance(
    "ModifyVolume [Controller Server] should fail if specified mutable parameters are not supported by the volume"
)
def test_modify_volume_with_unknown_mutable_parameter_is_invalid_argument(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.MODIFY_VOLUME)
    volume_id = _volume_for_modification(csi, resources, unique_name, None)
    expect_code(lambda: _modify(csi, volume_id, UNKNOWN_MUTABLE_PARAMETERS), INVALID)


@pytest.mark.conformance(
    "ModifyVolume [Controller Server] should modify a volume created without a volume attribute class"
)
def test_modify_volume_created_without_mutable_parameters_succeeds(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.MODIFY_VOLUME)
    volume_id = _volume_for_modification(csi, resources, unique_name, None)
    _modify(csi, volume_id, TEST_MUTABLE_PARAMETERS)


@pytest.mark.conformance(
    "ModifyVolume [Controller Server] should modify a volume created with a volume attribute class"
)
def test_modify_volume_created_with_mutable_parameters_succeeds(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.MODIFY_VOLUME)
    volume_id = _volume_for_modification(csi, resources, unique_name, TEST_MUTABLE_PARAMETERS)
    _modify(csi, volume_id, TEST_MUTABLE_PARAMETERS)


@pytest.mark.conformance(
    "ModifyVolume [Controller Server] should fail to modify a volume created with a volume attribute class if new mutable parameters are not supported by volume"  # noqa: E501
)
def test_modify_volume_created_with_mutable_parameters_rejects_an_unknown_one(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.MODIFY_VOLUME)
    volume_id = _volume_for_modification(csi, resources, unique_name, TEST_MUTABLE_PARAMETERS)
    expect_code(lambda: _modify(csi, volume_id, UNKNOWN_MUTABLE_PARAMETERS), INVALID)
