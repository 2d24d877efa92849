"""Volumes and snapshots on the RDS, in CSI terms but without gRPC: what a volume id means on the box.

Names (the compatibility contract, docs/architecture.md §3): a volume is the ``/disk`` whose slot is the volume id,
backed by ``<volumePath>/<volume id>.img`` and exported as ``nqn.2000-02.com.mikrotik:<volume id lower-cased>``.

A volume created from a source is made in steps: an unexported copy-on-write copy of the source disk,
marked with an NQN that names this volume and that source (``_copy_marker_nqn``), then grown, then exported
under its own NQN in one ``/disk set``. A retry that finds the marked copy knows it is its own copy of that source
and finishes it; nothing else writes that mark, and no host can reach the copy before it is finished.

A snapshot is a copy-on-write ``/disk add copy-from=`` of the source disk, not exported. Its id is its
slot: ``snap-<uuid5 of the snapshot request name>-<source volume id>``. RouterOS prints the slot, so both the
deterministic id (idempotency across controller restarts) and the source volume (ALREADY_EXISTS for the same name
with another source, ListSnapshots by source) are recovered from real ``/disk print`` output alone.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from rds_csi.core import errors
from rds_csi.core.clock import Clock, SystemClock
from rds_csi.observability.logging import log_event
from rds_csi.routeros.client import RouterOSClient
from rds_csi.routeros.commands import CopySource
from rds_csi.routeros.models import Disk, PoolCapacity
from rds_csi.routeros.names import (
    MIKROTIK_NQN_PREFIX,
    RouterPath,
    backing_file_path,
    parse_router_path,
    validate_slot,
)

_log = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "snap-"
# RouterOS reads an empty allow-list as "any host may connect", so a fenced export that nobody may reach lists
# this NQN, which no host has, instead of nothing.
FENCE_CLOSED_NQN = "nqn.2000-02.com.mikrotik:rds-csi-fence-closed"
# A fixed namespace makes the uuid5 of a snapshot name the same on every controller replica, forever.
_SNAPSHOT_NAMESPACE = uuid.UUID("5b0c2a8e-6f1d-4b8e-9d6a-2f3c1e7a9b40")
_SNAPSHOT_ID_RE = re.compile(r"^snap-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-([A-Za-z0-9-]+)$")
_SNAPSHOT_ID_OVERHEAD = len(SNAPSHOT_PREFIX) + 36 + 1
# A volume id has no '.', so no volume's own NQN ever starts like this.
_COPY_MARKER_PREFIX = MIKROTIK_NQN_PREFIX + "rds-csi.copy."
_COPY_NAMESPACE = uuid.UUID("0d3c6f6e-2b8a-4f0e-9a51-7c4e8b2d1f63")


@dataclass(frozen=True, slots=True)
class Volume:
    volume_id: str
    capacity_bytes: int
    file_path: str | None
    nqn: str | None
    port: int | None
    exported: bool

    @property
    def volume_path(self) -> str | None:
        """The directory holding the backing file (the StorageClass ``volumePath``)."""
        return self.file_path.rsplit("/", 1)[0] if self.file_path else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    snapshot_id: str
    source_volume_id: str
    size_bytes: int
    file_path: str | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ContentSource:
    kind: str  # "snapshot" or "volume"
    source_id: str


def snapshot_id_for(name: str, source_volume_id: str) -> str:
    if len(source_volume_id) + _SNAPSHOT_ID_OVERHEAD > 128:
        raise errors.InvalidArgument(
            f"source volume id {source_volume_id!r} is too long to snapshot "
            f"(at most {128 - _SNAPSHOT_ID_OVERHEAD} characters)"
        )
    return f"{_snapshot_stem(name)}-{source_volume_id}"


def _snapshot_stem(name: str) -> str:
    return SNAPSHOT_PREFIX + str(uuid.uuid5(_SNAPSHOT_NAMESPACE, name))


def _copy_marker_nqn(volume_id: str, source: ContentSource) -> str:
    """The NQN an unfinished copy of ``source`` into ``volume_id`` carries (unique per volume and source)."""
    digest = uuid.uuid5(_COPY_NAMESPACE, f"{volume_id}/{source.kind}/{source.source_id}")
    return f"{_COPY_MARKER_PREFIX}{digest}"


def _is_unfinished_copy(disk: Disk) -> bool:
    return (disk.nqn or "").startswith(_COPY_MARKER_PREFIX)


def parse_snapshot_id(snapshot_id: str) -> str | None:
    """The source volume id encoded in a snapshot id, or ``None`` if it is not one of ours."""
    match = _SNAPSHOT_ID_RE.match(snapshot_id)
    return match.group(2) if match else None


def is_volume_slot(slot: str) -> bool:
    return not slot.startswith(SNAPSHOT_PREFIX)


class VolumeBackend:
    """Volume-level operations for the controller. Callers serialize per volume / snapshot name."""

    def __init__(
        self,
        client: RouterOSClient,
        *,
        base_path: str,
        capacity_cache_seconds: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.base = parse_router_path(base_path, "volume base path")
        self._capacity_cache_seconds = capacity_cache_seconds
        self._clock = clock or SystemClock()
        self._capacity_cache: dict[str, tuple[float, PoolCapacity]] = {}
        self._cache_lock = threading.Lock()
        # Which source each finished volume was created from: RouterOS does not print copy-from, so this is known for
        # volumes this process created (a restarted controller accepts a retried create with any source; an
        # unfinished copy names its source in its marker NQN).
        self._sources: dict[str, ContentSource] = {}

    # ---- volumes ------------------------------------------------------------------------------------------------

    def get_volume(self, volume_id: str) -> Volume | None:
        disk = self.client.get_disk(validate_slot(volume_id, "volume_id"))
        if disk is None or not self._is_managed_volume(disk):
            return None
        return self._volume(disk)

    def list_volumes(self) -> list[Volume]:
        disks = self.client.list_disks("")
        return sorted((self._volume(d) for d in disks if self._is_managed_volume(d)), key=lambda v: v.volume_id)

    def create_volume(
        self,
        volume_id: str,
        *,
        volume_path: str,
        size_bytes: int,
        port: int,
        source: ContentSource | None = None,
        size_ok: Callable[[int], bool],
    ) -> Volume:
        """Create the volume, or return it when an identical one exists (ALREADY_EXISTS when incompatible).

        A name whose NQN another disk already uses (names differing only in case share one, the NQN being the id
        lower-cased) is ALREADY_EXISTS: a host connecting to that NQN could reach either disk. A retry of a create
        from a source that failed half way (after the copy) finishes the copy it finds.
        """
        disk, nqn_holders = self.client.get_disk_with_nqn_holders(validate_slot(volume_id, "volume_id"))
        if disk is not None and not self._is_managed_volume(disk):
            raise errors.AlreadyExists(f"slot {volume_id!r} exists on the RDS but is not a volume of this driver")
        if disk is not None and not _is_unfinished_copy(disk):
            existing = self._volume(disk)
            self._check_compatible(existing, source, size_ok)
            return existing
        if nqn_holders:
            holder = nqn_holders[0]
            raise errors.AlreadyExists(
                f"volume {volume_id!r} would share the NVMe subsystem NQN {holder.nqn} with the existing volume "
                f"{holder.slot!r} (the NQN is the volume id lower-cased); refusing a second export of it"
            )
        if disk is not None:
            source = self._resumable(disk, source)
        else:
            file_path = backing_file_path(self._confined_dir(volume_path).disk_path, volume_id)
            if source is None:
                return self._create_blank(volume_id, file_path, size_bytes, port)
            disk = self._start_copy(volume_id, file_path, source)
        return self._finish_copy(disk, source, size_bytes, port, size_ok)

    def _create_blank(self, volume_id: str, file_path: RouterPath, size_bytes: int, port: int) -> Volume:
        disk = self._add_over_leftover(
            file_path,
            lambda: self.client.create_disk(slot=volume_id, file_path=file_path, size_bytes=size_bytes, port=port),
        )
        log_event(_log, "volume.created", volume_id=volume_id, size=disk.capacity_bytes, source="-")
        return self._volume(disk)

    def _start_copy(self, volume_id: str, file_path: RouterPath, source: ContentSource) -> Disk:
        """The first step of a create from ``source``: an unexported copy of it, marked as this volume's copy of
        that source, so that a retry can tell it from anything else."""
        copy_from, source_bytes = self._source_file(source)
        copy = self._add_over_leftover(
            file_path,
            lambda: self.client.create_disk(
                slot=volume_id,
                file_path=file_path,
                size_bytes=None,
                port=None,
                copy_from=copy_from,
                export=False,
                marker_nqn=_copy_marker_nqn(volume_id, source),
            ),
        )
        self._prove_whole(copy, f"{source.kind} {source.source_id!r}", source_bytes)
        return copy

    def _resumable(self, copy: Disk, source: ContentSource | None) -> ContentSource:
        """An unfinished copy found by a retry is finished only if it is this volume's copy of this request's
        source (its marker says so) and whole (grown, perhaps, but never short of its source); returns the source."""
        if source is None or copy.nqn != _copy_marker_nqn(copy.slot, source):
            raise errors.AlreadyExists(
                f"volume {copy.slot!r} exists as an unfinished copy of another content source than this request's"
            )
        self._prove_whole(copy, f"{source.kind} {source.source_id!r}", self._source_file(source)[1], grown=True)
        return source

    def _finish_copy(
        self, copy: Disk, source: ContentSource, size_bytes: int, port: int, size_ok: Callable[[int], bool]
    ) -> Volume:
        """Grow a whole unfinished copy to ``size_bytes`` and export it: the last steps of a create from ``source``,
        first time or on a retry."""
        volume_id = copy.slot
        if copy.capacity_bytes < size_bytes:
            copy = self.client.resize_disk(volume_id, size_bytes)
        if not size_ok(copy.capacity_bytes):
            raise errors.AlreadyExists(
                f"volume {volume_id!r} exists as an unfinished copy of {copy.capacity_bytes} bytes, "
                "which does not fit the requested capacity range"
            )
        disk = self.client.export_disk(volume_id, port)
        self._sources[volume_id] = source
        log_event(
            _log, "volume.created", volume_id=volume_id, size=disk.capacity_bytes,
            source=f"{source.kind}:{source.source_id}",
        )  # fmt: skip
        return self._volume(disk)

    def delete_volume(self, volume_id: str) -> None:
        """Remove the disk and its backing file; a volume that is already gone is fine, once no backing file of it
        is left either. Done only once a re-read shows both gone: ``remove [find ...]`` that matches nothing also
        answers success."""
        disk = self.client.get_disk(validate_slot(volume_id, "volume_id"))
        if disk is not None and not self._is_managed_volume(disk):
            raise errors.FailedPrecondition(f"slot {volume_id!r} is not a volume of this driver; refusing to delete")
        if disk is not None:
            self._remove_disk_and_file(disk)
        elif is_volume_slot(volume_id):
            self._remove_leftover_files(volume_id)  # a retry after /file remove failed, or after a crash
        self._sources.pop(volume_id, None)
        log_event(_log, "volume.deleted", volume_id=volume_id, existed=disk is not None)

    def expand_volume(self, volume_id: str, size_bytes: int) -> Volume:
        """Grow to at least ``size_bytes``; a volume that is already that large is left alone (retry-safe)."""
        volume = self.get_volume(volume_id)
        if volume is None:
            raise errors.NotFound(f"volume {volume_id!r} does not exist")
        if volume.capacity_bytes >= size_bytes:
            return volume
        disk = self.client.resize_disk(volume_id, size_bytes)
        log_event(_log, "volume.expanded", volume_id=volume_id, size=disk.capacity_bytes)
        return self._volume(disk)

    # ---- storage-side fencing -----------------------------------------------------------------------------------

    def is_fenced(self, volume_id: str) -> bool:
        """A fenced export always lists someone (hosts, or the closed marker); an open one (or none) lists nobody."""
        disk = self.client.get_disk(validate_slot(volume_id, "volume_id"))
        return disk is not None and bool(disk.allowed_hosts)

    def fence_init(self, volume_id: str) -> None:
        """Close a new fenced export until its first publish; an export that already lists hosts is left alone."""
        if not self._allowed_hosts(volume_id):
            self.client.set_allowed_hosts(volume_id, [FENCE_CLOSED_NQN])

    def fence_allow(self, volume_id: str, host_nqn: str) -> None:
        """Let ``host_nqn`` connect to the export, in addition to hosts already allowed."""
        hosts = [h for h in self._allowed_hosts(volume_id) if h != FENCE_CLOSED_NQN]
        if host_nqn not in hosts:
            self.client.set_allowed_hosts(volume_id, [*hosts, host_nqn])

    def fence_only(self, volume_id: str, host_nqns: Iterable[str]) -> None:
        """Allow exactly ``host_nqns``; none closes the export (it never becomes open to every host)."""
        self.client.set_allowed_hosts(volume_id, list(host_nqns) or [FENCE_CLOSED_NQN])

    def _allowed_hosts(self, volume_id: str) -> tuple[str, ...]:
        disk = self.client.get_disk(validate_slot(volume_id, "volume_id"))
        if disk is None:
            raise errors.NotFound(f"volume {volume_id!r} does not exist")
        return disk.allowed_hosts

    def existing_backing_files(self, volumes: Iterable[Volume]) -> set[str]:
        """The ``file_path`` values of ``volumes`` whose backing file exists: one listing per directory."""
        wanted = {parse_router_path(v.file_path, "file_path") for v in volumes if v.file_path is not None}
        found: set[str] = set()
        for directory in {RouterPath(p.segments[:-1]) for p in wanted}:
            names = {f.name for f in self.client.list_files(directory)}
            found.update(p.disk_path for p in wanted if p.file_name in names and p.segments[:-1] == directory.segments)
        return found

    # ---- capacity -----------------------------------------------------------------------------------------------

    def pool_capacity(self, volume_path: str) -> PoolCapacity:
        """Size and free space of the pool partition holding ``volume_path`` (cached briefly)."""
        mount_point = self._confined_dir(volume_path).segments[0]
        now = self._clock.now()
        with self._cache_lock:
            cached = self._capacity_cache.get(mount_point)
            if cached is not None and now - cached[0] < self._capacity_cache_seconds:
                return cached[1]
        capacity = self.client.pool_capacity(mount_point)
        with self._cache_lock:
            self._capacity_cache[mount_point] = (now, capacity)
        return capacity

    # ---- snapshots ----------------------------------------------------------------------------------------------

    def create_snapshot(self, name: str, source_volume_id: str) -> Snapshot:
        snapshot_id = snapshot_id_for(name, source_volume_id)
        for other in self._snapshot_disks(_snapshot_stem(name) + "-"):
            if other.slot != snapshot_id:
                raise errors.AlreadyExists(
                    f"snapshot {name!r} already exists for source volume {parse_snapshot_id(other.slot)!r}"
                )
            return self._snapshot(other)
        source = self.get_volume(source_volume_id)
        if source is None:
            raise errors.NotFound(f"source volume {source_volume_id!r} does not exist")
        source_file = parse_router_path(source.file_path, "file_path") if source.file_path else None
        if source_file is None:
            raise errors.FailedPrecondition(f"source volume {source_volume_id!r} has no backing file")
        file_path = RouterPath(source_file.segments[:-1]).child(snapshot_id + ".img")
        disk = self._add_over_leftover(
            file_path,
            lambda: self.client.create_disk(
                slot=snapshot_id,
                file_path=file_path,
                size_bytes=None,
                port=None,
                copy_from=CopySource(source_volume_id, source_file),
                export=False,
            ),
        )
        self._prove_whole(disk, f"volume {source_volume_id!r}", source.capacity_bytes)
        log_event(_log, "snapshot.created", snapshot_id=snapshot_id, source=source_volume_id)
        return self._snapshot(disk)

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        if parse_snapshot_id(snapshot_id) is None:
            return None
        disk = self.client.get_disk(snapshot_id)
        return self._snapshot(disk) if disk is not None else None

    def list_snapshots(self) -> list[Snapshot]:
        disks = self._snapshot_disks(SNAPSHOT_PREFIX)
        times = self._file_times(disks)  # one /file listing per directory, not one per snapshot
        return sorted((self._snapshot(d, times) for d in disks), key=lambda s: s.snapshot_id)

    def delete_snapshot(self, snapshot_id: str) -> None:
        if parse_snapshot_id(snapshot_id) is None:
            return  # not an id we ever issued: nothing of ours can exist under it
        disk = self.client.get_disk(snapshot_id)
        if disk is None:
            self._remove_leftover_files(snapshot_id)
            return
        self._remove_disk_and_file(disk)
        log_event(_log, "snapshot.deleted", snapshot_id=snapshot_id)

    # ---- helpers ------------------------------------------------------------------------------------------------

    # Leftover backing files. ``/disk remove`` keeps the image; a ``/file remove`` that failed, or a controller
    # killed in between, leaves ``<slot>.img`` under the base path with no disk. That name at that place is, by the
    # naming contract, the backing file of slot ``<slot>`` and of nothing else, so the driver may remove it --
    # but never while any disk references it. A create over such a file removes it rather than adopting it:
    # adopting would hand the new volume the deleted one's data (the node formats only a device without a
    # filesystem, so it would mount the old one), at whatever size and from whatever source that one had.

    def _add_over_leftover(self, file_path: RouterPath, add: Callable[[], Disk]) -> Disk:
        """Run ``add`` (a ``/disk add`` of ``file_path``); if a leftover backing file is in its way, remove the
        file and add once more."""
        try:
            return add()
        except errors.AlreadyExists:
            if self.client.get_file(file_path) is None:
                raise  # something else exists
            holders = self.client.disks_backed_by([file_path])
            if holders:
                raise errors.AlreadyExists(f"backing file {file_path} is in use by disk {holders[0].slot!r}") from None
            self.client.remove_file(file_path)
            log_event(_log, "volume.leftover_file_removed", logging.WARNING, path=file_path.disk_path)
        return add()

    def _remove_leftover_files(self, slot: str) -> None:
        """Remove every ``<slot>.img`` under the base path that no disk references, and prove them gone."""
        found = self.client.find_files(self.base, f"{slot}.img")
        leftovers = [parse_router_path(f.name, "file name") for f in found if not f.is_directory]
        if not leftovers:
            return
        in_use = {d.file_path: d.slot for d in self.client.disks_backed_by(leftovers)}
        removed = []
        for path in leftovers:
            if path.disk_path in in_use:
                log_event(_log, "volume.leftover_file_in_use", path=path.disk_path, disk=in_use[path.disk_path])
                continue
            self.client.remove_file(path)
            removed.append(path)
            log_event(_log, "volume.leftover_file_removed", logging.WARNING, path=path.disk_path)
        still = {f.name for f in self.client.find_files(self.base, f"{slot}.img")} & {p.file_name for p in removed}
        if still:
            raise errors.Internal(f"RouterOS answered /file remove but still lists {', '.join(sorted(still))}")

    def _remove_disk_and_file(self, disk: Disk) -> None:
        """Remove ``disk`` and then its backing file, and prove by reading back that both are gone."""
        file_path = self._backing_file(disk)
        self.client.remove_disk(disk.slot)
        if file_path is not None:
            self.client.remove_file(file_path)
        if self.client.get_disk(disk.slot) is not None:
            raise errors.Internal(f"RouterOS answered /disk remove of {disk.slot!r} but still lists the disk")
        if file_path is not None and self.client.get_file(file_path) is not None:
            raise errors.Internal(f"RouterOS answered /file remove of {file_path} but still lists the file")

    def _snapshot_disks(self, prefix: str) -> list[Disk]:
        return [d for d in self.client.list_disks(prefix) if parse_snapshot_id(d.slot) is not None]

    def _snapshot(self, disk: Disk, file_times: Mapping[str, datetime | None] | None = None) -> Snapshot:
        """``file_times`` from ``_file_times`` when several snapshots are built at once; looked up otherwise."""
        times = file_times if file_times is not None else self._file_times([disk])
        source = parse_snapshot_id(disk.slot) or ""
        created = times.get(parse_router_path(disk.file_path, "file_path").disk_path) if disk.file_path else None
        return Snapshot(disk.slot, source, disk.capacity_bytes, disk.file_path, created)

    def _file_times(self, disks: Iterable[Disk]) -> dict[str, datetime | None]:
        """Last-modified time of each disk's backing file, by file path: one listing per directory."""
        paths = {parse_router_path(d.file_path, "file_path") for d in disks if d.file_path is not None}
        times: dict[str, datetime | None] = {}
        for directory in {RouterPath(p.segments[:-1]) for p in paths}:
            listed = {f.name: f.last_modified for f in self.client.list_files(directory)}
            for path in paths:
                if path.segments[:-1] == directory.segments and path.file_name in listed:
                    times[path.disk_path] = listed[path.file_name]
        return times

    def _check_compatible(self, existing: Volume, source: ContentSource | None, size_ok: Callable[[int], bool]) -> None:
        if not size_ok(existing.capacity_bytes):
            raise errors.AlreadyExists(
                f"volume {existing.volume_id!r} exists with {existing.capacity_bytes} bytes, "
                "which does not fit the requested capacity range"
            )
        recorded = self._sources.get(existing.volume_id)
        if recorded is not None and recorded != source:
            raise errors.AlreadyExists(f"volume {existing.volume_id!r} exists with a different content source")

    def _source_file(self, source: ContentSource) -> tuple[CopySource, int]:
        """The disk of ``source`` (with its backing file) and its size."""
        if source.kind == "snapshot":
            snapshot = self.get_snapshot(source.source_id)
            if snapshot is None or snapshot.file_path is None:
                raise errors.NotFound(f"source snapshot {source.source_id!r} does not exist")
            return CopySource(snapshot.snapshot_id, self._confined_file(snapshot.file_path)), snapshot.size_bytes
        volume = self.get_volume(source.source_id)
        if volume is None or volume.file_path is None:
            raise errors.NotFound(f"source volume {source.source_id!r} does not exist")
        return CopySource(volume.volume_id, self._confined_file(volume.file_path)), volume.capacity_bytes

    def source_size(self, source: ContentSource) -> int:
        return self._source_file(source)[1]

    def _prove_whole(self, copy: Disk, what: str, source_bytes: int, *, grown: bool = False) -> None:
        """A copy must be exactly as large as its source before it is used or grown (at least as large once
        ``grown`` may have happened); a short (or empty) one is removed: growing it would turn a failed copy into a
        volume that silently lacks its data."""
        if copy.capacity_bytes == source_bytes or (grown and copy.capacity_bytes > source_bytes):
            return
        short = f"the copy of {what} into {copy.slot!r} came out {copy.capacity_bytes} bytes, but its source has "
        try:
            self._remove_disk_and_file(copy)
        except errors.RdsCsiError as exc:
            raise errors.Internal(f"{short}{source_bytes} bytes; removing the copy failed: {exc.message}") from exc
        raise errors.Internal(f"{short}{source_bytes} bytes; the copy was removed")

    def _is_managed_volume(self, disk: Disk) -> bool:
        if not is_volume_slot(disk.slot) or disk.type != "file" or disk.file_path is None:
            return False
        try:
            path = parse_router_path(disk.file_path, "file_path")
        except errors.InvalidArgument:
            return False
        return self.base.contains(path) and path.segments[-1] == f"{disk.slot}.img"

    def _volume(self, disk: Disk) -> Volume:
        return Volume(disk.slot, disk.capacity_bytes, disk.file_path, disk.nqn, disk.port, disk.nvme_export)

    def _backing_file(self, disk: Disk) -> RouterPath | None:
        if disk.file_path is None:
            return None
        return self._confined_file(disk.file_path)

    def _confined_file(self, file_path: str) -> RouterPath:
        path = parse_router_path(file_path, "file_path")
        if not self.base.contains(path):
            raise errors.FailedPrecondition(f"{file_path} is outside the driver's base path {self.base}")
        return path

    def _confined_dir(self, volume_path: str) -> RouterPath:
        path = parse_router_path(volume_path, "volumePath")
        if not self.base.contains(path):
            raise errors.InvalidArgument(f"volumePath {volume_path} is outside the driver's base path {self.base}")
        return path
