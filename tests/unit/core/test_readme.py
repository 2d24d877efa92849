"""The README's option table is documentation users rely on: it must list exactly the options the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rds_csi.plugin.config import ALL_OPTIONS

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.skipif(not README.exists(), reason="README.md is not shipped with an installed wheel")
def test_readme_lists_every_option_with_its_env_and_default() -> None:
    text = README.read_text(encoding="utf-8")
    rows = {
        m.group(1): m for m in re.finditer(r"^\| `(--[a-z0-9-]+)` \| `(RDS_CSI_[A-Z0-9_]+)` \| ([^|]+) \|", text, re.M)
    }
    assert set(rows) == {o.flag for o in ALL_OPTIONS}, "run scripts/gen-option-table"
    for option in ALL_OPTIONS:
        row = rows[option.flag]
        assert row.group(2) == option.env
        assert row.group(3).strip() == (f"`{option.default}`" if option.default else "—")
