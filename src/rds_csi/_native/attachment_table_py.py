"""Pure-Python attachment table: the reference behaviour of the Cython ``attachment_table`` module.

Entries are immutable ``VolumeEntry`` values in per-stripe dicts; every operation on a volume holds that volume's
stripe lock, so a reader never sees half of an update and two writers never lose one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace

from rds_csi._native.types import (
    MAX_NODES,
    AccessKind,
    Migration,
    NodeAttachment,
    VolumeEntry,
    check_entry,
    check_grace,
    check_id,
    check_stripes,
    check_time,
)


class _Stripe:
    __slots__ = ("attachments", "entries", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, VolumeEntry] = {}
        self.attachments = 0


class AttachmentTable:
    """Per-volume attachment state behind lock striping; see the package docs for the contract."""

    __slots__ = ("_mask", "_stripes")

    def __init__(self, stripes: int = 64) -> None:
        count = check_stripes(stripes)
        self._stripes = tuple(_Stripe() for _ in range(count))
        self._mask = count - 1

    def _stripe(self, volume_id: str) -> _Stripe:
        return self._stripes[hash(volume_id) & self._mask]

    def get(self, volume_id: str) -> VolumeEntry | None:
        volume_id = check_id(volume_id, "volume_id")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            return stripe.entries.get(volume_id)

    def attach(self, volume_id: str, node_id: str, kind: AccessKind, now: float) -> bool:
        volume_id = check_id(volume_id, "volume_id")
        node_id = check_id(node_id, "node_id")
        kind = AccessKind(kind)
        now = check_time(now, "now")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.get(volume_id)
            added = NodeAttachment(node_id, now)
            if entry is None:
                new = VolumeEntry(volume_id, kind, (added,))
            else:
                if entry.nodes and entry.kind != kind:
                    raise ValueError(
                        f"volume {volume_id!r} is attached with access kind {entry.kind.name}, not {kind.name}"
                    )
                if entry.has_node(node_id):
                    return False
                if len(entry.nodes) >= MAX_NODES:
                    raise ValueError(f"volume {volume_id!r} already has {MAX_NODES} nodes; refusing {node_id!r}")
                new = replace(entry, kind=kind, nodes=(*entry.nodes, added))
            stripe.entries[volume_id] = new
            stripe.attachments += 1
            return True

    def detach(self, volume_id: str, node_id: str, now: float) -> bool:
        volume_id = check_id(volume_id, "volume_id")
        node_id = check_id(node_id, "node_id")
        now = check_time(now, "now")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.get(volume_id)
            if entry is None or not entry.has_node(node_id):
                return False
            migration = entry.migration
            if migration is not None and node_id in (migration.source, migration.target):
                migration = None
            nodes = tuple(node for node in entry.nodes if node.node_id != node_id)
            stripe.entries[volume_id] = replace(entry, nodes=nodes, migration=migration, last_detach_at=now)
            stripe.attachments -= 1
            return True

    def is_attached(self, volume_id: str, node_id: str) -> bool:
        volume_id = check_id(volume_id, "volume_id")
        node_id = check_id(node_id, "node_id")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.get(volume_id)
            return entry is not None and entry.has_node(node_id)

    def nodes(self, volume_id: str) -> tuple[str, ...]:
        entry = self.get(volume_id)
        return () if entry is None else tuple(node.node_id for node in entry.nodes)

    def within_grace(self, volume_id: str, now: float, grace_seconds: float) -> bool:
        volume_id = check_id(volume_id, "volume_id")
        now = check_time(now, "now")
        grace = check_grace(grace_seconds)
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.get(volume_id)
            last = None if entry is None else entry.last_detach_at
            return last is not None and now - last < grace

    def start_migration(self, volume_id: str, source: str, target: str, started_at: float, deadline: float) -> None:
        volume_id = check_id(volume_id, "volume_id")
        migration = Migration(source, target, started_at, deadline)
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.get(volume_id)
            if entry is None:
                raise KeyError(volume_id)
            if entry.migration is not None:
                raise ValueError(f"volume {volume_id!r} already has a migration recorded")
            stripe.entries[volume_id] = replace(entry, migration=migration)

    def fail_migration(self, volume_id: str) -> bool:
        volume_id = check_id(volume_id, "volume_id")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.get(volume_id)
            if entry is None:
                raise KeyError(volume_id)
            if entry.migration is None:
                return False
            stripe.entries[volume_id] = replace(entry, migration=replace(entry.migration, failed=True))
            return True

    def end_migration(self, volume_id: str) -> bool:
        volume_id = check_id(volume_id, "volume_id")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.get(volume_id)
            if entry is None:
                raise KeyError(volume_id)
            if entry.migration is None:
                return False
            stripe.entries[volume_id] = replace(entry, migration=None)
            return True

    def migration_expired(self, volume_id: str, now: float) -> bool:
        volume_id = check_id(volume_id, "volume_id")
        now = check_time(now, "now")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.get(volume_id)
            migration = None if entry is None else entry.migration
            return migration is not None and now >= migration.deadline

    def compare_and_swap(self, volume_id: str, expected: VolumeEntry | None, new: VolumeEntry | None) -> bool:
        volume_id = check_id(volume_id, "volume_id")
        expected = check_entry(expected, volume_id, "expected")
        new = check_entry(new, volume_id, "new")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            current = stripe.entries.get(volume_id)
            if current != expected:
                return False
            if current is not None:
                stripe.attachments -= len(current.nodes)
            if new is None:
                stripe.entries.pop(volume_id, None)
            else:
                stripe.entries[volume_id] = new
                stripe.attachments += len(new.nodes)
            return True

    def replace_all(self, entries: Iterable[VolumeEntry]) -> None:
        staged: tuple[dict[str, VolumeEntry], ...] = tuple({} for _ in self._stripes)
        for entry in entries:
            if not isinstance(entry, VolumeEntry):
                raise TypeError(f"entries must be VolumeEntry values, not {type(entry).__name__}")
            bucket = staged[hash(entry.volume_id) & self._mask]
            if entry.volume_id in bucket:
                raise ValueError(f"volume {entry.volume_id!r} appears twice")
            bucket[entry.volume_id] = entry
        for stripe, bucket in zip(self._stripes, staged, strict=True):
            attachments = sum(len(entry.nodes) for entry in bucket.values())
            with stripe.lock:
                stripe.entries = bucket
                stripe.attachments = attachments

    def forget(self, volume_id: str) -> None:
        volume_id = check_id(volume_id, "volume_id")
        stripe = self._stripe(volume_id)
        with stripe.lock:
            entry = stripe.entries.pop(volume_id, None)
            if entry is not None:
                stripe.attachments -= len(entry.nodes)

    def volume_ids(self) -> list[str]:
        ids: list[str] = []
        for stripe in self._stripes:
            with stripe.lock:
                ids.extend(stripe.entries)
        return sorted(ids)

    def __len__(self) -> int:
        total = 0
        for stripe in self._stripes:
            with stripe.lock:
                total += len(stripe.entries)
        return total

    def attached_count(self) -> int:
        total = 0
        for stripe in self._stripes:
            with stripe.lock:
                total += stripe.attachments
        return total

    def volumes_on_node(self, node_id: str) -> list[str]:
        node_id = check_id(node_id, "node_id")
        ids: list[str] = []
        for stripe in self._stripes:
            with stripe.lock:
                ids.extend(volume_id for volume_id, entry in stripe.entries.items() if entry.has_node(node_id))
        return sorted(ids)
