from __future__ import annotations

import time

import pytest

from rds_csi.core import errors
from rds_csi.core.deadlines import call_deadline, time_left


def test_without_a_call_deadline_the_default_applies() -> None:
    assert time_left(10.0) == 10.0


def test_call_deadline_shortens_command_timeouts() -> None:
    with call_deadline(2.0):
        assert 1.0 < time_left(10.0) <= 2.0
        assert time_left(0.5) == 0.5


def test_no_command_starts_after_the_deadline() -> None:
    with call_deadline(0.01):
        time.sleep(0.02)  # let the (real, monotonic) deadline pass
        with pytest.raises(errors.DeadlineExceeded):
            time_left(10.0)
    assert time_left(10.0) == 10.0
