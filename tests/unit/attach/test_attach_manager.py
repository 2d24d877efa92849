"""AttachmentManager and Reconciler over both table backends, with in-process fakes of the facts and event ports.

Time is virtual (``ManualClock``); metrics are read back from the manager's own registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from rds_csi._native import AttachmentTable, available_backends
from rds_csi.attach import (
    AttachmentManager,
    MigrationAllowed,
    PublishRequest,
    Reconciler,
    ReconcileReport,
    VolumeAttachmentFact,
)
from rds_csi.core import errors
from rds_csi.core.clock import ManualClock
from rds_csi.observability.metrics import Metrics

# Reaches rds_csi._native, directly or not: the pure-twin pass runs it too (tests/unit/ci/test_pure_twin_pass.py).
pytestmark = pytest.mark.native

VOL = "pvc-1"
T0 = 1000.0


class FakeFacts:
    """Answers from dicts (default: everything exists); ``during`` runs inside every call, for races."""

    def __init__(self) -> None:
        self.vas: dict[tuple[str, str], list[bool | None]] = {}
        self.nodes: dict[str, bool | None] = {}
        self.calls: list[tuple[str, ...]] = []
        self.during: Callable[[], None] | None = None
        self.broken = False

    def volume_attachment_exists(self, volume_id: str, node_id: str) -> bool | None:
        self._called("va", volume_id, node_id)
        answers = self.vas.get((volume_id, node_id))
        if not answers:
            return True
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def node_exists(self, node_id: str) -> bool | None:
        self._called("node", node_id)
        return self.nodes.get(node_id, True)

    def _called(self, *call: str) -> None:
        self.calls.append(call)
        if self.during is not None:
            self.during()
        if self.broken:
            raise ConnectionError("API server unreachable")


@dataclass
class RecordingSink:
    posted: list[tuple[str, str, str, bool]] = field(default_factory=list)
    broken: bool = False

    def post(self, volume_id: str, reason: str, message: str, *, warning: bool = False) -> None:
        if self.broken:
            raise RuntimeError("event queue closed")
        self.posted.append((volume_id, reason, message, warning))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _, _ in self.posted]

    def warnings(self) -> list[str]:
        return [reason for _, reason, _, warning in self.posted if warning]


@dataclass
class Harness:
    table: AttachmentTable
    clock: ManualClock = field(default_factory=lambda: ManualClock(T0))
    facts: FakeFacts = field(default_factory=FakeFacts)
    sink: RecordingSink = field(default_factory=RecordingSink)
    metrics: Metrics = field(default_factory=Metrics)
    grace: float = 30.0
    strict: bool = False
    allowed: MigrationAllowed | None = None
    manager: AttachmentManager = field(init=False)

    def __post_init__(self) -> None:
        self.manager = AttachmentManager(
            self.table,
            self.facts,
            self.sink,
            self.clock,
            self.metrics,
            grace_seconds=self.grace,
            strict_migration=self.strict,
            migration_allowed=self.allowed,
        )

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(f"rds_csi_{name}", labels) or 0.0

    def publish(
        self,
        node: str,
        volume: str = VOL,
        *,
        multi_node_block: bool = False,
        readonly: bool = False,
        migration_timeout: float = 300.0,
        limit: int = 0,
    ) -> None:
        self.manager.publish(PublishRequest(volume, node, multi_node_block, readonly, migration_timeout, limit))

    def nodes(self, volume: str = VOL) -> list[str]:
        return self.manager.published_nodes(volume)


@pytest.fixture(params=sorted(available_backends()))
def table(request: pytest.FixtureRequest) -> AttachmentTable:
    made: AttachmentTable = available_backends()[request.param].AttachmentTable(stripes=4)
    return made


@pytest.fixture
def h(table: AttachmentTable) -> Harness:
    return Harness(table)


def finishes(action: Callable[[], None], timeout: float = 5.0) -> bool:
    """Run ``action`` on another thread: True if it returned in time (it blocks if the caller holds its lock).

    Called from inside a facts call, whose exceptions the manager turns into "unknown", so it reports instead
    of raising and the test asserts on the result afterwards.
    """
    done = threading.Event()

    def run() -> None:
        action()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(timeout)


def poll(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.005)


# ---- publish / unpublish ----------------------------------------------------------------------------------------


def test_publish_new_volume_attaches_posts_and_counts(h: Harness) -> None:
    h.publish("a")
    assert h.nodes() == ["a"]
    assert h.sink.reasons() == ["VolumeAttached"]
    assert h.value("attachment_attach_total") == 1
    assert h.value("attachments_active") == 1
    assert h.value("attachment_operation_duration_seconds_count", operation="publish") == 1


def test_publish_same_node_twice_is_idempotent(h: Harness) -> None:
    h.publish("a")
    h.publish("a")
    assert h.nodes() == ["a"]
    assert h.sink.reasons() == ["VolumeAttached"]
    assert h.value("attachment_attach_total") == 1
    assert h.facts.calls == []


def test_publish_second_node_single_writer_is_failed_precondition(h: Harness) -> None:
    h.publish("a")
    with pytest.raises(errors.FailedPrecondition, match="node a"):
        h.publish("b")
    assert h.nodes() == ["a"]
    assert h.sink.warnings() == ["AttachmentConflict"]
    assert h.value("attachment_conflicts_total") == 1
    assert ("va", VOL, "a") in h.facts.calls
    assert ("node", "a") in h.facts.calls


@pytest.mark.parametrize("outage", ["unknown", "raises"])
def test_publish_second_node_with_api_down_is_failed_precondition(h: Harness, outage: str) -> None:
    h.publish("a")
    h.clock.advance(100)
    if outage == "unknown":
        h.facts.vas[VOL, "a"] = [None]
        h.facts.nodes["a"] = None
    else:
        h.facts.broken = True
    with pytest.raises(errors.FailedPrecondition):
        h.publish("b")
    assert h.nodes() == ["a"]
    assert h.value("attachment_stale_cleared_total") == 0


@pytest.mark.parametrize("gone", ["volume attachment", "node"])
def test_publish_second_node_with_provably_stale_blocker_clears_and_admits(h: Harness, gone: str) -> None:
    h.publish("a")
    h.clock.advance(100)
    if gone == "node":
        h.facts.nodes["a"] = False
    else:
        h.facts.vas[VOL, "a"] = [False]
    h.publish("b")
    assert h.nodes() == ["b"]
    assert h.sink.reasons() == ["VolumeAttached", "StaleAttachmentCleared", "VolumeAttached"]
    assert h.value("attachment_stale_cleared_total") == 1
    assert h.value("attachment_attach_total") == 2
    assert h.value("attachments_active") == 1


def test_publish_inside_grace_is_aborted_without_facts_then_verified_after(h: Harness) -> None:
    h.publish("a")
    h.manager.unpublish(VOL, "a")
    h.publish("a")
    h.clock.advance(29)
    h.facts.nodes["a"] = False
    with pytest.raises(errors.Aborted, match="grace period"):
        h.publish("b")
    assert h.facts.calls == []
    assert h.value("attachment_grace_period_used_total") == 1
    assert h.nodes() == ["a"]
    h.clock.advance(2)
    h.publish("b")
    assert h.nodes() == ["b"]


def test_publish_readonly_mismatch_is_already_exists_until_unpublished(h: Harness) -> None:
    h.publish("a", readonly=True)
    with pytest.raises(errors.AlreadyExists, match="readonly"):
        h.publish("a", readonly=False)
    h.manager.unpublish(VOL, "a")
    h.publish("a", readonly=False)
    h.publish("a", readonly=False)


def test_publish_access_kind_mismatch_on_same_node_is_already_exists(h: Harness) -> None:
    h.publish("a")
    with pytest.raises(errors.AlreadyExists, match="access"):
        h.publish("a", multi_node_block=True)


def test_unpublish_unknown_volume_or_node_is_ok(h: Harness) -> None:
    h.manager.unpublish("pvc-none", "a")
    h.publish("a")
    h.manager.unpublish(VOL, "b")
    assert h.nodes() == ["a"]
    assert h.value("attachment_detach_total") == 0
    assert h.value("attachment_operation_duration_seconds_count", operation="unpublish") == 2


def test_unpublish_detaches_posts_and_counts(h: Harness) -> None:
    h.publish("a")
    h.manager.unpublish(VOL, "a")
    assert h.nodes() == []
    assert h.sink.reasons() == ["VolumeAttached", "VolumeDetached"]
    assert h.value("attachment_detach_total") == 1
    assert h.value("attachments_active") == 0


def test_publish_duration_is_measured_on_the_injected_clock(h: Harness) -> None:
    h.publish("a")
    h.clock.advance(100)
    h.facts.during = lambda: h.clock.advance(0.125)
    with pytest.raises(errors.FailedPrecondition):
        h.publish("b")
    # Two facts calls (VolumeAttachment, node), each 0.125 s of virtual time.
    assert h.value("attachment_operation_duration_seconds_sum", operation="publish") == 0.25


def test_publish_facts_for_an_older_snapshot_are_asked_again(table: AttachmentTable) -> None:
    h = Harness(table, grace=0.0)
    h.publish("a")
    h.clock.advance(100)
    # The first answer describes the attachment that existed before "a" re-attached during the facts call.
    h.facts.vas[VOL, "a"] = [False, True]

    finished: list[bool] = []

    def reattach() -> None:
        h.manager.unpublish(VOL, "a")
        h.publish("a")

    def reattach_meanwhile() -> None:
        h.facts.during = None
        finished.append(finishes(reattach))

    h.facts.during = reattach_meanwhile
    with pytest.raises(errors.FailedPrecondition):
        h.publish("b")
    assert finished == [True]
    assert h.facts.calls.count(("va", VOL, "a")) == 2
    assert h.nodes() == ["a"]


def test_publish_survives_a_broken_event_sink(h: Harness) -> None:
    h.sink.broken = True
    h.publish("a")
    h.manager.unpublish(VOL, "a")
    assert h.value("attachment_detach_total") == 1


# ---- live migration ---------------------------------------------------------------------------------------------


class CountingGate:
    """An ``AttachmentTable`` whose first ``volumes_on_node`` call runs ``inside`` before answering: a publish that
    is counting a node's volumes, caught in the middle of its decision."""

    def __init__(self, table: AttachmentTable, inside: Callable[[], None]) -> None:
        self._table = table
        self._inside: Callable[[], None] | None = inside

    def volumes_on_node(self, node_id: str) -> list[str]:
        answer = self._table.volumes_on_node(node_id)
        inside, self._inside = self._inside, None
        if inside is not None:
            inside()
        return answer

    def __getattr__(self, name: str) -> object:
        return getattr(self._table, name)


def test_publish_beyond_the_node_limit_is_resource_exhausted_and_a_repeat_is_not(h: Harness) -> None:
    h.publish("n", "v1", limit=2)
    h.publish("n", "v2", limit=2)
    with pytest.raises(errors.ResourceExhausted, match="node n already holds 2 volumes"):
        h.publish("n", "v3", limit=2)
    assert h.nodes("v3") == []
    h.publish("n", "v1", limit=2)  # the repeat of a volume the node holds adds nothing
    h.publish("m", "v3", limit=2)  # another node's count is its own
    h.manager.unpublish("v1", "n")
    h.publish("n", "v4", limit=2)
    assert sorted(h.manager.published_nodes(v)[0] for v in ("v2", "v3", "v4")) == ["m", "n", "n"]


def test_publish_limit_counts_a_migration_target(h: Harness) -> None:
    h.publish("a", "vm", multi_node_block=True, limit=1)
    h.publish("b", "vm", multi_node_block=True, limit=1)  # b is the migration target
    with pytest.raises(errors.ResourceExhausted):
        h.publish("b", "other", limit=1)
    with pytest.raises(errors.ResourceExhausted):
        h.publish("a", "other", limit=1)


def test_two_publishes_to_one_node_cannot_both_take_its_last_place(table: AttachmentTable) -> None:
    outcomes: list[str] = []

    def publish_other() -> None:
        try:
            harness.publish("n", "v-other", limit=1)
            outcomes.append("admitted")
        except errors.ResourceExhausted:
            outcomes.append("refused")

    second_finished: list[bool] = []
    # The first publish is counting the node's volumes (and holds its lock); a second one to the same node must
    # wait for it instead of counting the same free place.
    gate = CountingGate(table, lambda: second_finished.append(finishes(publish_other, timeout=0.5)))
    harness = Harness(gate)  # type: ignore[arg-type]
    harness.publish("n", "v-first", limit=1)
    poll(lambda: bool(outcomes))
    assert second_finished == [False]
    assert outcomes == ["refused"]
    assert harness.nodes("v-first") == ["n"] and harness.nodes("v-other") == []


def test_publish_limit_is_counted_after_facts_that_were_fetched_without_a_lock(h: Harness) -> None:
    h.publish("a", "v1")
    h.clock.advance(100)
    h.facts.vas["v1", "a"] = [False]  # a's attachment is provably stale: it would be cleared and n admitted...
    filled: list[bool] = []

    def fill_the_node() -> None:
        h.facts.during = None
        filled.append(finishes(lambda: h.publish("n", "v2", limit=1)))

    h.facts.during = fill_the_node  # ...but while the facts are fetched, n takes its only place with v2
    with pytest.raises(errors.ResourceExhausted):
        h.publish("n", "v1", limit=1)
    assert filled == [True]
    assert h.nodes("v1") == ["a"] and h.nodes("v2") == ["n"]


def test_migration_second_node_starts_then_source_detach_completes(h: Harness) -> None:
    h.publish("a", multi_node_block=True)
    h.clock.advance(5)
    h.publish("b", multi_node_block=True)
    assert h.nodes() == ["a", "b"]
    assert h.sink.reasons()[-1] == "MigrationStarted"
    assert h.value("migration_total", result="started") == 1
    assert h.value("migration_active") == 1
    h.clock.advance(42)
    h.manager.unpublish(VOL, "a")
    assert h.nodes() == ["b"]
    assert h.sink.reasons()[-1] == "MigrationCompleted"
    assert h.value("migration_total", result="completed") == 1
    assert h.value("migration_duration_seconds_count") == 1
    assert h.value("migration_duration_seconds_sum") == 42
    assert h.value("migration_active") == 0


def test_migration_target_detach_rolls_back_with_a_warning(h: Harness) -> None:
    h.publish("a", multi_node_block=True)
    h.publish("b", multi_node_block=True)
    h.manager.unpublish(VOL, "b")
    assert h.nodes() == ["a"]
    assert h.sink.warnings() == ["MigrationFailed"]
    assert "rolled back" in h.sink.posted[-1][2]
    assert h.value("migration_total", result="failed") == 1
    assert h.value("migration_active") == 0


def test_migration_third_node_is_failed_precondition(h: Harness) -> None:
    h.publish("a", multi_node_block=True)
    h.publish("b", multi_node_block=True)
    with pytest.raises(errors.FailedPrecondition, match="third node"):
        h.publish("c", multi_node_block=True)
    assert h.nodes() == ["a", "b"]
    assert h.value("attachment_conflicts_total") == 1


def test_migration_past_its_window_fails_once_and_admits_nobody_until_a_side_detaches(h: Harness) -> None:
    h.publish("a", multi_node_block=True)
    h.publish("b", multi_node_block=True, migration_timeout=60)
    h.clock.advance(60)
    for _ in range(2):
        with pytest.raises(errors.FailedPrecondition, match="failed or expired"):
            h.publish("c", multi_node_block=True)
    assert h.sink.reasons().count("MigrationFailed") == 1
    assert h.value("migration_total", result="failed") == 1
    assert h.value("migration_active") == 0
    h.publish("b", multi_node_block=True)
    h.manager.unpublish(VOL, "a")
    assert h.sink.reasons()[-1] == "VolumeDetached"
    assert h.value("migration_total", result="completed") == 0
    h.publish("c", multi_node_block=True)
    assert h.nodes() == ["b", "c"]


def test_migration_timeout_is_clamped_to_thirty_seconds(h: Harness) -> None:
    h.publish("a", multi_node_block=True)
    h.publish("b", multi_node_block=True, migration_timeout=1)
    h.clock.advance(29)
    with pytest.raises(errors.FailedPrecondition, match="third node"):
        h.publish("c", multi_node_block=True)
    h.clock.advance(1)
    with pytest.raises(errors.FailedPrecondition, match="failed or expired"):
        h.publish("c", multi_node_block=True)


@pytest.mark.parametrize(("answer", "admitted"), [(True, True), (False, False), (None, False), ("raise", False)])
def test_strict_migration_asks_the_hook_and_only_true_admits(
    table: AttachmentTable, answer: bool | str | None, admitted: bool
) -> None:
    asked: list[tuple[str, str]] = []

    def allowed(volume_id: str, target: str) -> bool | None:
        asked.append((volume_id, target))
        if answer == "raise":
            raise TimeoutError("KubeVirt API timed out")
        return answer  # type: ignore[return-value]

    h = Harness(table, strict=True, allowed=allowed)
    h.publish("a", multi_node_block=True)
    if admitted:
        h.publish("b", multi_node_block=True)
        assert h.nodes() == ["a", "b"]
    else:
        with pytest.raises(errors.FailedPrecondition, match="strict migration"):
            h.publish("b", multi_node_block=True)
        assert h.nodes() == ["a"]
    assert asked == [(VOL, "b")]


def test_strict_migration_without_a_hook_is_a_configuration_error(table: AttachmentTable) -> None:
    with pytest.raises(ValueError, match="migration_allowed"):
        Harness(table, strict=True)


def test_negative_grace_is_a_configuration_error(table: AttachmentTable) -> None:
    with pytest.raises(ValueError, match="grace_seconds"):
        Harness(table, grace=-1.0)


# ---- rebuild and the VolumeAttachment watch ---------------------------------------------------------------------


def fact(
    node: str,
    created: float,
    volume: str = VOL,
    *,
    attached: bool = True,
    multi_node_block: bool = False,
    migration_timeout: float = 300.0,
    readonly: bool | None = None,
) -> VolumeAttachmentFact:
    return VolumeAttachmentFact(volume, node, created, attached, multi_node_block, migration_timeout, readonly)


def test_rebuild_replaces_everything_with_the_volume_attachments(h: Harness) -> None:
    h.publish("x", volume="pvc-old")
    h.manager.rebuild(
        [
            fact("a", T0 - 50),
            fact("m1", T0 - 500, volume="pvc-m", multi_node_block=True),
            fact("m2", T0 - 10, volume="pvc-m", multi_node_block=True),
            fact("p", T0 - 5, volume="pvc-pending", attached=False),
        ]
    )
    assert h.nodes("pvc-old") == []
    assert h.nodes() == ["a"]
    assert h.nodes("pvc-m") == ["m1", "m2"]
    assert h.nodes("pvc-pending") == ["p"]  # still attaching: it holds the volume all the same
    assert h.value("attachments_active") == 4
    assert h.value("migration_active") == 1
    with pytest.raises(errors.FailedPrecondition, match="third node"):
        h.publish("m3", volume="pvc-m", multi_node_block=True)


def test_rebuild_migration_window_counts_from_the_newer_volume_attachment(h: Harness) -> None:
    h.manager.rebuild(
        [
            fact("a", T0 - 86_400, multi_node_block=True),
            fact("b", T0 - 100, multi_node_block=True, migration_timeout=300),
        ]
    )
    assert h.manager.reconcile().expired_migrations == ()
    h.clock.advance(200)
    assert h.manager.reconcile().expired_migrations == (VOL,)


@pytest.mark.parametrize("api", ["answers", "unknown"])
def test_rebuild_of_three_volume_attachments_leaves_out_the_one_on_a_deleted_node(h: Harness, api: str) -> None:
    # "a" was cleared as stale (its Node deleted, its VolumeAttachment not yet), "c" admitted next to "b" and
    # answered OK just before the restart: "c" writes, so the rebuild must keep it and leave "a" out (holding
    # nothing: its node is gone). With the Node API unknown, nothing sets "a" apart from a live writer: the attached
    # ones are kept in the table and "c" holds the volume uncounted.
    h.facts.nodes["a"] = False if api == "answers" else None
    h.manager.rebuild(
        [
            fact("a", T0 - 300, multi_node_block=True),
            fact("b", T0 - 200, multi_node_block=True),
            fact("c", T0 - 1, attached=False, multi_node_block=True),
        ]
    )
    assert h.nodes() == (["b", "c"] if api == "answers" else ["a", "b", "c"])
    assert ("node", "b") in h.facts.calls  # asked only because the volume has more VolumeAttachments than room


def test_rebuild_asks_about_nodes_only_for_a_volume_with_more_volume_attachments_than_room(h: Harness) -> None:
    h.manager.rebuild([fact("a", T0 - 300, multi_node_block=True), fact("b", T0 - 200, multi_node_block=True)])
    assert h.facts.calls == []


def test_rebuild_readonly_from_records_is_enforced_and_unknown_is_adopted(h: Harness) -> None:
    h.manager.rebuild([fact("a", T0, readonly=True), fact("b", T0, volume="pvc-2")])
    with pytest.raises(errors.AlreadyExists):
        h.publish("a", readonly=False)
    h.publish("b", volume="pvc-2", readonly=True)
    with pytest.raises(errors.AlreadyExists):
        h.publish("b", volume="pvc-2", readonly=False)


def test_va_event_attached_is_recorded_silently(h: Harness) -> None:
    h.manager.apply_va_event("ADDED", fact("a", T0))
    h.manager.apply_va_event("MODIFIED", fact("a", T0))
    assert h.nodes() == ["a"]
    assert h.sink.posted == []
    assert h.value("attachment_attach_total") == 0
    assert h.value("attachments_active") == 1


def test_rebuild_a_volume_attachment_still_attaching_keeps_every_other_node_out(h: Harness) -> None:
    # The previous controller answered node a's publish OK; the attacher has not written status.attached yet.
    h.manager.rebuild([fact("a", T0 - 5, attached=False)])
    assert h.nodes() == ["a"]
    h.clock.advance(60)
    with pytest.raises(errors.FailedPrecondition, match="node a"):
        h.publish("b")
    h.publish("a")  # the attacher's retry: decided in full, and now confirmed
    assert h.sink.reasons() == ["AttachmentConflict", "VolumeAttached"]
    assert h.value("attachment_attach_total") == 1
    h.publish("a")
    assert h.value("attachment_attach_total") == 1  # a repeat from here on


def test_rebuild_two_volume_attachments_still_attaching_on_a_single_node_volume_admit_neither(h: Harness) -> None:
    h.manager.rebuild([fact("a", T0 - 20, attached=False), fact("b", T0 - 10, attached=False)])
    h.clock.advance(60)
    for node in ("a", "b"):  # either may be the one the previous controller admitted
        with pytest.raises(errors.FailedPrecondition):
            h.publish(node)
    h.manager.apply_va_event("MODIFIED", fact("a", T0 - 20))  # a's status arrives: a was the one
    h.publish("a")
    with pytest.raises(errors.FailedPrecondition):
        h.publish("b")
    h.manager.apply_va_event("DELETED", fact("b", T0 - 10, attached=False))
    assert h.nodes() == ["a"]


def test_va_event_not_attached_holds_the_volume_but_its_own_publish_is_decided(h: Harness) -> None:
    h.manager.apply_va_event("ADDED", fact("a", T0, attached=False))
    assert h.nodes() == ["a"]
    assert h.sink.posted == []
    h.clock.advance(60)
    with pytest.raises(errors.FailedPrecondition):
        h.publish("b")
    h.publish("a")
    assert h.sink.reasons() == ["AttachmentConflict", "VolumeAttached"]
    assert h.value("attachment_attach_total") == 1


def test_va_event_not_attached_migration_target_is_admitted_with_its_window_and_event(h: Harness) -> None:
    h.publish("a", multi_node_block=True)
    h.manager.apply_va_event("ADDED", fact("b", T0, attached=False, multi_node_block=True, migration_timeout=60))
    assert h.nodes() == ["a", "b"]
    with pytest.raises(errors.FailedPrecondition, match="third node"):
        h.publish("c", multi_node_block=True)
    h.clock.advance(40)
    h.publish("b", multi_node_block=True, migration_timeout=300)
    assert h.sink.reasons() == ["VolumeAttached", "AttachmentConflict", "MigrationStarted"]
    h.clock.advance(30)  # 70 s after the VolumeAttachment appeared: past its 60 s window
    assert h.manager.reconcile().expired_migrations == (VOL,)


def test_va_event_deleted_releases_a_hold_that_was_never_attached(h: Harness) -> None:
    h.manager.apply_va_event("ADDED", fact("a", T0, attached=False))
    h.clock.advance(60)
    h.manager.apply_va_event("DELETED", fact("a", T0, attached=False))
    assert h.nodes() == []
    h.publish("b")
    assert h.nodes() == ["b"]


def test_va_event_second_block_node_is_a_migration(h: Harness) -> None:
    h.manager.apply_va_event("ADDED", fact("a", T0, multi_node_block=True))
    h.manager.apply_va_event("MODIFIED", fact("b", T0, multi_node_block=True))
    assert h.nodes() == ["a", "b"]
    assert h.value("migration_active") == 1


def test_va_event_deleted_detaches_an_old_attachment_but_not_a_fresh_one(h: Harness) -> None:
    h.publish("a")
    h.manager.apply_va_event("DELETED", fact("a", T0 - 60))
    assert h.nodes() == ["a"]
    h.clock.advance(30)
    h.manager.apply_va_event("DELETED", fact("a", T0 - 60))
    assert h.nodes() == []
    assert h.sink.reasons() == ["VolumeAttached", "VolumeDetached"]
    assert h.value("attachment_detach_total") == 1


def test_va_event_deleted_releases_a_fresh_hold_from_the_rebuild(h: Harness) -> None:
    """Found by the crash matrix: after a restart, a VolumeAttachment deleted seconds after the rebuild kept its
    volume held for the whole grace period (DeleteVolume refused until the next reconcile)."""
    h.manager.rebuild([fact("a", T0)])
    h.clock.advance(1)
    h.manager.apply_va_event("DELETED", fact("a", T0))
    assert h.nodes() == []


def test_va_event_deleted_releases_a_fresh_hold_from_the_watch(h: Harness) -> None:
    h.manager.apply_va_event("ADDED", fact("a", T0))
    h.clock.advance(1)
    h.manager.apply_va_event("DELETED", fact("a", T0))
    assert h.nodes() == []


def test_va_event_deleted_keeps_a_fresh_hold_a_publish_confirmed_after_the_watch_saw_it(h: Harness) -> None:
    h.manager.apply_va_event("ADDED", fact("a", T0, attached=False))
    h.publish("a")  # the attacher's call: from now on the hold may belong to a newer object of the same name
    h.manager.apply_va_event("DELETED", fact("a", T0 - 60))
    assert h.nodes() == ["a"]


def test_va_event_unknown_kind_is_a_value_error(h: Harness) -> None:
    with pytest.raises(ValueError, match="BOOKMARK"):
        h.manager.apply_va_event("BOOKMARK", fact("a", T0))  # type: ignore[arg-type]


def test_rebuild_a_third_volume_attachment_of_a_migration_still_holds_the_volume(h: Harness) -> None:
    # a attached; c, the migration target, answered OK just before the restart (status not written yet); b is a
    # third node the attacher keeps retrying. The table keeps a and the newest unattached one, b: c must still count.
    h.manager.rebuild(
        [
            fact("a", T0 - 100, multi_node_block=True),
            fact("c", T0 - 20, attached=False, multi_node_block=True),
            fact("b", T0 - 10, attached=False, multi_node_block=True),
        ]
    )
    assert h.nodes() == ["a", "b", "c"]
    h.clock.advance(60)
    with pytest.raises(errors.FailedPrecondition, match="VolumeAttachments on c"):
        h.publish("b", multi_node_block=True)
    h.publish("a", multi_node_block=True)  # a holder's repeat is still a repeat
    h.manager.apply_va_event("MODIFIED", fact("c", T0 - 20, multi_node_block=True))  # c's status arrives
    with pytest.raises(errors.FailedPrecondition):
        h.publish("b", multi_node_block=True)
    h.manager.apply_va_event("DELETED", fact("b", T0 - 10, attached=False, multi_node_block=True))
    h.publish("c", multi_node_block=True)  # in the table now, next to a
    assert h.nodes() == ["a", "c"]
    with pytest.raises(errors.FailedPrecondition, match="third node"):
        h.publish("b", multi_node_block=True)


def test_rebuild_a_volume_attachment_left_out_joins_the_entry_once_there_is_room(h: Harness) -> None:
    # Three nodes still attaching on a single-node volume: any of them may be the one the previous controller
    # admitted, also the oldest, which the table has no room for.
    h.manager.rebuild([fact(node, T0 - age, attached=False) for node, age in (("a", 30), ("b", 20), ("c", 10))])
    h.clock.advance(60)
    h.manager.apply_va_event("DELETED", fact("c", T0 - 10, attached=False))
    assert h.nodes() == ["b", "a"]
    with pytest.raises(errors.Aborted, match="still attached to a"):
        h.publish("b")  # a holds it as much as b does (and c has just detached: the grace period answers)
    h.manager.unpublish(VOL, "a")
    h.publish("b")
    assert h.nodes() == ["b"]


def test_unpublish_of_a_volume_attachment_left_out_releases_it(h: Harness) -> None:
    h.manager.rebuild([fact(node, T0 - age, attached=False) for node, age in (("a", 30), ("b", 20), ("c", 10))])
    h.manager.unpublish(VOL, "a")
    assert h.nodes() == ["b", "c"]


# ---- reconcile --------------------------------------------------------------------------------------------------


def test_reconcile_clears_deleted_nodes_primary_and_migration_target(h: Harness) -> None:
    h.publish("gone")
    h.publish("src", volume="pvc-m", multi_node_block=True)
    h.publish("gone", volume="pvc-m", multi_node_block=True)
    h.publish("ok", volume="pvc-ok")
    h.clock.advance(100)
    h.facts.nodes["gone"] = False
    report = h.manager.reconcile()
    assert sorted(report.cleared) == [(VOL, "gone"), ("pvc-m", "gone")]
    assert report.unchanged == 1
    assert h.nodes() == []
    assert h.nodes("pvc-m") == ["src"]
    assert h.nodes("pvc-ok") == ["ok"]
    assert h.sink.reasons().count("StaleAttachmentCleared") == 2
    assert h.sink.warnings().count("MigrationFailed") == 1
    assert h.value("attachment_stale_cleared_total") == 2
    assert h.value("attachment_reconcile_total", action="stale_cleared") == 2
    assert h.value("attachment_reconcile_total", action="unchanged") == 1
    assert h.value("migration_active") == 0
    # One question per node per pass, however many volumes it holds.
    assert h.facts.calls.count(("node", "gone")) == 1


def test_reconcile_clears_vanished_volume_attachments_and_keeps_unknown_and_fresh(h: Harness) -> None:
    h.publish("a", volume="pvc-vanished")
    h.publish("a", volume="pvc-unknown")
    h.clock.advance(100)
    h.publish("a", volume="pvc-fresh")
    for volume, answer in (("pvc-vanished", False), ("pvc-unknown", None), ("pvc-fresh", False)):
        h.facts.vas[volume, "a"] = [answer]
    report = h.manager.reconcile()
    assert report.cleared == (("pvc-vanished", "a"),)
    assert report.unchanged == 2
    assert h.nodes("pvc-unknown") == ["a"]
    assert h.nodes("pvc-fresh") == ["a"]
    h.clock.advance(30)
    assert h.manager.reconcile().cleared == (("pvc-fresh", "a"),)


def test_reconcile_expires_migrations_once(h: Harness) -> None:
    h.publish("a", multi_node_block=True)
    h.publish("b", multi_node_block=True, migration_timeout=30)
    h.clock.advance(31)
    report = h.manager.reconcile()
    assert report.expired_migrations == (VOL,)
    assert h.manager.reconcile().expired_migrations == ()
    assert h.sink.reasons().count("MigrationFailed") == 1
    assert h.value("attachment_reconcile_total", action="migration_expired") == 1
    assert h.value("migration_total", result="failed") == 1
    assert h.nodes() == ["a", "b"]


def test_reconcile_forgets_idle_volumes_after_their_grace(h: Harness) -> None:
    h.publish("a")
    h.manager.unpublish(VOL, "a")
    assert h.manager.reconcile().forgotten == ()
    assert h.table.get(VOL) is not None
    h.clock.advance(30)
    assert h.manager.reconcile().forgotten == (VOL,)
    assert h.table.get(VOL) is None
    assert h.value("attachment_reconcile_total", action="forgotten") == 1


def test_reconcile_asks_facts_without_holding_a_lock_and_skips_a_volume_that_changed(h: Harness) -> None:
    h.publish("a")
    h.clock.advance(100)
    h.facts.vas[VOL, "a"] = [False]

    finished: list[bool] = []

    def detach_meanwhile() -> None:
        h.facts.during = None
        finished.append(finishes(lambda: h.manager.unpublish(VOL, "a")))

    h.facts.during = detach_meanwhile
    report = h.manager.reconcile()
    assert finished == [True]
    assert report.skipped == (VOL,)
    assert report.cleared == ()
    assert h.value("attachment_stale_cleared_total") == 0
    assert h.value("attachment_reconcile_total", action="skipped") == 1


def test_reconcile_report_for_an_empty_table(h: Harness) -> None:
    assert h.manager.reconcile() == ReconcileReport(0, (), (), (), (), 0)


# ---- the reconciler thread --------------------------------------------------------------------------------------


class CountingTarget:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self._lock = threading.Lock()

    def reconcile(self) -> ReconcileReport:
        with self._lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                raise RuntimeError("facts source exploded")
        return ReconcileReport(self.calls, (), (), (), (), 0)


@pytest.fixture
def running() -> Iterator[list[Reconciler]]:
    started: list[Reconciler] = []
    yield started
    for reconciler in started:
        assert reconciler.stop(timeout=5.0)


def test_reconciler_runs_at_start_and_on_trigger(running: list[Reconciler]) -> None:
    target = CountingTarget()
    reconciler = Reconciler(target, interval=3600)
    running.append(reconciler)
    reconciler.start()
    poll(lambda: reconciler.passes == 1)
    reconciler.trigger()
    poll(lambda: reconciler.passes == 2)
    assert reconciler.last_report == ReconcileReport(2, (), (), (), (), 0)


def test_reconciler_runs_every_interval(running: list[Reconciler]) -> None:
    reconciler = Reconciler(CountingTarget(), interval=0.01)
    running.append(reconciler)
    reconciler.start()
    poll(lambda: reconciler.passes >= 3)


def test_reconciler_survives_a_failing_pass(running: list[Reconciler]) -> None:
    reconciler = Reconciler(CountingTarget(fail_first=1), interval=3600)
    running.append(reconciler)
    reconciler.start()
    poll(lambda: reconciler.failures == 1)
    reconciler.trigger()
    poll(lambda: reconciler.passes == 1)


def test_reconciler_stop_ends_the_thread_and_start_is_once(h: Harness) -> None:
    reconciler = Reconciler(h.manager, interval=3600)
    assert reconciler.stop()
    reconciler = Reconciler(h.manager, interval=3600)
    reconciler.start()
    with pytest.raises(RuntimeError, match="already started"):
        reconciler.start()
    poll(lambda: reconciler.passes == 1)
    assert reconciler.stop(timeout=5.0)
    passes = reconciler.passes
    reconciler.trigger()
    assert reconciler.passes == passes


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan"), float("inf")])
def test_reconciler_interval_must_be_positive_and_finite(h: Harness, interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        Reconciler(h.manager, interval=interval)


def test_watch_event_older_than_an_unpublish_does_not_attach_again(h: Harness) -> None:
    """A lagging watch reports a VolumeAttachment as attached after we unpublished it: old news, ignored."""
    h.publish("a")
    h.clock.advance(5)
    h.manager.unpublish(VOL, "a")
    h.manager.apply_va_event("MODIFIED", fact("a", created=T0))  # created before the unpublish
    assert h.nodes() == []
    h.clock.advance(5)
    h.manager.apply_va_event("ADDED", fact("a", created=h.clock.now()))  # a new VolumeAttachment: news
    assert h.nodes() == ["a"]


def test_unpublish_memory_ends_with_the_volume_attachment(h: Harness) -> None:
    """What guards against lagging watch events is forgotten once the VolumeAttachment is gone: no leak."""
    h.publish("a")
    h.manager.unpublish(VOL, "a")
    h.manager.unpublish(VOL, "b")  # never published: still an idempotent success, still remembered
    assert len(h.manager._unpublished_at) == 2
    h.manager.apply_va_event("DELETED", fact("a", created=T0))
    h.manager.apply_va_event("DELETED", fact("b", created=T0))
    assert len(h.manager._unpublished_at) == 0
