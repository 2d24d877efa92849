"""Setting values that the layers below the plugin act on, so they need not import the plugin's settings."""

from __future__ import annotations

from enum import StrEnum


class OrphanMode(StrEnum):
    """What the orphan sweep does with volumes no PersistentVolume claims (`--orphan-reconcile`)."""

    OFF = "off"
    DRY_RUN = "dry-run"
    DELETE = "delete"
