"""Events find the PVC the provisioner named (``--extra-create-metadata``), even before the PV has a claimRef."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi.csi.proto import csi_pb2
from tests.integration.attach.test_attachments_kube import Cluster, block_cap, running_cluster
from tests.support import wait_until

Mode = csi_pb2.VolumeCapability.AccessMode.Mode


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster(("node-a",)) as cluster:
        yield cluster


@pytest.fixture
def named_volume(cluster: Cluster) -> Iterator[csi_pb2.Volume]:
    volume: csi_pb2.Volume = cluster.ctl.controller.CreateVolume(
        csi_pb2.CreateVolumeRequest(
            name="pvc-named",
            volume_capabilities=[block_cap(Mode.SINGLE_NODE_WRITER)],
            parameters={"csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pvc/namespace": "apps"},
        ),
        timeout=30,
    ).volume
    cluster.kube.add_pv("pvc-named", driver=DEFAULT_DRIVER_NAME)  # no claimRef (yet)
    yield volume


def test_events_go_to_the_claim_named_at_create_time(cluster: Cluster, named_volume: csi_pb2.Volume) -> None:
    cluster.attach(named_volume, "node-a", block_rwx=False)
    assert wait_until(
        lambda: any(
            e["reason"] == "VolumeAttached" and e["involvedObject"]["name"] == "data" for e in cluster.kube.events()
        )
    )
    event = next(e for e in cluster.kube.events() if e["reason"] == "VolumeAttached")
    assert event["involvedObject"]["namespace"] == "apps"
