"""Build the optional Cython extensions in src/rds_csi/_native.

Every extension has a pure-Python twin, so a failed or skipped build still yields a working package:
- RDS_CSI_NO_EXTENSIONS=1 skips the build entirely (pure package);
- a missing Cython or C compiler, or a compile error, logs a warning and falls back to the twins.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

NATIVE_DIR = Path("src") / "rds_csi" / "_native"


def _wants_extensions() -> bool:
    return os.environ.get("RDS_CSI_NO_EXTENSIONS", "").strip() not in {"1", "true", "yes"}


def _extensions() -> list[Any]:
    if not _wants_extensions():
        print("rds-csi: RDS_CSI_NO_EXTENSIONS set, building the pure-Python package", file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("rds-csi: Cython not available, building the pure-Python package", file=sys.stderr)
        return []
    sources = sorted(str(p) for p in NATIVE_DIR.glob("*.pyx"))
    if not sources:
        return []
    return list(
        cythonize(
            sources,
            compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
            quiet=True,
        )
    )


class OptionalBuildExt(build_ext):
    """A build_ext whose failure degrades to the pure-Python twins instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            self._warn(exc)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(
            f"rds-csi: building the native extensions failed ({exc}); using pure-Python twins",
            file=sys.stderr,
        )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
