"""csi-sanity ControllerPublishVolume, volume lifecycle and ControllerUnpublishVolume cases, reproduced against
the running plugin. Every case is skipped, as csi-sanity skips it, while the controller does not advertise
PUBLISH_UNPUBLISH_VOLUME.
"""

from __future__ import annotations

import os

import grpc
import pytest

from rds_csi.csi.proto import csi_pb2
from tests.conformance.sanity_helpers import (
    IDEMPOTENT_COUNT,
    RPC_TIMEOUT,
    Resources,
    Rpc,
    SanityTarget,
    UniqueName,
    expect_code,
    publish_request,
    require_capability,
    resources_fixture,  # noqa: F401 (importing registers the fixture)
    sized_volume_request,
    unknown_node_id,
    unknown_volume_id,
    volume_request,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
# csi-sanity runs the attach-limit case only when asked (--csi.testnodevolumeattachlimit); so does this suite.
ATTACH_LIMIT_OPT_IN = "RDS_CSI_SANITY_ATTACH_LIMIT"


@pytest.fixture(autouse=True)
def _publish_supported(csi: SanityTarget) -> None:
    require_capability(csi, Rpc.PUBLISH_UNPUBLISH_VOLUME)


# --- ControllerPublishVolume ---------------------------------------------------------------------------------


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerPublishVolume should fail when no volume id is provided"
)
def test_publish_without_volume_id_is_invalid_argument(resources: Resources, csi: SanityTarget) -> None:
    expect_code(lambda: resources.publish(publish_request("", csi.node_id)), INVALID)


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerPublishVolume should fail when no node id is provided"
)
def test_publish_without_node_id_is_invalid_argument(resources: Resources) -> None:
    expect_code(lambda: resources.publish(publish_request(unknown_volume_id(), "")), INVALID)


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerPublishVolume should fail when no volume capability is provided"
)
def test_publish_without_capability_is_invalid_argument(resources: Resources) -> None:
    request = publish_request(unknown_volume_id(), unknown_node_id())
    request.ClearField("volume_capability")
    expect_code(lambda: resources.publish(request), INVALID)


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerPublishVolume should fail when publishing more volumes than the node max attach limit"  # noqa: E501
)
def test_publish_beyond_the_node_attach_limit_fails(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    if os.environ.get(ATTACH_LIMIT_OPT_IN) != "1":
        pytest.skip(f"attach-limit check not enabled (set {ATTACH_LIMIT_OPT_IN}=1, like csi-sanity's flag)")
    try:
        info: csi_pb2.NodeGetInfoResponse = csi.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=RPC_TIMEOUT)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        pytest.skip("the plugin under test serves no node service, so there is no node attach limit to read")
    if info.max_volumes_per_node <= 0:
        pytest.skip("the node reports no max_volumes_per_node")
    assert info.node_id, "NodeGetInfo without a node id"

    for index in range(info.max_volumes_per_node):
        volume = resources.create_volume(sized_volume_request(csi, unique_name(f"sanity-attach-limit-{index}")))
        resources.publish(publish_request(volume.volume_id, info.node_id))
    extra = resources.create_volume(sized_volume_request(csi, unique_name("sanity-attach-limit-extra")))
    with pytest.raises(grpc.RpcError):
        resources.publish(publish_request(extra.volume_id, info.node_id))


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerPublishVolume should fail when the volume does not exist"
)
def test_publish_of_unknown_volume_is_not_found(resources: Resources) -> None:
    expect_code(lambda: resources.publish(publish_request(unknown_volume_id(), unknown_node_id())), NOT_FOUND)


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerPublishVolume should fail when the node does not exist"
)
def test_publish_to_unknown_node_is_not_found(csi: SanityTarget, resources: Resources, unique_name: UniqueName) -> None:
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-wrong-node")))
    expect_code(lambda: resources.publish(publish_request(volume.volume_id, unknown_node_id())), NOT_FOUND)


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerPublishVolume should fail when the volume is already published but is incompatible"  # noqa: E501
)
def test_republish_with_other_readonly_flag_is_already_exists(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    require_capability(csi, Rpc.PUBLISH_READONLY)
    volume = resources.create_volume(volume_request(csi, unique_name("sanity-published-incompatible")))
    resources.publish(publish_request(volume.volume_id, csi.node_id))
    expect_code(
        lambda: resources.publish(publish_request(volume.volume_id, csi.node_id, readonly=True)),
        grpc.StatusCode.ALREADY_EXISTS,
    )


# --- volume lifecycle ----------------------------------------------------------------------------------------


def _volume_lifecycle(csi: SanityTarget, resources: Resources, name: str, count: int) -> None:
    """Create, publish, unpublish and delete one volume, each step ``count`` times in a row: every repetition
    must succeed and answer as the first did."""
    request = volume_request(csi, name)
    volumes = [resources.create_volume(request) for _ in range(count)]
    assert {volume.volume_id for volume in volumes} == {volumes[0].volume_id}, "CreateVolume is not idempotent"
    volume = volumes[0]

    publish = publish_request(volume.volume_id, csi.node_id)
    publish.volume_context.update(volume.volume_context)
    contexts = [dict(resources.publish(publish).publish_context) for _ in range(count)]
    assert all(context == contexts[0] for context in contexts), f"publish contexts differ: {contexts}"

    for _ in range(count):
        resources.unpublish(volume.volume_id, csi.node_id)
    for _ in range(count):
        resources.delete_volume(volume.volume_id)


@pytest.mark.conformance("Controller Service [Controller Server] volume lifecycle should work")
def test_volume_lifecycle_create_publish_unpublish_delete_works(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    _volume_lifecycle(csi, resources, unique_name("sanity-lifecycle"), 1)


@pytest.mark.conformance("Controller Service [Controller Server] volume lifecycle should be idempotent")
def test_volume_lifecycle_steps_repeated_are_idempotent(
    csi: SanityTarget, resources: Resources, unique_name: UniqueName
) -> None:
    _volume_lifecycle(csi, resources, unique_name("sanity-lifecycle-repeat"), IDEMPOTENT_COUNT)


# --- ControllerUnpublishVolume -------------------------------------------------------------------------------


@pytest.mark.conformance(
    "Controller Service [Controller Server] ControllerUnpublishVolume should fail when no volume id is provided"
)
def test_unpublish_without_volume_id_is_invalid_argument(resources: Resources, csi: SanityTarget) -> None:
    expect_code(lambda: resources.unpublish("", csi.node_id), INVALID)
