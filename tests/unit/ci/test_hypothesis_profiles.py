"""The property tests run under the profile tests/conftest.py loads: reproducible by default, long on request."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.unit.attach.test_attach_model import SETTINGS as MODEL
from tests.unit.routeros.test_routeros_fuzz import FUZZ

# Reaches rds_csi._native, directly or not: the pure-twin pass runs it too (tests/unit/ci/test_pure_twin_pass.py).
pytestmark = pytest.mark.native

LONG = os.environ.get("RDS_CSI_LONG") == "1"


@pytest.mark.skipif(LONG, reason="RDS_CSI_LONG=1 loads the long profile")
def test_by_default_every_property_test_is_derandomized_without_an_example_database() -> None:
    for used in (FUZZ, MODEL, settings()):
        assert used.derandomize is True
        assert used.database is None
        assert used.deadline is None


def test_the_model_check_takes_a_quarter_of_the_profile_budget_and_the_fuzzers_all_of_it() -> None:
    budget = settings.get_profile("long" if LONG else "ci").max_examples
    assert FUZZ.max_examples == budget
    assert MODEL.max_examples == budget // 4
    assert MODEL.stateful_step_count == 30


@pytest.mark.skipif(not LONG, reason="the long profile is loaded only with RDS_CSI_LONG=1")
def test_the_long_run_searches_at_random_and_remembers_what_it_found() -> None:
    assert FUZZ.derandomize is False
    assert FUZZ.database is not None
