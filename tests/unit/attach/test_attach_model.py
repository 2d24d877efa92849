"""Model check of the attachment manager: random interleavings, some of them on real threads, against a reference.

The reference world is the API server as the attach/detach controller leaves it: VolumeAttachment objects
(created before a publish, marked attached when it succeeds, deleted when an unpublish succeeds or when someone
force-deletes one), Nodes that get deleted and re-registered, and API outages. It is also the manager's facts
port. After every step:

* a single-node volume never has two live writers (an attached VolumeAttachment on an existing node), neither in
  the world nor in the table; a migration volume never three;
* a live attachment is never missing from the table;
* the attachments gauge matches the table;

and after every restart the rebuilt table is exactly what the VolumeAttachments say (a volume's two newest),
including a restart that falls between a publish answered OK and the attacher writing ``status.attached``.
Sizes follow the Hypothesis profile (tests/conftest.py): a few thousand steps per table backend by default,
> 10^5 with ``RDS_CSI_LONG=1``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from rds_csi._native import AttachmentTable, available_backends
from rds_csi.attach import AttachmentManager, PublishRequest, VolumeAttachmentFact
from rds_csi.core import errors
from rds_csi.core.clock import ManualClock
from rds_csi.observability.metrics import Metrics

# Reaches rds_csi._native, directly or not: the pure-twin pass runs it too (tests/unit/ci/test_pure_twin_pass.py).
pytestmark = pytest.mark.native

STEPS = 30
SETTINGS = settings(
    # An example is about 23 steps, some on real threads: a quarter of the profile's budget, so ~3,500 steps per
    # backend by default (150 examples) and > 10^5 with RDS_CSI_LONG=1 (5000).
    max_examples=settings().max_examples // 4,
    stateful_step_count=STEPS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

NODES = ("n0", "n1", "n2")
MULTI = {"s0": False, "s1": False, "m0": True}
VOLUMES = tuple(MULTI)
# Refusals and retries are answers, not failures; anything else escaping the manager is a bug.
ANSWERS = (errors.FailedPrecondition, errors.Aborted)

Op = tuple[str, str, str]


@dataclass
class VolumeAttachmentObject:
    created_at: float
    attached: bool = False


class World:
    """The reference: what the API server holds. Thread-safe, because the manager asks it from many threads."""

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], VolumeAttachmentObject] = {}
        self._sequence = 0
        self.deleted_nodes: set[str] = set()
        self.down = False

    # the facts port
    def volume_attachment_exists(self, volume_id: str, node_id: str) -> bool | None:
        with self._lock:
            return None if self.down else (volume_id, node_id) in self._objects

    def node_exists(self, node_id: str) -> bool | None:
        with self._lock:
            return None if self.down else node_id not in self.deleted_nodes

    # the attach/detach controller and the users
    def create(self, volume: str, node: str) -> bool:
        with self._lock:
            if (volume, node) in self._objects:
                return False
            # API timestamps may tie; the model keeps them apart so that "newest" is well defined.
            self._sequence += 1
            self._objects[volume, node] = VolumeAttachmentObject(self._clock.now() + self._sequence * 1e-6)
            return True

    def mark_attached(self, volume: str, node: str) -> None:
        with self._lock:
            self._objects[volume, node].attached = True

    def delete(self, volume: str, node: str) -> None:
        with self._lock:
            self._objects.pop((volume, node), None)

    def attached(self, volume: str) -> list[str]:
        """Nodes with an attached VolumeAttachment for ``volume``, oldest first."""
        with self._lock:
            found = [
                (obj.created_at, node) for (vol, node), obj in self._objects.items() if vol == volume and obj.attached
            ]
        return [node for _, node in sorted(found)]

    def object(self, volume: str, node: str) -> VolumeAttachmentObject | None:
        with self._lock:
            return self._objects.get((volume, node))

    def live(self, volume: str, node: str) -> bool:
        obj = self.object(volume, node)
        return obj is not None and obj.attached and node not in self.deleted_nodes

    def has_objects_on(self, node: str) -> bool:
        with self._lock:
            return any(on == node for _, on in self._objects)

    def records(self) -> list[VolumeAttachmentFact]:
        with self._lock:
            return [
                VolumeAttachmentFact(volume, node, obj.created_at, obj.attached, MULTI[volume])
                for (volume, node), obj in self._objects.items()
            ]


class Sink:
    def post(self, volume_id: str, reason: str, message: str, *, warning: bool = False) -> None:
        assert reason and message and volume_id


ops = st.one_of(
    st.tuples(st.sampled_from(["publish", "unpublish"]), st.sampled_from(VOLUMES), st.sampled_from(NODES)),
    st.just(("reconcile", "", "")),
)


class AttachmentModel(RuleBasedStateMachine):
    backend: ClassVar[ModuleType]

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.world = World(self.clock)
        self.manager = self._new_manager()

    def _new_manager(self) -> AttachmentManager:
        self.metrics = Metrics()
        self.table: AttachmentTable = self.backend.AttachmentTable(stripes=4)
        return AttachmentManager(self.table, self.world, Sink(), self.clock, self.metrics)

    # ---- executing operations, alone or concurrently --------------------------------------------------------------

    def _call(self, op: Op) -> BaseException | None:
        kind, volume, node = op
        try:
            if kind == "publish":
                self.manager.publish(PublishRequest(volume, node, multi_node_block=MULTI[volume]))
            elif kind == "unpublish":
                self.manager.unpublish(volume, node)
            else:
                self.manager.reconcile()
        except BaseException as error:
            return error
        return None

    def _execute(self, ops: list[Op]) -> None:
        # Nothing is scheduled onto a deleted node, so no publish comes from one.
        ops = [op for op in ops if not (op[0] == "publish" and op[2] in self.world.deleted_nodes)]
        # Kubernetes creates the VolumeAttachment before the external-attacher calls ControllerPublish.
        created = {(v, n): self.world.create(v, n) for kind, v, n in ops if kind == "publish"}
        results: list[BaseException | None] = [None] * len(ops)
        if len(ops) == 1:
            results[0] = self._call(ops[0])
        elif ops:
            barrier = threading.Barrier(len(ops))

            def run(index: int) -> None:
                barrier.wait()
                results[index] = self._call(ops[index])

            threads = [threading.Thread(target=run, args=(index,)) for index in range(len(ops))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
                assert not thread.is_alive(), "an operation hung"
        for (kind, volume, node), error in zip(ops, results, strict=True):
            if error is not None and not isinstance(error, ANSWERS):
                raise error
            if kind == "publish":
                if error is None:
                    self.world.mark_attached(volume, node)
                elif created[volume, node]:
                    self.world.delete(volume, node)
            elif kind == "unpublish" and error is None:
                self.world.delete(volume, node)

    # ---- rules --------------------------------------------------------------------------------------------------

    @rule(batch=st.lists(ops, min_size=1, max_size=4, unique_by=lambda op: (op[1], op[2])))
    def operate(self, batch: list[Op]) -> None:
        self._execute(batch)

    @rule(batch=st.lists(ops, min_size=2, max_size=4, unique_by=lambda op: (op[1], op[2])))
    def operate_concurrently(self, batch: list[Op]) -> None:
        self._execute(batch)

    def _restart(self) -> None:
        # A rebuild starts from a list of the VolumeAttachments, so the API answers it (also the rebuild's questions
        # about which nodes are deleted).
        self.world.down = False
        self.manager = self._new_manager()
        self.manager.rebuild(self.world.records())

    def _kept_after_restart(self, volume: str) -> list[str]:
        """The two newest attached VolumeAttachments, those on deleted nodes last (they were cleared as stale when
        a newer one was admitted), in creation order."""
        attached = self.world.attached(volume)
        kept = sorted(attached, key=lambda node: node not in self.world.deleted_nodes)[-2:]
        return [node for node in attached if node in kept]

    @rule()
    def restart(self) -> None:
        self._restart()
        for volume in VOLUMES:
            expected = self._kept_after_restart(volume)
            assert self.manager.published_nodes(volume) == expected, (volume, expected)
            if MULTI[volume] and len(expected) == 2:
                entry = self.table.get(volume)
                assert entry is not None
                assert entry.migration is not None

    @rule(volume=st.sampled_from(VOLUMES), node=st.sampled_from(NODES))
    def restart_between_a_publish_and_its_status(self, volume: str, node: str) -> None:
        if node in self.world.deleted_nodes:
            return
        created = self.world.create(volume, node)
        error = self._call(("publish", volume, node))
        if error is not None and not isinstance(error, ANSWERS):
            raise error
        if error is not None:
            if created:
                self.world.delete(volume, node)
            return
        # Answered OK, then the controller stops before the attacher marks the VolumeAttachment attached. The volume
        # may have a third VolumeAttachment, attached, on a node deleted since (the one this publish's admission
        # or an earlier reconcile cleared as stale): the rebuild must leave that one out, not this writer.
        self._restart()
        assert node in self.manager.published_nodes(volume), (volume, node)
        self.world.mark_attached(volume, node)

    @rule(volume=st.sampled_from(VOLUMES), node=st.sampled_from(NODES))
    def watch_event(self, volume: str, node: str) -> None:
        obj = self.world.object(volume, node)
        if obj is None:
            self.manager.apply_va_event("DELETED", VolumeAttachmentFact(volume, node, self.clock.now(), False))
        else:
            fact = VolumeAttachmentFact(volume, node, obj.created_at, obj.attached, MULTI[volume])
            self.manager.apply_va_event("MODIFIED", fact)

    @rule(seconds=st.sampled_from([0.5, 5.0, 29.0, 31.0, 120.0, 301.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # No preconditions on world state: threads make that state differ between runs of one example, and
    # Hypothesis needs the same choices to draw the same rules.

    @rule(node=st.sampled_from(NODES))
    def delete_node(self, node: str) -> None:
        # One node is always left to publish from.
        if len(self.world.deleted_nodes | {node}) < len(NODES):
            self.world.deleted_nodes.add(node)

    @rule(node=st.sampled_from(NODES))
    def reregister_node(self, node: str) -> None:
        # A node name comes back only once the attach/detach controller has detached everything from it.
        if not self.world.has_objects_on(node):
            self.world.deleted_nodes.discard(node)

    @rule(volume=st.sampled_from(VOLUMES), node=st.sampled_from(NODES))
    def force_delete_volume_attachment(self, volume: str, node: str) -> None:
        self.world.delete(volume, node)

    @rule(down=st.booleans())
    def api_outage(self, down: bool) -> None:
        self.world.down = down

    # ---- invariants ---------------------------------------------------------------------------------------------

    @invariant()
    def never_two_writers_on_a_single_node_volume_nor_three_on_a_migration(self) -> None:
        for volume, multi in MULTI.items():
            limit = 2 if multi else 1
            live_truth = [node for node in self.world.attached(volume) if self.world.live(volume, node)]
            held = self.manager.published_nodes(volume)
            assert len(live_truth) <= limit, (volume, live_truth)
            assert len(held) <= 2, (volume, held)
            assert len([node for node in held if self.world.live(volume, node)]) <= limit, (volume, held)
            assert set(live_truth) <= set(held), (volume, live_truth, held)

    @invariant()
    def active_gauge_matches_the_table(self) -> None:
        held = sum(len(self.manager.published_nodes(volume)) for volume in VOLUMES)
        assert self.metrics.registry.get_sample_value("rds_csi_attachments_active") == held


@pytest.mark.parametrize("backend", sorted(available_backends()))
def test_attachment_model_holds_under_random_concurrent_interleavings(backend: str) -> None:
    class OnBackend(AttachmentModel):
        pass

    OnBackend.backend = available_backends()[backend]
    run_state_machine_as_test(OnBackend, settings=SETTINGS)
