"""The attachment rules, one small table per decision function, all in virtual time (``now`` is an argument)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from rds_csi._native import AccessKind, Migration, NodeAttachment, VolumeEntry
from rds_csi.attach.decisions import (
    ATTACHMENT_CONFLICT,
    MIGRATION_COMPLETED,
    MIGRATION_FAILED,
    MIGRATION_STARTED,
    STALE_ATTACHMENT_CLEARED,
    VOLUME_ATTACHED,
    VOLUME_DETACHED,
    Admit,
    AlreadyPublished,
    BlockerFacts,
    ClearStale,
    ClearStaleThenAdmit,
    Detach,
    Event,
    ExpireMigration,
    Incompatible,
    MigrationEnd,
    NeedFacts,
    NodeFacts,
    NodeFull,
    Nothing,
    PublishDecision,
    PublishRequest,
    Refuse,
    RetryLater,
    Sync,
    decide_expiry,
    decide_observed_attach,
    decide_publish,
    decide_stale,
    decide_unpublish,
    decide_va_deleted,
    migration_timeout_from_context,
)
from rds_csi.attach.rebuild import VolumeAttachmentFact, plan_rebuild
from rds_csi.core import errors

# Reaches rds_csi._native, directly or not: the pure-twin pass runs it too (tests/unit/ci/test_pure_twin_pass.py).
pytestmark = pytest.mark.native

NOW = 1000.0
GRACE = 30.0
VOL = "pvc-1"
SINGLE = AccessKind.SINGLE_NODE
BLOCK = AccessKind.MULTI_NODE_BLOCK

LIVE = NodeFacts(True, True)
UNKNOWN = NodeFacts(None, None)
VA_GONE = NodeFacts(False, True)
NODE_GONE = NodeFacts(True, False)
VA_UNKNOWN_NODE_GONE = NodeFacts(None, False)


def held(*nodes: str, at: float = NOW - 100) -> tuple[NodeAttachment, ...]:
    return tuple(NodeAttachment(node, at) for node in nodes)


def single(*nodes: str, at: float = NOW - 100, last_detach: float | None = None) -> VolumeEntry:
    return VolumeEntry(VOL, SINGLE, held(*nodes, at=at), last_detach_at=last_detach)


def block(*nodes: str, migration: Migration | None = None, last_detach: float | None = None) -> VolumeEntry:
    return VolumeEntry(VOL, BLOCK, held(*nodes), migration, last_detach)


def migrating(*, started: float = NOW - 60, window: float = 300.0, failed: bool = False) -> VolumeEntry:
    return block("a", "b", migration=Migration("a", "b", started, started + window, failed))


def publish(node: str = "b", *, multi: bool = False, readonly: bool = False, limit: int = 0) -> PublishRequest:
    return PublishRequest(
        VOL, node, multi_node_block=multi, readonly=readonly, migration_timeout=120, max_volumes_per_node=limit
    )


def facts(allowed: bool | None = None, **nodes: NodeFacts) -> BlockerFacts:
    return BlockerFacts(nodes, allowed)


def reasons(events: tuple[Event, ...]) -> list[str]:
    return [event.reason for event in events]


# ---- decide_publish: which decision, for every rule ---------------------------------------------------------------


@dataclass(frozen=True)
class PublishCase:
    entry: VolumeEntry | None
    request: PublishRequest
    expected: type
    facts: BlockerFacts | None = None
    recorded_readonly: bool | None = None
    strict: bool = False
    refuse_kind: str | None = None
    unconfirmed: bool = False
    node_volumes: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


PUBLISH_CASES = {
    "unknown volume is admitted": PublishCase(None, publish(), Admit),
    "volume with no node is admitted": PublishCase(single(last_detach=NOW - 1), publish(), Admit),
    "same node again is idempotent": PublishCase(single("b"), publish(), AlreadyPublished, recorded_readonly=False),
    "same node after rebuild adopts any readonly": PublishCase(single("b"), publish(readonly=True), AlreadyPublished),
    "same node other readonly is incompatible": PublishCase(
        single("b"), publish(readonly=True), Incompatible, recorded_readonly=False
    ),
    "same node other access kind is incompatible": PublishCase(single("b"), publish(multi=True), Incompatible),
    "single-node conflict asks for facts": PublishCase(single("a"), publish(), NeedFacts),
    "single-node conflict with facts missing the blocker asks again": PublishCase(
        single("a"), publish(), NeedFacts, facts(x=VA_GONE)
    ),
    "single-node conflict with a live blocker is refused": PublishCase(
        single("a"), publish(), Refuse, facts(a=LIVE), refuse_kind="conflict"
    ),
    "unknown facts are never proof": PublishCase(
        single("a"), publish(), Refuse, facts(a=UNKNOWN), refuse_kind="conflict"
    ),
    "unknown VolumeAttachment with a present node is refused": PublishCase(
        single("a"), publish(), Refuse, facts(a=NodeFacts(None, True)), refuse_kind="conflict"
    ),
    "blocker whose VolumeAttachment vanished is cleared": PublishCase(
        single("a"), publish(), ClearStaleThenAdmit, facts(a=VA_GONE)
    ),
    "blocker whose node is deleted is cleared": PublishCase(
        single("a"), publish(), ClearStaleThenAdmit, facts(a=NODE_GONE)
    ),
    "deleted node proves staleness even with its VolumeAttachment unknown": PublishCase(
        single("a"), publish(), ClearStaleThenAdmit, facts(a=VA_UNKNOWN_NODE_GONE)
    ),
    "inside the grace period a conflict is retried, facts or not": PublishCase(
        single("a", at=NOW - 10, last_detach=NOW - 20), publish(), RetryLater
    ),
    "inside the grace period a provably stale blocker is still not cleared": PublishCase(
        single("a", at=NOW - 10, last_detach=NOW - 20), publish(), RetryLater, facts(a=VA_GONE)
    ),
    "the grace period ends exactly at its length": PublishCase(
        single("a", at=NOW - 40, last_detach=NOW - GRACE), publish(), NeedFacts
    ),
    "a blocker younger than the grace period is not cleared on facts": PublishCase(
        single("a", at=NOW - 5), publish(), RetryLater, facts(a=NODE_GONE)
    ),
    "a young live blocker is refused, not retried": PublishCase(
        single("a", at=NOW - 5), publish(), Refuse, facts(a=LIVE), refuse_kind="conflict"
    ),
    "two blockers, one live, is refused": PublishCase(
        single("a", "c"), publish(), Refuse, facts(a=NODE_GONE, c=LIVE), refuse_kind="conflict"
    ),
    "two blockers, both gone, are both cleared": PublishCase(
        single("a", "c"), publish(), ClearStaleThenAdmit, facts(a=NODE_GONE, c=VA_GONE)
    ),
    "multi-node block volume asked for single-node access is a conflict": PublishCase(block("a"), publish(), NeedFacts),
    "single-node volume asked for multi-node block access is a conflict": PublishCase(
        single("a"), publish(multi=True), NeedFacts
    ),
    "multi-node block second node starts a migration": PublishCase(block("a"), publish(multi=True), Admit),
    "migration start ignores the grace period": PublishCase(
        block("a", last_detach=NOW - 1), publish(multi=True), Admit
    ),
    "a third node during a migration is refused": PublishCase(
        migrating(), publish("c", multi=True), Refuse, refuse_kind="third_node"
    ),
    "a third node with two nodes and no migration is refused": PublishCase(
        block("a", "b"), publish("c", multi=True), Refuse, refuse_kind="third_node"
    ),
    "a new node after a failed migration is refused": PublishCase(
        migrating(failed=True), publish("c", multi=True), Refuse, refuse_kind="migration_expired"
    ),
    "a new node past the migration window is refused before it is marked": PublishCase(
        migrating(started=NOW - 300, window=300), publish("c", multi=True), Refuse, refuse_kind="migration_expired"
    ),
    "a side of an expired migration republishing is idempotent": PublishCase(
        migrating(failed=True), publish("b", multi=True), AlreadyPublished
    ),
    "strict mode asks whether the migration is allowed": PublishCase(
        block("a"), publish(multi=True), NeedFacts, strict=True
    ),
    "strict mode admits an allowed migration": PublishCase(
        block("a"), publish(multi=True), Admit, facts(allowed=True), strict=True
    ),
    "strict mode refuses a denied migration": PublishCase(
        block("a"), publish(multi=True), Refuse, facts(allowed=False), strict=True, refuse_kind="migration_not_allowed"
    ),
    "strict mode refuses when permission is unknown": PublishCase(
        block("a"), publish(multi=True), Refuse, facts(allowed=None), strict=True, refuse_kind="migration_not_allowed"
    ),
    "an unconfirmed node alone is admitted, not taken as a repeat": PublishCase(
        single("b"), publish(), Admit, unconfirmed=True
    ),
    "an unconfirmed node next to another holder asks for facts": PublishCase(
        single("a", "b"), publish(), NeedFacts, unconfirmed=True
    ),
    "an unconfirmed node next to a live holder is refused": PublishCase(
        single("a", "b"), publish(), Refuse, facts(a=LIVE), unconfirmed=True, refuse_kind="conflict"
    ),
    "an unconfirmed node next to a provably stale holder clears it": PublishCase(
        single("a", "b"), publish(), ClearStaleThenAdmit, facts(a=NODE_GONE), unconfirmed=True
    ),
    "an unconfirmed migration target is admitted as a migration": PublishCase(
        migrating(), publish("b", multi=True), Admit, unconfirmed=True
    ),
    "an unconfirmed migration target still needs strict permission": PublishCase(
        migrating(), publish("b", multi=True), NeedFacts, strict=True, unconfirmed=True
    ),
    "an unconfirmed side of an expired migration is refused": PublishCase(
        migrating(failed=True), publish("b", multi=True), Refuse, unconfirmed=True, refuse_kind="migration_expired"
    ),
    # The node's attach limit: only an admission is refused for it, and only what else the node holds counts.
    "a node below its limit is admitted": PublishCase(None, publish(limit=2), Admit, node_volumes=("x",)),
    "a node at its limit gets no further volume": PublishCase(
        None, publish(limit=2), NodeFull, node_volumes=("x", "y")
    ),
    "a node past its limit (lowered since) gets no further volume": PublishCase(
        None, publish(limit=1), NodeFull, node_volumes=("x", "y")
    ),
    "without a limit a node takes any number": PublishCase(
        None, publish(limit=0), Admit, node_volumes=tuple(f"v{i}" for i in range(500))
    ),
    "a repeat publish to a full node is idempotent": PublishCase(
        single("b"), publish(limit=1), AlreadyPublished, recorded_readonly=False, node_volumes=(VOL,)
    ),
    "a volume a full node holds only unconfirmed is not counted twice": PublishCase(
        single("b"), publish(limit=1), Admit, unconfirmed=True, node_volumes=(VOL,)
    ),
    "an unconfirmed node that is full with other volumes is refused": PublishCase(
        single("b"), publish(limit=1), NodeFull, unconfirmed=True, node_volumes=(VOL, "x")
    ),
    "a migration target that is full is refused": PublishCase(
        block("a"), publish(multi=True, limit=1), NodeFull, node_volumes=("x",)
    ),
    "a full node still asks for facts about a blocker first": PublishCase(
        single("a"), publish(limit=1), NeedFacts, node_volumes=("x",)
    ),
    "a conflict on a full node stays a conflict": PublishCase(
        single("a"), publish(limit=1), Refuse, facts(a=LIVE), refuse_kind="conflict", node_volumes=("x",)
    ),
    "a provably stale blocker does not make room on a full node": PublishCase(
        single("a"), publish(limit=1), NodeFull, facts(a=VA_GONE), node_volumes=("x",)
    ),
    "inside the grace period a full node is still retried later": PublishCase(
        single("a", at=NOW - 10, last_detach=NOW - 20), publish(limit=1), RetryLater, node_volumes=("x",)
    ),
}


def _decide(case: PublishCase) -> PublishDecision:
    return decide_publish(
        case.entry,
        case.request,
        NOW,
        GRACE,
        case.facts,
        recorded_readonly=case.recorded_readonly,
        strict_migration=case.strict,
        unconfirmed=case.unconfirmed,
        node_volumes=case.node_volumes,
    )


@pytest.mark.parametrize("case", PUBLISH_CASES.values(), ids=PUBLISH_CASES.keys())
def test_publish_rule_table(case: PublishCase) -> None:
    decision = _decide(case)
    assert type(decision) is case.expected, decision
    if case.refuse_kind is not None:
        assert isinstance(decision, Refuse)
        assert decision.kind == case.refuse_kind
        assert reasons(decision.events) == [ATTACHMENT_CONFLICT]
        assert all(event.warning for event in decision.events)


def test_publish_grace_period_never_admits_a_second_writer_at_any_point_inside_it() -> None:
    for age in (0.0, 0.5, 10.0, GRACE - 0.001):
        entry = single("a", at=NOW - 200, last_detach=NOW - age)
        for blocker_facts in (None, facts(a=VA_GONE), facts(a=NODE_GONE), facts(a=LIVE)):
            decision = decide_publish(entry, publish(), NOW, GRACE, blocker_facts)
            assert isinstance(decision, RetryLater)
            assert "grace period" in decision.message


def test_publish_unknown_facts_never_admit_whatever_the_age() -> None:
    for attached in (NOW - 10_000, NOW - GRACE, NOW - 1):
        decision = decide_publish(single("a", at=attached), publish(), NOW, GRACE, facts(a=UNKNOWN))
        assert isinstance(decision, Refuse)


def test_publish_admit_records_node_at_now_and_keeps_last_detach() -> None:
    decision = decide_publish(single(last_detach=NOW - 5), publish(), NOW, GRACE)
    assert isinstance(decision, Admit)
    assert decision.new_entry == VolumeEntry(VOL, SINGLE, (NodeAttachment("b", NOW),), last_detach_at=NOW - 5)
    assert reasons(decision.events) == [VOLUME_ATTACHED]
    assert not decision.events[0].warning


def test_publish_with_uncounted_holders_admits_nobody_new_and_repeats_for_holders() -> None:
    # Uncounted: VolumeAttachments a rebuild could not fit in the entry; any of them may be a writer.
    for entry, request in (
        (None, publish()),  # nothing in the table, yet c may write
        (block("a"), publish(multi=True)),  # would start a migration next to a
        (single("a", at=NOW - 200), publish()),  # a provably stale blocker would otherwise be cleared
    ):
        decision = decide_publish(entry, request, NOW, GRACE, facts(a=NODE_GONE), uncounted=("c",))
        assert isinstance(decision, Refuse), (entry, decision)
        assert decision.kind == "uncounted_holders"
        assert "VolumeAttachments on c" in decision.message
    repeat = decide_publish(block("a", "b"), publish("a", multi=True), NOW, GRACE, uncounted=("c",))
    assert isinstance(repeat, AlreadyPublished)


def test_publish_refused_conflict_names_the_holder_and_warns() -> None:
    decision = decide_publish(single("a"), publish(), NOW, GRACE, facts(a=LIVE))
    assert isinstance(decision, Refuse)
    assert "node a" in decision.message
    assert "node b" in decision.message
    assert decision.events == (Event(ATTACHMENT_CONFLICT, decision.message, warning=True),)


def test_publish_clear_stale_then_admit_replaces_the_blocker_and_says_why() -> None:
    decision = decide_publish(single("a"), publish(), NOW, GRACE, facts(a=NODE_GONE))
    assert isinstance(decision, ClearStaleThenAdmit)
    assert decision.cleared == ("a",)
    assert decision.new_entry == VolumeEntry(VOL, SINGLE, (NodeAttachment("b", NOW),), last_detach_at=NOW)
    assert reasons(decision.events) == [STALE_ATTACHMENT_CLEARED, VOLUME_ATTACHED]
    assert "Node object is deleted" in decision.events[0].message
    assert decision.events[0].warning
    assert decision.migration_end is None


def test_publish_clearing_both_sides_of_a_migration_fails_it() -> None:
    decision = decide_publish(migrating(), publish("c"), NOW, GRACE, facts(a=NODE_GONE, b=VA_GONE))
    assert isinstance(decision, ClearStaleThenAdmit)
    assert decision.cleared == ("a", "b")
    assert decision.migration_end == MigrationEnd("failed", 60.0)
    assert reasons(decision.events) == [
        STALE_ATTACHMENT_CLEARED,
        STALE_ATTACHMENT_CLEARED,
        MIGRATION_FAILED,
        VOLUME_ATTACHED,
    ]
    assert decision.new_entry.kind is SINGLE
    assert decision.new_entry.migration is None


def test_publish_migration_start_sets_source_target_and_window() -> None:
    decision = decide_publish(block("a"), publish(multi=True), NOW, GRACE)
    assert isinstance(decision, Admit)
    assert [node.node_id for node in decision.new_entry.nodes] == ["a", "b"]
    assert decision.new_entry.migration == Migration("a", "b", NOW, NOW + 120)
    assert reasons(decision.events) == [MIGRATION_STARTED]


def test_publish_retry_later_for_a_young_blocker_explains_it() -> None:
    decision = decide_publish(single("a", at=NOW - 5), publish(), NOW, GRACE, facts(a=VA_GONE))
    assert isinstance(decision, RetryLater)
    assert "younger than the 30s grace period" in decision.message


def test_publish_of_an_unconfirmed_target_keeps_the_migration_window_it_was_given() -> None:
    entry = migrating(started=NOW - 200, window=300)
    decision = decide_publish(entry, publish("b", multi=True), NOW, GRACE, unconfirmed=True)
    assert isinstance(decision, Admit)
    assert decision.new_entry.migration == entry.migration  # not restarted at NOW with the request's 120 s
    assert [node.node_id for node in decision.new_entry.nodes] == ["a", "b"]
    assert reasons(decision.events) == [MIGRATION_STARTED]


def test_publish_of_an_unconfirmed_node_keeps_the_last_detach_for_the_grace_rule() -> None:
    entry = single("a", "b", last_detach=NOW - 5)
    decision = decide_publish(entry, publish(), NOW, GRACE, facts(a=NODE_GONE), unconfirmed=True)
    assert isinstance(decision, RetryLater)
    assert "grace period" in decision.message


def test_publish_with_zero_grace_clears_even_a_fresh_stale_blocker() -> None:
    decision = decide_publish(single("a", at=NOW, last_detach=NOW), publish(), NOW, 0.0, facts(a=VA_GONE))
    assert isinstance(decision, ClearStaleThenAdmit)


# ---- decide_unpublish -------------------------------------------------------------------------------------------


UNPUBLISH_CASES = {
    "unknown volume": (None, "a", Nothing, None, None),
    "unknown node": (single("a"), "b", Nothing, None, None),
    "only node": (single("a"), "a", Detach, None, VOLUME_DETACHED),
    "one of two without migration": (block("a", "b"), "b", Detach, None, VOLUME_DETACHED),
    "migration source completes it": (migrating(), "a", Detach, MigrationEnd("completed", 60.0), MIGRATION_COMPLETED),
    "migration target rolls it back": (migrating(), "b", Detach, MigrationEnd("failed", 60.0), MIGRATION_FAILED),
    "failed migration side is a plain detach": (migrating(failed=True), "a", Detach, None, VOLUME_DETACHED),
    "source after the window is a failure": (
        migrating(started=NOW - 400, window=300),
        "a",
        Detach,
        MigrationEnd("failed", 400.0),
        MIGRATION_FAILED,
    ),
}


@pytest.mark.parametrize(
    ("entry", "node", "expected", "end", "reason"), UNPUBLISH_CASES.values(), ids=UNPUBLISH_CASES.keys()
)
def test_unpublish_rule_table(
    entry: VolumeEntry | None, node: str, expected: type, end: MigrationEnd | None, reason: str | None
) -> None:
    decision = decide_unpublish(entry, node, NOW)
    assert type(decision) is expected
    if isinstance(decision, Detach):
        assert decision.migration_end == end
        assert reasons(decision.events) == [reason]
        assert decision.events[0].warning == (reason == MIGRATION_FAILED)
        assert not decision.new_entry.has_node(node)
        assert decision.new_entry.migration is None
        assert decision.new_entry.last_detach_at == NOW


def test_unpublish_partial_detach_during_migration_keeps_the_other_node() -> None:
    for leaving, staying in (("a", "b"), ("b", "a")):
        decision = decide_unpublish(migrating(), leaving, NOW)
        assert isinstance(decision, Detach)
        assert [node.node_id for node in decision.new_entry.nodes] == [staying]


def test_unpublish_rollback_message_names_the_reason() -> None:
    decision = decide_unpublish(migrating(), "b", NOW)
    assert isinstance(decision, Detach)
    assert "rolled back" in decision.events[0].message


# ---- decide_expiry ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expires"),
    [
        pytest.param(None, False, id="unknown volume"),
        pytest.param(single("a"), False, id="no migration"),
        pytest.param(migrating(started=NOW - 100, window=300), False, id="inside the window"),
        pytest.param(migrating(started=NOW - 300, window=300), True, id="at the deadline"),
        pytest.param(migrating(started=NOW - 3000, window=300), True, id="long past the deadline"),
        pytest.param(migrating(started=NOW - 3000, window=300, failed=True), False, id="already failed"),
    ],
)
def test_expiry_rule_table(entry: VolumeEntry | None, expires: bool) -> None:
    decision = decide_expiry(entry, NOW)
    assert isinstance(decision, ExpireMigration) == expires
    if isinstance(decision, ExpireMigration):
        assert entry is not None
        assert entry.migration is not None
        assert decision.new_entry.migration == replace(entry.migration, failed=True)
        assert decision.new_entry.nodes == entry.nodes
        assert reasons(decision.events) == [MIGRATION_FAILED]
        assert decision.events[0].warning


# ---- decide_stale (reconciler) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "node_facts", "cleared"),
    [
        pytest.param(single("a"), {"a": LIVE}, (), id="live"),
        pytest.param(single("a"), {"a": UNKNOWN}, (), id="unknown is never proof"),
        pytest.param(single("a"), {}, (), id="no facts"),
        pytest.param(single("a"), {"a": VA_GONE}, ("a",), id="VolumeAttachment vanished"),
        pytest.param(single("a"), {"a": NODE_GONE}, ("a",), id="node deleted"),
        pytest.param(single("a", at=NOW - 1), {"a": NODE_GONE}, (), id="younger than the grace period"),
        pytest.param(migrating(), {"a": LIVE, "b": NODE_GONE}, ("b",), id="migration target node deleted"),
        pytest.param(migrating(), {"a": NODE_GONE, "b": LIVE}, ("a",), id="migration source node deleted"),
        pytest.param(migrating(), {"a": VA_GONE, "b": NODE_GONE}, ("a", "b"), id="both sides gone"),
    ],
)
def test_stale_rule_table(entry: VolumeEntry, node_facts: dict[str, NodeFacts], cleared: tuple[str, ...]) -> None:
    decision = decide_stale(entry, node_facts, NOW, GRACE)
    if not cleared:
        assert isinstance(decision, Nothing)
        return
    assert isinstance(decision, ClearStale)
    assert decision.cleared == cleared
    assert all(not decision.new_entry.has_node(node) for node in cleared)
    assert reasons(decision.events)[: len(cleared)] == [STALE_ATTACHMENT_CLEARED] * len(cleared)
    if entry.migration is not None:
        assert decision.migration_end == MigrationEnd("failed", 60.0)
        assert reasons(decision.events)[-1] == MIGRATION_FAILED
        assert decision.new_entry.migration is None


def test_stale_unknown_volume_is_nothing() -> None:
    assert isinstance(decide_stale(None, {"a": NODE_GONE}, NOW, GRACE), Nothing)


# ---- decide_va_deleted ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(None, Nothing, id="unknown volume"),
        pytest.param(single("x"), Nothing, id="other node"),
        pytest.param(single("a", at=NOW - 100), Detach, id="old attachment is detached"),
        pytest.param(single("a", at=NOW - 1), Nothing, id="fresh attachment may belong to a newer object"),
    ],
)
def test_va_deleted_rule_table(entry: VolumeEntry | None, expected: type) -> None:
    assert type(decide_va_deleted(entry, "a", NOW, GRACE, published_here=True)) is expected


def test_va_deleted_ends_a_fresh_hold_no_publish_made() -> None:
    """A hold from the rebuild or the watch belongs to the deleted object itself: the grace period does not apply."""
    assert type(decide_va_deleted(single("a", at=NOW - 1), "a", NOW, GRACE, published_here=False)) is Detach
    assert type(decide_va_deleted(single("x", at=NOW - 1), "a", NOW, GRACE, published_here=False)) is Nothing


# ---- decide_observed_attach and rebuild -------------------------------------------------------------------------


def test_observed_attach_rule_table() -> None:
    def observe(entry: VolumeEntry | None, node: str, kind: AccessKind) -> Sync | Nothing:
        return decide_observed_attach(entry, VOL, node, kind=kind, migration_timeout=5, now=NOW)

    first = observe(None, "a", SINGLE)
    assert isinstance(first, Sync)
    assert first.new_entry == VolumeEntry(VOL, SINGLE, (NodeAttachment("a", NOW),))
    assert isinstance(observe(single("a"), "a", SINGLE), Nothing)
    assert isinstance(observe(block("a", "b"), "c", BLOCK), Nothing)
    reused = observe(single(last_detach=NOW - 3), "a", BLOCK)
    assert isinstance(reused, Sync)
    assert reused.new_entry.kind is BLOCK
    assert reused.new_entry.last_detach_at == NOW - 3
    migration = observe(block("a"), "b", BLOCK)
    assert isinstance(migration, Sync)
    # The timeout is clamped to 30 s here as everywhere.
    assert migration.new_entry.migration == Migration("a", "b", NOW, NOW + 30)
    two_writers = observe(block("a"), "b", SINGLE)
    assert isinstance(two_writers, Sync)
    assert two_writers.new_entry.kind is SINGLE
    assert two_writers.new_entry.migration is None
    assert [node.node_id for node in two_writers.new_entry.nodes] == ["a", "b"]


def va(
    node: str,
    created: float,
    *,
    volume: str = VOL,
    attached: bool = True,
    multi: bool = False,
    migration_timeout: float = 300.0,
    readonly: bool | None = None,
) -> VolumeAttachmentFact:
    return VolumeAttachmentFact(volume, node, created, attached, multi, migration_timeout, readonly)


def test_rebuild_two_block_attachments_are_a_migration_counted_from_the_newer() -> None:
    plan = plan_rebuild([va("b", 500.0, multi=True, migration_timeout=600), va("a", 100.0, multi=True)])
    (entry,) = plan.entries
    assert [node.node_id for node in entry.nodes] == ["a", "b"]
    assert entry.nodes[0].attached_at == 100.0
    assert entry.migration == Migration("a", "b", 500.0, 1100.0)
    assert plan.left_out == ()


def test_rebuild_counts_unattached_volume_attachments_as_unconfirmed_holders_and_keeps_readonly() -> None:
    plan = plan_rebuild(
        [
            va("a", 1.0, readonly=True),
            va("b", 2.0, volume="pvc-2", attached=False),
            va("c", 3.0, volume="pvc-3", readonly=False),
            va("d", 4.0, volume="pvc-3"),
        ]
    )
    held_by = {entry.volume_id: [node.node_id for node in entry.nodes] for entry in plan.entries}
    assert held_by == {VOL: ["a"], "pvc-2": ["b"], "pvc-3": ["c", "d"]}
    assert plan.unconfirmed == {("pvc-2", "b")}
    assert plan.readonly == {(VOL, "a"): True, ("pvc-3", "c"): False}


def test_rebuild_an_unattached_migration_target_gets_its_window_from_its_volume_attachment() -> None:
    plan = plan_rebuild([va("a", 100.0, multi=True), va("b", 500.0, multi=True, attached=False)])
    (entry,) = plan.entries
    assert entry.migration == Migration("a", "b", 500.0, 800.0)
    assert plan.unconfirmed == {(VOL, "b")}


def test_rebuild_keeps_attached_volume_attachments_before_newer_unattached_ones() -> None:
    plan = plan_rebuild([va("a", 1.0), va("b", 2.0), va("c", 3.0, attached=False), va("d", 4.0, attached=False)])
    (entry,) = plan.entries
    assert [node.node_id for node in entry.nodes] == ["a", "b"]
    assert plan.unconfirmed == frozenset()
    assert sorted(fact.node_id for fact in plan.left_out) == ["c", "d"]
    filled = plan_rebuild([va("a", 1.0), va("c", 3.0, attached=False), va("d", 4.0, attached=False)])
    assert [node.node_id for node in filled.entries[0].nodes] == ["a", "d"]
    assert [fact.node_id for fact in filled.left_out] == ["c"]


def test_rebuild_one_node_with_two_volume_attachments_stands_by_the_attached_one() -> None:
    plan = plan_rebuild([va("a", 1.0, attached=False), va("a", 5.0)])
    (entry,) = plan.entries
    assert entry.nodes == (NodeAttachment("a", 5.0),)
    assert plan.unconfirmed == frozenset()


def test_rebuild_keeps_the_two_newest_and_reports_the_rest() -> None:
    plan = plan_rebuild([va("c", 3.0), va("a", 1.0), va("b", 2.0), va("c", 5.0)])
    (entry,) = plan.entries
    assert [node.node_id for node in entry.nodes] == ["b", "c"]
    assert entry.kind is SINGLE
    assert [fact.node_id for fact in plan.left_out] == ["a"]


def test_rebuild_mixed_kinds_fall_back_to_single_node() -> None:
    plan = plan_rebuild([va("a", 1.0, multi=True), va("b", 2.0)])
    (entry,) = plan.entries
    assert entry.kind is SINGLE
    assert entry.migration is None


# ---- inputs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 300.0), ("45", 45.0), ("5", 30.0), ("99999", 3600.0), ("120.5", 120.5)],
)
def test_migration_timeout_from_context_defaults_and_clamps(raw: str | None, expected: float) -> None:
    context = {} if raw is None else {"migrationTimeoutSeconds": raw}
    assert migration_timeout_from_context(context) == expected


@pytest.mark.parametrize("raw", ["abc", "", "nan", "inf"])
def test_migration_timeout_from_context_garbage_is_invalid_argument(raw: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="migrationTimeoutSeconds"):
        migration_timeout_from_context({"migrationTimeoutSeconds": raw})


def test_publish_request_clamps_its_timeout_and_needs_ids() -> None:
    assert PublishRequest(VOL, "a", migration_timeout=1).migration_timeout == 30.0
    assert PublishRequest(VOL, "a", migration_timeout=10**6).migration_timeout == 3600.0
    with pytest.raises(errors.InvalidArgument):
        PublishRequest("", "a")
    with pytest.raises(errors.InvalidArgument):
        PublishRequest(VOL, "")
    with pytest.raises(errors.InvalidArgument, match="max_volumes_per_node"):
        PublishRequest(VOL, "a", max_volumes_per_node=-1)


def test_publish_refused_for_the_node_limit_names_node_count_and_limit() -> None:
    decision = decide_publish(None, publish("n", limit=2), NOW, GRACE, node_volumes=("x", "y", VOL))
    assert isinstance(decision, NodeFull)
    assert "node n already holds 2 volumes, its limit of 2" in decision.message
    assert VOL in decision.message
