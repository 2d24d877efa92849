"""Which volume is staged where, across plugin restarts: a small JSON record next to each staging directory.

The kubelet names the staging directory (``.../csi/<driver>/<hash>/globalmount`` for filesystems,
``.../csi/volumeDevices/staging/<pv>`` for block volumes) and tells us nothing else at NodeUnstageVolume than that
path and the volume id. The record is written *before* the connect, so that any later crash still leaves what
unstage needs to undo it: the subsystem NQN to disconnect and whether (and how) a filesystem was mounted.

It lives beside the staging directory (``<staging>.rds-csi.json``), not inside it: a filesystem mounted on the
staging directory would hide a file inside it exactly while stats, expansion and recovery need to read it. What
is mounted where comes from mountinfo; the record says what this driver meant to put there. Writes are atomic
(``write_atomically``): a reader sees the old record or the new one, never half.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rds_csi.core import errors
from rds_csi.mount import FsType, MountOptions
from rds_csi.node.requests import MountAccess
from rds_csi.nvme.hostnqn import write_atomically

RECORD_SUFFIX = ".rds-csi.json"
_VERSION = 1


class StagedAccess(StrEnum):
    MOUNT = "mount"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class StagedRecord:
    volume_id: str
    nqn: str
    mount: MountAccess | None  # how the filesystem is mounted (recovery remounts it so); None for block volumes

    @property
    def access(self) -> StagedAccess:
        return StagedAccess.BLOCK if self.mount is None else StagedAccess.MOUNT


def record_path(staging_path: Path) -> Path:
    return staging_path.with_name(staging_path.name + RECORD_SUFFIX)


def render_record(record: StagedRecord) -> str:
    data: dict[str, object] = {
        "version": _VERSION,
        "volume_id": record.volume_id,
        "nqn": record.nqn,
        "access": record.access.value,
    }
    if record.mount is not None:
        data["fs_type"] = record.mount.fs_type.value
        data["mount_flags"] = record.mount.options.flags
        data["mount_data"] = list(record.mount.options.data)
    return json.dumps(data, sort_keys=True)


def parse_record(text: str, origin: str) -> StagedRecord:
    """The record ``text`` holds; ``Internal`` naming ``origin`` when it is not one this driver wrote."""
    try:
        data = json.loads(text)
        if data["version"] != _VERSION:
            raise ValueError(f"version {data['version']!r}")
        mounted = None
        if StagedAccess(data["access"]) is StagedAccess.MOUNT:
            flags, extra = data["mount_flags"], data["mount_data"]
            if not isinstance(flags, int) or not all(isinstance(item, str) for item in extra):
                raise ValueError("mount options")
            mounted = MountAccess(FsType(data["fs_type"]), MountOptions(flags, tuple(extra)))
        record = StagedRecord(volume_id=str(data["volume_id"]), nqn=str(data["nqn"]), mount=mounted)
    except (ValueError, KeyError, TypeError) as bad:
        raise errors.Internal(f"staging record {origin} is unreadable ({bad}); inspect it by hand") from None
    return record


def read_record(staging_path: Path) -> StagedRecord | None:
    """The record of ``staging_path``, or None when there is none."""
    path = record_path(staging_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse_record(text, str(path))


def write_record(staging_path: Path, record: StagedRecord) -> None:
    write_atomically(record_path(staging_path), render_record(record))


def remove_record(staging_path: Path) -> None:
    """Remove the record (none is fine); the removal is made durable before the caller reports success."""
    path = record_path(staging_path)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
