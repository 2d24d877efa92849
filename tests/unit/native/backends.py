"""One parametrization for every _native module's tests: the pure twin always, the Cython build when it is there
(a skip saying why when it is not), so each test runs over both backends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from rds_csi._native import extensions_disabled


def backend_params(implementations: Mapping[str, Any]) -> list[Any]:
    """``pytest.param`` per backend from an ``available_*()`` mapping (``"python"`` and maybe ``"cython"``)."""
    params = [pytest.param(implementations["python"], id="python")]
    if "cython" in implementations:
        params.append(pytest.param(implementations["cython"], id="cython"))
    else:
        reason = (
            "RDS_CSI_NO_EXTENSIONS is set"
            if extensions_disabled()
            else "Cython extension not built (python setup.py build_ext --inplace)"
        )
        params.append(pytest.param(None, id="cython", marks=pytest.mark.skip(reason=reason)))
    return params
