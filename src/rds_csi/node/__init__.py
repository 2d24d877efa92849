"""Node use cases: stage, publish, unpublish, unstage, expand and stats of a volume on this node.

The CSI layer validates a request into a value object (``rds_csi.node.requests``) and calls the matching use
case; the use cases drive the NVMe side through a ``Connector`` and the file-system side through ``rds_csi.mount``.
"""

from __future__ import annotations

from rds_csi.node.requests import (
    Access,
    BlockAccess,
    ExpandVolume,
    MountAccess,
    PublishVolume,
    StageVolume,
    UnpublishVolume,
    UnstageVolume,
    VolumeStats,
    VolumeStatsQuery,
)
from rds_csi.node.volumes import NodeVolumes

__all__ = [
    "Access",
    "BlockAccess",
    "ExpandVolume",
    "MountAccess",
    "NodeVolumes",
    "PublishVolume",
    "StageVolume",
    "UnpublishVolume",
    "UnstageVolume",
    "VolumeStats",
    "VolumeStatsQuery",
]
