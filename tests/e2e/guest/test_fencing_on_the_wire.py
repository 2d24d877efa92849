"""Storage-side fencing on the wire (inside the VM): the node plugin reports its host NQN, the controller fences a
volume to it, and the kernel's NVMe/TCP target admits exactly that host, and nobody once it is unpublished."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rds_csi.nvme import HOST_NQN_ANNOTATION
from tests.e2e.guest import fabrics
from tests.integration.attach.test_attachments_kube import running_cluster
from tests.integration.attach.test_fencing import fenced_volume
from tests.integration.node.harness import NODE_ID, node_annotations, running_node
from tests.support import wait_until

INTRUDER = "nqn.2014-08.org.nvmexpress:uuid:0f6c3d4e-0000-4000-8000-0000000000ff"


def connect(context: dict[str, str], host_nqn: str) -> fabrics.Connection:
    return fabrics.connect(context["nqn"], host_nqn, int(context["nvmePort"]), context["nvmeAddress"])


def test_only_the_published_node_can_connect_to_a_fenced_volume(short_tmp: Path) -> None:
    scratch = Path(os.environ["RDS_CSI_GUEST_SCRATCH"])
    with (
        running_cluster([NODE_ID], nvmet_data_dir=scratch / "fenced") as cluster,
        running_node(short_tmp, cluster.kube.url) as node,
    ):
        assert wait_until(lambda: node_annotations(cluster.kube).get(HOST_NQN_ANNOTATION) == node.host_nqn)
        volume = fenced_volume(cluster, "pvc-fenced-wire", block_rwx=False)
        context = dict(volume.volume_context)
        with pytest.raises(OSError):
            connect(context, node.host_nqn)  # created closed: nobody until the first publish
        va = cluster.attach(volume, NODE_ID, block_rwx=False)
        connection = connect(context, node.host_nqn)
        try:
            assert fabrics.device_bytes(connection.block_device()) == volume.capacity_bytes
            with pytest.raises(OSError):
                connect(context, INTRUDER)
        finally:
            connection.disconnect()
        cluster.detach(volume, NODE_ID, va)
        with pytest.raises(OSError):
            connect(context, node.host_nqn)  # closed again, never open to every host
