"""The one place that picks the implementation: ``rds_csi._native``, checked in fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rds_csi._native import NO_EXTENSIONS_ENV, available_backends

pytestmark = pytest.mark.native

_REPORT = "import rds_csi._native as n; print(n.BACKEND, sorted(n.available_backends()), n.AttachmentTable.__module__)"


def _run(code: str, **env: str) -> str:
    environment = {key: value for key, value in os.environ.items() if key != NO_EXTENSIONS_ENV}
    environment["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("value", ["1", "true", "yes", " YES "])
def test_no_extensions_env_forces_the_python_twin(value: str) -> None:
    assert _run(_REPORT, **{NO_EXTENSIONS_ENV: value}) == ("python ['python'] rds_csi._native.attachment_table_py")


def test_missing_extension_falls_back_to_the_python_twin() -> None:
    # A None entry in sys.modules makes the import raise ImportError, as a missing or broken build does.
    hide = "import sys; sys.modules['rds_csi._native.attachment_table'] = None; "
    assert _run(hide + _REPORT) == "python ['python'] rds_csi._native.attachment_table_py"


@pytest.mark.parametrize("value", ["", "0", "no"])
def test_built_extension_is_chosen_unless_disabled(value: str) -> None:
    if "cython" not in available_backends():
        pytest.skip("Cython extension not built or disabled in this process")
    assert _run(_REPORT, **{NO_EXTENSIONS_ENV: value}) == (
        "cython ['cython', 'python'] rds_csi._native.attachment_table"
    )


_COMPONENTS = (
    "import rds_csi._native as n; "
    "print(n.BACKEND, n.AttachmentTable.__module__, n.find_subsystem.__module__, n.block_size_bytes.__module__)"
)


def test_a_missing_extension_sends_every_component_to_its_twin() -> None:
    # One process never mixes backends, so BACKEND names what every component runs.
    hide = "import sys; sys.modules['rds_csi._native.sysfs_scan'] = None; "
    assert _run(hide + _COMPONENTS) == (
        "python rds_csi._native.attachment_table_py rds_csi._native.sysfs_scan_py rds_csi._native.ioctls_py"
    )


def test_built_extensions_serve_every_component() -> None:
    if "cython" not in available_backends():
        pytest.skip("Cython extensions not built or disabled in this process")
    assert _run(_COMPONENTS) == (
        "cython rds_csi._native.attachment_table rds_csi._native.sysfs_scan rds_csi._native.ioctls"
    )
