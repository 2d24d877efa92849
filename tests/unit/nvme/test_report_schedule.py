"""When the host NQN reporter looks again: after a good check, and after failures in a row."""

from __future__ import annotations

import math

import pytest

from rds_csi.nvme import ReportSchedule

pytestmark = pytest.mark.native  # rds_csi.nvme loads the sysfs scanner and ioctls of rds_csi._native


def test_retry_delay_doubles_from_the_initial_backoff_up_to_the_cap() -> None:
    schedule = ReportSchedule(recheck_interval=300, initial_backoff=1, max_backoff=60)
    assert [schedule.retry_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_retry_delay_stays_at_the_cap_however_long_the_outage() -> None:
    assert ReportSchedule(initial_backoff=0.5, max_backoff=30).retry_delay(10_000) == 30


@pytest.mark.parametrize("field", ["recheck_interval", "initial_backoff", "max_backoff"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_schedule_non_positive_or_non_finite_seconds_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ReportSchedule(**{field: value})
