"""Tests get temp dirs from pytest (``tmp_path``, ``tmp_path_factory``), or for unix sockets from
tests/tempdirs.py: no module makes its own."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
HAND_MADE = re.compile(r"\b(?:mkdtemp|TemporaryDirectory)\(")
# The short dirs for sockets, and the VM harness, whose job and download dirs live in its cache, not a temp root.
ALLOWED = {TESTS / "tempdirs.py", TESTS / "vm" / "guest.py"}


def test_no_test_module_makes_its_own_temp_dir() -> None:
    offenders = [
        str(path.relative_to(TESTS))
        for path in sorted(TESTS.rglob("*.py"))
        if path not in ALLOWED and HAND_MADE.search(path.read_text())
    ]
    assert not offenders, f"use tmp_path / tmp_path_factory, or tests.tempdirs.short_temp_dir for sockets: {offenders}"
