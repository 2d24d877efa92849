"""ManualClock: threads sleep in virtual time, and a test can know that a thread sleeps before it moves time on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rds_csi.core.clock import ManualClock, SystemClock


class Sleeper:
    """Runs ``sleep`` on a thread and records when it returned (virtual time) and what it returned."""

    def __init__(self, clock: ManualClock, sleep: Callable[[], bool | None]) -> None:
        self.clock = clock
        self.woke_at: float | None = None
        self.result: bool | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(sleep,), daemon=True)
        self._thread.start()

    def _run(self, sleep: Callable[[], bool | None]) -> None:
        self.result = sleep()
        self.woke_at = self.clock.now()
        self.done.set()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=100.0)


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # no sleeper outlives its test


def test_sleep_returns_once_the_clock_reaches_its_wake_time(clock: ManualClock) -> None:
    sleeper = Sleeper(clock, lambda: clock.sleep(5))
    clock.wait_for_sleepers(1)
    clock.advance(4.5)
    assert clock.sleepers() == 1
    assert not sleeper.done.is_set()
    clock.advance(0.5)
    assert sleeper.done.wait(5)
    assert sleeper.woke_at == 105.0


def test_an_advance_before_the_sleep_starts_does_not_count_for_it(clock: ManualClock, stop: threading.Event) -> None:
    clock.advance(10)
    sleeper = Sleeper(clock, lambda: clock.wait(stop, 5))
    clock.wait_for_sleepers(1)
    clock.advance(4)
    assert clock.sleepers() == 1  # its wake time is 115: taken from the clock when the sleep began
    clock.advance(1)
    assert sleeper.done.wait(5)
    assert (sleeper.result, sleeper.woke_at) == (False, 115.0)


def test_a_due_sleeper_stops_counting_at_the_advance_not_when_its_thread_runs(clock: ManualClock) -> None:
    # Otherwise wait_for_sleepers right after an advance could return for a sleep that advance already ended,
    # and the next advance would race the thread's next sleep: the flake this clock exists to prevent.
    first = Sleeper(clock, lambda: clock.sleep(1))
    second = Sleeper(clock, lambda: clock.sleep(3))
    clock.wait_for_sleepers(2)
    clock.advance(1)
    assert clock.sleepers() == 1
    assert first.done.wait(5)
    clock.advance(2)
    assert clock.sleepers() == 0
    assert second.done.wait(5)


def test_wait_returns_true_promptly_when_stopped(clock: ManualClock, stop: threading.Event) -> None:
    sleeper = Sleeper(clock, lambda: clock.wait(stop, 3600))
    clock.wait_for_sleepers(1)
    started = time.monotonic()
    stop.set()
    assert sleeper.done.wait(5)
    assert time.monotonic() - started < 1.0
    assert (sleeper.result, sleeper.woke_at) == (True, 100.0)
    assert clock.sleepers() == 0


def test_zero_or_negative_sleeps_return_at_once_without_moving_time(clock: ManualClock, stop: threading.Event) -> None:
    clock.sleep(0)
    clock.sleep(-1)
    assert clock.wait(stop, 0) is False
    stop.set()
    assert clock.wait(stop, -1) is True
    assert clock.now() == 100.0


def test_waiting_for_sleepers_that_never_come_times_out(clock: ManualClock) -> None:
    with pytest.raises(TimeoutError, match="0 of 1 threads asleep"):
        clock.wait_for_sleepers(1, timeout=0.05)


def test_time_never_goes_back(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    assert clock.now() == 100.0


def test_system_clock_wait_ends_early_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert SystemClock().wait(stop, 3600) is True
    assert time.monotonic() - started < 1.0
    assert SystemClock().wait(threading.Event(), 0) is False
