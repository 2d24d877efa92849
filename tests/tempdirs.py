"""Temp dirs for unix sockets: directly under the temp root, not under pytest's ``tmp_path``.

A unix socket path must fit in 107 bytes. pytest nests its dirs (``<root>/pytest-of-<user>/pytest-<run>/<test
name, up to 30 characters><n>``), and the temp root is whatever TMPDIR says (in the test VM, the guest's tmpfs:
tests/e2e/guest/conftest.py); a controller's socket below that can pass the limit. Every other temp dir of a
test comes from ``tmp_path`` or ``tmp_path_factory`` (tests/unit/ci/test_temp_dirs.py holds the tests to it).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def short_temp_dir(prefix: str = "rds-") -> Iterator[Path]:
    """A fresh dir ``<temp root>/<prefix><8 random characters>``, removed with its content afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
