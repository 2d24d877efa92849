"""Fault plans: matching by operation, fail-after-N, caps, profiles and the JSON form."""

from __future__ import annotations

import random

import pytest

from rds_csi.core.errors import InvalidArgument
from rds_csi.simulator.faults import PROFILES, FaultInjector, FaultPlan, FaultRule


def test_rule_fires_only_for_its_operation() -> None:
    injector = FaultInjector(FaultPlan(profile="zero", rules=(FaultRule(op="add", kind="hang"),)))
    assert injector.decide("print").kind is None
    assert injector.decide("add").kind == "hang"


def test_fail_after_n_lets_n_through_then_fails_times() -> None:
    rule = FaultRule(op="any", kind="error", message="busy", after=2, times=1)
    injector = FaultInjector(FaultPlan(profile="zero", rules=(rule,)))
    kinds = [injector.decide("set").kind for _ in range(5)]
    assert kinds == [None, None, "error", None, None]


def test_probability_is_reproducible_with_a_seed() -> None:
    plan = FaultPlan(profile="zero", rules=(FaultRule(kind="drop", probability=0.5),), seed=7)
    runs = [[i.decide("print").kind for _ in range(20)] for i in (FaultInjector(plan), FaultInjector(plan))]
    assert runs[0] == runs[1]
    assert set(runs[0]) == {None, "drop"}


def test_realistic_profile_delays_by_operation_within_jitter() -> None:
    profile = PROFILES["realistic"]
    rng = random.Random(1)
    assert all(0.4 <= profile.delay("add", rng) <= 0.6 for _ in range(50))
    assert all(0.04 <= profile.delay("print", rng) <= 0.06 for _ in range(50))
    assert PROFILES["zero"].delay("add", rng) == 0.0


def test_plan_round_trips_through_json() -> None:
    plan = FaultPlan(profile="zero", rules=(FaultRule(op="remove", kind="garbage", after=1, times=2),), seed=3)
    assert FaultPlan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(
    "data",
    [
        {"profile": "glacial"},
        {"rules": [{"op": "frobnicate"}]},
        {"rules": [{"kind": "explode"}]},
        {"rules": [{"after": -1}]},
        {"rules": [{"probability": 2}]},
        {"rules": [{"colour": "red"}]},
        {"unexpected": 1},
        [],
    ],
)
def test_invalid_plans_are_rejected(data: object) -> None:
    with pytest.raises(InvalidArgument):
        FaultPlan.from_json(data)


def test_add_rule_and_clear_rules_keep_profile() -> None:
    injector = FaultInjector(FaultPlan(profile="zero"))
    injector.add_rule(FaultRule(kind="error"))
    assert injector.decide("print").kind == "error"
    injector.clear_rules()
    assert injector.decide("print").kind is None
    assert injector.plan.profile == "zero"
    injector.set_profile("realistic")
    assert injector.decide("add").delay > 0


def test_rule_for_a_menu_fires_only_on_that_menu() -> None:
    # "Fail the second /file remove": /disk remove does not count towards it.
    rule = FaultRule(op="remove", menu="file", kind="error", message="busy", after=1, times=1)
    injector = FaultInjector(FaultPlan(profile="zero", rules=(rule,)))
    kinds = [injector.decide("remove", menu).kind for menu in ("disk", "file", "disk", "file", "file")]
    assert kinds == [None, None, None, "error", None]
    assert injector.decide("remove", None).kind is None  # a command that did not parse has no menu


def test_apply_then_lose_and_short_copy_decisions_say_what_the_front_end_does() -> None:
    lost = FaultInjector(FaultPlan(profile="zero", rules=(FaultRule(kind="lost-reply"),))).decide("set", "disk")
    assert lost.loses_reply and not lost.short_copy
    short = FaultInjector(FaultPlan(profile="zero", rules=(FaultRule(kind="short-copy"),))).decide("add", "disk")
    assert short.short_copy and not short.loses_reply


def test_menu_round_trips_through_json_and_an_unknown_menu_is_rejected() -> None:
    plan = FaultPlan(profile="zero", rules=(FaultRule(op="remove", menu="file", kind="ignore"),))
    assert FaultPlan.from_json(plan.to_json()) == plan
    with pytest.raises(InvalidArgument, match="fault menu"):
        FaultPlan.from_json({"rules": [{"menu": "interface"}]})


def test_a_trickle_decision_carries_its_pace_and_round_trips_through_json() -> None:
    rule = FaultRule(op="print", kind="trickle", interval=0.5)
    plan = FaultPlan(profile="zero", rules=(rule,))
    assert FaultPlan.from_json(plan.to_json()) == plan
    decision = FaultInjector(plan).decide("print", "disk")
    assert decision.trickle_interval == 0.5 and not decision.loses_reply
    assert FaultInjector(FaultPlan(profile="zero")).decide("print", "disk").trickle_interval is None
    for interval in (0, -1, 61):
        with pytest.raises(InvalidArgument, match="fault interval"):
            FaultPlan.from_json({"rules": [{"kind": "trickle", "interval": interval}]})
