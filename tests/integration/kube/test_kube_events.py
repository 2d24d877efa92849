"""EventRecorder against the emulated API server: the right PVC, truncation, drops, and never blocking."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rds_csi.core.clock import ManualClock
from rds_csi.core.errors import InvalidArgument
from rds_csi.kube import EventRecorder, KubeApi
from rds_csi.observability.metrics import Metrics
from tests.integration.kube.conftest import DRIVER
from tests.kube_emulator import KubeEmulator, wait_until

EVENTS_PATH = "/api/v1/namespaces/apps/events"


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def recorder(api: KubeApi, metrics: Metrics, clock: ManualClock) -> Iterator[EventRecorder]:
    events = EventRecorder(api, DRIVER, metrics, queue_size=20, post_timeout=2.0, clock=clock, claim_ttl=60.0)
    yield events
    events.stop(timeout=1.0)


@pytest.fixture
def bound(emulator: KubeEmulator) -> str:
    """A PV bound to apps/data, as the provisioner leaves it: the PV name is the volume id."""
    emulator.add_pv("pvc-1", driver=DRIVER, claim=("apps", "data"), claim_uid="uid-data")
    return "pvc-1"


def _posted(metrics: Metrics, reason: str, result: str = "posted") -> float:
    value = metrics.registry.get_sample_value("rds_csi_events_posted_total", {"reason": reason, "result": result})
    return value or 0.0


def _dropped(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("rds_csi_events_dropped_total") or 0.0


def _event_posts(emulator: KubeEmulator) -> int:
    return sum(1 for method, path in emulator.requests() if method == "POST" and path.endswith("/events"))


def test_event_is_posted_on_the_claim_of_the_volume(
    emulator: KubeEmulator, recorder: EventRecorder, metrics: Metrics, bound: str
) -> None:
    recorder.post(bound, "VolumeAttached", "attached to worker-1")
    wait_until(lambda: len(emulator.events()) == 1, what="the event")
    event = emulator.events()[0]
    assert event["metadata"]["namespace"] == "apps"
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "apps",
        "name": "data",
        "uid": "uid-data",
    }
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "VolumeAttached", "attached to worker-1")
    assert event["source"] == {"component": "rds-csi-controller"}
    assert event["count"] == 1
    assert event["firstTimestamp"] == event["lastTimestamp"]
    wait_until(lambda: _posted(metrics, "VolumeAttached") == 1, what="the metric")


def test_warning_event_has_type_warning(emulator: KubeEmulator, recorder: EventRecorder, bound: str) -> None:
    recorder.post(bound, "AttachmentConflict", "held by worker-2", warning=True)
    wait_until(lambda: len(emulator.events()) == 1, what="the event")
    assert emulator.events()[0]["type"] == "Warning"


def test_long_message_is_truncated_to_1024_characters(
    emulator: KubeEmulator, recorder: EventRecorder, bound: str
) -> None:
    recorder.post(bound, "MigrationFailed", "x" * 5000, warning=True)
    wait_until(lambda: len(emulator.events()) == 1, what="the event")
    message = emulator.events()[0]["message"]
    assert len(message) == 1024
    assert message.endswith("...")


def test_remembered_claim_wins_over_the_pv_claim_ref(
    emulator: KubeEmulator, recorder: EventRecorder, bound: str
) -> None:
    pvc = emulator.add_pvc("other", "named-by-provisioner")
    recorder.remember_claim(bound, "other", "named-by-provisioner")
    recorder.post(bound, "VolumeAttached", "m")
    wait_until(lambda: len(emulator.events()) == 1, what="the event")
    involved = emulator.events()[0]["involvedObject"]
    assert (involved["namespace"], involved["name"], involved["uid"]) == (
        "other",
        "named-by-provisioner",
        pvc["metadata"]["uid"],
    )


def test_volume_of_a_pv_named_apart_from_its_handle_finds_its_claim(
    emulator: KubeEmulator, recorder: EventRecorder
) -> None:
    emulator.add_pv("static-data", driver=DRIVER, claim=("apps", "static"), volume_handle="vol-9")
    recorder.post("vol-9", "VolumeAttached", "m")
    wait_until(lambda: len(emulator.events()) == 1, what="the event")
    assert emulator.events()[0]["involvedObject"]["name"] == "static"


def test_volume_without_a_claim_counts_a_failure_and_posts_nothing(
    emulator: KubeEmulator, recorder: EventRecorder, metrics: Metrics
) -> None:
    emulator.add_pv("pvc-unbound", driver=DRIVER)
    recorder.post("pvc-unbound", "VolumeAttached", "m")
    recorder.post("pvc-unknown", "VolumeAttached", "m")
    wait_until(lambda: _posted(metrics, "VolumeAttached", "failed") == 2, what="two failures")
    assert emulator.events() == []


def test_failed_post_is_counted_and_the_worker_goes_on(
    emulator: KubeEmulator, recorder: EventRecorder, metrics: Metrics, bound: str
) -> None:
    emulator.fail_next(1, 500, path=EVENTS_PATH)
    recorder.post(bound, "VolumeAttached", "first")
    recorder.post(bound, "VolumeDetached", "second")
    wait_until(lambda: _posted(metrics, "VolumeDetached") == 1, what="the second event")
    assert _posted(metrics, "VolumeAttached", "failed") == 1
    assert [event["message"] for event in emulator.events()] == ["second"]


def test_claim_lookup_is_cached_until_its_ttl_expires(
    emulator: KubeEmulator, recorder: EventRecorder, clock: ManualClock, bound: str
) -> None:
    def pv_reads() -> int:
        return emulator.requests().count(("GET", f"/api/v1/persistentvolumes/{bound}"))

    recorder.post(bound, "A", "m")
    recorder.post(bound, "B", "m")
    wait_until(lambda: len(emulator.events()) == 2, what="two events")
    assert pv_reads() == 1
    clock.advance(61.0)  # no race: the worker read the clock for the claim's expiry before the POSTs awaited above
    recorder.post(bound, "C", "m")
    wait_until(lambda: len(emulator.events()) == 3, what="the third event")
    assert pv_reads() == 2


def test_full_queue_drops_and_counts_each_extra_event(
    emulator: KubeEmulator, recorder: EventRecorder, metrics: Metrics, bound: str
) -> None:
    emulator.hang_events = True
    recorder.post(bound, "First", "taken by the worker, which then hangs")
    wait_until(lambda: _event_posts(emulator) == 1, what="the worker to hang in its POST")
    for i in range(20 + 7):  # the queue holds 20
        recorder.post(bound, "Flood", f"#{i}")
    assert _dropped(metrics) == 7


def test_post_never_blocks_while_every_event_post_hangs(
    emulator: KubeEmulator, api: KubeApi, metrics: Metrics, bound: str
) -> None:
    emulator.hang_events = True
    recorder = EventRecorder(api, DRIVER, metrics, post_timeout=5.0)
    try:
        started = time.monotonic()
        for i in range(1000):
            recorder.post(bound, "Flood", f"#{i}")
        assert time.monotonic() - started < 1.0
        wait_until(lambda: _event_posts(emulator) == 1, what="the worker to hang in its POST")
        for i in range(500):
            recorder.post(bound, "Flood", f"more #{i}")
        assert time.monotonic() - started < 1.5
        assert _dropped(metrics) >= 499  # the queue (1000) was full but for the one the worker took
    finally:
        started = time.monotonic()
        recorder.stop(timeout=0.5)
        assert time.monotonic() - started < 1.0


def test_stop_returns_within_its_timeout_while_a_post_hangs(
    emulator: KubeEmulator, recorder: EventRecorder, metrics: Metrics, bound: str
) -> None:
    emulator.hang_events = True
    for i in range(5):
        recorder.post(bound, "Pending", f"#{i}")
    wait_until(lambda: _event_posts(emulator) == 1, what="the worker to hang in its POST")
    started = time.monotonic()
    recorder.stop(timeout=0.5)
    assert time.monotonic() - started < 0.8
    recorder.post(bound, "Late", "after stop")
    assert _dropped(metrics) >= 1


def test_stop_drains_queued_events_first(
    emulator: KubeEmulator, recorder: EventRecorder, metrics: Metrics, bound: str
) -> None:
    for i in range(5):
        recorder.post(bound, "Queued", f"#{i}")
    recorder.stop(timeout=5.0)
    assert [event["message"] for event in emulator.events()] == [f"#{i}" for i in range(5)]
    assert _dropped(metrics) == 0


def test_recorder_without_metrics_still_posts(emulator: KubeEmulator, api: KubeApi, bound: str) -> None:
    recorder = EventRecorder(api, DRIVER, None)
    recorder.post(bound, "VolumeAttached", "m")
    recorder.stop(timeout=5.0)
    assert len(emulator.events()) == 1


@pytest.mark.parametrize(("queue_size", "post_timeout"), [(0, 5.0), (10, 0.0)])
def test_recorder_rejects_unbounded_queue_or_zero_timeout(api: KubeApi, queue_size: int, post_timeout: float) -> None:
    with pytest.raises(InvalidArgument):
        EventRecorder(api, DRIVER, None, queue_size=queue_size, post_timeout=post_timeout)
