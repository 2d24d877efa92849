"""Which volumes on the RDS no PersistentVolume claims: pure rules, no I/O.

An orphan is a managed volume (a disk of ours, or a leftover ``<id>.img`` under the base path without its disk)
whose id no PV of our driver carries. Age is measured from when this controller first saw it unclaimed, on a
monotonic clock: RouterOS prints file times in the router's local time zone, which the driver cannot know, so
they are no proof of age. First-seen is never earlier than creation, so the grace period can only grow (and starts
over after a controller restart): never shorter than asked. Snapshots and anything outside the base path are
never candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rds_csi.routeros.models import FileEntry
from rds_csi.routeros.names import RouterPath
from rds_csi.routeros.volumes import SNAPSHOT_PREFIX, Volume

_IMAGE_SUFFIX = ".img"


@dataclass(frozen=True, slots=True)
class OrphanCandidate:
    volume_id: str
    kind: str  # "volume" (disk and file) or "file" (a backing file whose disk is gone)
    path: str


@dataclass(frozen=True, slots=True)
class OrphanScan:
    ripe: tuple[OrphanCandidate, ...]  # unclaimed for at least the grace period
    waiting: tuple[OrphanCandidate, ...]  # unclaimed, but not for long enough yet
    first_seen: Mapping[str, float]  # carry into the next scan


def unclaimed(
    volumes: Iterable[Volume], files: Iterable[FileEntry], base: RouterPath, claimed: frozenset[str]
) -> list[OrphanCandidate]:
    """Managed volumes and bare backing files under ``base`` whose id is not in ``claimed``."""
    candidates: dict[str, OrphanCandidate] = {}
    disk_files: set[str] = set()
    for volume in volumes:
        if volume.file_path is not None:
            disk_files.add(volume.file_path.lstrip("/"))
        if volume.volume_id not in claimed:
            candidates[volume.volume_id] = OrphanCandidate(volume.volume_id, "volume", volume.file_path or "")
    for entry in files:
        name = entry.name.rsplit("/", 1)[-1]
        directory = entry.name[: -len(name)].rstrip("/")
        volume_id = name.removesuffix(_IMAGE_SUFFIX)
        if (
            entry.is_directory
            or not name.endswith(_IMAGE_SUFFIX)
            or name.startswith(SNAPSHOT_PREFIX)
            or directory.split("/")[: len(base.segments)] != list(base.segments)
            or entry.name in disk_files
            or volume_id in claimed
            or volume_id in candidates
        ):
            continue
        candidates[volume_id] = OrphanCandidate(volume_id, "file", "/" + entry.name)
    return sorted(candidates.values(), key=lambda c: c.volume_id)


def age_candidates(
    candidates: Iterable[OrphanCandidate], first_seen: Mapping[str, float], now: float, grace_seconds: float
) -> OrphanScan:
    """Split candidates into ripe and waiting; ids no longer unclaimed are forgotten (their clock restarts)."""
    seen: dict[str, float] = {}
    ripe: list[OrphanCandidate] = []
    waiting: list[OrphanCandidate] = []
    for candidate in candidates:
        since = first_seen.get(candidate.volume_id, now)
        seen[candidate.volume_id] = since
        (ripe if now - since >= grace_seconds else waiting).append(candidate)
    return OrphanScan(tuple(ripe), tuple(waiting), seen)
