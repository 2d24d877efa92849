"""VolumeAttachmentWatcher and NodeWatcher against the emulated API server: changes, dropped streams, 410 Gone,
backoff in virtual time, and a prompt stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from rds_csi.core.clock import ManualClock
from rds_csi.kube import KubeApi, NodeWatcher, VolumeAttachmentRecord, VolumeAttachmentWatcher, WatchTuning
from tests.integration.kube.conftest import DRIVER
from tests.kube_emulator import KubeEmulator, wait_until

# Backoff runs on a ManualClock: a watcher that lost its stream waits until the test moves time on. A test first
# waits until the watcher sleeps on the clock (``wait_for_sleepers``): an advance before that would be lost.
TUNING = WatchTuning(initial_backoff=1.0, max_backoff=4.0, watch_timeout=30)


class Seen:
    """What a watcher reported, in order, readable from the test thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str, bool]] = []  # (type, volume id, attached)

    def __call__(self, kind: str, record: VolumeAttachmentRecord) -> None:
        with self._lock:
            self.events.append((kind, record.volume_id, record.attached))

    def has(self, event: tuple[str, str, bool]) -> bool:
        with self._lock:
            return event in self.events

    def snapshot(self) -> list[tuple[str, str, bool]]:
        with self._lock:
            return list(self.events)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def watcher(api: KubeApi, seen: Seen, clock: ManualClock) -> Iterator[VolumeAttachmentWatcher]:
    w = VolumeAttachmentWatcher(api, DRIVER, seen, clock, tuning=TUNING)
    yield w
    w.stop()


def _start(watcher: VolumeAttachmentWatcher | NodeWatcher, emulator: KubeEmulator) -> None:
    """Start and wait until the first list is done and the watch that follows it is open."""
    watcher.start()
    assert watcher.synced.wait(5)
    wait_until(lambda: emulator.open_watches() == 1, what="the watch to open")


def test_first_list_reports_existing_attachments_as_added_then_synced(
    emulator: KubeEmulator, watcher: VolumeAttachmentWatcher, seen: Seen
) -> None:
    emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
    emulator.add_volume_attachment("pvc-2", "worker-1", "other.csi.example.com")
    _start(watcher, emulator)
    assert seen.snapshot() == [("ADDED", "pvc-1", True)]
    assert watcher.resync_count == 0


def test_watch_sees_added_modified_deleted_of_our_driver_only(
    emulator: KubeEmulator, watcher: VolumeAttachmentWatcher, seen: Seen
) -> None:
    _start(watcher, emulator)
    name = emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER, attached=False)
    emulator.add_volume_attachment("pvc-2", "worker-1", "other.csi.example.com")
    emulator.set_attached(name, True)
    emulator.delete_volume_attachment(name)
    wait_until(lambda: seen.has(("DELETED", "pvc-1", True)), what="the deletion")
    assert seen.snapshot() == [("ADDED", "pvc-1", False), ("MODIFIED", "pvc-1", True), ("DELETED", "pvc-1", True)]


def test_watch_recovers_from_a_dropped_stream_without_a_relist(
    emulator: KubeEmulator, watcher: VolumeAttachmentWatcher, seen: Seen, clock: ManualClock
) -> None:
    _start(watcher, emulator)
    watches = emulator.watch_count()
    emulator.drop_watches()
    wait_until(lambda: watcher.failure_count == 1, what="the watcher to notice the cut")
    emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)  # happens while the watcher backs off
    clock.wait_for_sleepers(1)
    clock.advance(TUNING.initial_backoff)
    wait_until(lambda: seen.has(("ADDED", "pvc-1", True)), what="the change made during the outage")
    assert emulator.watch_count() == watches + 1
    assert watcher.resync_count == 0


def test_watch_relists_on_410_and_reports_what_changed_meanwhile(
    emulator: KubeEmulator, watcher: VolumeAttachmentWatcher, seen: Seen, clock: ManualClock
) -> None:
    kept = emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
    gone = emulator.add_volume_attachment("pvc-2", "worker-1", DRIVER)
    _start(watcher, emulator)
    emulator.compact()
    emulator.drop_watches()
    wait_until(lambda: watcher.failure_count == 1, what="the watcher to notice the cut")
    emulator.delete_volume_attachment(gone)
    emulator.set_attached(kept, False)
    emulator.add_volume_attachment("pvc-3", "worker-2", DRIVER)
    clock.wait_for_sleepers(1)
    clock.advance(TUNING.initial_backoff)
    wait_until(lambda: watcher.resync_count == 1, what="the re-list")
    wait_until(lambda: len(seen.snapshot()) == 5, what="the differences")
    assert sorted(seen.snapshot()[2:]) == [
        ("ADDED", "pvc-3", True),
        ("DELETED", "pvc-2", True),
        ("MODIFIED", "pvc-1", False),
    ]


def test_watch_keeps_the_stream_alive_across_server_timeouts(
    emulator: KubeEmulator, api: KubeApi, seen: Seen, clock: ManualClock
) -> None:
    watcher = VolumeAttachmentWatcher(api, DRIVER, seen, clock, tuning=WatchTuning(watch_timeout=1))
    _start(watcher, emulator)
    try:
        wait_until(lambda: emulator.watch_count() >= 2, what="a second watch after the server ended the first")
        emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
        wait_until(lambda: seen.has(("ADDED", "pvc-1", True)), what="the change after the re-watch")
        assert (watcher.failure_count, watcher.resync_count) == (0, 0)
    finally:
        watcher.stop()


def test_watcher_started_while_api_is_down_syncs_once_it_is_back(
    emulator: KubeEmulator, watcher: VolumeAttachmentWatcher, seen: Seen, clock: ManualClock
) -> None:
    emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
    emulator.down = True
    watcher.start()
    wait_until(lambda: watcher.failure_count == 1, what="the first failure")
    clock.wait_for_sleepers(1)
    clock.advance(TUNING.initial_backoff)
    wait_until(lambda: watcher.failure_count == 2, what="the retry")
    assert not watcher.synced.is_set()
    emulator.down = False
    clock.wait_for_sleepers(1)
    clock.advance(TUNING.initial_backoff)
    assert clock.sleepers() == 1  # the backoff doubled: the watcher still has a second to wait
    clock.advance(TUNING.initial_backoff)
    assert watcher.synced.wait(5)
    assert seen.snapshot() == [("ADDED", "pvc-1", True)]


def test_failing_callback_does_not_stop_the_watch(emulator: KubeEmulator, api: KubeApi, clock: ManualClock) -> None:
    seen = Seen()

    def callback(kind: str, record: VolumeAttachmentRecord) -> None:
        seen(kind, record)
        if record.volume_id == "pvc-1":
            raise RuntimeError("consumer bug")

    watcher = VolumeAttachmentWatcher(api, DRIVER, callback, clock, tuning=TUNING)
    _start(watcher, emulator)
    try:
        emulator.add_volume_attachment("pvc-1", "worker-1", DRIVER)
        emulator.add_volume_attachment("pvc-2", "worker-1", DRIVER)
        wait_until(lambda: seen.has(("ADDED", "pvc-2", True)), what="the event after the failing one")
    finally:
        watcher.stop()


def test_stop_is_prompt_while_a_long_watch_is_open(watcher: VolumeAttachmentWatcher, emulator: KubeEmulator) -> None:
    _start(watcher, emulator)
    started = time.monotonic()
    watcher.stop(timeout=5)
    assert time.monotonic() - started < 1.0
    assert not watcher.running


def test_stop_is_prompt_while_backing_off(
    emulator: KubeEmulator, watcher: VolumeAttachmentWatcher, clock: ManualClock
) -> None:
    emulator.down = True
    watcher.start()
    wait_until(lambda: watcher.failure_count == 1, what="the first failure")
    clock.wait_for_sleepers(1)
    started = time.monotonic()
    watcher.stop(timeout=5)
    assert time.monotonic() - started < 1.0
    assert not watcher.running


def test_node_watcher_reports_deleted_nodes_only(emulator: KubeEmulator, api: KubeApi, clock: ManualClock) -> None:
    deleted: list[str] = []
    emulator.add_node("worker-1")
    watcher = NodeWatcher(api, deleted.append, clock, tuning=TUNING)
    _start(watcher, emulator)
    try:
        emulator.add_node("worker-2")
        emulator.delete_node("worker-1")
        wait_until(lambda: deleted == ["worker-1"], what="the node deletion")
    finally:
        watcher.stop()


def test_node_watcher_reports_a_node_deleted_during_an_expired_watch(
    emulator: KubeEmulator, api: KubeApi, clock: ManualClock
) -> None:
    deleted: list[str] = []
    emulator.add_node("worker-1")
    watcher = NodeWatcher(api, deleted.append, clock, tuning=TUNING)
    _start(watcher, emulator)
    try:
        emulator.compact()
        emulator.drop_watches()
        wait_until(lambda: watcher.failure_count == 1, what="the watcher to notice the cut")
        emulator.delete_node("worker-1")
        clock.wait_for_sleepers(1)
        clock.advance(TUNING.initial_backoff)
        wait_until(lambda: deleted == ["worker-1"], what="the deletion found by the re-list")
        assert watcher.resync_count == 1
    finally:
        watcher.stop()
