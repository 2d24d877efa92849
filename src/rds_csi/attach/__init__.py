"""Attachment authority of the controller: which nodes hold each volume, and who may attach next.

``decisions`` holds the rules as pure functions (docs/architecture.md §4), ``rebuild`` turns VolumeAttachments into
table contents, ``AttachmentManager`` applies both to the native ``AttachmentTable`` with facts, events and
metrics, ``Reconciler`` runs its periodic clean-up on a thread, and ``AttachmentStateFile`` keeps the table on disk
where no Kubernetes API does (static mode).
"""

from __future__ import annotations

from rds_csi.attach.decisions import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_MIGRATION_TIMEOUT,
    MIGRATION_TIMEOUT_KEY,
    BlockerFacts,
    Event,
    NodeFacts,
    PublishRequest,
    migration_timeout_from_context,
)
from rds_csi.attach.manager import (
    AttachmentFacts,
    AttachmentJournal,
    AttachmentManager,
    EventSink,
    MigrationAllowed,
    ReconcileReport,
    VaEventKind,
)
from rds_csi.attach.rebuild import VolumeAttachmentFact
from rds_csi.attach.reconciler import DEFAULT_INTERVAL, Reconciler
from rds_csi.attach.store import AttachmentStateFile

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_INTERVAL",
    "DEFAULT_MIGRATION_TIMEOUT",
    "MIGRATION_TIMEOUT_KEY",
    "AttachmentFacts",
    "AttachmentJournal",
    "AttachmentManager",
    "AttachmentStateFile",
    "BlockerFacts",
    "Event",
    "EventSink",
    "MigrationAllowed",
    "NodeFacts",
    "PublishRequest",
    "ReconcileReport",
    "Reconciler",
    "VaEventKind",
    "VolumeAttachmentFact",
    "migration_timeout_from_context",
]
