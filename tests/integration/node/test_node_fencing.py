"""Storage-side fencing end to end: the node plugin reports its host NQN, the controller fences a volume to it."""

from __future__ import annotations

from pathlib import Path

from rds_csi.nvme import HOST_NQN_ANNOTATION
from rds_csi.routeros.volumes import FENCE_CLOSED_NQN
from tests.integration.attach.test_attachments_kube import running_cluster
from tests.integration.attach.test_fencing import allowed, fenced_volume
from tests.integration.node.harness import NODE_ID, node_annotations, running_node
from tests.support import wait_until


def test_fenced_export_admits_exactly_the_host_nqn_the_node_plugin_reported(short_tmp: Path) -> None:
    with running_cluster([NODE_ID]) as cluster, running_node(short_tmp, cluster.kube.url) as node:
        assert wait_until(lambda: node_annotations(cluster.kube).get(HOST_NQN_ANNOTATION) == node.host_nqn)
        volume = fenced_volume(cluster, "pvc-fenced-by-node", block_rwx=False)
        va = cluster.attach(volume, NODE_ID, block_rwx=False)
        assert allowed(cluster, volume.volume_id) == (node.host_nqn,)
        cluster.detach(volume, NODE_ID, va)
        assert allowed(cluster, volume.volume_id) == (FENCE_CLOSED_NQN,)
