"""In-memory RouterOS storage state: the pool partition, file-backed disks and the files behind them.

The model speaks RouterOS: operations take the raw ``key=value`` strings a command or a REST body carries and
raise ``rds_csi.core.errors`` exceptions whose message is the reason text the device prints (``not enough space``,
``no such item``...). Front ends only render.

Thin provisioning, as a btrfs pool behaves:
- a new image is a sparse file: it allocates ``INITIAL_ALLOCATION`` bytes (one btrfs sector of inline
  data and metadata) whatever its size; data written later (``write``) allocates up to the file size;
- admission is still checked against the logical size, as RouterOS does: ``/disk add`` fails with
  ``not enough space`` when ``file-size`` exceeds the pool's free bytes, a resize when the growth does;
- ``copy-from`` makes a reflink (copy-on-write) copy: the same size, sharing every allocated extent of the
  source, so it consumes no free space until either side is written. Shared extents are freed when the last
  file referencing them goes. It names its source as an image path (leading slash) or as a disk (slot or
  ``*id``); public documentation does not say which one a real RDS takes, so ``copy_from_accepts`` can restrict
  the model to one (``file``: a disk reference is ``no such file``; ``disk``: a path does not match any disk).
- parent directories of a new image are created implicitly (RouterOS creates missing directories below a
  mount point when it creates a file); a path outside every mount point is refused.
- ``/disk remove`` removes the disk entry only; the image stays in ``/file`` until removed there, and a file
  still backing a disk cannot be removed.

With a data plane (``rds_csi.simulator.dataplane``) every image is also a real sparse file and every exported
disk a real NVMe/TCP target; each change is applied there first and committed here only if it worked.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from rds_csi.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from rds_csi.simulator.dataplane import DataPlane, Export

INITIAL_ALLOCATION = 4096
_SECTOR = 512
DEFAULT_NVME_PORT = 4420
NQN_PREFIX = "nqn.2000-02.com.mikrotik:"

# Properties each /disk and /file command accepts; anything else is an unknown parameter.
DISK_ADD_PARAMS = frozenset(
    {
        "type",
        "slot",
        "file-path",
        "file-size",
        "copy-from",
        "nvme-tcp-export",
        "nvme-tcp-server-port",
        "nvme-tcp-server-nqn",
        "nvme-tcp-server-allow-host-name",
        "disabled",
    }
)
DISK_SET_PARAMS = DISK_ADD_PARAMS - {"type", "file-path", "copy-from"}

_SIZE_RE = re.compile(r"^(\d+)(?:([kKMGTP])(?:iB)?)?$")
_SIZE_UNITS = {"k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}
_SLOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_PATH_COMPONENT_RE = re.compile(r"^[^\x00-\x1f/\\]+$")
_HOST_NAME_RE = re.compile(r"^[\x21-\x7e]{1,223}$")
_TRUE = frozenset({"yes", "true"})
_FALSE = frozenset({"no", "false"})


class CopyFromAccepts(StrEnum):
    """The ``copy-from`` forms the model takes."""

    ANY = "any"
    FILE = "file"  # an image path only
    DISK = "disk"  # a disk reference (slot or *id) only


def parse_size(name: str, text: str) -> int:
    """A RouterOS size argument: bytes, or an integer with a binary unit (``50G``, ``1T``, ``512MiB``)."""
    match = _SIZE_RE.match(text.strip())
    if match is None:
        raise InvalidArgument(f"invalid value for argument {name}")
    number, unit = match.groups()
    value = int(number) * (1024 ** _SIZE_UNITS[unit] if unit else 1)
    if value <= 0 or value >= 2**63:
        raise InvalidArgument(f"invalid value for argument {name}")
    return value


def parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidArgument(f"invalid value for argument {name}")


def parse_port(name: str, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidArgument(f"invalid value for argument {name}")
    return int(text)


@dataclass(slots=True)
class Extent:
    """Allocated bytes shared by reflinked files; freed when no file references them."""

    size: int
    refs: int


@dataclass(slots=True)
class SimFile:
    id: int
    name: str
    is_directory: bool
    size: int
    last_modified: datetime
    exclusive: int = 0
    extents: list[int] = field(default_factory=list)


@dataclass(slots=True)
class SimDisk:
    id: int
    slot: str
    file_name: str
    nvme_tcp_export: bool
    nvme_tcp_server_port: int
    nvme_tcp_server_nqn: str
    allow_host_names: tuple[str, ...]
    disabled: bool = False


@dataclass(slots=True)
class Pool:
    id: int
    slot: str
    mount_point: str
    file_system: str
    size: int
    base_used: int


@dataclass(frozen=True, slots=True)
class Traffic:
    """What ``/disk monitor-traffic`` reports for one disk; rates in bits per second, times in ms."""

    read_ops_per_second: int = 0
    write_ops_per_second: int = 0
    read_rate: int = 0
    write_rate: int = 0
    read_time: int = 0
    write_time: int = 0
    in_flight_ops: int = 0
    active_time: int = 0
    wait_time: int = 0


Record = dict[str, Any]


class Model:
    """Thread-safe RouterOS storage state; every public method is atomic."""

    def __init__(
        self,
        *,
        pool_size: int,
        pool_free: int,
        pool_mount_point: str = "storage-pool",
        base_directories: Iterable[str] = (),
        persist_file: Path | None = None,
        wall_clock: Callable[[], datetime] = datetime.now,
        data_plane: DataPlane | None = None,
        copy_from_accepts: CopyFromAccepts = CopyFromAccepts.ANY,
    ) -> None:
        if not 0 <= pool_free <= pool_size:
            raise InvalidArgument("pool free bytes must be between 0 and the pool size")
        self._copy_from_accepts = copy_from_accepts
        self._lock = threading.RLock()
        self._data_plane = data_plane
        self._wall_clock = wall_clock
        self._persist_file = persist_file
        self._next_id = 1
        self._next_extent = 1
        self._disks: dict[int, SimDisk] = {}
        self._files: dict[int, SimFile] = {}
        self._extents: dict[int, Extent] = {}
        self._traffic: dict[int, Traffic] = {}
        self.pool = Pool(
            id=self._new_id(),
            slot=pool_mount_point,
            mount_point=pool_mount_point,
            file_system="btrfs",
            size=pool_size,
            base_used=pool_size - pool_free,
        )
        if persist_file is not None and persist_file.exists():
            self._load(persist_file)
        for directory in base_directories:
            self._ensure_directories(directory.strip("/").split("/"))
        self._save()
        if data_plane is not None:
            data_plane.restore(
                {f.name: f.size for f in self._files.values() if not f.is_directory},
                {d.id: e for d in self._disks.values() if (e := self._export_of(d)) is not None},
            )

    def close(self) -> None:
        """Withdraw the data plane's exports (the state itself is already saved)."""
        with self._lock:
            if self._data_plane is not None:
                self._data_plane.close()

    # ---- queries -------------------------------------------------------------------------------------

    @property
    def free(self) -> int:
        with self._lock:
            if self._data_plane is not None:
                images = self._data_plane.images
                allocated = sum(images.allocated(f.name) for f in self._files.values() if not f.is_directory)
            else:
                allocated = sum(f.exclusive for f in self._files.values()) + sum(e.size for e in self._extents.values())
            return max(0, self.pool.size - self.pool.base_used - allocated)

    def disk_records(self) -> list[Record]:
        """Every /disk entry (the pool partition first), as RouterOS property values."""
        with self._lock:
            records = [self._partition_record()]
            records.extend(self._disk_record(d) for d in sorted(self._disks.values(), key=lambda d: d.id))
            return records

    def file_records(self) -> list[Record]:
        with self._lock:
            return [self._file_record(f) for f in sorted(self._files.values(), key=lambda f: f.id)]

    def disk_id(self, item: str) -> int:
        """Resolve one /disk item reference (``*1`` or a slot name) to its internal id."""
        with self._lock:
            for record in self.disk_records():
                if item in (record[".id"], record["slot"]):
                    return int(record[".id"][1:], 16)
            raise NotFound("no such item")

    def file_id(self, item: str) -> int:
        with self._lock:
            for f in self._files.values():
                if item in (_format_id(f.id), f.name):
                    return f.id
            raise NotFound("no such item")

    def allocated(self, file_name: str) -> int:
        """Bytes the file holds on the pool, shared extents included (as ``du`` would count them). With a data
        plane, what the real image holds: hosts write into it over NVMe/TCP."""
        with self._lock:
            f = self._file_by_name(file_name)
            if f is None:
                raise NotFound("no such item")
            if self._data_plane is not None and not f.is_directory:
                return self._data_plane.images.allocated(f.name)
            return f.exclusive + sum(self._extents[e].size for e in f.extents)

    def traffic(self, disk_id: int) -> Traffic:
        with self._lock:
            self._require_disk_or_pool(disk_id)
            return self._traffic.get(disk_id, Traffic())

    # ---- /disk ---------------------------------------------------------------------------------------

    def add_disk(self, params: Mapping[str, str], *, short_copy: bool = False) -> Record:
        """``/disk add``. ``short_copy`` is an injected fault: a ``copy-from`` copy comes out half the size of
        its source (the first half of it), as a device whose copy stopped early would leave it."""
        _reject_unknown(params, DISK_ADD_PARAMS)
        disk_type = params.get("type", "")
        if disk_type != "file":
            raise InvalidArgument("invalid value for argument type")
        with self._lock:
            slot = params.get("slot") or self._auto_slot()
            _validate_slot(slot)
            if any(r["slot"] == slot for r in self.disk_records()):
                raise AlreadyExists("disk with such slot already exists")
            export = parse_bool("nvme-tcp-export", params.get("nvme-tcp-export", "no"))
            port = parse_port("nvme-tcp-server-port", params.get("nvme-tcp-server-port", str(DEFAULT_NVME_PORT)))
            nqn = params.get("nvme-tcp-server-nqn") or NQN_PREFIX + slot.lower()
            _validate_nqn(nqn)
            hosts = _parse_hosts(params.get("nvme-tcp-server-allow-host-name", ""))
            disabled = parse_bool("disabled", params.get("disabled", "no"))
            if "file-path" not in params:
                raise InvalidArgument("missing value for argument file-path")
            name = self._file_name_from_path(params["file-path"])
            files_before = set(self._files)
            if "copy-from" in params:
                if "file-size" in params:
                    raise InvalidArgument("file-size can not be used with copy-from")
                source = self._source_file(params["copy-from"])
                image = self._reflink(source, name)
                if short_copy:
                    image.size = source.size // 2 // _SECTOR * _SECTOR
            else:
                source = None
                image = self._create_or_reuse_image(name, params.get("file-size"))
            disk = SimDisk(
                id=self._new_id(),
                slot=slot,
                file_name=image.name,
                nvme_tcp_export=export,
                nvme_tcp_server_port=port,
                nvme_tcp_server_nqn=nqn,
                allow_host_names=hosts,
                disabled=disabled,
            )
            try:
                self._realize(disk, image, source, created=image.id not in files_before)
            except BaseException:
                self._forget_new_files(files_before)
                raise
            self._disks[disk.id] = disk
            self._save()
            return self._disk_record(disk)

    def set_disk(self, disk_id: int, params: Mapping[str, str]) -> Record:
        _reject_unknown(params, DISK_SET_PARAMS)
        with self._lock:
            disk = self._disks.get(disk_id)
            if disk is None:
                if disk_id == self.pool.id:
                    raise FailedPrecondition("can not change partition")
                raise NotFound("no such item")
            updated = copy.copy(disk)
            if "slot" in params and params["slot"] != disk.slot:
                _validate_slot(params["slot"])
                if any(r["slot"] == params["slot"] for r in self.disk_records()):
                    raise AlreadyExists("disk with such slot already exists")
                updated.slot = params["slot"]
            if "nvme-tcp-export" in params:
                updated.nvme_tcp_export = parse_bool("nvme-tcp-export", params["nvme-tcp-export"])
            if "nvme-tcp-server-port" in params:
                updated.nvme_tcp_server_port = parse_port("nvme-tcp-server-port", params["nvme-tcp-server-port"])
            if "nvme-tcp-server-nqn" in params:
                _validate_nqn(params["nvme-tcp-server-nqn"])
                updated.nvme_tcp_server_nqn = params["nvme-tcp-server-nqn"]
            if "nvme-tcp-server-allow-host-name" in params:
                updated.allow_host_names = _parse_hosts(params["nvme-tcp-server-allow-host-name"])
            if "disabled" in params:
                updated.disabled = parse_bool("disabled", params["disabled"])
            size = parse_size("file-size", params["file-size"]) if "file-size" in params else None
            image = self._check_resize(disk.file_name, size) if size is not None else None
            if self._data_plane is not None:
                self._data_plane.set_export(disk_id, self._export_of(updated))
                if size is not None:
                    try:
                        self._data_plane.images.resize(disk.file_name, size)
                        self._data_plane.resized(disk.file_name)
                    except BaseException:
                        self._data_plane.set_export(disk_id, self._export_of(disk))
                        raise
            if image is not None and size is not None:
                image.size = size
                image.last_modified = self._wall_clock()
            self._disks[disk_id] = updated
            self._save()
            return self._disk_record(updated)

    def remove_disk(self, disk_id: int) -> None:
        with self._lock:
            if disk_id == self.pool.id:
                raise FailedPrecondition("can not remove partition")
            if disk_id not in self._disks:
                raise NotFound("no such item")
            if self._data_plane is not None:
                self._data_plane.set_export(disk_id, None)
            del self._disks[disk_id]
            self._traffic.pop(disk_id, None)
            self._save()

    def set_traffic(self, slot: str, traffic: Traffic) -> None:
        with self._lock:
            self._traffic[self.disk_id(slot)] = traffic

    # ---- /file ---------------------------------------------------------------------------------------

    def remove_file(self, file_id: int) -> None:
        with self._lock:
            f = self._files.get(file_id)
            if f is None:
                raise NotFound("no such item")
            if f.is_directory:
                prefix = f.name + "/"
                if any(o.name.startswith(prefix) for o in self._files.values()):
                    raise FailedPrecondition("directory is not empty")
            elif any(d.file_name == f.name for d in self._disks.values()):
                raise FailedPrecondition("file is in use")
            elif self._data_plane is not None:
                self._data_plane.images.remove(f.name)
            self._release(f)
            del self._files[file_id]
            self._touch_parent(f.name)
            self._save()

    def write(self, file_name: str, nbytes: int) -> None:
        """Simulate guest writes of ``nbytes`` fresh bytes: allocation grows (copy-on-write for shared data)."""
        with self._lock:
            if self._data_plane is not None:
                raise FailedPrecondition("with a data plane, writes arrive over NVMe/TCP")
            f = self._file_by_name(file_name)
            if f is None or f.is_directory:
                raise NotFound("no such item")
            grow = min(nbytes, f.size - f.exclusive)
            if grow > self.free:
                raise ResourceExhausted("not enough space")
            f.exclusive += grow
            f.last_modified = self._wall_clock()
            self._save()

    # ---- internals -----------------------------------------------------------------------------------

    def _new_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def _auto_slot(self) -> str:
        taken = {r["slot"] for r in self.disk_records()}
        n = 1
        while f"file{n}" in taken:
            n += 1
        return f"file{n}"

    def _require_disk_or_pool(self, disk_id: int) -> None:
        if disk_id != self.pool.id and disk_id not in self._disks:
            raise NotFound("no such item")

    def _file_by_name(self, name: str) -> SimFile | None:
        return next((f for f in self._files.values() if f.name == name), None)

    def _file_name_from_path(self, path: str) -> str:
        parts = path.strip("/").split("/")
        if not path.startswith("/") or len(parts) < 2 or not all(_PATH_COMPONENT_RE.match(p) for p in parts):
            raise InvalidArgument("invalid value for argument file-path")
        if any(p in (".", "..") for p in parts):
            raise InvalidArgument("invalid value for argument file-path")
        if parts[0] != self.pool.mount_point:
            raise FailedPrecondition("file-path is not on a mounted disk")
        return "/".join(parts)

    def _source_file(self, source: str) -> SimFile:
        """``copy-from`` names a disk (slot or ``*id``) or, with a leading slash, an image path."""
        if source.startswith("/"):
            if self._copy_from_accepts is CopyFromAccepts.DISK:
                raise InvalidArgument("input does not match any value of copy-from")
            f = self._file_by_name(source.strip("/"))
        else:
            if self._copy_from_accepts is CopyFromAccepts.FILE:
                raise NotFound("no such file")
            disk = next((d for d in self._disks.values() if source in (d.slot, _format_id(d.id))), None)
            f = None if disk is None else self._file_by_name(disk.file_name)
        if f is None or f.is_directory:
            raise NotFound("no such item")
        return f

    def _create_or_reuse_image(self, name: str, size_text: str | None) -> SimFile:
        existing = self._file_by_name(name)
        if existing is not None:
            if existing.is_directory or size_text is not None:
                raise AlreadyExists("file already exists")
            if any(d.file_name == name for d in self._disks.values()):
                raise FailedPrecondition("file is in use")
            return existing
        if size_text is None:
            raise InvalidArgument("missing value for argument file-size")
        size = parse_size("file-size", size_text)
        if size > self.free:
            raise ResourceExhausted("not enough space")
        return self._new_file(name, size, exclusive=min(size, INITIAL_ALLOCATION))

    def _reflink(self, source: SimFile, name: str) -> SimFile:
        if self._file_by_name(name) is not None:
            raise AlreadyExists("file already exists")
        if source.exclusive:
            self._extents[self._next_extent] = Extent(size=source.exclusive, refs=1)
            source.extents.append(self._next_extent)
            source.exclusive = 0
            self._next_extent += 1
        for extent in source.extents:
            self._extents[extent].refs += 1
        image = self._new_file(name, source.size, exclusive=0)
        image.extents = list(source.extents)
        return image

    def _new_file(self, name: str, size: int, *, exclusive: int) -> SimFile:
        parts = name.split("/")
        self._ensure_directories(parts[:-1])
        f = SimFile(
            id=self._new_id(),
            name=name,
            is_directory=False,
            size=size,
            last_modified=self._wall_clock(),
            exclusive=exclusive,
        )
        self._files[f.id] = f
        self._touch_parent(name)
        return f

    def _ensure_directories(self, parts: list[str]) -> None:
        # The mount point itself is the partition, not a /file directory entry.
        for depth in range(2, len(parts) + 1):
            name = "/".join(parts[:depth])
            existing = self._file_by_name(name)
            if existing is None:
                directory = SimFile(
                    id=self._new_id(), name=name, is_directory=True, size=0, last_modified=self._wall_clock()
                )
                self._files[directory.id] = directory
            elif not existing.is_directory:
                raise FailedPrecondition("file-path is not a directory")

    def _touch_parent(self, name: str) -> None:
        parent = self._file_by_name(name.rsplit("/", 1)[0])
        if parent is not None:
            parent.last_modified = self._wall_clock()

    def _check_resize(self, file_name: str, size: int) -> SimFile:
        f = self._file_by_name(file_name)
        if f is None:
            raise NotFound("no such item")
        if size < f.size:
            raise InvalidArgument("invalid value for argument file-size")
        if size - f.size > self.free:
            raise ResourceExhausted("not enough space")
        return f

    def _export_of(self, disk: SimDisk) -> Export | None:
        if not disk.nvme_tcp_export or disk.disabled:
            return None
        return Export(disk.nvme_tcp_server_nqn, disk.nvme_tcp_server_port, disk.file_name, disk.allow_host_names)

    def _realize(self, disk: SimDisk, image: SimFile, source: SimFile | None, *, created: bool) -> None:
        """Make a new disk real in the data plane: its image file (when new), then its export."""
        plane = self._data_plane
        if plane is None:
            return
        if created:
            if source is not None:
                plane.images.copy(source.name, image.name)
                if image.size != source.size:  # a short copy (injected fault): cut the real one alike
                    plane.images.resize(image.name, image.size)
            else:
                plane.images.create(image.name, image.size)
        try:
            plane.set_export(disk.id, self._export_of(disk))
        except BaseException:
            if created:
                plane.images.remove(image.name)
            raise

    def _forget_new_files(self, before: set[int]) -> None:
        """Undo the file entries (and implicit directories) a failed ``/disk add`` created."""
        for file_id in set(self._files) - before:
            self._release(self._files.pop(file_id))

    def _release(self, f: SimFile) -> None:
        for extent_id in f.extents:
            extent = self._extents[extent_id]
            extent.refs -= 1
            if extent.refs == 0:
                del self._extents[extent_id]
        f.extents = []
        f.exclusive = 0

    def _partition_record(self) -> Record:
        pool = self.pool
        used = pool.size - self.free
        return {
            ".id": _format_id(pool.id),
            "slot": pool.slot,
            "type": "partition",
            "mount-point": pool.mount_point,
            "file-system": pool.file_system,
            "size": pool.size,
            "free": self.free,
            "use": round(used * 100 / pool.size) if pool.size else 0,
        }

    def _disk_record(self, disk: SimDisk) -> Record:
        image = self._file_by_name(disk.file_name)
        size = image.size if image is not None else 0
        path = "/" + disk.file_name
        return {
            ".id": _format_id(disk.id),
            "disabled": disk.disabled,
            "type": "file",
            "slot": disk.slot,
            "slot-default": "",
            "parent": "",
            "fs": "-",
            "model": path,
            "size": size,
            "mount-filesystem": True,
            "mount-read-only": False,
            "compress": False,
            "sector-size": _SECTOR,
            "raid-master": "none",
            "nvme-tcp-export": disk.nvme_tcp_export,
            "nvme-tcp-server-port": disk.nvme_tcp_server_port,
            "nvme-tcp-server-nqn": disk.nvme_tcp_server_nqn,
            "nvme-tcp-server-allow-host-name": ",".join(disk.allow_host_names),
            "iscsi-export": False,
            "nfs-sharing": False,
            "smb-sharing": False,
            "media-sharing": False,
            "media-interface": "none",
            "swap": False,
            "file-path": path,
            "file-size": size,
            "file-offset": 0,
        }

    def _file_record(self, f: SimFile) -> Record:
        record: Record = {".id": _format_id(f.id), "name": f.name}
        if f.is_directory:
            record["type"] = "directory"
        else:
            suffix = f.name.rsplit(".", 1)[-1] if "." in f.name.rsplit("/", 1)[-1] else ""
            record["type"] = f".{suffix} file" if suffix else "file"
            record["size"] = f.size
        record["last-modified"] = f.last_modified
        return record

    # ---- persistence ---------------------------------------------------------------------------------

    def _save(self) -> None:
        if self._persist_file is None:
            return
        state = {
            "next_id": self._next_id,
            "next_extent": self._next_extent,
            "pool": {"size": self.pool.size, "base_used": self.pool.base_used},
            "disks": [
                {
                    "id": d.id,
                    "slot": d.slot,
                    "file_name": d.file_name,
                    "nvme_tcp_export": d.nvme_tcp_export,
                    "nvme_tcp_server_port": d.nvme_tcp_server_port,
                    "nvme_tcp_server_nqn": d.nvme_tcp_server_nqn,
                    "allow_host_names": list(d.allow_host_names),
                    "disabled": d.disabled,
                }
                for d in self._disks.values()
            ],
            "files": [
                {
                    "id": f.id,
                    "name": f.name,
                    "is_directory": f.is_directory,
                    "size": f.size,
                    "last_modified": f.last_modified.isoformat(),
                    "exclusive": f.exclusive,
                    "extents": f.extents,
                }
                for f in self._files.values()
            ],
            "extents": {str(k): {"size": e.size, "refs": e.refs} for k, e in self._extents.items()},
        }
        target = self._persist_file
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a crash mid-save never leaves a truncated state file behind.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out, indent=1, sort_keys=True)
        os.replace(tmp, target)

    def _load(self, path: Path) -> None:
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            self.pool.size = int(state["pool"]["size"])
            self.pool.base_used = int(state["pool"]["base_used"])
            self._next_id = int(state["next_id"])
            self._next_extent = int(state["next_extent"])
            self._disks = {
                int(d["id"]): SimDisk(
                    id=int(d["id"]),
                    slot=str(d["slot"]),
                    file_name=str(d["file_name"]),
                    nvme_tcp_export=bool(d["nvme_tcp_export"]),
                    nvme_tcp_server_port=int(d["nvme_tcp_server_port"]),
                    nvme_tcp_server_nqn=str(d["nvme_tcp_server_nqn"]),
                    allow_host_names=tuple(str(h) for h in d["allow_host_names"]),
                    disabled=bool(d["disabled"]),
                )
                for d in state["disks"]
            }
            self._files = {
                int(f["id"]): SimFile(
                    id=int(f["id"]),
                    name=str(f["name"]),
                    is_directory=bool(f["is_directory"]),
                    size=int(f["size"]),
                    last_modified=datetime.fromisoformat(f["last_modified"]),
                    exclusive=int(f["exclusive"]),
                    extents=[int(e) for e in f["extents"]],
                )
                for f in state["files"]
            }
            self._extents = {
                int(k): Extent(size=int(e["size"]), refs=int(e["refs"])) for k, e in state["extents"].items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"simulator state file {path} is not valid: {exc}") from exc


def _format_id(value: int) -> str:
    return f"*{value:X}"


def _reject_unknown(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    for name in params:
        if name not in allowed:
            raise InvalidArgument(f"unknown parameter {name}")


def _validate_slot(slot: str) -> None:
    if not _SLOT_RE.match(slot):
        raise InvalidArgument("invalid value for argument slot")


def _validate_nqn(nqn: str) -> None:
    if not nqn.startswith("nqn.") or len(nqn.encode()) > 223 or not _HOST_NAME_RE.match(nqn):
        raise InvalidArgument("invalid value for argument nvme-tcp-server-nqn")


def _parse_hosts(text: str) -> tuple[str, ...]:
    hosts = tuple(h for h in text.split(",") if h)
    if not all(_HOST_NAME_RE.match(h) for h in hosts):
        raise InvalidArgument("invalid value for argument nvme-tcp-server-allow-host-name")
    return hosts
