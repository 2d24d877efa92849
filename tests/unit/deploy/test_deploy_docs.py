"""docs/deploy.md tables that users copy from: they must name exactly what the driver and manifests use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rds_csi.csi.validation import FSTYPE_KEY, KNOWN_PARAMS

from .test_deploy_manifests import SECRET_KEYS

# Reaches rds_csi._native, directly or not: the pure-twin pass runs it too (tests/unit/ci/test_pure_twin_pass.py).
pytestmark = pytest.mark.native

DEPLOY_DOC = Path(__file__).resolve().parents[3] / "docs" / "deploy.md"


def table_keys(heading: str) -> set[str]:
    """The backticked first cells of the table rows under ``## heading``."""
    section = DEPLOY_DOC.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    keys = re.findall(r"^\| `([^`]+)`", section, re.MULTILINE)
    assert keys, f"no table under '{heading}'"
    return set(keys)


def test_storage_class_parameter_table_lists_exactly_the_accepted_parameters() -> None:
    assert table_keys("StorageClass parameters") == KNOWN_PARAMS | {FSTYPE_KEY}


def test_secret_table_lists_exactly_the_keys_the_manifests_mount() -> None:
    assert table_keys("The RouterOS credentials Secret") == SECRET_KEYS
