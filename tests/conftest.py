"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.tempdirs import short_temp_dir

# Hypothesis sizes and reproducibility, for every property test (their modules are imported after this file, so
# their ``settings(...)`` inherit the loaded profile). ``ci``, the default: quick, and derandomized with no
# example database, so a run tests the same examples on every machine and a fresh clone (a CI failure reproduces
# with the same command, and no run fails on an example an earlier, unrelated one happened to find). ``long``
# (``RDS_CSI_LONG=1``): the opt-in search, random and with the default example database (.hypothesis/), which
# replays what an earlier long run found on that machine; a find worth keeping becomes an ``@example`` or a test.
# ``max_examples`` is the budget of one cheap property; a test whose examples cost more takes a stated share.
# No deadlines: a busy machine makes examples slow, and timing belongs in benchmarks/.
settings.register_profile("ci", max_examples=600, derandomize=True, database=None, deadline=None)
settings.register_profile("long", max_examples=20_000, derandomize=False, deadline=None)
settings.load_profile("long" if os.environ.get("RDS_CSI_LONG") == "1" else "ci")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path, for unix sockets (107 bytes at most; see tests/tempdirs.py)."""
    with short_temp_dir() as path:
        yield path
