"""The attachment rules as pure functions: an entry, a request, the time and (when asked for) facts in; a Decision out.

Nothing here does I/O or reads a clock. ``AttachmentManager`` takes a snapshot of the table, calls these, fetches
facts when a decision says ``NeedFacts`` and commits what comes back. docs/architecture.md §4 is the contract; in
short:

* single-node volumes hold at most one node; another node is refused (``conflict``) unless every blocking
  attachment is *provably* stale (facts say ``False``; ``None`` proves nothing);
* inside the grace window after a volume's last detach, a conflicting publish is answered ``RetryLater``;
* multi-node block volumes admit a second node as a live migration, never a third, and nothing new once the
  migration window has expired;
* an attachment younger than the grace period is never cleared on the strength of facts alone: an API view that
  lags behind a fresh VolumeAttachment (or a node that just registered) would otherwise free a live writer;
* a node at its attach limit (``max_volumes_per_node``) gets no further volume, whatever the other rules admit
  (``NodeFull``); a repeat publish and a node already holding the volume add nothing to its count.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from rds_csi._native import AccessKind, Migration, NodeAttachment, VolumeEntry
from rds_csi.core import errors

DEFAULT_GRACE_SECONDS: Final = 30.0
MIGRATION_TIMEOUT_KEY: Final = "migrationTimeoutSeconds"
DEFAULT_MIGRATION_TIMEOUT: Final = 300.0
MIN_MIGRATION_TIMEOUT: Final = 30.0
MAX_MIGRATION_TIMEOUT: Final = 3600.0

ATTACHMENT_CONFLICT: Final = "AttachmentConflict"
VOLUME_ATTACHED: Final = "VolumeAttached"
VOLUME_DETACHED: Final = "VolumeDetached"
STALE_ATTACHMENT_CLEARED: Final = "StaleAttachmentCleared"
MIGRATION_STARTED: Final = "MigrationStarted"
MIGRATION_COMPLETED: Final = "MigrationCompleted"
MIGRATION_FAILED: Final = "MigrationFailed"


def clamp_migration_timeout(seconds: float) -> float:
    """The live-migration window, clamped to 30..3600 s; a non-finite value is ``InvalidArgument``."""
    if not math.isfinite(seconds):
        raise errors.InvalidArgument(f"{MIGRATION_TIMEOUT_KEY} must be a finite number of seconds, got {seconds}")
    return min(max(float(seconds), MIN_MIGRATION_TIMEOUT), MAX_MIGRATION_TIMEOUT)


def migration_timeout_from_context(volume_context: Mapping[str, str]) -> float:
    """``migrationTimeoutSeconds`` from a volume_context (default 300), clamped like every other source."""
    raw = volume_context.get(MIGRATION_TIMEOUT_KEY)
    if raw is None:
        return DEFAULT_MIGRATION_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise errors.InvalidArgument(
            f"{MIGRATION_TIMEOUT_KEY} must be a number of seconds, got {errors.quote_input(raw)}"
        ) from None
    return clamp_migration_timeout(value)


def access_kind(multi_node_block: bool) -> AccessKind:
    return AccessKind.MULTI_NODE_BLOCK if multi_node_block else AccessKind.SINGLE_NODE


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """A ControllerPublishVolume as the rules see it; ``multi_node_block`` is MULTI_NODE_MULTI_WRITER + Block."""

    volume_id: str
    node_id: str
    multi_node_block: bool = False
    readonly: bool = False
    migration_timeout: float = DEFAULT_MIGRATION_TIMEOUT
    max_volumes_per_node: int = 0  # the node's attach limit (its CSINode, or the configured default); 0: none

    def __post_init__(self) -> None:
        if not self.volume_id or not self.node_id:
            raise errors.InvalidArgument("a publish needs both a volume id and a node id")
        if self.max_volumes_per_node < 0:
            raise errors.InvalidArgument(f"max_volumes_per_node must not be negative, got {self.max_volumes_per_node}")
        object.__setattr__(self, "migration_timeout", clamp_migration_timeout(self.migration_timeout))

    @property
    def kind(self) -> AccessKind:
        return access_kind(self.multi_node_block)


@dataclass(frozen=True, slots=True)
class Event:
    """A Kubernetes event to post on the volume's PVC."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the API says about one attachment; ``None`` means it could not tell."""

    volume_attachment_exists: bool | None
    node_exists: bool | None

    @property
    def provably_gone(self) -> bool:
        # Only an explicit "no" is proof: an unreachable API server must never free a volume.
        return self.volume_attachment_exists is False or self.node_exists is False

    @property
    def why_gone(self) -> str:
        return "its Node object is deleted" if self.node_exists is False else "its VolumeAttachment no longer exists"


@dataclass(frozen=True, slots=True)
class BlockerFacts:
    """Facts fetched for one snapshot of a volume: about each blocking node, and (strict migration mode) whether
    the would-be migration target is allowed in (``None``: unknown, which refuses)."""

    nodes: Mapping[str, NodeFacts] = field(default_factory=dict)
    migration_allowed: bool | None = None


@dataclass(frozen=True, slots=True)
class MigrationEnd:
    result: Literal["completed", "failed"]
    duration: float


# ---- decisions ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admit:
    """Attach the requesting node: replace the entry with ``new_entry`` (which carries a migration if one starts)."""

    new_entry: VolumeEntry
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class ClearStaleThenAdmit:
    """Every blocking attachment is provably stale: drop ``cleared`` and attach the requesting node."""

    new_entry: VolumeEntry
    cleared: tuple[str, ...]
    events: tuple[Event, ...]
    migration_end: MigrationEnd | None


@dataclass(frozen=True, slots=True)
class AlreadyPublished:
    """The node holds the volume with the same access: the publish is an idempotent success."""


@dataclass(frozen=True, slots=True)
class Incompatible:
    """The node holds the volume with another readonly flag or access kind (CSI: ALREADY_EXISTS)."""

    message: str


RefuseKind = Literal["conflict", "third_node", "migration_expired", "migration_not_allowed", "uncounted_holders"]


@dataclass(frozen=True, slots=True)
class Refuse:
    """Another node holds the volume and may keep it (CSI: FAILED_PRECONDITION)."""

    kind: RefuseKind
    message: str
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class NodeFull:
    """The node already holds as many volumes as its attach limit allows (CSI: RESOURCE_EXHAUSTED)."""

    message: str


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Too soon to decide a conflict: the grace window is open or the blocker is too fresh (CSI: ABORTED)."""

    message: str


@dataclass(frozen=True, slots=True)
class NeedFacts:
    """Decide again with facts about ``blocking_nodes`` (and, in strict mode, permission for ``migration_target``)."""

    blocking_nodes: tuple[str, ...]
    migration_target: str | None = None


@dataclass(frozen=True, slots=True)
class Detach:
    """Remove one node; ``migration_end`` says whether that completed or rolled back a live migration."""

    new_entry: VolumeEntry
    events: tuple[Event, ...]
    migration_end: MigrationEnd | None


@dataclass(frozen=True, slots=True)
class ClearStale:
    """The reconciler's verdict: drop ``cleared``, whose node or VolumeAttachment is provably gone."""

    new_entry: VolumeEntry
    cleared: tuple[str, ...]
    events: tuple[Event, ...]
    migration_end: MigrationEnd | None


@dataclass(frozen=True, slots=True)
class ExpireMigration:
    """The migration window has passed: mark it failed, which admits no new node until one side detaches."""

    new_entry: VolumeEntry
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Sync:
    """Bring the table in line with an observed VolumeAttachment; no events and no counters (it is not news)."""

    new_entry: VolumeEntry


@dataclass(frozen=True, slots=True)
class Nothing:
    """No change."""


PublishDecision = (
    Admit | ClearStaleThenAdmit | AlreadyPublished | Incompatible | Refuse | NodeFull | RetryLater | NeedFacts
)
Decision = PublishDecision | Detach | ClearStale | ExpireMigration | Sync | Nothing


# ---- rules -------------------------------------------------------------------------------------------------------


def _names(nodes: Collection[str]) -> str:
    return ", ".join(sorted(nodes))


def _migration_live(migration: Migration, now: float) -> bool:
    return not migration.failed and now < migration.deadline


def _grace_age(entry: VolumeEntry, now: float, grace_seconds: float) -> float | None:
    """Seconds since the volume's last detach while that is inside the grace period, else ``None``."""
    if entry.last_detach_at is None or now - entry.last_detach_at >= grace_seconds:
        return None
    return now - entry.last_detach_at


def _migration_end(
    entry: VolumeEntry, removed: Collection[str], now: float, stale: Mapping[str, NodeFacts] | None
) -> tuple[MigrationEnd | None, Event | None]:
    """How removing ``removed`` ends the entry's migration, if it ends a live one (a failed one was counted when
    it failed). Only the source leaving normally completes it; the target leaving, a timeout or a stale clearing
    of either side is a failure."""
    migration = entry.migration
    if migration is None or migration.failed or not {migration.source, migration.target} & set(removed):
        return None, None
    duration = now - migration.started_at
    route = f"live migration of {entry.volume_id} from {migration.source} to {migration.target}"
    if now >= migration.deadline:
        why = f"exceeded its {migration.deadline - migration.started_at:.0f}s window"
    elif stale is not None:
        why = "; ".join(f"node {node} was cleared because {stale[node].why_gone}" for node in sorted(removed))
    elif migration.source in removed:
        event = Event(MIGRATION_COMPLETED, f"{route} completed after {duration:.0f}s")
        return MigrationEnd("completed", duration), event
    else:
        why = f"rolled back: the target node {migration.target} detached"
    return MigrationEnd("failed", duration), Event(MIGRATION_FAILED, f"{route} failed: {why}", warning=True)


def _without(entry: VolumeEntry, removed: Collection[str], now: float) -> VolumeEntry:
    nodes = tuple(node for node in entry.nodes if node.node_id not in removed)
    # The table keeps a migration only while both of its nodes are attached.
    migration = entry.migration if len(nodes) == len(entry.nodes) else None
    return replace(entry, nodes=nodes, migration=migration, last_detach_at=now)


def _admitted(entry: VolumeEntry | None, request: PublishRequest, now: float) -> VolumeEntry:
    """``entry`` (holding no node) with the requesting node attached; the last detach is kept for the grace rule."""
    added = (NodeAttachment(request.node_id, now),)
    if entry is None:
        return VolumeEntry(request.volume_id, request.kind, added)
    return replace(entry, kind=request.kind, nodes=added, migration=None)


def decide_expiry(entry: VolumeEntry | None, now: float) -> ExpireMigration | Nothing:
    """Mark a live migration failed once its window has passed."""
    migration = None if entry is None else entry.migration
    if entry is None or migration is None or migration.failed or now < migration.deadline:
        return Nothing()
    message = (
        f"live migration of {entry.volume_id} from {migration.source} to {migration.target} exceeded its "
        f"{migration.deadline - migration.started_at:.0f}s window; no other node is admitted until one side detaches"
    )
    return ExpireMigration(
        replace(entry, migration=replace(migration, failed=True)), (Event(MIGRATION_FAILED, message, warning=True),)
    )


def decide_publish(
    entry: VolumeEntry | None,
    request: PublishRequest,
    now: float,
    grace_seconds: float,
    facts: BlockerFacts | None = None,
    *,
    recorded_readonly: bool | None = None,
    strict_migration: bool = False,
    unconfirmed: bool = False,
    node_volumes: Collection[str] = (),
    uncounted: Collection[str] = (),
) -> PublishDecision:
    """Decide a ControllerPublishVolume.

    ``recorded_readonly`` is the flag the node was published with (``None``: unknown, e.g. after a rebuild, and
    then any flag is accepted). ``facts`` must describe exactly this ``entry``; the caller discards them when the
    entry changes. ``unconfirmed``: the requesting node is in ``entry`` only because a VolumeAttachment of it
    exists that is not known to be attached (see ``_publish_unconfirmed``). ``node_volumes``: every volume the
    requesting node holds now (a migration target's included), counted against ``request.max_volumes_per_node``.
    ``uncounted``: nodes whose VolumeAttachments a rebuild found beyond the two ``entry`` can hold; each may be a
    writer the previous controller admitted, so while there are any, only a node that already holds the volume is
    answered OK.
    """
    decision = _decide_publish(
        entry,
        request,
        now,
        grace_seconds,
        facts,
        recorded_readonly=recorded_readonly,
        strict_migration=strict_migration,
        unconfirmed=unconfirmed,
    )
    if isinstance(decision, Admit | ClearStaleThenAdmit):
        if uncounted:
            return _refuse(
                "uncounted_holders",
                f"volume {request.volume_id} also has VolumeAttachments on {_names(uncounted)}, which a previous "
                f"controller may have admitted and which do not fit the attachment table; node {request.node_id} is "
                "refused until they are deleted or a node detaches",
            )
        return _within_node_limit(decision, request, node_volumes)
    return decision


def _within_node_limit(
    decision: Admit | ClearStaleThenAdmit, request: PublishRequest, node_volumes: Collection[str]
) -> Admit | ClearStaleThenAdmit | NodeFull:
    """An admission stands only while the node has room; this volume, already on the node, takes none."""
    limit = request.max_volumes_per_node
    others = set(node_volumes) - {request.volume_id}
    if not limit or len(others) < limit:
        return decision
    return NodeFull(
        f"node {request.node_id} already holds {len(others)} volumes, its limit of {limit}; volume "
        f"{request.volume_id} can be attached there once one of them is detached"
    )


def _decide_publish(
    entry: VolumeEntry | None,
    request: PublishRequest,
    now: float,
    grace_seconds: float,
    facts: BlockerFacts | None,
    *,
    recorded_readonly: bool | None,
    strict_migration: bool,
    unconfirmed: bool,
) -> PublishDecision:
    if entry is None or not entry.nodes:
        attached = f"{request.volume_id} attached to node {request.node_id}"
        return Admit(_admitted(entry, request, now), (Event(VOLUME_ATTACHED, attached),))
    if entry.has_node(request.node_id):
        if unconfirmed:
            return _publish_unconfirmed(entry, request, now, grace_seconds, facts, strict_migration=strict_migration)
        return _republish(entry, request, recorded_readonly)
    if entry.kind is AccessKind.MULTI_NODE_BLOCK and request.multi_node_block:
        return _second_writer(entry, request, now, facts, strict_migration)
    return _single_writer_conflict(entry, request, now, grace_seconds, facts)


def _republish(entry: VolumeEntry, request: PublishRequest, recorded_readonly: bool | None) -> PublishDecision:
    if entry.kind is not request.kind:
        return Incompatible(
            f"volume {request.volume_id} is published to node {request.node_id} with access "
            f"{entry.kind.name}, not {request.kind.name}"
        )
    if recorded_readonly is not None and recorded_readonly != request.readonly:
        return Incompatible(
            f"volume {request.volume_id} is published to node {request.node_id} with readonly={recorded_readonly}, "
            f"not readonly={request.readonly}"
        )
    return AlreadyPublished()


def _publish_unconfirmed(
    entry: VolumeEntry,
    request: PublishRequest,
    now: float,
    grace_seconds: float,
    facts: BlockerFacts | None,
    *,
    strict_migration: bool,
) -> PublishDecision:
    """The publish of a node held only by a VolumeAttachment not known to be attached: that hold keeps other nodes
    out, but it is no proof that this node was ever admitted (another node may have been, when both were still
    attaching), so the publish is decided as if the node were not there, against every rule."""
    migration = entry.migration
    if migration is not None and not _migration_live(migration, now):
        return _refuse(
            "migration_expired",
            f"volume {request.volume_id}: the live migration {migration.source} -> {migration.target} has failed or "
            f"expired; node {request.node_id} is refused until one side detaches",
        )
    others = tuple(held for held in entry.nodes if held.node_id != request.node_id)
    decision = _decide_publish(
        replace(entry, nodes=others, migration=None),
        request,
        now,
        grace_seconds,
        facts,
        recorded_readonly=None,
        strict_migration=strict_migration,
        unconfirmed=False,
    )
    if isinstance(decision, Admit) and migration is not None:
        started = decision.new_entry.migration
        if started is not None and (started.source, started.target) == (migration.source, migration.target):
            # The window counted from the target's VolumeAttachment stands: admitting the target never extends it.
            return Admit(replace(decision.new_entry, migration=migration), decision.events)
    return decision


def _second_writer(
    entry: VolumeEntry, request: PublishRequest, now: float, facts: BlockerFacts | None, strict_migration: bool
) -> PublishDecision:
    volume, node = request.volume_id, request.node_id
    migration = entry.migration
    if migration is not None and not _migration_live(migration, now):
        return _refuse(
            "migration_expired",
            f"volume {volume}: the live migration {migration.source} -> {migration.target} has failed or expired; "
            f"node {node} is refused until one side detaches",
        )
    if len(entry.nodes) > 1:
        holders = _names([held.node_id for held in entry.nodes])
        return _refuse(
            "third_node",
            f"volume {volume} is already attached to two nodes ({holders}); a third node ({node}) is refused",
        )
    if strict_migration:
        if facts is None:
            return NeedFacts((), migration_target=node)
        if facts.migration_allowed is not True:
            verdict = "is unknown" if facts.migration_allowed is None else "was denied"
            return _refuse(
                "migration_not_allowed",
                f"volume {volume}: a live migration to node {node} {verdict} (strict migration mode)",
            )
    source = entry.nodes[0].node_id
    started = Migration(source, node, now, now + request.migration_timeout)
    new_entry = replace(entry, nodes=(*entry.nodes, NodeAttachment(node, now)), migration=started)
    message = f"live migration of {volume} from {source} to {node} started; window {request.migration_timeout:.0f}s"
    return Admit(new_entry, (Event(MIGRATION_STARTED, message),))


def _single_writer_conflict(
    entry: VolumeEntry, request: PublishRequest, now: float, grace_seconds: float, facts: BlockerFacts | None
) -> PublishDecision:
    volume, node = request.volume_id, request.node_id
    blockers = tuple(held.node_id for held in entry.nodes)
    age = _grace_age(entry, now, grace_seconds)
    if age is not None:
        return RetryLater(
            f"volume {volume} was detached {age:.0f}s ago, inside its {grace_seconds:.0f}s "
            f"grace period, and is still attached to {_names(blockers)}; that attachment is verified again once the "
            f"grace period is over, retry later"
        )
    if facts is None or any(blocker not in facts.nodes for blocker in blockers):
        return NeedFacts(blockers)
    live = [blocker for blocker in blockers if not facts.nodes[blocker].provably_gone]
    if live:
        return _refuse(
            "conflict",
            f"volume {volume} is attached to node {_names(live)} (single-node access); "
            f"node {node} is refused until it detaches",
        )
    fresh = [held.node_id for held in entry.nodes if now - held.attached_at < grace_seconds]
    if fresh:
        return RetryLater(
            f"volume {volume} looks stale on {_names(fresh)}, but that attachment is younger than the "
            f"{grace_seconds:.0f}s grace period; it is verified again before it can be cleared, retry later"
        )
    cleared_facts = {blocker: facts.nodes[blocker] for blocker in blockers}
    end, migration_event = _migration_end(entry, blockers, now, cleared_facts)
    events = [_stale_event(volume, blocker, cleared_facts[blocker]) for blocker in blockers]
    if migration_event is not None:
        events.append(migration_event)
    events.append(Event(VOLUME_ATTACHED, f"{volume} attached to node {node}"))
    new_entry = _admitted(_without(entry, blockers, now), request, now)
    return ClearStaleThenAdmit(new_entry, blockers, tuple(events), end)


def _refuse(kind: RefuseKind, message: str) -> Refuse:
    return Refuse(kind, message, (Event(ATTACHMENT_CONFLICT, message, warning=True),))


def _stale_event(volume: str, node: str, facts: NodeFacts) -> Event:
    return Event(
        STALE_ATTACHMENT_CLEARED, f"cleared the attachment of {volume} to node {node}: {facts.why_gone}", warning=True
    )


def decide_unpublish(entry: VolumeEntry | None, node_id: str, now: float) -> Detach | Nothing:
    """Decide a ControllerUnpublishVolume; an unknown volume or node is an idempotent no-op."""
    if entry is None or not entry.has_node(node_id):
        return Nothing()
    end, migration_event = _migration_end(entry, (node_id,), now, None)
    event = migration_event or Event(VOLUME_DETACHED, f"{entry.volume_id} detached from node {node_id}")
    return Detach(_without(entry, (node_id,), now), (event,), end)


def decide_va_deleted(
    entry: VolumeEntry | None, node_id: str, now: float, grace_seconds: float, *, published_here: bool
) -> Detach | Nothing:
    """A VolumeAttachment was deleted: detach, unless a publish made the attachment inside the grace period.

    A VolumeAttachment's name depends only on driver, volume and node, so the deletion of the previous object
    can be delivered after a publish for its successor; a fresh attachment a publish made is left to the
    reconciler, which asks the API directly. A hold no publish made (``published_here`` False: it came from the
    rebuild or the watch, which deliver one object's events in order) belongs to the object just deleted, so it
    ends with it however fresh; keeping it would block a DeleteVolume until the next reconcile.
    """
    if entry is None:
        return Nothing()
    held = next((node for node in entry.nodes if node.node_id == node_id), None)
    if held is None or (published_here and now - held.attached_at < grace_seconds):
        return Nothing()
    return decide_unpublish(entry, node_id, now)


def decide_stale(
    entry: VolumeEntry | None, facts: Mapping[str, NodeFacts], now: float, grace_seconds: float
) -> ClearStale | Nothing:
    """The reconciler's rule: clear every attachment whose node or VolumeAttachment is provably gone, unless it is
    younger than the grace period."""
    if entry is None:
        return Nothing()
    cleared = tuple(
        held.node_id
        for held in entry.nodes
        if held.node_id in facts and facts[held.node_id].provably_gone and now - held.attached_at >= grace_seconds
    )
    if not cleared:
        return Nothing()
    stale = {node: facts[node] for node in cleared}
    end, migration_event = _migration_end(entry, cleared, now, stale)
    events = [_stale_event(entry.volume_id, node, stale[node]) for node in cleared]
    if migration_event is not None:
        events.append(migration_event)
    return ClearStale(_without(entry, cleared, now), cleared, tuple(events), end)


def decide_observed_attach(
    entry: VolumeEntry | None, volume_id: str, node_id: str, *, kind: AccessKind, migration_timeout: float, now: float
) -> Sync | Nothing:
    """Record a VolumeAttachment the table does not know (a watch event, or a rebuild replaying them in creation
    order), attached or not: each one holds its volume until it is deleted.

    VolumeAttachments are the truth, so this follows them even where a publish would refuse: two nodes on a
    single-node volume are kept (as single-node, the stricter kind) for the reconciler and the conflict rule to
    see; only a third node, which the table cannot hold, is left out.
    """
    added = NodeAttachment(node_id, now)
    if entry is None:
        return Sync(VolumeEntry(volume_id, kind, (added,)))
    if not entry.nodes:
        return Sync(replace(entry, kind=kind, nodes=(added,), migration=None))
    if entry.has_node(node_id) or len(entry.nodes) > 1:
        return Nothing()
    nodes = (*entry.nodes, added)
    if entry.kind is AccessKind.MULTI_NODE_BLOCK and kind is AccessKind.MULTI_NODE_BLOCK:
        migration = Migration(entry.nodes[0].node_id, node_id, now, now + clamp_migration_timeout(migration_timeout))
        return Sync(replace(entry, nodes=nodes, migration=migration))
    return Sync(replace(entry, kind=AccessKind.SINGLE_NODE, nodes=nodes))
