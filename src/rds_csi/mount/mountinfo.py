"""``/proc/self/mountinfo``: a sans-IO parser into frozen records, and the queries the node needs.

One line per mount (proc(5)): ``ID PARENT MAJOR:MINOR ROOT MOUNT_POINT MOUNT_OPTIONS [OPTIONAL...] - FSTYPE SOURCE
SUPER_OPTIONS``. The kernel escapes space, tab, newline and backslash in the path-like fields as three-digit octal
(``\\040``); every other byte, including non-UTF-8 file names, is written raw, so the text is decoded with
``surrogateescape`` and such names round-trip to the same ``os.fsencode`` bytes.

Queries compare normalised absolute paths as strings; resolving symlinks is the caller's I/O (``os.path.realpath``),
since the kernel records the resolved path of a mount point.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rds_csi.core import errors

PROC_SELF_MOUNTINFO = Path("/proc/self/mountinfo")

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_DEVICE_NUMBER = re.compile(r"(\d+):(\d+)")
_OPTIONAL_FIELD = re.compile(r"[a-z_]+(:\d+)?")


@dataclass(frozen=True, slots=True, order=True)
class DeviceNumber:
    """A block device's identity as the kernel counts it (``st_rdev`` of its node, ``MAJOR:MINOR`` in sysfs)."""

    major: int
    minor: int

    @classmethod
    def from_rdev(cls, rdev: int) -> DeviceNumber:
        return cls(os.major(rdev), os.minor(rdev))

    @classmethod
    def parse(cls, text: str) -> DeviceNumber:
        """``"259:3"`` -> ``DeviceNumber(259, 3)``; anything else is ``ValueError``."""
        match = _DEVICE_NUMBER.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"not a MAJOR:MINOR device number: {text!r}")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.major}:{self.minor}"


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of mountinfo, unescaped.

    ``mount_options`` are the per-mount flags (``ro`` when this mount point is read-only); ``super_options`` are
    the file system's own (``ro`` or ``emergency_ro`` when the file system itself went read-only, for every mount
    point that shows it). ``root`` is the directory of the file system that is mounted here: ``/`` for a whole
    file system, a sub-path for a bind mount of a directory or of a device node (``/nvme0n1`` on devtmpfs).
    """

    mount_id: int
    parent_id: int
    device: DeviceNumber
    root: str
    mount_point: str
    mount_options: tuple[str, ...]
    optional_fields: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        """This mount point is read-only (the per-mount flag; see ``filesystem_read_only`` for the file system)."""
        return "ro" in self.mount_options

    @property
    def filesystem_read_only(self) -> bool:
        """The file system itself is read-only: mounted so, or switched after errors.

        ext4 on older kernels flips the super block to ``ro`` (``errors=remount-ro``); newer kernels keep ``rw``
        and add ``emergency_ro`` instead.
        """
        return "ro" in self.super_options or "emergency_ro" in self.super_options


def unescape(field: str) -> str:
    """Undo the kernel's octal escapes (``\\040`` -> space)."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), field)


def _options(field: str) -> tuple[str, ...]:
    return tuple(unescape(option) for option in field.split(",")) if field else ()


def parse_mountinfo_line(line: str) -> MountEntry:
    """One mountinfo line -> ``MountEntry``; a line that does not have the documented shape is ``ValueError``."""
    fields = line.split(" ")
    try:
        separator = fields.index("-", 6)
    except ValueError:
        raise ValueError(f"no '-' separator after the optional fields: {line!r}") from None
    if separator + 4 != len(fields):
        raise ValueError(f"expected file system type, source and super options after '-': {line!r}")
    optional = tuple(fields[6:separator])
    if not all(_OPTIONAL_FIELD.fullmatch(tag) for tag in optional):
        raise ValueError(f"malformed optional field in: {line!r}")
    mount_id, parent_id, device, root, mount_point, mount_options = fields[:6]
    if not (mount_id.isdigit() and parent_id.isdigit()):
        raise ValueError(f"mount ids are not numbers: {line!r}")
    fs_type, source, super_options = fields[separator + 1 :]
    return MountEntry(
        mount_id=int(mount_id),
        parent_id=int(parent_id),
        device=DeviceNumber.parse(device),
        root=unescape(root),
        mount_point=unescape(mount_point),
        mount_options=_options(mount_options),
        optional_fields=optional,
        fs_type=unescape(fs_type),
        source=unescape(source),
        super_options=_options(super_options),
    )


def _normalise(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if not text.startswith("/"):
        raise ValueError(f"mount table queries take absolute paths, got {text!r}")
    normalised = posixpath.normpath(text)
    # POSIX lets normpath keep exactly two leading slashes; the kernel never writes them.
    return normalised[1:] if normalised.startswith("//") else normalised


def _is_at_or_under(path: str, directory: str) -> bool:
    return directory in ("/", path) or path.startswith(directory + "/")


@dataclass(frozen=True, slots=True)
class MountTable:
    """The mount table of one mount namespace, in the kernel's order (a later entry on a mount point is on top)."""

    entries: tuple[MountEntry, ...]

    def __iter__(self) -> Iterator[MountEntry]:
        return iter(self.entries)

    def at(self, mount_point: str | os.PathLike[str]) -> MountEntry | None:
        """The visible (topmost) mount on exactly this mount point, or None if nothing is mounted there."""
        target = _normalise(mount_point)
        found = None
        for entry in self.entries:
            if entry.mount_point == target:
                found = entry
        return found

    def is_mount_point(self, path: str | os.PathLike[str]) -> bool:
        return self.at(path) is not None

    def stacked_at(self, mount_point: str | os.PathLike[str]) -> int:
        """How many mounts are stacked on this mount point (0: none): what an unmount loop has to remove."""
        target = _normalise(mount_point)
        return sum(1 for entry in self.entries if entry.mount_point == target)

    def containing(self, path: str | os.PathLike[str]) -> MountEntry | None:
        """The mount a path lives on: the mount with the longest mount point at or above it (the topmost one when
        several are stacked there). A mount hidden because a later one covers a directory above it is not told
        apart: the node never stacks mounts that way."""
        target = _normalise(path)
        best: MountEntry | None = None
        for entry in self.entries:
            if _is_at_or_under(target, entry.mount_point) and (
                best is None or len(entry.mount_point) >= len(best.mount_point)
            ):
                best = entry
        return best

    def from_device(self, device: DeviceNumber) -> tuple[MountEntry, ...]:
        """Every mount of a file system on this device (bind mounts of it included)."""
        return tuple(entry for entry in self.entries if entry.device == device)

    def from_source(self, source: str) -> tuple[MountEntry, ...]:
        """Every mount whose source field is exactly ``source`` (``/dev/nvme0n1``)."""
        return tuple(entry for entry in self.entries if entry.source == source)

    def under(self, path: str | os.PathLike[str]) -> tuple[MountEntry, ...]:
        """Mounts on ``path`` itself or anywhere below it."""
        directory = _normalise(path)
        return tuple(entry for entry in self.entries if _is_at_or_under(entry.mount_point, directory))

    def location(self, path: str | os.PathLike[str]) -> tuple[DeviceNumber, str] | None:
        """Which directory of which file system ``path`` shows: (device, path inside that file system)."""
        target = _normalise(path)
        host = self.containing(target)
        if host is None:
            return None
        relative = posixpath.relpath(target, host.mount_point)
        return host.device, host.root if relative == "." else posixpath.join(host.root, relative)

    def binds_of(self, path: str | os.PathLike[str]) -> tuple[MountEntry, ...]:
        """The other mount points that show the same directory as ``path``: bind mounts of it, or it of them.

        A bind mount is indistinguishable from its origin in mountinfo: both show the same device and root.
        ``path`` need not be a mount point itself (a bind of a sub-directory shows that sub-directory as root).
        """
        target = _normalise(path)
        location = self.location(target)
        if location is None:
            return ()
        return tuple(
            entry for entry in self.entries if (entry.device, entry.root) == location and entry.mount_point != target
        )


def parse_mountinfo(text: str) -> MountTable:
    """The whole file -> ``MountTable``. A malformed line is ``errors.Internal`` naming its line number: a kernel
    format we do not understand must stop a mount decision, never be skipped over."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        try:
            entries.append(parse_mountinfo_line(line))
        except ValueError as exc:
            raise errors.Internal(f"mountinfo line {number} is not understood: {exc}") from exc
    return MountTable(tuple(entries))


def read_mountinfo(path: Path = PROC_SELF_MOUNTINFO) -> MountTable:
    """Read and parse a mountinfo file (this process's mount namespace by default)."""
    return parse_mountinfo(path.read_bytes().decode("utf-8", "surrogateescape"))
