"""Injectable time: production code asks a ``Clock``; tests pass a ``ManualClock`` and move time by hand."""

from __future__ import annotations

import threading
import time
from typing import Protocol

# Real-time slice at which a thread asleep on a ManualClock checks its stop event (advances wake it at once).
_STOP_POLL = 0.02


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Sleep ``seconds`` on this clock or until ``stop`` is set, whichever comes first; True if stopped."""
        ...


class SystemClock:
    """The real monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(max(0.0, seconds))


class ManualClock:
    """Virtual time that moves only when a test calls ``advance``.

    ``sleep`` and ``wait`` block the calling thread until the clock reaches the time they were called at plus the
    delay. An advance made before a thread starts sleeping is therefore not seen by that sleep: a test that drives
    a background thread calls ``wait_for_sleepers`` first, so the advance lands on a thread that is waiting.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._changed = threading.Condition()
        self._wake_times: list[float] = []  # one per thread asleep on the clock and not yet due

    def now(self) -> float:
        with self._changed:
            return self._now

    def sleep(self, seconds: float) -> None:
        self._sleep(seconds, None)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return self._sleep(seconds, stop)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds} s)")
        with self._changed:
            self._now += seconds
            # Due sleepers stop counting now, not when their threads get to run: wait_for_sleepers after this
            # advance waits for the next sleep, never for one this advance already ended.
            self._wake_times = [wake for wake in self._wake_times if wake > self._now]
            self._changed.notify_all()

    def sleepers(self) -> int:
        """Threads asleep on the clock whose wake time has not come."""
        with self._changed:
            return len(self._wake_times)

    def wait_for_sleepers(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block (real time) until ``count`` threads sleep on the clock; ``TimeoutError`` after ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._wake_times) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._wake_times)} of {count} threads asleep on the clock after {timeout} s (real time)"
                )

    def _sleep(self, seconds: float, stop: threading.Event | None) -> bool:
        with self._changed:
            wake = self._now + seconds
            if wake <= self._now:
                return stop is not None and stop.is_set()
            self._wake_times.append(wake)
            self._changed.notify_all()  # wait_for_sleepers may be waiting for this one
            try:
                while self._now < wake:
                    if stop is not None and stop.is_set():
                        return True
                    # An advance notifies at once; a stop event cannot, so it is checked every slice.
                    self._changed.wait(None if stop is None else _STOP_POLL)
                return stop is not None and stop.is_set()
            finally:
                if wake in self._wake_times and self._now < wake:
                    self._wake_times.remove(wake)
