"""Safe format: a device is formatted only when blkid positively reports that it holds nothing.

``blkid -p -o export DEV`` probes the device itself (low-level, no cache). Its answers:

- exit 2, no output at all: no signature found -> the only answer that allows mkfs;
- exit 0 with ``TYPE=`` (a file system, swap, LUKS, a RAID member...) or ``PTTYPE=`` (a partition table): the device
  holds something -> mount it if it is the requested file system, refuse otherwise (never reformat);
- exit 8: ambivalent (several signatures) -> refuse; exit 4 or anything else, stderr output, a timeout -> refuse.

blkid also exits 2, silently, when the device cannot be read at all (a missing path, EIO from a dead path), which is
indistinguishable from "blank". So before trusting that answer the device is proven to be a readable block device of
non-zero size by reading its first and last MiB, where nearly every signature lives.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rds_csi.core import errors
from rds_csi.core.deadlines import time_left
from rds_csi.mount.runner import CommandRunner, CommandTimeout, Completed, SubprocessRunner
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)

BLKID_NO_SIGNATURE = 2
BLKID_AMBIVALENT = 8
PROBE_TIMEOUT_SECONDS = 10.0
# mkfs is given its own generous budget and is never cut short by the CSI call's deadline: a killed mkfs leaves a
# half-written device, and the kubelet's retry of a slow stage is answered ABORTED until this one finishes anyway.
MKFS_TIMEOUT_SECONDS = 600.0
_READ_WINDOW = 1 << 20
_EXPORT_LINE = re.compile(r"([A-Z][A-Z0-9_]*)=(.*)")


class FsType(StrEnum):
    """The file systems the driver creates and mounts."""

    EXT4 = "ext4"
    EXT3 = "ext3"
    XFS = "xfs"

    @classmethod
    def parse(cls, value: str) -> FsType:
        """A capability's fs_type -> ``FsType``; anything else is ``InvalidArgument`` (the empty default is the
        caller's choice to make)."""
        try:
            return cls(value)
        except ValueError:
            supported = ", ".join(member.value for member in cls)
            raise errors.InvalidArgument(f"fs_type {value!r} is not supported (use one of: {supported})") from None


def mkfs_command(device: Path, fs_type: FsType) -> list[str]:
    """The mkfs invocation for a blank device.

    - ``-m 0``: no blocks reserved for root; a volume is one workload's data, not a system disk.
    - ``nodiscard`` / ``-K``: the device is a freshly created volume, already empty; a discard of a whole
      multi-TiB namespace over NVMe/TCP can take minutes on some targets, inside a stage call.
    - ``lazy_itable_init=1`` (ext4): mkfs time does not grow with the volume size; the kernel zeroes the inode
      tables in the background after the first mount. Set explicitly because mke2fs otherwise decides by looking
      for ``/sys/fs/ext4/features/lazy_itable_init``, which a container may not see.
    - no ``-F`` / ``-f``: the probe already proved the device blank, and mkfs.xfs's own "existing file system"
      check stays on as a second guard (mke2fs still refuses a mounted device).
    """
    match fs_type:
        case FsType.EXT4:
            return ["mkfs.ext4", "-q", "-m", "0", "-E", "nodiscard,lazy_itable_init=1", str(device)]
        case FsType.EXT3:
            return ["mkfs.ext3", "-q", "-m", "0", "-E", "nodiscard", str(device)]
        case FsType.XFS:
            return ["mkfs.xfs", "-q", "-K", str(device)]


@dataclass(frozen=True, slots=True)
class Signature:
    """What blkid found on a device: its ``KEY=value`` tags (``TYPE``, ``USAGE``, ``PTTYPE``, ``UUID``...)."""

    tags: Mapping[str, str]

    @property
    def type(self) -> str | None:
        return self.tags.get("TYPE")

    @property
    def usage(self) -> str | None:
        return self.tags.get("USAGE")

    @property
    def partition_table(self) -> str | None:
        return self.tags.get("PTTYPE")

    def describe(self) -> str:
        if self.partition_table:
            return f"a {self.partition_table} partition table"
        return f"{self.type} ({self.usage or 'unknown usage'})"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def classify_blkid(result: Completed, device: str) -> Signature | None:
    """blkid's answer -> ``None`` (positively blank) or the ``Signature`` found; any doubt is ``FormatRefused``."""
    if result.returncode == BLKID_AMBIVALENT:
        raise errors.FormatRefused(device, "ambivalent", "blkid found several conflicting signatures (ambivalent)")
    if result.stderr.strip():
        raise errors.FormatRefused(
            device, "probe-failed", f"blkid exited {result.returncode} and wrote: {_first_line(result.stderr)}"
        )
    if result.returncode == BLKID_NO_SIGNATURE:
        if result.stdout.strip():
            raise errors.FormatRefused(device, "probe-failed", "blkid said 'nothing found' yet printed tags")
        return None
    if result.returncode != 0:
        raise errors.FormatRefused(device, "probe-failed", f"blkid failed with exit status {result.returncode}")
    tags: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        match = _EXPORT_LINE.fullmatch(line.strip())
        if match is None:
            raise errors.FormatRefused(device, "probe-failed", f"blkid printed something unexpected: {line.strip()!r}")
        tags[match[1]] = match[2]
    if "TYPE" not in tags and "PTTYPE" not in tags:
        raise errors.FormatRefused(device, "probe-failed", "blkid found something on the device but did not name it")
    return Signature(tags)


def needs_format(signature: Signature | None, fs_type: FsType, device: str) -> bool:
    """True for a blank device; False when it already holds ``fs_type``; ``FormatRefused`` for anything else."""
    if signature is None:
        return True
    if signature.partition_table is None and signature.type == fs_type.value and signature.usage == "filesystem":
        return False
    raise errors.FormatRefused(
        device,
        "signature",
        f"it holds {signature.describe()} and {fs_type.value} was requested; a volume is never reformatted",
    )


def _check_readable(device: Path) -> None:
    """Prove ``device`` is a block device we can read, start and end, before believing a silent blkid."""
    name = str(device)
    try:
        if not stat.S_ISBLK(os.stat(device).st_mode):
            raise errors.FormatRefused(name, "unreadable", "it is not a block device")
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise errors.FormatRefused(name, "unreadable", "the device does not exist") from None
    except OSError as exc:
        raise errors.FormatRefused(name, "unreadable", f"it cannot be opened: {_errno_text(exc)}") from None
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size <= 0:
            raise errors.FormatRefused(name, "unreadable", "the device reports a size of 0")
        window = min(_READ_WINDOW, size)
        for offset in (0, size - window):
            if len(os.pread(fd, window, offset)) != window:
                raise errors.FormatRefused(name, "unreadable", f"a read at offset {offset} came back short")
    except OSError as exc:
        raise errors.FormatRefused(name, "unreadable", f"reading it failed: {_errno_text(exc)}") from None
    finally:
        os.close(fd)


def _errno_text(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else "?"
    return f"{code} ({exc.strerror})"


def probe_device(
    device: Path, *, runner: CommandRunner | None = None, timeout: float = PROBE_TIMEOUT_SECONDS
) -> Signature | None:
    """What the device holds: ``None`` only when it is readable and blkid positively found no signature.

    Every doubt (unreadable device, blkid missing, failing, timing out, printing errors or garbage) raises
    ``FormatRefused``. The timeout is shortened to what is left of the CSI call's deadline.
    """
    _check_readable(device)
    argv = ["blkid", "-p", "-o", "export", str(device)]
    try:
        result = (runner or SubprocessRunner()).run(argv, timeout=time_left(timeout))
    except CommandTimeout as exc:
        raise errors.FormatRefused(str(device), "timeout", f"blkid did not answer within {exc.timeout:g}s") from None
    except OSError as exc:
        raise errors.FormatRefused(str(device), "probe-failed", f"blkid could not run: {_errno_text(exc)}") from None
    return classify_blkid(result, str(device))


class FormatOutcome(StrEnum):
    FORMATTED = "formatted"  # the device was blank and now holds the requested file system
    EXISTING = "existing"  # the device already held the requested file system; nothing was written


def ensure_filesystem(
    device: Path,
    fs_type: FsType,
    *,
    runner: CommandRunner | None = None,
    probe_timeout: float = PROBE_TIMEOUT_SECONDS,
    mkfs_timeout: float = MKFS_TIMEOUT_SECONDS,
) -> FormatOutcome:
    """Make sure ``device`` holds ``fs_type``: format it only if it is positively blank, never reformat.

    ``FormatRefused`` when the device holds anything else or cannot be proven blank; ``Internal`` when mkfs fails
    (or leaves no recognisable file system behind); ``DeadlineExceeded`` when mkfs runs past ``mkfs_timeout``.
    """
    tools = runner or SubprocessRunner()
    if not needs_format(probe_device(device, runner=tools, timeout=probe_timeout), fs_type, str(device)):
        return FormatOutcome.EXISTING
    argv = mkfs_command(device, fs_type)
    started = time.monotonic()
    try:
        result = tools.run(argv, timeout=mkfs_timeout)
    except CommandTimeout:
        raise errors.DeadlineExceeded(
            f"{argv[0]} on {device} did not finish within {mkfs_timeout:g}s; the device will be probed again"
        ) from None
    except OSError as exc:
        raise errors.Internal(f"{argv[0]} could not run: {_errno_text(exc)}") from None
    if result.returncode != 0:
        detail = _first_line(result.stderr) or _first_line(result.stdout)
        raise errors.Internal(f"{argv[0]} on {device} failed with exit status {result.returncode}: {detail}")
    made = probe_device(device, runner=tools, timeout=probe_timeout)
    if made is None or made.type != fs_type.value:
        found = "nothing" if made is None else made.describe()
        raise errors.Internal(f"{argv[0]} on {device} reported success but blkid then found {found}")
    log_event(
        _log,
        "mount.format",
        device=str(device),
        fs_type=fs_type.value,
        took_ms=round((time.monotonic() - started) * 1000),
    )
    return FormatOutcome.FORMATTED
