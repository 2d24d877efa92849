"""The attachment table on disk, for a controller without a Kubernetes API: its only durable truth.

With an API server, VolumeAttachments say after a restart who holds each volume. Without one, nothing outside
this process does, so every attachment is written to a state file before a publish is answered OK and after an
unpublish, and the table is rebuilt from it (through the same ``plan_rebuild`` as VolumeAttachments) before the
first publish is served. Each write replaces the whole file atomically: a temp file in the same directory,
fsync, rename over the old one, fsync the directory. A crash leaves the old file or the new one, never a mix.

The file is versioned JSON; anything this code did not write (unreadable, not JSON, another version, a field of
the wrong type) stops the start with an error rather than being read as "no attachments", which would free every
volume. A lock on the directory keeps a second controller from sharing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Final

from rds_csi.attach.rebuild import VolumeAttachmentFact
from rds_csi.core import errors
from rds_csi.core.clock import Clock
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

FORMAT: Final = "rds-csi-attachments"
VERSION: Final = 1
STATE_FILE: Final = "attachments.json"
LOCK_FILE: Final = "attachments.lock"
_TEMP_PREFIX: Final = ".attachments."
_TEMP_SUFFIX: Final = ".tmp"
_ACCESS = {False: "single-node", True: "multi-node-block"}
_ACCESS_BY_NAME = {name: multi for multi, name in _ACCESS.items()}


class AttachmentStateFile:
    """The state file under ``directory``; ``open`` (lock + load) once, then ``save`` after every change.

    Times in the file are wall-clock epoch seconds (a monotonic clock restarts with the machine); in memory they
    are on ``clock``, the attachment manager's, converted as the Kubernetes rebuild converts creation times.
    """

    def __init__(self, directory: Path, clock: Clock, wall: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        self._clock = clock
        self._wall = wall
        self._lock_fd: int | None = None

    def open(self) -> list[VolumeAttachmentFact]:
        """Take the directory's lock and read the attachments (none for a new directory).

        ``FailedPrecondition`` when the directory cannot be used, another process holds it, or the file is not a
        state file this version wrote.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise errors.FailedPrecondition(f"cannot use state directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(lock_fd)
            raise errors.FailedPrecondition(
                f"state directory {self.directory} is in use by another rds-csi controller ({exc.strerror})"
            ) from exc
        self._lock_fd = lock_fd
        try:
            self._remove_leftover_temp_files()
            records = self._load()
        except BaseException:
            self.close()
            raise
        log_event(_log, "attach.state.loaded", path=str(self.path), attachments=len(records))
        return records

    def save(self, records: Iterable[VolumeAttachmentFact]) -> None:
        """Replace the file with ``records``; durable when this returns. ``Unavailable`` if it cannot be written
        (the caller must then not answer OK)."""
        if self._lock_fd is None:
            raise RuntimeError("AttachmentStateFile.save before open")
        offset = self._wall() - self._clock.now()
        document = {
            "format": FORMAT,
            "version": VERSION,
            "attachments": [_encode(record, offset) for record in records],
        }
        payload = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
        try:
            self._replace(payload)
        except OSError as exc:
            log_event(_log, "attach.state.write_failed", logging.ERROR, path=str(self.path), error=str(exc))
            raise errors.Unavailable(f"could not record attachments in {self.path}: {exc}; retry") from exc

    def close(self) -> None:
        """Release the directory's lock (also released by the kernel when the process dies)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- file handling ---------------------------------------------------------------------------------------------

    def _replace(self, payload: bytes) -> None:
        fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        directory_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory_fd)  # the rename itself must survive a power cut
        finally:
            os.close(directory_fd)

    def _remove_leftover_temp_files(self) -> None:
        """A write interrupted by a crash leaves its temp file; it never became the state, so it goes."""
        for leftover in self.directory.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

    def _load(self) -> list[VolumeAttachmentFact]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise errors.FailedPrecondition(f"cannot read state file {self.path}: {exc}") from exc
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._corrupt(f"not JSON ({exc})") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise self._corrupt(f'not an rds-csi attachment state file (no "format": "{FORMAT}")')
        version = document.get("version")
        if version != VERSION:
            raise self._corrupt(f"written in state format version {version!r}; this rds-csi reads version {VERSION}")
        attachments = document.get("attachments")
        if not isinstance(attachments, list):
            raise self._corrupt('"attachments" is not a list')
        offset = self._clock.now() - self._wall()
        records = [self._decode(index, item, offset) for index, item in enumerate(attachments)]
        pairs = [(record.volume_id, record.node_id) for record in records]
        if len(set(pairs)) != len(pairs):
            raise self._corrupt("a (volume, node) pair is listed twice")
        return records

    def _decode(self, index: int, item: object, offset: float) -> VolumeAttachmentFact:
        if not isinstance(item, dict):
            raise self._corrupt(f"attachment {index} is not an object")
        try:
            return VolumeAttachmentFact(
                volume_id=_text(item, "volume_id"),
                node_id=_text(item, "node_id"),
                # Never dated in the future: a wall clock set back must not stretch a migration's window.
                created_at=min(_number(item, "attached_at") + offset, self._clock.now()),
                attached=_flag(item, "attached"),
                multi_node_block=_access(item),
                migration_timeout=_number(item, "migration_timeout"),
                readonly=_optional_flag(item, "readonly"),
            )
        except ValueError as exc:
            raise self._corrupt(f"attachment {index}: {exc}") from exc

    def _corrupt(self, why: str) -> errors.FailedPrecondition:
        return errors.FailedPrecondition(
            f"state file {self.path} is unreadable: {why}; refusing to start rather than forget who holds which "
            "volume (restore the file, or move it away only when no volume is published)"
        )


def _encode(record: VolumeAttachmentFact, offset: float) -> dict[str, object]:
    return {
        "volume_id": record.volume_id,
        "node_id": record.node_id,
        "attached_at": record.created_at + offset,
        "attached": record.attached,
        "access": _ACCESS[record.multi_node_block],
        "migration_timeout": record.migration_timeout,
        "readonly": record.readonly,
    }


def _text(item: Mapping[str, object], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _number(item: Mapping[str, object], key: str) -> float:
    value = item.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def _flag(item: Mapping[str, object], key: str) -> bool:
    value = item.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def _optional_flag(item: Mapping[str, object], key: str) -> bool | None:
    return None if item.get(key) is None else _flag(item, key)


def _access(item: Mapping[str, object]) -> bool:
    value = item.get("access")
    if value not in _ACCESS_BY_NAME:
        raise ValueError(f"access must be one of {', '.join(sorted(_ACCESS_BY_NAME))}, got {value!r}")
    return _ACCESS_BY_NAME[str(value)]
