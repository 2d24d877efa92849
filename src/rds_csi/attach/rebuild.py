"""Attachment state from VolumeAttachments, the truth after a restart or a leader change.

A rebuild replays each volume's attached VolumeAttachments in creation order through the same rule that follows a watch
(``decide_observed_attach``), so two of them on a multi-node block volume come back as a migration that started
when the newer one was created, with its window counted from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rds_csi._native import MAX_NODES, VolumeEntry
from rds_csi.attach.decisions import DEFAULT_MIGRATION_TIMEOUT, Sync, access_kind, decide_observed_attach


@dataclass(frozen=True, slots=True)
class VolumeAttachmentFact:
    """One VolumeAttachment of this driver.

    ``created_at`` is on the manager's clock (monotonic seconds, like ``Clock.now()``), so that migration windows
    and the grace rule compare with it: convert an API ``creationTimestamp`` as
    ``clock.now() - (time.time() - creation_epoch)``. ``multi_node_block``, ``migration_timeout`` and
    ``readonly`` come from the PersistentVolume (access mode with volumeMode, volume_context, ``csi.readOnly``);
    ``readonly=None`` means unknown, and the next publish from that node then sets it.
    """

    volume_id: str
    node_id: str
    created_at: float
    attached: bool
    multi_node_block: bool = False
    migration_timeout: float = DEFAULT_MIGRATION_TIMEOUT
    readonly: bool | None = None


@dataclass(frozen=True, slots=True)
class RebuildPlan:
    """The table contents, the readonly flags known per (volume, node), and the attached VolumeAttachments left
    out because their volume has two newer ones (the caller reports them)."""

    entries: tuple[VolumeEntry, ...]
    readonly: Mapping[tuple[str, str], bool]
    left_out: tuple[VolumeAttachmentFact, ...]


def plan_rebuild(facts: Iterable[VolumeAttachmentFact]) -> RebuildPlan:
    """Only attached VolumeAttachments count: one still attaching or detaching is settled by the publish or
    unpublish that the external-attacher will (re)issue for it.

    A volume with more attached VolumeAttachments than the table holds keeps its two newest: an older one can
    only have outlived a newer one because it was cleared as stale (its node deleted) when the newer one was
    admitted, so the newest are the ones that may still be in use.
    """
    by_volume: dict[str, dict[str, VolumeAttachmentFact]] = {}
    for fact in facts:
        if not fact.attached:
            continue
        on_nodes = by_volume.setdefault(fact.volume_id, {})
        known = on_nodes.get(fact.node_id)
        if known is None or _age_key(fact) < _age_key(known):
            on_nodes[fact.node_id] = fact
    entries: list[VolumeEntry] = []
    readonly: dict[tuple[str, str], bool] = {}
    left_out: list[VolumeAttachmentFact] = []
    for volume_id, on_nodes in sorted(by_volume.items()):
        ordered = sorted(on_nodes.values(), key=_age_key)
        left_out.extend(ordered[:-MAX_NODES])
        entry: VolumeEntry | None = None
        for fact in ordered[-MAX_NODES:]:
            decision = decide_observed_attach(
                entry,
                volume_id,
                fact.node_id,
                kind=access_kind(fact.multi_node_block),
                migration_timeout=fact.migration_timeout,
                now=fact.created_at,
            )
            if isinstance(decision, Sync):
                entry = decision.new_entry
            if fact.readonly is not None:
                readonly[volume_id, fact.node_id] = fact.readonly
        if entry is not None:
            entries.append(entry)
    return RebuildPlan(tuple(entries), readonly, tuple(left_out))


def _age_key(fact: VolumeAttachmentFact) -> tuple[float, str]:
    return fact.created_at, fact.node_id
