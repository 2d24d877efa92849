"""What both front ends share: parse, consult the fault plan, wait, then run or misbehave."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from rds_csi.clock import Clock
from rds_csi.errors import RdsCsiError
from rds_csi.simulator.cli import Command, Interpreter, SystemInfo, parse, render_error
from rds_csi.simulator.faults import GARBAGE, Decision, FaultInjector
from rds_csi.simulator.model import Model

_POLL = 0.05


@dataclass(frozen=True, slots=True)
class Outcome:
    """A console answer: text and exit status, or ``drop`` when the connection must be cut instead."""

    output: str
    status: int
    drop: bool = False
    garbage: bool = False


class Engine:
    def __init__(self, model: Model, faults: FaultInjector, info: SystemInfo, clock: Clock) -> None:
        self.model = model
        self.faults = faults
        self.clock = clock
        self.started = clock.now()
        self.interpreter = Interpreter(model, info, lambda: clock.now() - self.started)
        self.stopping = threading.Event()

    def pause(self, seconds: float, gone: Callable[[], bool]) -> bool:
        """Wait up to ``seconds`` (forever if negative); False if the client left or the simulator stops."""
        deadline = None if seconds < 0 else self.clock.now() + seconds
        while not self.stopping.is_set():
            if gone():
                return False
            remaining = _POLL if deadline is None else deadline - self.clock.now()
            if remaining <= 0:
                return True
            self.stopping.wait(min(_POLL, remaining))
        return False

    def misbehave(self, decision: Decision, gone: Callable[[], bool]) -> Outcome | None:
        """Apply latency and any fault; None means: answer normally. ``drop`` also covers a vanished client."""
        if not self.pause(decision.delay, gone):
            return Outcome("", 1, drop=True)
        match decision.kind:
            case "error":
                return Outcome(f"failure: {decision.message}\n", 1)
            case "hang":
                self.pause(-1, gone)
                return Outcome("", 1, drop=True)
            case "drop":
                return Outcome("", 1, drop=True)
            case "garbage":
                return Outcome(GARBAGE, 0, garbage=True)
        return None

    def console(self, text: str, width: int, gone: Callable[[], bool]) -> Outcome:
        """Run one console command as an SSH exec session would."""
        command: Command | None = None
        try:
            command = parse(text)
        except RdsCsiError as exc:
            failed = self.misbehave(self.faults.decide("any"), gone)
            return failed or Outcome(render_error(exc) + "\n", 1)
        failed = self.misbehave(self.faults.decide(command.op), gone)
        if failed is not None:
            return failed
        try:
            return Outcome(self.interpreter.run(command, width), 0)
        except RdsCsiError as exc:
            return Outcome(render_error(exc) + "\n", 1)
