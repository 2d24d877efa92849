"""Native hot paths with pure-Python twins; this module alone decides which implementation is used.

``RDS_CSI_NO_EXTENSIONS=1`` (or ``true``/``yes``) forces the pure twins; otherwise the compiled Cython modules
are used when they import, and the twins when they do not (no compiler at install time, or a build failure).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Final

from rds_csi._native import attachment_table_py
from rds_csi._native.types import MAX_NODES, AccessKind, Migration, NodeAttachment, VolumeEntry

__all__ = [
    "BACKEND",
    "MAX_NODES",
    "NO_EXTENSIONS_ENV",
    "AccessKind",
    "AttachmentTable",
    "Migration",
    "NodeAttachment",
    "VolumeEntry",
    "available_backends",
    "extensions_disabled",
]

NO_EXTENSIONS_ENV: Final = "RDS_CSI_NO_EXTENSIONS"


def extensions_disabled() -> bool:
    """True when the environment forces the pure-Python twins."""
    return os.environ.get(NO_EXTENSIONS_ENV, "").strip().lower() in {"1", "true", "yes"}


_BACKENDS: Final[dict[str, ModuleType]] = {"python": attachment_table_py}
if not extensions_disabled():
    try:
        from rds_csi._native import attachment_table
    except ImportError:
        pass
    else:
        _BACKENDS["cython"] = attachment_table

BACKEND: Final[str] = "cython" if "cython" in _BACKENDS else "python"

if TYPE_CHECKING:
    from rds_csi._native.attachment_table_py import AttachmentTable
else:
    AttachmentTable = _BACKENDS[BACKEND].AttachmentTable


def available_backends() -> dict[str, ModuleType]:
    """Implementation modules usable in this process, by backend name (``"python"`` always, ``"cython"`` if built
    and not disabled); each has the same ``AttachmentTable``."""
    return dict(_BACKENDS)
