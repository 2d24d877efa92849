"""The shared periodic thread. Every wait here is on an event the loop's thread sets, never on elapsed time: the
interval is an hour, so a pass runs only at the start or on a trigger."""

from __future__ import annotations

import threading

import pytest

from rds_csi.core.loop import PeriodicThread

HOUR = 3600.0


class Passes:
    def __init__(self, *, failing: int = 0) -> None:
        self.count = 0
        self.failures: list[Exception] = []
        self.failing = failing
        self.started = [threading.Event() for _ in range(4)]  # started[n] is set when pass n+1 begins
        self.gate = threading.Event()
        self.gate.set()

    def run(self) -> float:
        self.count += 1
        self.started[min(self.count, 4) - 1].set()
        self.gate.wait(30)
        if self.count <= self.failing:
            raise RuntimeError(f"pass {self.count} failed")
        return HOUR

    def failed(self, failure: Exception) -> float:
        self.failures.append(failure)
        return HOUR


@pytest.mark.parametrize("failing", [0, 1], ids=["passes", "first pass raises"])
def test_the_first_pass_runs_at_start_a_trigger_runs_another_and_a_failure_goes_to_on_failure(failing: int) -> None:
    passes = Passes(failing=failing)
    loop = PeriodicThread("test-loop", passes.run, on_failure=passes.failed)
    loop.start()
    assert passes.started[0].wait(30)
    loop.trigger()
    assert passes.started[1].wait(30)  # the loop carried on after a pass that raised
    assert loop.stop(30)
    assert passes.count == 2
    assert [str(failure) for failure in passes.failures] == ["pass 1 failed"] * failing


def test_triggers_during_a_pass_coalesce_into_one_more_pass() -> None:
    passes = Passes()
    passes.gate.clear()
    loop = PeriodicThread("test-loop", passes.run, on_failure=passes.failed)
    loop.start()
    assert passes.started[0].wait(30)
    for _ in range(3):
        loop.trigger()
    passes.gate.set()
    assert passes.started[1].wait(30)
    assert loop.stop(30)  # the loop was waiting its hour: stop ends the wait
    assert passes.count == 2


def test_a_first_delay_holds_the_first_pass_until_a_trigger_and_stop_ends_it_with_none() -> None:
    passes = Passes()
    loop = PeriodicThread("test-loop", passes.run, on_failure=passes.failed, first_delay=HOUR)
    loop.start()
    assert loop.stop(30)
    assert passes.count == 0

    delayed = PeriodicThread("test-loop", passes.run, on_failure=passes.failed, first_delay=HOUR)
    delayed.start()
    delayed.trigger()
    assert passes.started[0].wait(30)
    assert delayed.stop(30)


def test_a_loop_starts_once_and_one_never_started_stops_at_once() -> None:
    passes = Passes()
    loop = PeriodicThread("test-loop", passes.run, on_failure=passes.failed, first_delay=HOUR)
    assert loop.stop(1)
    loop.start()
    try:
        loop.start()
    except RuntimeError as refused:
        assert "already started" in str(refused)
    else:
        raise AssertionError("a second start was accepted")
    finally:
        loop.stop(30)
