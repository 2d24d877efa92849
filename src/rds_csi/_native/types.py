"""Value types of the attachment table, shared by the Cython module and its pure-Python twin.

Every check here raises plain ``TypeError``/``ValueError``: ``_native`` sits below the domain layer and must not
import ``rds_csi.core``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

MAX_NODES = 2
"""Attachments a volume may ever hold: the KubeVirt live-migration window (source + target), never three."""

MAX_STRIPES = 1 << 16


class AccessKind(IntEnum):
    SINGLE_NODE = 1
    MULTI_NODE_BLOCK = 2


def check_id(value: object, what: str) -> str:
    """Return ``value`` as an exact, non-empty ``str`` that UTF-8 can encode (``UnicodeEncodeError`` is a
    ``ValueError``).

    A ``str`` subclass is copied to a plain ``str`` so that its own ``__hash__``/``__eq__`` can never make two
    spellings of one id land in different stripes.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if not value.isascii():
        value.encode()  # the Cython table stores ids as UTF-8: a lone surrogate is refused by both twins
    return value if type(value) is str else str.__str__(value)


def check_time(value: object, what: str) -> float:
    """Return ``value`` as a finite float; times are caller-supplied (the table has no clock)."""
    if not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{what} must be finite, got {result!r}")
    return result


def check_grace(value: object) -> float:
    if not isinstance(value, int | float):
        raise TypeError(f"grace_seconds must be a number, not {type(value).__name__}")
    result = float(value)
    if not result >= 0.0:  # also refuses NaN
        raise ValueError(f"grace_seconds must be >= 0, got {result!r}")
    return result


def check_stripes(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"stripes must be an int, not {type(value).__name__}")
    if value < 1 or value > MAX_STRIPES or value & (value - 1):
        raise ValueError(f"stripes must be a power of two in 1..{MAX_STRIPES}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class NodeAttachment:
    node_id: str
    attached_at: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_id", check_id(self.node_id, "node_id"))
        object.__setattr__(self, "attached_at", check_time(self.attached_at, "attached_at"))


@dataclass(frozen=True, slots=True)
class Migration:
    source: str
    target: str
    started_at: float
    deadline: float
    failed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", check_id(self.source, "migration source"))
        object.__setattr__(self, "target", check_id(self.target, "migration target"))
        object.__setattr__(self, "started_at", check_time(self.started_at, "started_at"))
        object.__setattr__(self, "deadline", check_time(self.deadline, "deadline"))
        object.__setattr__(self, "failed", bool(self.failed))
        if self.source == self.target:
            raise ValueError(f"migration source and target are the same node {self.source!r}")
        if self.deadline < self.started_at:
            raise ValueError(f"migration deadline {self.deadline} is before its start {self.started_at}")


@dataclass(frozen=True, slots=True)
class VolumeEntry:
    """One volume's attachment state; ``nodes`` are in attach order, so a migration source comes first."""

    volume_id: str
    kind: AccessKind
    nodes: tuple[NodeAttachment, ...] = ()
    migration: Migration | None = None
    last_detach_at: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "volume_id", check_id(self.volume_id, "volume_id"))
        object.__setattr__(self, "kind", AccessKind(self.kind))
        nodes = tuple(self.nodes)
        object.__setattr__(self, "nodes", nodes)
        if any(not isinstance(node, NodeAttachment) for node in nodes):
            raise TypeError("nodes must hold NodeAttachment values")
        if len(nodes) > MAX_NODES:
            raise ValueError(f"volume {self.volume_id!r} would have {len(nodes)} nodes; at most {MAX_NODES}")
        node_ids = [node.node_id for node in nodes]
        if len(set(node_ids)) != len(node_ids):
            raise ValueError(f"volume {self.volume_id!r} lists a node twice: {node_ids}")
        if self.last_detach_at is not None:
            object.__setattr__(self, "last_detach_at", check_time(self.last_detach_at, "last_detach_at"))
        migration = self.migration
        if migration is not None:
            if not isinstance(migration, Migration):
                raise TypeError("migration must be a Migration or None")
            if self.kind is not AccessKind.MULTI_NODE_BLOCK:
                raise ValueError(f"volume {self.volume_id!r}: only multi-node block volumes migrate")
            if migration.source not in node_ids or migration.target not in node_ids:
                raise ValueError(
                    f"volume {self.volume_id!r}: migration {migration.source!r} -> {migration.target!r} "
                    f"names a node that is not attached ({node_ids})"
                )

    def has_node(self, node_id: str) -> bool:
        return any(node.node_id == node_id for node in self.nodes)


def check_entry(value: object, volume_id: str, what: str) -> VolumeEntry | None:
    """Validate a compare-and-swap operand: ``None`` (absent) or an entry for exactly ``volume_id``."""
    if value is None:
        return None
    if not isinstance(value, VolumeEntry):
        raise TypeError(f"{what} must be a VolumeEntry or None, not {type(value).__name__}")
    if value.volume_id != volume_id:
        raise ValueError(f"{what} is for volume {value.volume_id!r}, not {volume_id!r}")
    return value
