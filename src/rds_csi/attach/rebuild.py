"""Attachment state from VolumeAttachments, the truth after a restart or a leader change.

Every VolumeAttachment of this driver holds its volume until it is deleted, attached or not: one that is not yet
``status.attached`` may be exactly the publish a previous controller admitted and answered just before it stopped,
whose status the external-attacher is about to write. A rebuild replays each volume's VolumeAttachments in creation
order through the same rule that follows a watch (``decide_observed_attach``), so two of them on a multi-node block
volume come back as a migration that started when the newer one was created, with its window counted from there.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from rds_csi._native import MAX_NODES, VolumeEntry
from rds_csi.attach.decisions import DEFAULT_MIGRATION_TIMEOUT, Sync, access_kind, decide_observed_attach


@dataclass(frozen=True, slots=True)
class VolumeAttachmentFact:
    """One VolumeAttachment of this driver.

    ``created_at`` is on the manager's clock (monotonic seconds, like ``Clock.now()``), so that migration windows
    and the grace rule compare with it: convert an API ``creationTimestamp`` as
    ``clock.now() - (time.time() - creation_epoch)``. ``attached`` is its ``status.attached``. ``multi_node_block``,
    ``migration_timeout`` and ``readonly`` come from the PersistentVolume (access mode with volumeMode,
    volume_context, ``csi.readOnly``); ``readonly=None`` means unknown, and the next publish from that node then
    sets it.
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
    """The table contents, the readonly flags known per (volume, node), the (volume, node) pairs held only by a
    VolumeAttachment not known to be attached (``unconfirmed``: the manager decides their own publish in full), and
    the VolumeAttachments left out because the table holds two per volume (the manager keeps them as uncounted
    holders: any of them may be a writer)."""

    entries: tuple[VolumeEntry, ...]
    readonly: Mapping[tuple[str, str], bool]
    unconfirmed: frozenset[tuple[str, str]]
    left_out: tuple[VolumeAttachmentFact, ...]


def plan_rebuild(facts: Iterable[VolumeAttachmentFact], *, gone_nodes: Collection[str] = ()) -> RebuildPlan:
    """Every VolumeAttachment counts, also one still attaching or already being deleted (it holds its node until the
    unpublish the external-attacher will issue, or until it is gone).

    A volume with more VolumeAttachments than the table holds keeps, first, those whose node is not in
    ``gone_nodes`` (Node objects known to be deleted), then attached ones before unattached ones, and the newest of
    each. A third VolumeAttachment exists in two ways: a publish refused because two nodes hold the volume (it
    stays unattached while the attacher retries; the attached ones are the writers), or an attached one that
    outlived its clearing as stale (its node deleted) when a newer one was admitted, whose status may not be
    written yet: that newer one is a writer, and only its deleted node sets the stale one apart.
    Those left out hold the volume all the same (``AttachmentManager.rebuild``).
    """
    by_volume: dict[str, dict[str, VolumeAttachmentFact]] = {}
    for fact in facts:
        on_nodes = by_volume.setdefault(fact.volume_id, {})
        known = on_nodes.get(fact.node_id)
        if known is None or _precedence(fact) > _precedence(known):
            on_nodes[fact.node_id] = fact
    entries: list[VolumeEntry] = []
    readonly: dict[tuple[str, str], bool] = {}
    unconfirmed: set[tuple[str, str]] = set()
    left_out: list[VolumeAttachmentFact] = []
    for volume_id, on_nodes in sorted(by_volume.items()):
        ranked = sorted(on_nodes.values(), key=lambda fact: _rank(fact, gone_nodes), reverse=True)
        left_out.extend(ranked[MAX_NODES:])
        entry: VolumeEntry | None = None
        for fact in sorted(ranked[:MAX_NODES], key=_age_key):
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
                if not fact.attached:
                    unconfirmed.add((volume_id, fact.node_id))
            if fact.readonly is not None:
                readonly[volume_id, fact.node_id] = fact.readonly
        if entry is not None:
            entries.append(entry)
    return RebuildPlan(tuple(entries), readonly, frozenset(unconfirmed), tuple(left_out))


def _age_key(fact: VolumeAttachmentFact) -> tuple[float, str]:
    return fact.created_at, fact.node_id


def _rank(fact: VolumeAttachmentFact, gone_nodes: Collection[str]) -> tuple[bool, bool, float, str]:
    """Which VolumeAttachments of a volume the table keeps: those on nodes not known gone first, then attached
    ones, then the newest."""
    return fact.node_id not in gone_nodes, fact.attached, fact.created_at, fact.node_id


def _precedence(fact: VolumeAttachmentFact) -> tuple[bool, float]:
    """Which of two VolumeAttachments binding one volume to one node stands for it: an attached one, else the
    older."""
    return fact.attached, -fact.created_at
