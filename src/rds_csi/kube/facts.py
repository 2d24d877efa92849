"""What Kubernetes says about an attachment: does its VolumeAttachment still exist, does its node?

The attachment state machine clears a blocking attachment only when one of these is provably gone, so every
answer here is one of three: yes, no, or "cannot tell" (None) when the API server cannot be asked. A doubt is
never turned into a "no".
"""

from __future__ import annotations

import hashlib
import logging

from rds_csi.core.errors import NotFound, RdsCsiError
from rds_csi.kube.api import KubeApi, VolumeAttachmentRecord
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)


def volume_attachment_name(volume_handle: str, attacher: str, node_name: str) -> str:
    """The name Kubernetes gives the VolumeAttachment of a CSI volume on a node.

    The attach/detach controller names it ``csi-`` followed by the hex SHA-256 of the volume handle, the driver
    name and the node name, concatenated without separators.
    """
    digest = hashlib.sha256(f"{volume_handle}{attacher}{node_name}".encode()).hexdigest()
    return f"csi-{digest}"


class KubeAttachmentFacts:
    """``AttachmentFacts`` backed by the API server."""

    def __init__(self, api: KubeApi, attacher: str) -> None:
        self._api = api
        self._attacher = attacher

    def volume_attachment_exists(self, volume_id: str, node_id: str) -> bool | None:
        """True while a VolumeAttachment of ours binds ``volume_id`` to ``node_id`` (even one being deleted)."""
        try:
            return self._volume_attachment_exists(volume_id, node_id)
        except RdsCsiError as error:
            log_event(
                _log,
                "kube.facts.unknown",
                logging.WARNING,
                question="volume_attachment_exists",
                volume_id=volume_id,
                node_id=node_id,
                error=error.message,
            )
            return None

    def node_exists(self, node_id: str) -> bool | None:
        try:
            return self._api.node_exists(node_id)
        except RdsCsiError as error:
            log_event(_log, "kube.facts.unknown", logging.WARNING, question="node_exists", node_id=node_id,
                      error=error.message)  # fmt: skip
            return None

    def _volume_attachment_exists(self, volume_id: str, node_id: str) -> bool:
        try:
            record = self._api.get_volume_attachment(volume_attachment_name(volume_id, self._attacher, node_id))
        except NotFound:
            pass
        else:
            if self._binds(record, node_id):
                return True
        # Not under the name Kubernetes would choose: an object created by other tooling, or a PV whose name is
        # not its volume handle. Only a full list can prove absence.
        records, _ = self._api.list_volume_attachments(self._attacher)
        on_node = [record for record in records if self._binds(record, node_id)]
        if any(record.volume_id == volume_id for record in on_node):
            return True
        return any(self._handle_of(record.volume_id) == volume_id for record in on_node)

    def _binds(self, record: VolumeAttachmentRecord, node_id: str) -> bool:
        return record.attacher == self._attacher and record.node_id == node_id

    def _handle_of(self, pv_name: str) -> str | None:
        try:
            return self._api.get_pv(pv_name).volume_handle
        except NotFound:
            return None
