"""Kubernetes API access for the controller.

- ``KubeApi`` (configured by ``KubeSettings``): the calls the driver makes, typed records out, failures mapped
  onto ``rds_csi.core.errors``.
- ``KubeAttachmentFacts``: does a VolumeAttachment or a Node still exist (None when the API cannot tell).
- ``VolumeAttachmentWatcher`` / ``NodeWatcher``: list-then-watch loops feeding the attachment state.
- ``EventRecorder``: best-effort events on PVCs that never block the caller.
"""

from __future__ import annotations

from rds_csi.kube.api import (
    ClaimRef,
    KubeApi,
    KubeSettings,
    PvInfo,
    VolumeAttachmentRecord,
    WatchExpired,
)
from rds_csi.kube.events import EventRecorder
from rds_csi.kube.facts import KubeAttachmentFacts, volume_attachment_name
from rds_csi.kube.watch import NodeWatcher, VolumeAttachmentWatcher, WatchTuning

__all__ = [
    "ClaimRef",
    "EventRecorder",
    "KubeApi",
    "KubeAttachmentFacts",
    "KubeSettings",
    "NodeWatcher",
    "PvInfo",
    "VolumeAttachmentRecord",
    "VolumeAttachmentWatcher",
    "WatchExpired",
    "WatchTuning",
    "volume_attachment_name",
]
