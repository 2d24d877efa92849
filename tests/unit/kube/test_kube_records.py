"""Conversion of Kubernetes objects into records, VolumeAttachment naming, settings and message truncation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes import client

from rds_csi.core.errors import Internal, InvalidArgument
from rds_csi.kube import KubeSettings, volume_attachment_name
from rds_csi.kube.api import (
    EVENT_MESSAGE_LIMIT,
    csi_node_volume_limit,
    pv_info,
    truncate_message,
    volume_attachment_record,
)

CREATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _va(
    *,
    pv: str | None = "pvc-1",
    inline_handle: str | None = None,
    status: client.V1VolumeAttachmentStatus | None = None,
    deleted: datetime | None = None,
) -> client.V1VolumeAttachment:
    inline = None
    if inline_handle is not None:
        inline = client.V1PersistentVolumeSpec(
            csi=client.V1CSIPersistentVolumeSource(driver="d", volume_handle=inline_handle)
        )
    return client.V1VolumeAttachment(
        metadata=client.V1ObjectMeta(name="csi-abc", creation_timestamp=CREATED, deletion_timestamp=deleted),
        spec=client.V1VolumeAttachmentSpec(
            attacher="rds.csi.srvlab.io",
            node_name="worker-1",
            source=client.V1VolumeAttachmentSource(persistent_volume_name=pv, inline_volume_spec=inline),
        ),
        status=status,
    )


def test_volume_attachment_name_is_csi_prefixed_sha256_of_volume_driver_node() -> None:
    # Pinned value: Kubernetes finds attachments by this name, so the rule must never drift.
    name = volume_attachment_name("pvc-1f2e", "rds.csi.srvlab.io", "worker-1")
    assert name == "csi-b042122332668aa38c0809459e1fe71fcea48f7994dcbad237c78cf0e0a1ec79"


@pytest.mark.parametrize(
    ("volume", "attacher", "node"),
    [("pvc-2", "rds.csi.srvlab.io", "worker-1"), ("pvc-1", "other.driver", "worker-1"), ("pvc-1", "d", "worker-2")],
)
def test_volume_attachment_name_differs_when_any_part_differs(volume: str, attacher: str, node: str) -> None:
    assert volume_attachment_name(volume, attacher, node) != volume_attachment_name("pvc-1", "d", "worker-1")


def test_record_from_attached_volume_attachment_has_every_field() -> None:
    record = volume_attachment_record(_va(status=client.V1VolumeAttachmentStatus(attached=True)))
    assert record.name == "csi-abc"
    assert record.volume_id == "pvc-1"
    assert record.node_id == "worker-1"
    assert record.attached is True
    assert record.created_at == CREATED
    assert record.deleting is False
    assert record.attacher == "rds.csi.srvlab.io"


def test_record_without_status_is_not_attached() -> None:
    assert volume_attachment_record(_va(status=None)).attached is False


def test_record_with_deletion_timestamp_is_deleting() -> None:
    assert volume_attachment_record(_va(deleted=CREATED)).deleting is True


def test_record_of_inline_volume_uses_its_volume_handle() -> None:
    assert volume_attachment_record(_va(pv=None, inline_handle="vol-7")).volume_id == "vol-7"


def test_record_naming_no_volume_is_internal() -> None:
    with pytest.raises(Internal, match="names no persistent volume"):
        volume_attachment_record(_va(pv=None))


def test_pv_info_reads_claim_driver_handle_and_annotations() -> None:
    pv = client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name="pvc-1", annotations={"a": "b"}),
        spec=client.V1PersistentVolumeSpec(
            claim_ref=client.V1ObjectReference(namespace="apps", name="data", uid="u-1"),
            csi=client.V1CSIPersistentVolumeSource(driver="rds.csi.srvlab.io", volume_handle="pvc-1"),
        ),
    )
    info = pv_info(pv)
    assert (info.name, info.claim_namespace, info.claim_name, info.claim_uid) == ("pvc-1", "apps", "data", "u-1")
    assert (info.driver, info.volume_handle, dict(info.annotations)) == ("rds.csi.srvlab.io", "pvc-1", {"a": "b"})


def test_pv_info_of_unbound_non_csi_volume_has_no_claim_and_no_driver() -> None:
    info = pv_info(client.V1PersistentVolume(metadata=client.V1ObjectMeta(name="nfs-1")))
    assert (info.claim_namespace, info.claim_name, info.driver, info.volume_handle) == (None, None, None, None)


def test_truncate_message_keeps_short_messages() -> None:
    assert truncate_message("x" * EVENT_MESSAGE_LIMIT) == "x" * EVENT_MESSAGE_LIMIT


def test_truncate_message_cuts_long_messages_to_the_limit_with_an_ellipsis() -> None:
    cut = truncate_message("x" * 5000)
    assert len(cut) == EVENT_MESSAGE_LIMIT
    assert cut.endswith("...")


def test_settings_with_non_positive_timeout_are_invalid() -> None:
    with pytest.raises(InvalidArgument, match="timeout"):
        KubeSettings(base_url="http://127.0.0.1:1", request_timeout=0)


def _csi_node(drivers: object) -> dict[str, object]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSINode",
        "metadata": {"name": "n"},
        "spec": {"drivers": drivers},
    }


@pytest.mark.parametrize(
    ("drivers", "limit"),
    [
        ([{"name": "other", "nodeID": "n", "allocatable": {"count": 9}}, {"name": "ours", "nodeID": "n",
          "allocatable": {"count": 2}}], 2),
        ([{"name": "ours", "nodeID": "n", "allocatable": {"count": 0}}], 0),
        ([{"name": "ours", "nodeID": "n", "topologyKeys": None}], None),  # the node plugin reported no limit
        ([{"name": "ours", "nodeID": "n", "allocatable": {}}], None),
        ([{"name": "other", "nodeID": "n", "allocatable": {"count": 9}}], None),  # ours has not registered
        ([], None),
        (None, None),  # a nil list, as the API server serializes it
    ],
)  # fmt: skip
def test_csi_node_volume_limit_reads_our_drivers_allocatable_count(drivers: object, limit: int | None) -> None:
    assert csi_node_volume_limit(_csi_node(drivers), "ours") == limit


@pytest.mark.parametrize("count", [-1, "2", 2.5, True])
def test_csi_node_volume_limit_that_is_not_a_count_is_internal(count: object) -> None:
    with pytest.raises(Internal, match=r"allocatable\.count"):
        csi_node_volume_limit(_csi_node([{"name": "ours", "nodeID": "n", "allocatable": {"count": count}}]), "ours")
