"""Applies the attachment rules to the table: snapshot, decide (pure), fetch facts if asked, commit, report.

Per-volume serialization: every decision and its commit happen under that volume's manager lock (striped), so a
publish, an unpublish, a watch event and the reconciler never interleave inside one volume's decision. A publish
with an attach limit also holds its node's lock (striped, always taken before a volume's lock), so two publishes
of different volumes to one node cannot both take its last free place. No lock is ever held across I/O: facts are
fetched with it released, are bound to the snapshot they were asked for, and are thrown away if the volume changed
meanwhile. Events are posted and logged after the lock is released.

Side state the table has no field for lives here, written in the same critical section as the table change:
the readonly flag each (volume, node) was published with, and which (volume, node) pairs are held only by a
VolumeAttachment not known to be attached (unconfirmed: they keep other nodes out, but their own publish is decided
in full rather than taken as a repeat), and the VolumeAttachments a rebuild found beyond the two nodes a table entry
holds (uncounted: possible writers the table cannot show, taken into it as soon as it has room). A migration's
window needs no side state, because the deadline recorded when it starts already carries it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from rds_csi._native import MAX_NODES, AccessKind, AttachmentTable, VolumeEntry
from rds_csi.attach.decisions import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_MIGRATION_TIMEOUT,
    Admit,
    AlreadyPublished,
    BlockerFacts,
    ClearStale,
    ClearStaleThenAdmit,
    Decision,
    Detach,
    Event,
    ExpireMigration,
    Incompatible,
    MigrationEnd,
    NeedFacts,
    NodeFacts,
    NodeFull,
    Nothing,
    PublishRequest,
    Refuse,
    RetryLater,
    Sync,
    access_kind,
    decide_expiry,
    decide_observed_attach,
    decide_publish,
    decide_stale,
    decide_unpublish,
    decide_va_deleted,
)
from rds_csi.attach.rebuild import VolumeAttachmentFact, plan_rebuild
from rds_csi.core import errors
from rds_csi.core.clock import Clock
from rds_csi.observability.logging import log_event
from rds_csi.observability.metrics import Metrics

_log = logging.getLogger(__name__)

_LOCK_STRIPES: Final = 64
# Facts fetched for one snapshot are discarded when the volume changes; past this many rounds a publish gives up
# with ABORTED rather than chase a volume that keeps changing.
_MAX_ROUNDS: Final = 8

VaEventKind = Literal["ADDED", "MODIFIED", "DELETED"]
_VA_EVENT_KINDS: Final = frozenset({"ADDED", "MODIFIED", "DELETED"})

MigrationAllowed = Callable[[str, str], bool | None]
"""Strict migration mode: ``(volume_id, target_node) -> True`` to allow, ``False``/``None`` (unknown) to refuse."""


class AttachmentFacts(Protocol):
    """What the API server says; ``None`` when it cannot tell (never proof that something is gone)."""

    def volume_attachment_exists(self, volume_id: str, node_id: str) -> bool | None: ...

    def node_exists(self, node_id: str) -> bool | None: ...


class AttachmentJournal(Protocol):
    """Where the attachments are kept across restarts when nothing else records them (no Kubernetes API).

    ``save`` replaces everything with ``records`` and is durable when it returns; it raises ``Unavailable`` when it
    cannot be, and the publish or unpublish that asked is then not answered OK.
    """

    def save(self, records: Iterable[VolumeAttachmentFact]) -> None: ...


class EventSink(Protocol):
    """Posts a Kubernetes event on the volume's PVC; expected to enqueue and return (best effort)."""

    def post(self, volume_id: str, reason: str, message: str, *, warning: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """One reconciler pass: ``cleared`` (volume, node) pairs, volumes whose migration expired, idle entries
    forgotten, volumes skipped because they changed while their facts were fetched, and volumes left as they were."""

    examined: int
    cleared: tuple[tuple[str, str], ...]
    expired_migrations: tuple[str, ...]
    forgotten: tuple[str, ...]
    skipped: tuple[str, ...]
    unchanged: int


class AttachmentManager:
    """The controller's attachment authority; also the ``PublicationView`` the controller service reads."""

    def __init__(
        self,
        table: AttachmentTable,
        facts: AttachmentFacts,
        events: EventSink,
        clock: Clock,
        metrics: Metrics,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        strict_migration: bool = False,
        migration_allowed: MigrationAllowed | None = None,
        journal: AttachmentJournal | None = None,
    ) -> None:
        """``journal``: written before a publish is answered OK and after an unpublish. Without a Kubernetes API
        nothing else changes who holds a volume (staleness is never proven), so those are all the writes needed."""
        if not (math.isfinite(grace_seconds) and grace_seconds >= 0):
            raise ValueError(f"grace_seconds must be a finite number >= 0, got {grace_seconds!r}")
        if strict_migration and migration_allowed is None:
            raise ValueError("strict migration mode needs a migration_allowed hook")
        self._table = table
        self._facts = facts
        self._events = events
        self._clock = clock
        self._metrics = metrics
        self._grace = float(grace_seconds)
        self._strict = strict_migration
        self._migration_allowed = migration_allowed
        self._journal = journal
        # Saves are serialized, and each takes its snapshot once it holds this lock, so the file never goes back
        # to a state older than one already written.
        self._journal_lock = threading.Lock()
        self._locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))
        self._node_locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))
        self._readonly: dict[tuple[str, str], bool] = {}
        self._unconfirmed: set[tuple[str, str]] = set()
        # (volume, node) pairs a publish of this process admitted or confirmed: only their holds can be outrun by a
        # lagging watch's deletion of the previous VolumeAttachment of the same name (see decide_va_deleted).
        self._published_here: set[tuple[str, str]] = set()
        # volume -> node -> its VolumeAttachment, for those a rebuild could not fit in the table (see rebuild()).
        self._uncounted: dict[str, dict[str, VolumeAttachmentFact]] = {}
        # When each (volume, node) was last unpublished: a watch event about a VolumeAttachment created before that
        # moment is older news than the unpublish, and must not attach the node again.
        self._unpublished_at: dict[tuple[str, str], float] = {}
        # Volumes with a live (not failed) migration, for the active gauge; kept with its own lock because a
        # gauge set from two threads must not go back in time.
        self._migrating: set[str] = set()
        self._gauge_lock = threading.Lock()

    # ---- public API --------------------------------------------------------------------------------------------

    def publish(self, request: PublishRequest) -> None:
        """Attach ``request.node_id``, or raise: ``FailedPrecondition`` (another node holds the volume and may keep
        it), ``Aborted`` (inside a grace window, or the volume kept changing; retry), ``AlreadyExists`` (published
        to that node with another readonly flag or access kind), ``ResourceExhausted`` (the node holds
        ``request.max_volumes_per_node`` volumes already)."""
        with self._timed("publish"):
            self._publish(request)

    def unpublish(self, volume_id: str, node_id: str) -> None:
        """Detach; an unknown volume or node is a success. A migration source leaving completes the migration, its
        target leaving rolls it back, and the other node stays attached either way."""
        with self._timed("unpublish"):
            with self._lock(volume_id):
                now = self._clock.now()
                self._forget_uncounted(volume_id, node_id)
                entry, events = self._settle(volume_id, now)
                decision = decide_unpublish(entry, node_id, now)
                events += self._apply(volume_id, entry, decision)
                self._unpublished_at[volume_id, node_id] = now
            self._post(volume_id, events)
            self._save()
            log_event(_log, "attach.unpublish", volume_id=volume_id, node_id=node_id, outcome=_outcome(decision))

    def published_nodes(self, volume_id: str) -> list[str]:
        """Nodes holding the volume, in attach order (a migration source first); a node held by a VolumeAttachment
        not known to be attached is among them (it may be published, and no other node may be until it is gone),
        and so are uncounted ones, last."""
        with self._lock(volume_id):
            uncounted = sorted(self._uncounted.get(volume_id, ()))
        return [*self._table.nodes(volume_id), *uncounted]

    def rebuild(self, records: Iterable[VolumeAttachmentFact]) -> None:
        """Replace all state with what the VolumeAttachments say (see ``rebuild.plan_rebuild``). Migrations whose
        window passed while nobody was watching are failed by the next publish, unpublish or reconcile. For a
        volume with more VolumeAttachments than the table holds, asks which of their nodes are deleted (no lock
        held): a VolumeAttachment on a deleted node is the one to leave out (see ``plan_rebuild``).

        A volume can have more VolumeAttachments than its entry holds (a migration pair and a third node waiting,
        say), and one not yet attached may be a publish the previous controller answered OK: which of them is, no
        VolumeAttachment says. The ones left out stay uncounted holders: they are published nodes, no node that
        does not hold the volume yet is admitted while any is left, and each joins the entry once it has room (a
        detach, a deleted VolumeAttachment: the watch delivers that, also for one that vanished during a relist).
        """
        facts = list(records)
        gone = self._deleted_nodes_of_overflowing_volumes(facts)
        plan = plan_rebuild(facts, gone_nodes=gone)
        # A VolumeAttachment on a Node known to be deleted is provably stale (the reconciler's own proof): it is left
        # out and holds nothing. Every other one left out may be a writer and holds its volume uncounted.
        holding = [fact for fact in plan.left_out if fact.node_id not in gone]
        with ExitStack() as held:
            for lock in self._locks:
                held.enter_context(lock)
            self._table.replace_all(plan.entries)
            self._readonly.clear()
            self._readonly.update(plan.readonly)
            self._unconfirmed = set(plan.unconfirmed)
            self._published_here = set()
            self._uncounted = {}
            for left_out in holding:
                self._uncounted.setdefault(left_out.volume_id, {})[left_out.node_id] = left_out
            with self._gauge_lock:
                self._migrating = {entry.volume_id for entry in plan.entries if _migration_live(entry)}
                self._set_gauges()
        for entry in plan.entries:
            _warn_if_two_writers(entry, {node for volume, node in plan.unconfirmed if volume == entry.volume_id})
        for fact in plan.left_out:
            log_event(
                _log,
                "attach.rebuild.left_out",
                logging.WARNING,
                volume_id=fact.volume_id,
                node_id=fact.node_id,
                attached=fact.attached,
                reason="its node is deleted"
                if fact.node_id in gone
                else "the table holds two nodes per volume; this one holds it uncounted until there is room",
            )
        log_event(
            _log,
            "attach.rebuild",
            volumes=len(plan.entries),
            attachments=sum(len(entry.nodes) for entry in plan.entries),
            unconfirmed=len(plan.unconfirmed),
            migrations=sum(1 for entry in plan.entries if entry.migration is not None),
        )

    def _deleted_nodes_of_overflowing_volumes(self, facts: Sequence[VolumeAttachmentFact]) -> frozenset[str]:
        """Nodes provably deleted (``node_exists`` said False, not unknown) among those of volumes with more
        VolumeAttachments than the table holds."""
        nodes_of: dict[str, set[str]] = {}
        for fact in facts:
            nodes_of.setdefault(fact.volume_id, set()).add(fact.node_id)
        asked = {node for nodes in nodes_of.values() if len(nodes) > MAX_NODES for node in nodes}
        cache: dict[str, bool | None] = {}
        return frozenset(node for node in sorted(asked) if self._node_exists(node, cache) is False)

    def apply_va_event(self, kind: VaEventKind, record: VolumeAttachmentFact) -> None:
        """Follow a VolumeAttachment watch: ADDED/MODIFIED -> make sure the node holds the volume (unconfirmed
        while the VolumeAttachment is not attached); DELETED -> detach (not an attachment a publish made inside the
        grace period: see ``decide_va_deleted``)."""
        if kind not in _VA_EVENT_KINDS:
            raise ValueError(f"unknown VolumeAttachment event kind {kind!r}")
        volume_id = record.volume_id
        with self._lock(volume_id):
            now = self._clock.now()
            if kind == "DELETED":
                self._forget_uncounted(volume_id, record.node_id)
            elif record.node_id in self._uncounted.get(volume_id, {}):
                self._uncounted[volume_id][record.node_id] = record  # its newest status
            entry, events = self._settle(volume_id, now)
            decision: Decision
            if kind == "DELETED":
                decision = decide_va_deleted(
                    entry,
                    record.node_id,
                    now,
                    self._grace,
                    published_here=(volume_id, record.node_id) in self._published_here,
                )
                # Nothing more can arrive about a deleted VolumeAttachment: stop remembering its unpublish.
                self._unpublished_at.pop((volume_id, record.node_id), None)
            elif record.created_at <= self._unpublished_at.get((volume_id, record.node_id), -math.inf):
                decision = Nothing()  # the attachment this VolumeAttachment reports was unpublished since
            else:
                decision = decide_observed_attach(
                    entry,
                    volume_id,
                    record.node_id,
                    kind=access_kind(record.multi_node_block),
                    migration_timeout=record.migration_timeout,
                    now=now,
                )
            events += self._apply(volume_id, entry, decision)
            if isinstance(decision, Sync):
                if record.readonly is not None:
                    self._readonly[volume_id, record.node_id] = record.readonly
                if not record.attached:
                    self._unconfirmed.add((volume_id, record.node_id))
            elif record.attached and kind != "DELETED":
                self._unconfirmed.discard((volume_id, record.node_id))  # its status now says it was admitted
            unconfirmed = self._unconfirmed_nodes(volume_id, decision.new_entry if isinstance(decision, Sync) else None)
        self._post(volume_id, events)
        if isinstance(decision, Sync):
            _warn_if_two_writers(decision.new_entry, unconfirmed)
        log_event(
            _log, "attach.va_event", kind=kind, volume_id=volume_id, node_id=record.node_id, outcome=_outcome(decision)
        )

    def reconcile(self) -> ReconcileReport:
        """One pass over every volume: fail expired migrations, clear attachments whose node or VolumeAttachment
        is provably gone, forget volumes idle past their grace period. Facts are fetched without any lock held."""
        node_cache: dict[str, bool | None] = {}
        cleared: list[tuple[str, str]] = []
        expired: list[str] = []
        forgotten: list[str] = []
        skipped: list[str] = []
        unchanged = 0
        volume_ids = self._table.volume_ids()
        for volume_id in volume_ids:
            with self._lock(volume_id):
                now = self._clock.now()
                entry, events = self._settle(volume_id, now)
            self._post(volume_id, events)
            if events:
                expired.append(volume_id)
            if entry is None:
                continue
            if not entry.nodes:
                if self._forget_if_idle(volume_id, entry, now):
                    forgotten.append(volume_id)
                elif not events:
                    unchanged += 1
                continue
            cleared_here = self._clear_stale(volume_id, entry, node_cache)
            if cleared_here is None:
                skipped.append(volume_id)
            elif cleared_here:
                cleared.extend((volume_id, node) for node in cleared_here)
            elif not events:
                unchanged += 1
        report = ReconcileReport(
            len(volume_ids), tuple(cleared), tuple(expired), tuple(forgotten), tuple(skipped), unchanged
        )
        actions = {
            "stale_cleared": len(cleared),
            "migration_expired": len(expired),
            "forgotten": len(forgotten),
            "skipped": len(skipped),
            "unchanged": unchanged,
        }
        for action, count in actions.items():
            if count:
                self._metrics.attachment_reconcile.labels(action=action).inc(count)
        log_event(_log, "attach.reconcile", examined=report.examined, **actions)
        return report

    def _clear_stale(
        self, volume_id: str, entry: VolumeEntry, node_cache: dict[str, bool | None]
    ) -> tuple[str, ...] | None:
        """Clear the provably stale attachments of ``entry``; ``None`` if the volume changed while its facts were
        fetched (those facts describe another state, so the volume waits for the next pass)."""
        facts = {
            node: NodeFacts(self._va_exists(volume_id, node), self._node_exists(node, node_cache))
            for node in (held.node_id for held in entry.nodes)
        }
        with self._lock(volume_id):
            if self._table.get(volume_id) != entry:
                return None
            decision = decide_stale(entry, facts, self._clock.now(), self._grace)
            events = self._apply(volume_id, entry, decision)
        self._post(volume_id, events)
        return decision.cleared if isinstance(decision, ClearStale) else ()

    # ---- publish -----------------------------------------------------------------------------------------------

    def _publish(self, request: PublishRequest) -> None:
        volume_id, node_id = request.volume_id, request.node_id
        facts: BlockerFacts | None = None
        facts_for: VolumeEntry | None = None
        for _ in range(_MAX_ROUNDS):
            with self._node_lock(request), self._lock(volume_id):
                now = self._clock.now()
                entry, events = self._settle(volume_id, now)
                decision = decide_publish(
                    entry,
                    request,
                    now,
                    self._grace,
                    facts if entry == facts_for else None,
                    recorded_readonly=self._readonly.get((volume_id, node_id)),
                    strict_migration=self._strict,
                    unconfirmed=(volume_id, node_id) in self._unconfirmed,
                    node_volumes=self._table.volumes_on_node(node_id) if request.max_volumes_per_node else (),
                    uncounted=tuple(self._uncounted.get(volume_id, ())),
                )
                if not isinstance(decision, NeedFacts):
                    events += self._apply(volume_id, entry, decision)
                if isinstance(decision, Admit | ClearStaleThenAdmit):
                    self._readonly[volume_id, node_id] = request.readonly
                    self._unconfirmed.discard((volume_id, node_id))
                    self._published_here.add((volume_id, node_id))
                elif isinstance(decision, AlreadyPublished):
                    self._readonly.setdefault((volume_id, node_id), request.readonly)
                    self._published_here.add((volume_id, node_id))
            self._post(volume_id, events)
            if isinstance(decision, NeedFacts):
                facts, facts_for = self._fetch(volume_id, decision), entry
                continue
            log_event(
                _log,
                "attach.publish",
                logging.WARNING if isinstance(decision, Refuse | NodeFull) else logging.INFO,
                volume_id=volume_id,
                node_id=node_id,
                readonly=request.readonly,
                outcome=_outcome(decision),
            )
            match decision:
                case Refuse(message=message):
                    raise errors.FailedPrecondition(message)
                case RetryLater(message=message):
                    raise errors.Aborted(message)
                case Incompatible(message=message):
                    raise errors.AlreadyExists(message)
                case NodeFull(message=message):
                    raise errors.ResourceExhausted(message)
            self._save()  # also for a repeat: an earlier attempt may have failed to save
            return
        raise errors.Aborted(f"volume {volume_id} kept changing while the publish from {node_id} was decided; retry")

    def _fetch(self, volume_id: str, need: NeedFacts) -> BlockerFacts:
        nodes = {
            node: NodeFacts(self._va_exists(volume_id, node), self._ask("node_exists", self._facts.node_exists, node))
            for node in need.blocking_nodes
        }
        allowed = None
        if need.migration_target is not None and self._migration_allowed is not None:
            allowed = self._ask("migration_allowed", self._migration_allowed, volume_id, need.migration_target)
        return BlockerFacts(nodes, allowed)

    def _va_exists(self, volume_id: str, node_id: str) -> bool | None:
        return self._ask("volume_attachment_exists", self._facts.volume_attachment_exists, volume_id, node_id)

    def _node_exists(self, node_id: str, cache: dict[str, bool | None]) -> bool | None:
        if node_id not in cache:
            cache[node_id] = self._ask("node_exists", self._facts.node_exists, node_id)
        return cache[node_id]

    @staticmethod
    def _ask(question: str, answer: Callable[..., bool | None], *args: str) -> bool | None:
        """A fact, or ``None`` when asking failed: a broken facts source must leave things as they are."""
        try:
            return answer(*args)
        except Exception as error:
            log_event(_log, "attach.facts.unknown", logging.WARNING, question=question, args=args, error=repr(error))
            return None

    # ---- commit ------------------------------------------------------------------------------------------------

    def _save(self) -> None:
        if self._journal is None:
            return
        with self._journal_lock:
            self._journal.save(self._records())

    def _records(self) -> list[VolumeAttachmentFact]:
        """Every attachment as a fact ``plan_rebuild`` turns back into the same table (a migration's window
        travels with its target)."""
        records = []
        for volume_id in self._table.volume_ids():
            entry = self._table.get(volume_id)
            if entry is None:
                continue  # forgotten since the ids were listed
            migration = entry.migration
            for held in entry.nodes:
                window = (
                    migration.deadline - migration.started_at
                    if migration is not None and migration.target == held.node_id
                    else DEFAULT_MIGRATION_TIMEOUT
                )
                records.append(
                    VolumeAttachmentFact(
                        volume_id,
                        held.node_id,
                        held.attached_at,
                        attached=(volume_id, held.node_id) not in self._unconfirmed,
                        multi_node_block=entry.kind is AccessKind.MULTI_NODE_BLOCK,
                        migration_timeout=window,
                        readonly=self._readonly.get((volume_id, held.node_id)),
                    )
                )
        return records

    def _unconfirmed_nodes(self, volume_id: str, entry: VolumeEntry | None) -> frozenset[str]:
        """The nodes of ``entry`` held only by an unattached VolumeAttachment (caller holds the volume's lock)."""
        held = () if entry is None else entry.nodes
        return frozenset(node.node_id for node in held if (volume_id, node.node_id) in self._unconfirmed)

    def _lock(self, volume_id: str) -> threading.Lock:
        return self._locks[hash(volume_id) & (_LOCK_STRIPES - 1)]

    def _node_lock(self, request: PublishRequest) -> AbstractContextManager[object]:
        """The node's lock when its volumes are counted (an attach limit applies); nothing to take otherwise."""
        if not request.max_volumes_per_node:
            return nullcontext()
        return self._node_locks[hash(request.node_id) & (_LOCK_STRIPES - 1)]

    def _settle(self, volume_id: str, now: float) -> tuple[VolumeEntry | None, list[Event]]:
        """The volume's entry with its uncounted holders taken in as far as it has room, and an expired migration
        marked failed (caller holds the volume's lock)."""
        entry = self._take_in_uncounted(volume_id, self._table.get(volume_id))
        expiry = decide_expiry(entry, now)
        if isinstance(expiry, Nothing):
            return entry, []
        return expiry.new_entry, self._apply(volume_id, entry, expiry)

    def _take_in_uncounted(self, volume_id: str, entry: VolumeEntry | None) -> VolumeEntry | None:
        """Move uncounted holders into the entry, oldest VolumeAttachment first, while it has room (caller holds
        the volume's lock); each comes in as the rebuild would have taken it."""
        waiting = self._uncounted.get(volume_id)
        for fact in sorted(waiting.values(), key=lambda f: (f.created_at, f.node_id)) if waiting else ():
            if entry is not None and entry.has_node(fact.node_id):
                self._forget_uncounted(volume_id, fact.node_id)
                continue
            decision = decide_observed_attach(
                entry,
                volume_id,
                fact.node_id,
                kind=access_kind(fact.multi_node_block),
                migration_timeout=fact.migration_timeout,
                now=fact.created_at,
            )
            if not isinstance(decision, Sync):
                break  # full: it stays uncounted
            self._apply(volume_id, entry, decision)
            entry = decision.new_entry
            self._forget_uncounted(volume_id, fact.node_id)
            if not fact.attached:
                self._unconfirmed.add((volume_id, fact.node_id))
            if fact.readonly is not None:
                self._readonly[volume_id, fact.node_id] = fact.readonly
        return entry

    def _forget_uncounted(self, volume_id: str, node_id: str) -> None:
        waiting = self._uncounted.get(volume_id)
        if waiting is not None:
            waiting.pop(node_id, None)
            if not waiting:
                del self._uncounted[volume_id]

    def _apply(self, volume_id: str, entry: VolumeEntry | None, decision: Decision) -> list[Event]:
        """Commit ``decision`` and count it; returns the events to post (caller holds the volume's lock)."""
        metrics = self._metrics
        match decision:
            case Admit(new_entry=new, events=events):
                self._commit(volume_id, entry, new)
                metrics.attachment_attach.inc()
                if new.migration is not None:
                    metrics.migrations.labels(result="started").inc()
                return list(events)
            case ClearStaleThenAdmit(new_entry=new, cleared=cleared, events=events, migration_end=end):
                self._commit(volume_id, entry, new)
                metrics.attachment_stale_cleared.inc(len(cleared))
                metrics.attachment_attach.inc()
                self._count_end(end)
                return list(events)
            case Detach(new_entry=new, events=events, migration_end=end):
                self._commit(volume_id, entry, new)
                metrics.attachment_detach.inc()
                self._count_end(end)
                return list(events)
            case ClearStale(new_entry=new, cleared=cleared, events=events, migration_end=end):
                self._commit(volume_id, entry, new)
                metrics.attachment_stale_cleared.inc(len(cleared))
                self._count_end(end)
                return list(events)
            case ExpireMigration(new_entry=new, events=events):
                self._commit(volume_id, entry, new)
                metrics.migrations.labels(result="failed").inc()
                return list(events)
            case Sync(new_entry=new):
                self._commit(volume_id, entry, new)
            case Refuse(events=events):
                metrics.attachment_conflicts.inc()
                return list(events)
            case RetryLater():
                metrics.attachment_grace_period_used.inc()
        return []

    def _commit(self, volume_id: str, old: VolumeEntry | None, new: VolumeEntry | None) -> None:
        if not self._table.compare_and_swap(volume_id, old, new):
            # Only a writer that bypasses the manager (and its locks) can get here.
            raise errors.Aborted(f"volume {volume_id}: the attachment table changed outside the manager; retry")
        kept = set() if new is None else {held.node_id for held in new.nodes}
        for held in () if old is None else old.nodes:
            if held.node_id not in kept:
                self._readonly.pop((volume_id, held.node_id), None)
                self._unconfirmed.discard((volume_id, held.node_id))
                self._published_here.discard((volume_id, held.node_id))
        with self._gauge_lock:
            if new is not None and _migration_live(new):
                self._migrating.add(volume_id)
            else:
                self._migrating.discard(volume_id)
            self._set_gauges()

    def _set_gauges(self) -> None:
        self._metrics.migrations_active.set(len(self._migrating))
        self._metrics.attachments_active.set(self._table.attached_count())

    def _count_end(self, end: MigrationEnd | None) -> None:
        if end is None:
            return
        self._metrics.migrations.labels(result=end.result).inc()
        if end.result == "completed":
            self._metrics.migration_duration.observe(end.duration)

    def _forget_if_idle(self, volume_id: str, entry: VolumeEntry, now: float) -> bool:
        """Drop an entry with no node once its grace period is over; it only existed to remember the detach."""
        if entry.last_detach_at is not None and now - entry.last_detach_at < self._grace:
            return False
        with self._lock(volume_id):
            if self._table.get(volume_id) != entry:
                return False
            self._commit(volume_id, entry, None)
        return True

    # ---- reporting ---------------------------------------------------------------------------------------------

    def _post(self, volume_id: str, events: Sequence[Event]) -> None:
        for event in events:
            try:
                self._events.post(volume_id, event.reason, event.message, warning=event.warning)
            except Exception as error:
                # Events are best effort: the attachment decision stands whether or not anyone hears of it.
                log_event(_log, "attach.event.failed", logging.WARNING, volume_id=volume_id, error=repr(error))
            log_event(
                _log,
                "attach.event",
                logging.WARNING if event.warning else logging.INFO,
                volume_id=volume_id,
                reason=event.reason,
                message=event.message,
            )

    @contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        started = self._clock.now()
        try:
            yield
        finally:
            elapsed = max(0.0, self._clock.now() - started)
            self._metrics.attachment_operation_duration.labels(operation=operation).observe(elapsed)


def _migration_live(entry: VolumeEntry) -> bool:
    return entry.migration is not None and not entry.migration.failed


def _warn_if_two_writers(entry: VolumeEntry, unconfirmed: Collection[str]) -> None:
    writers = [held.node_id for held in entry.nodes if held.node_id not in unconfirmed]
    if entry.kind is AccessKind.SINGLE_NODE and len(writers) > 1:
        log_event(
            _log,
            "attach.truth.two_writers",
            logging.ERROR,
            volume_id=entry.volume_id,
            nodes=",".join(writers),
            reason="attached VolumeAttachments bind a single-node volume to two nodes",
        )


def _outcome(decision: Decision) -> str:
    match decision:
        case Refuse(kind=kind):
            return f"refused_{kind}"
        case NodeFull():
            return "refused_node_full"
    return type(decision).__name__.lower()
