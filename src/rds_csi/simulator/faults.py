"""Fault injection: latency profiles and per-operation fault rules, shared by the SSH and REST front ends.

Operations are classified as ``add``, ``print``, ``set``, ``remove`` or ``monitor`` (a rule for ``any``
matches them all), on the ``disk``, ``file`` or ``system`` menu (a rule's ``menu`` narrows it; ``any`` by
default). A rule's ``kind`` says what happens instead of a normal answer:

- ``error``: the command fails with ``failure: <message>`` (REST: 400 with that detail);
- ``hang``: no answer at all until the client gives up or the simulator stops;
- ``drop``: the connection is closed mid-command, without an answer (the command did not run);
- ``lost-reply``: the command runs and its change is committed, then the connection is closed without an answer;
- ``garbage``: the command "succeeds" with output no parser can read (it did not run);
- ``ignore``: the command answers as a success would (nothing printed; REST 204) but changes nothing, as
  ``[find ...]`` matching nothing does;
- ``short-copy``: a ``/disk add copy-from=`` copies only the first half of its source (the copy comes out
  smaller than the source); other commands run normally;
- ``trickle``: the command runs, and its answer (over REST the whole HTTP response, status line and headers
  included) is sent one byte every ``interval`` seconds, as a congested or failing link delivers it; the front end
  stops when the client leaves, and records how far it got (``Simulator.trickles``).

``after`` lets that many matching operations through before the rule fires (``after: N-1, times: 1`` fails the
N-th), ``times`` caps how often it fires (``None``: forever), ``probability`` makes it intermittent (seeded, so
runs are reproducible). The JSON form, used by the control endpoint and by SIGHUP reloads, is::

    {"profile": "zero", "seed": 7,
     "rules": [{"op": "add", "kind": "error", "message": "not enough space", "after": 2, "times": 1},
               {"op": "remove", "menu": "file", "kind": "lost-reply"}]}
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rds_csi.core.errors import InvalidArgument

OPS = frozenset({"add", "print", "set", "remove", "monitor", "any"})
MENUS = frozenset({"disk", "file", "system", "any"})
KINDS = frozenset({"error", "hang", "drop", "lost-reply", "garbage", "ignore", "short-copy", "trickle"})
GARBAGE = "\x1b[?25l#!@\x00 ~~ 0x7f *** ??? \ufffd\ufffd\n"


@dataclass(frozen=True, slots=True)
class LatencyProfile:
    """Seconds each operation takes before it answers, spread uniformly by +/- ``jitter`` (a fraction)."""

    name: str
    seconds: Mapping[str, float]
    default: float
    jitter: float = 0.2

    def delay(self, op: str, rng: random.Random) -> float:
        base = self.seconds.get(op, self.default)
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter))) if base else 0.0


PROFILES: Mapping[str, LatencyProfile] = {
    "realistic": LatencyProfile(
        "realistic", {"print": 0.05, "add": 0.5, "remove": 0.3, "set": 0.1, "monitor": 0.1}, default=0.1
    ),
    "zero": LatencyProfile("zero", {}, default=0.0, jitter=0.0),
}


@dataclass(frozen=True, slots=True)
class FaultRule:
    op: str = "any"
    kind: str = "error"
    menu: str = "any"
    message: str = "not enough space"
    after: int = 0
    times: int | None = None
    probability: float = 1.0
    interval: float = 1.0  # trickle: seconds between two bytes of the answer

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InvalidArgument(f"fault op must be one of {sorted(OPS)}, not {self.op!r}")
        if self.menu not in MENUS:
            raise InvalidArgument(f"fault menu must be one of {sorted(MENUS)}, not {self.menu!r}")
        if self.kind not in KINDS:
            raise InvalidArgument(f"fault kind must be one of {sorted(KINDS)}, not {self.kind!r}")
        if self.after < 0 or (self.times is not None and self.times < 0):
            raise InvalidArgument("fault after and times must not be negative")
        if not 0.0 <= self.probability <= 1.0:
            raise InvalidArgument("fault probability must be between 0 and 1")
        if not 0.0 < self.interval <= 60.0:
            raise InvalidArgument("fault interval must be more than 0 and at most 60 seconds")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        unknown = set(data) - {"op", "kind", "menu", "message", "after", "times", "probability", "interval"}
        if unknown:
            raise InvalidArgument(f"unknown fault rule keys: {sorted(unknown)}")
        try:
            return cls(
                op=str(data.get("op", "any")),
                kind=str(data.get("kind", "error")),
                menu=str(data.get("menu", "any")),
                message=str(data.get("message", "not enough space")),
                after=int(data.get("after", 0)),
                times=None if data.get("times") is None else int(data["times"]),
                probability=float(data.get("probability", 1.0)),
                interval=float(data.get("interval", 1.0)),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"bad fault rule {dict(data)}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """A complete fault configuration: what the config, the control endpoint and reload files carry."""

    profile: str = "realistic"
    rules: tuple[FaultRule, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise InvalidArgument(f"latency profile must be one of {sorted(PROFILES)}, not {self.profile!r}")

    @classmethod
    def from_json(cls, data: Any) -> FaultPlan:
        if not isinstance(data, Mapping):
            raise InvalidArgument("a fault plan is a JSON object")
        unknown = set(data) - {"profile", "rules", "seed"}
        if unknown:
            raise InvalidArgument(f"unknown fault plan keys: {sorted(unknown)}")
        rules = data.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
            raise InvalidArgument("fault plan rules must be a list of objects")
        seed = data.get("seed")
        return cls(
            profile=str(data.get("profile", "realistic")),
            rules=tuple(FaultRule.from_json(r) for r in rules),
            seed=None if seed is None else int(seed),
        )

    @classmethod
    def from_file(cls, path: Path) -> FaultPlan:
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidArgument(f"cannot read fault plan {path}: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "seed": self.seed, "rules": [asdict(r) for r in self.rules]}


@dataclass(frozen=True, slots=True)
class Decision:
    """What the front end does for one operation: wait ``delay`` seconds, then answer or misbehave."""

    delay: float
    kind: str | None = None
    message: str = ""
    interval: float = 0.0

    @property
    def short_copy(self) -> bool:
        """Run the command, but a ``copy-from`` copies only half of its source."""
        return self.kind == "short-copy"

    @property
    def trickle_interval(self) -> float | None:
        """Run the command, then send its answer one byte every this many seconds (None: all at once)."""
        return self.interval if self.kind == "trickle" else None

    @property
    def loses_reply(self) -> bool:
        """Run the command (its change is committed), then cut the connection instead of answering."""
        return self.kind == "lost-reply"


@dataclass(slots=True)
class _RuleState:
    rule: FaultRule
    seen: int = 0
    fired: int = 0


@dataclass(slots=True)
class _State:
    plan: FaultPlan
    rules: list[_RuleState] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)


class FaultInjector:
    """Thread-safe holder of the active ``FaultPlan``; ``decide`` is called once per operation."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self._state = self._fresh(plan or FaultPlan())

    @staticmethod
    def _fresh(plan: FaultPlan) -> _State:
        return _State(plan=plan, rules=[_RuleState(r) for r in plan.rules], rng=random.Random(plan.seed))

    @property
    def plan(self) -> FaultPlan:
        with self._lock:
            return self._state.plan

    def apply(self, plan: FaultPlan) -> None:
        """Replace the whole plan; rule counters start again from zero."""
        with self._lock:
            self._state = self._fresh(plan)

    def set_profile(self, name: str) -> None:
        with self._lock:
            plan = FaultPlan(profile=name, rules=self._state.plan.rules, seed=self._state.plan.seed)
            self._state.plan = plan

    def add_rule(self, rule: FaultRule) -> None:
        with self._lock:
            old = self._state.plan
            self._state.plan = FaultPlan(profile=old.profile, rules=(*old.rules, rule), seed=old.seed)
            self._state.rules.append(_RuleState(rule))

    def clear_rules(self) -> None:
        with self._lock:
            old = self._state.plan
            self._state.plan = FaultPlan(profile=old.profile, seed=old.seed)
            self._state.rules = []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = self._state.plan.to_json()
            data["counters"] = [{"seen": s.seen, "fired": s.fired} for s in self._state.rules]
            return data

    def decide(self, op: str, menu: str | None = None) -> Decision:
        """What to do with one operation on ``menu`` (None: not known, e.g. a command that does not parse)."""
        with self._lock:
            state = self._state
            delay = PROFILES[state.plan.profile].delay(op, state.rng)
            for rule_state in state.rules:
                rule = rule_state.rule
                if rule.op not in ("any", op) or rule.menu not in ("any", menu):
                    continue
                rule_state.seen += 1
                exhausted = rule.times is not None and rule_state.fired >= rule.times
                if rule_state.seen <= rule.after or exhausted:
                    continue
                if rule.probability < 1.0 and state.rng.random() >= rule.probability:
                    continue
                rule_state.fired += 1
                return Decision(delay=delay, kind=rule.kind, message=rule.message, interval=rule.interval)
            return Decision(delay=delay)
