"""Mount, bind, unmount and target handling, idempotent and careful with what is already there.

Every operation first looks at the mount table: a target that already shows what was asked is success (a retried
call), one that shows something else is ``MountConflict`` and is left alone. Targets are created one component deep
(the CO creates the parents) and opened with ``O_NOFOLLOW``; the mount(2) call then goes through the opened handle
(``/proc/self/fd/N``), so a symlink swapped in after the check cannot redirect the mount elsewhere. Nothing is
deleted unless the mount table shows nothing mounted at or below it, and directories are removed with rmdir only.

Paths are compared the way the kernel records them: the parent resolved (``realpath``), the last component as is.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

from rds_csi.core import errors
from rds_csi.mount import kernel
from rds_csi.mount.format import FsType
from rds_csi.mount.host import HOST, HostPaths
from rds_csi.mount.mountinfo import DeviceNumber, MountEntry
from rds_csi.mount.options import (
    MS_BIND,
    MS_RDONLY,
    MS_REMOUNT,
    NO_OPTIONS,
    MountOptions,
    shown_per_mount_flags,
)
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

_PROC_SELF_FD = "/proc/self/fd"
# Enough for any stack the node makes (one mount per target); more means something else is mounting there.
_MAX_STACKED_UNMOUNTS = 8
# Kernel answers that describe the device or the request rather than a broken node.
_PRECONDITION_ERRNOS = frozenset(
    {errno.EBUSY, errno.EROFS, errno.EINVAL, errno.ENOENT, errno.ENXIO, errno.ENOTBLK, errno.EUCLEAN}
)


class _Kind(Enum):
    DIRECTORY = "directory"
    FILE = "file"


def canonical_path(path: str | os.PathLike[str]) -> str:
    """``path`` as mountinfo records it: absolute, the parent's symlinks resolved, the last component kept."""
    absolute = os.path.abspath(path)
    parent, name = os.path.split(absolute)
    return os.path.join(os.path.realpath(parent), name) if name else absolute


def device_number(device: Path) -> DeviceNumber:
    """The device number of a block device node (``/dev/disk/by-*`` links are followed)."""
    try:
        info = os.stat(device)
    except FileNotFoundError:
        raise errors.FailedPrecondition(f"device {device} does not exist") from None
    if not stat.S_ISBLK(info.st_mode):
        raise errors.FailedPrecondition(f"{device} is not a block device")
    return DeviceNumber.from_rdev(info.st_rdev)


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else "?"


def _kernel_refused(action: str, exc: OSError) -> errors.RdsCsiError:
    detail = f"{action} failed: {_errno_name(exc)} ({os.strerror(exc.errno or 0)})"
    if exc.errno == errno.EINVAL:
        detail += " — a mount flag this file system does not accept, or a damaged file system"
    if exc.errno == errno.EIO:
        return errors.Unavailable(detail)
    if exc.errno in _PRECONDITION_ERRNOS:
        return errors.FailedPrecondition(detail)
    return errors.Internal(detail)


def _describe(entry: MountEntry) -> str:
    shown = entry.source if entry.root == "/" else f"{entry.source}:{entry.root}"
    return f"{shown} ({entry.fs_type}, {entry.device})"


def _remove_unmounted(where: str, paths: HostPaths) -> None:
    if paths.mount_table().under(where):
        raise errors.TargetBusy(where, "still has something mounted on or below it; it is not removed")
    try:
        if stat.S_ISDIR(os.lstat(where).st_mode):
            os.rmdir(where)
        else:
            os.unlink(where)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise errors.TargetBusy(where, "is a directory that is not empty; it is left alone") from None
        raise errors.Internal(f"removing {where} failed: {_errno_name(exc)}") from None


@contextmanager
def _target(target: Path, kind: _Kind, paths: HostPaths) -> Iterator[str]:
    """Create the target when missing, open it without following a symlink, and yield a path to that very object
    for mount(2). If the body fails, a target created here is removed again (when nothing is mounted on it)."""
    created = False
    try:
        if kind is _Kind.DIRECTORY:
            os.mkdir(target, 0o750)
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        created = True
    except FileExistsError:
        pass
    except FileNotFoundError:
        raise errors.FailedPrecondition(f"the parent directory of {target} does not exist") from None
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if kind is _Kind.DIRECTORY else 0)
    try:
        handle = os.open(target, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise errors.MountConflict(str(target), "exists and is not a directory (a file or a symlink)") from None
        raise errors.Internal(f"opening the target {target} failed: {_errno_name(exc)}") from None
    try:
        mode = os.fstat(handle).st_mode
        if kind is _Kind.FILE and not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            raise errors.MountConflict(str(target), "exists and is not a file (a directory or a symlink)")
        yield f"{_PROC_SELF_FD}/{handle}"
    except BaseException:
        if created:
            with contextlib.suppress(errors.RdsCsiError):
                _remove_unmounted(canonical_path(target), paths)
        raise
    finally:
        os.close(handle)


def _mounted(paths: HostPaths, where: str) -> MountEntry:
    entry = paths.mount_table().at(where)
    if entry is None:
        raise errors.Internal(f"the kernel accepted a mount on {where}, yet mountinfo shows nothing there")
    return entry


def _require_same(entry: MountEntry, where: str, wanted: tuple[DeviceNumber, str], what: str, readonly: bool) -> None:
    if (entry.device, entry.root) != wanted:
        raise errors.MountConflict(where, f"is already mounted from {_describe(entry)}, not from {what}")
    if entry.read_only != readonly:
        shown, asked = ("read-only", "read-write") if entry.read_only else ("read-write", "read-only")
        raise errors.AlreadyExists(f"{where} is already mounted {shown} from {what}; {asked} was requested")


def check_mounted(target: Path, device: Path, *, paths: HostPaths = HOST) -> bool:
    """Is ``target`` mounted from ``device``? True: yes; False: nothing is mounted there; ``MountConflict`` when
    another device (or a sub-directory) is mounted there."""
    entry = paths.mount_table().at(canonical_path(target))
    if entry is None:
        return False
    if (entry.device, entry.root) != (device_number(device), "/"):
        raise errors.MountConflict(str(target), f"is mounted from {_describe(entry)}, not from {device}")
    return True


def mount_filesystem(
    device: Path,
    target: Path,
    fs_type: FsType,
    options: MountOptions = NO_OPTIONS,
    *,
    paths: HostPaths = HOST,
) -> MountEntry:
    """Mount the file system on ``device`` at the directory ``target`` (created if missing).

    Already mounted there from this device with the same read-only state: success, nothing done. From another
    device: ``MountConflict``; in the other read-only state: ``AlreadyExists``. Returns the mount's entry.
    """
    number = device_number(device)
    source = os.path.realpath(device)
    where = canonical_path(target)
    with _target(target, _Kind.DIRECTORY, paths) as handle:
        existing = paths.mount_table().at(where)
        if existing is not None:
            _require_same(existing, where, (number, "/"), f"{source} ({number})", options.readonly)
            return existing
        try:
            kernel.mount(source, handle, fs_type.value, options.flags, options.data_string)
        except OSError as exc:
            raise _kernel_refused(f"mounting {source} ({fs_type.value}) on {where}", exc) from None
        entry = _mounted(paths, where)
    log_event(_log, "mount.mount", device=source, target=where, fs_type=fs_type.value, readonly=options.readonly)
    return entry


def bind_mount(
    source: Path,
    target: Path,
    *,
    readonly: bool = False,
    options: MountOptions = NO_OPTIONS,
    paths: HostPaths = HOST,
) -> MountEntry:
    """Bind the mounted directory ``source`` (a staging mount) onto the directory ``target`` (created if missing).

    ``source`` must itself be a mount point: binding a bare directory would put the workload's data on the node's
    own disk. Read-only (and the per-mount flags of ``options``) take a second step, a bind remount, since the
    first bind ignores them; if that step fails the bind is undone, never left writable. Idempotent like
    ``mount_filesystem``.
    """
    origin = os.path.realpath(source)
    table = paths.mount_table()
    location = table.location(origin)
    if table.at(origin) is None or location is None:
        raise errors.FailedPrecondition(f"{source} is not a mount point; refusing to bind the bare directory")
    where = canonical_path(target)
    with _target(target, _Kind.DIRECTORY, paths) as handle:
        existing = paths.mount_table().at(where)
        if existing is not None:
            _require_same(existing, where, location, origin, readonly)
            return existing
        origin_handle = os.open(origin, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            kernel.mount(f"{_PROC_SELF_FD}/{origin_handle}", handle, None, MS_BIND, None)
        except OSError as exc:
            raise _kernel_refused(f"binding {origin} on {where}", exc) from None
        finally:
            os.close(origin_handle)
        try:
            entry = _mounted(paths, where)
            wanted = options.per_mount_flags | (MS_RDONLY if readonly else 0)
            if wanted:
                # The remount replaces every per-mount flag: keep the ones the bind inherited.
                kept = shown_per_mount_flags(entry.mount_options)
                try:
                    kernel.mount(None, where, None, MS_REMOUNT | MS_BIND | kept | wanted, None)
                except OSError as exc:
                    raise _kernel_refused(f"making the bind on {where} read-only", exc) from None
                entry = _mounted(paths, where)
            if entry.read_only != readonly:
                raise errors.Internal(f"the bind on {where} did not take the requested read-only state")
        except BaseException:
            kernel.umount(where)
            raise
    log_event(_log, "mount.bind", source=origin, target=where, readonly=readonly)
    return entry


def bind_block_device(device: Path, target: Path, *, paths: HostPaths = HOST) -> MountEntry:
    """Bind the device node ``device`` onto the file ``target`` (created if missing): a raw block publish.

    Already showing this device: success. Showing another device (a renumbered or different volume):
    ``MountConflict``. There is no read-only variant: the kernel lets a device node be opened for writing
    through a read-only mount, so a read-only bind would promise what it cannot keep.
    """
    number = device_number(device)
    node = os.path.realpath(device)
    where = canonical_path(target)
    with _target(target, _Kind.FILE, paths) as handle:
        existing = paths.mount_table().at(where)
        if existing is not None:
            shown = os.stat(where)
            if stat.S_ISBLK(shown.st_mode) and DeviceNumber.from_rdev(shown.st_rdev) == number:
                return existing
            raise errors.MountConflict(where, f"already shows {_describe(existing)}, not the device {node} ({number})")
        node_handle = os.open(node, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            # The node opened must still be the device checked above (no renumbering in between).
            if DeviceNumber.from_rdev(os.fstat(node_handle).st_rdev) != number:
                raise errors.FailedPrecondition(f"{node} changed to another device while it was being published")
            kernel.mount(f"{_PROC_SELF_FD}/{node_handle}", handle, None, MS_BIND, None)
        except OSError as exc:
            raise _kernel_refused(f"binding the device {node} on {where}", exc) from None
        finally:
            os.close(node_handle)
        entry = _mounted(paths, where)
    log_event(_log, "mount.bind_block", device=node, target=where)
    return entry


def unmount(target: Path, *, paths: HostPaths = HOST) -> bool:
    """Unmount whatever is mounted on ``target`` (every stacked layer). True if something was unmounted.

    A target that does not exist or is not a mount point is success. Still in use: ``TargetBusy``. Symlinks at
    ``target`` are never followed.
    """
    if not os.path.lexists(target):
        return False
    where = canonical_path(target)
    unmounted = 0
    while paths.mount_table().at(where) is not None:
        if unmounted == _MAX_STACKED_UNMOUNTS:
            raise errors.Internal(f"{where} still shows a mount after {unmounted} unmounts")
        try:
            kernel.umount(where)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise errors.TargetBusy(where, "is busy: something still uses the mount") from None
            if exc.errno in (errno.EINVAL, errno.ENOENT) and paths.mount_table().at(where) is None:
                break  # unmounted by someone else between the table read and the call
            raise _kernel_refused(f"unmounting {where}", exc) from None
        unmounted += 1
    if unmounted:
        log_event(_log, "mount.unmount", target=where, layers=unmounted)
    return unmounted > 0


def remove_target(target: Path, *, paths: HostPaths = HOST) -> bool:
    """Remove a publish/staging target, only once mountinfo shows nothing mounted on or below it.

    A directory is removed with rmdir (a non-empty one is ``TargetBusy`` and stays), a file or symlink is
    unlinked (the link itself, never what it points to). True if something was removed; a missing target is
    success.
    """
    if not os.path.lexists(target):
        return False
    _remove_unmounted(canonical_path(target), paths)
    return True
