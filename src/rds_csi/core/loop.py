"""The one background thread for work that repeats: a pass, a wait, a pass again, until stopped.

The attachment reconciler, the orphan sweep, the node's recovery and the host-NQN reporter each give it their
pass; the pass answers how long to wait before the next one (an interval, or a backoff after a failure it
handled). A pass that raises anyway is handed to ``on_failure``, which logs it and names the wait: one bad pass
never ends the loop. ``trigger()`` cuts a wait short, and triggers that arrive during a pass coalesce into one
more pass. Waits are wall time (``threading.Event.wait``) because a trigger or a stop must be able to end them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class PeriodicThread:
    def __init__(
        self,
        name: str,
        run_pass: Callable[[], float],
        *,
        on_failure: Callable[[Exception], float],
        first_delay: float = 0.0,
    ) -> None:
        self._name = name
        self._run_pass = run_pass
        self._on_failure = on_failure
        self._first_delay = first_delay
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._state = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread: its first pass runs after ``first_delay`` seconds. A loop starts once."""
        with self._state:
            if self._thread is not None:
                raise RuntimeError(f"{self._name} was already started")
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def trigger(self) -> None:
        """Ask for a pass now (or right after the one running)."""
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Let a running pass finish and end the thread; False if it is still running after ``timeout`` seconds."""
        self._stopping.set()
        self._wake.set()
        with self._state:
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        delay = self._first_delay
        while True:
            if delay > 0:
                self._wake.wait(delay)
            if self._stopping.is_set():
                return
            self._wake.clear()
            try:
                delay = self._run_pass()
            except Exception as failure:  # the loop must outlive any one bad pass
                delay = self._on_failure(failure)
