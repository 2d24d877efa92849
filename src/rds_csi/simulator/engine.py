"""What both front ends share: parse, log, consult the fault plan, wait, then run or misbehave."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rds_csi.core.clock import Clock
from rds_csi.core.errors import RdsCsiError
from rds_csi.simulator.console import Command, Interpreter, SystemInfo, parse, render_error
from rds_csi.simulator.faults import GARBAGE, Decision, FaultInjector
from rds_csi.simulator.format import PLAIN_FLAGS, FlagColumn
from rds_csi.simulator.model import Model

_POLL = 0.05
_LOG_LENGTH = 10_000


@dataclass(frozen=True, slots=True)
class Outcome:
    """A console answer: text and exit status, or ``drop`` when the connection must be cut instead."""

    output: str
    status: int
    drop: bool = False
    garbage: bool = False
    ignored: bool = False  # answered as a success, without running the command
    trickle: float | None = None  # send the output one byte every this many seconds


@dataclass(frozen=True, slots=True)
class Trickle:
    """How a trickled answer ended: ``finished`` once every byte went out, else the client left first."""

    transport: str
    sent: int
    total: int

    @property
    def finished(self) -> bool:
        return self.sent == self.total


@dataclass(frozen=True, slots=True)
class LoggedCommand:
    """One command as a front end received it: ``command`` is the console line, or ``METHOD /path {json body}``."""

    transport: str  # "ssh" or "rest"
    menu: str | None  # "disk", "file", "system"; None when the command did not parse
    op: str
    command: str
    fault: str | None  # the fault kind applied to it, if any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class CommandLog:
    """The most recent commands received over SSH and REST, in arrival order (thread-safe, bounded)."""

    def __init__(self, length: int = _LOG_LENGTH) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedCommand] = deque(maxlen=length)

    def record(self, entry: LoggedCommand) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LoggedCommand]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Engine:
    def __init__(
        self, model: Model, faults: FaultInjector, info: SystemInfo, clock: Clock, flags: FlagColumn = PLAIN_FLAGS
    ) -> None:
        self.model = model
        self.faults = faults
        self.clock = clock
        self.started = clock.now()
        self.interpreter = Interpreter(model, info, lambda: clock.now() - self.started, flags)
        self.stopping = threading.Event()
        self.commands = CommandLog()
        self._trickles_lock = threading.Lock()
        self._trickles: deque[Trickle] = deque(maxlen=_LOG_LENGTH)

    @property
    def trickles(self) -> list[Trickle]:
        """Every trickled answer that ended, oldest first."""
        with self._trickles_lock:
            return list(self._trickles)

    def trickle(
        self, transport: str, data: bytes, interval: float, send: Callable[[bytes], None], gone: Callable[[], bool]
    ) -> None:
        """Send ``data`` one byte every ``interval`` seconds until done, the client leaves or the simulator stops."""
        sent = 0
        try:
            for index in range(len(data)):
                if index and not self.pause(interval, gone):
                    break
                send(data[index : index + 1])
                sent += 1
        except OSError:
            pass  # the client cut the connection: how far we got is the record
        finally:
            with self._trickles_lock:
                self._trickles.append(Trickle(transport, sent, len(data)))

    def decide(self, transport: str, menu: str | None, op: str, command: str) -> Decision:
        """Consult the fault plan for one command and log it with the fault it gets."""
        decision = self.faults.decide(op, menu)
        self.commands.record(LoggedCommand(transport, menu, op, command, decision.kind))
        return decision

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
        """Apply latency and any fault that replaces running the command; None means: run it (then mind the
        decision's ``short_copy`` and ``loses_reply``). ``drop`` also covers a vanished client."""
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
            case "ignore":
                return Outcome("", 0, ignored=True)
        return None

    def console(self, text: str, width: int, gone: Callable[[], bool]) -> Outcome:
        """Run one console command as an SSH exec session would."""
        command: Command | None = None
        try:
            command = parse(text)
        except RdsCsiError as exc:
            decision = self.decide("ssh", None, "any", text)
            failed = self.misbehave(decision, gone)
            if failed is None and decision.loses_reply:
                return Outcome("", 1, drop=True)
            return failed or Outcome(render_error(exc) + "\n", 1)
        decision = self.decide("ssh", command.menu[0], command.op, text)
        failed = self.misbehave(decision, gone)
        if failed is not None:
            return failed
        try:
            output, status = self.interpreter.run(command, width, short_copy=decision.short_copy), 0
        except RdsCsiError as exc:
            output, status = render_error(exc) + "\n", 1
        if decision.loses_reply:
            return Outcome("", 1, drop=True)
        return Outcome(output, status, trickle=decision.trickle_interval)
