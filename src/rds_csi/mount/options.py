"""Mount flags from a CSI capability -> validated mount(2) arguments (sans-IO).

The kubelet passes a PV's / StorageClass's ``mountOptions`` as ``mount_flags``: strings such as ``noatime`` or
``commit=30``, an element may hold several comma-separated options. Each option must match a plain grammar (no
spaces, quotes, NULs or empty items), so nothing can smuggle an extra option or argument in. Generic options become
``MS_*`` bits, as mount(8) translates them; the rest is handed to the file system, which rejects what it does not
know. Refused outright: options that are operations rather than options (``bind``, ``remount``, propagation),
mount(8)-only and fstab-only words that the kernel would not understand, SELinux contexts (their values need
quoting; the driver does not declare SELinux mount support), and options that name another device (an external
journal or log), which would let a mount option make the kernel write to a device that is not the volume.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rds_csi.core import errors

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_SILENT = 32768
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# The flags that belong to a mount point rather than to the file system: what a bind remount can set.
PER_MOUNT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME
PER_MOUNT_FLAGS |= MS_STRICTATIME | MS_NOSYMFOLLOW

# option -> (bits it sets, bits it clears), as mount(8) reads them.
_GENERIC: dict[str, tuple[int, int]] = {
    "defaults": (0, 0),
    "ro": (MS_RDONLY, 0),
    "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0),
    "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0),
    "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0),
    "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0),
    "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0),
    "noatime": (MS_NOATIME, 0),
    "atime": (0, MS_NOATIME),
    "nodiratime": (MS_NODIRATIME, 0),
    "diratime": (0, MS_NODIRATIME),
    "relatime": (MS_RELATIME, 0),
    "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0),
    "nostrictatime": (0, MS_STRICTATIME),
    "lazytime": (MS_LAZYTIME, 0),
    "nolazytime": (0, MS_LAZYTIME),
    "iversion": (MS_I_VERSION, 0),
    "noiversion": (0, MS_I_VERSION),
    "nosymfollow": (MS_NOSYMFOLLOW, 0),
    "silent": (MS_SILENT, 0),
    "loud": (0, MS_SILENT),
}

_OPERATIONS = frozenset(
    {"bind", "rbind", "move", "remount", "rec", "loop", "offset", "sizelimit", "encryption"}
    | {"shared", "rshared", "private", "rprivate", "slave", "rslave", "unbindable", "runbindable"}
)
_FSTAB_ONLY = frozenset({"auto", "noauto", "user", "nouser", "users", "owner", "group", "nofail", "_netdev", "comment"})
_SELINUX = frozenset({"context", "fscontext", "defcontext", "rootcontext", "seclabel"})
_OTHER_DEVICE = frozenset({"journal_path", "journal_dev", "logdev", "rtdev"})

_OPTION = re.compile(r"([a-z0-9_][a-z0-9_.-]*)(?:=([A-Za-z0-9_.:/@+%-]+))?")
# The kernel copies at most one page of mount data.
_MAX_DATA = 4095


@dataclass(frozen=True, slots=True)
class MountOptions:
    """Validated mount(2) arguments: ``MS_*`` bits and the file system's own options (in the order given)."""

    flags: int = 0
    data: tuple[str, ...] = ()

    @property
    def readonly(self) -> bool:
        return bool(self.flags & MS_RDONLY)

    @property
    def data_string(self) -> str | None:
        return ",".join(self.data) if self.data else None

    @property
    def per_mount_flags(self) -> int:
        return self.flags & PER_MOUNT_FLAGS


NO_OPTIONS = MountOptions()


def _refuse(option: str, why: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"mount flag {option!r} is not accepted: {why}")


def parse_mount_flags(mount_flags: Sequence[str], *, readonly: bool = False) -> MountOptions:
    """A capability's ``mount_flags`` (plus the call's read-only wish) -> ``MountOptions``; ``InvalidArgument``
    naming the first flag that breaks a rule. Later generic flags win over earlier ones, as in mount(8); ``rw``
    contradicting a read-only request is refused rather than silently dropped."""
    flags = MS_RDONLY if readonly else 0
    data: list[str] = []
    for element in mount_flags:
        for option in element.split(","):
            match = _OPTION.fullmatch(option)
            if match is None:
                raise _refuse(option, "options are lower-case words with an optional plain =value, one per item")
            name, value = match[1], match[2]
            if name in _GENERIC:
                if value is not None:
                    raise _refuse(option, f"{name} takes no value")
                if name == "rw" and readonly:
                    raise _refuse(option, "it contradicts the read-only volume or request")
                set_bits, clear_bits = _GENERIC[name]
                flags = (flags & ~clear_bits) | set_bits
            elif name in _OPERATIONS:
                raise _refuse(option, "it is a mount operation, not an option")
            elif name in _FSTAB_ONLY or name.startswith("x-"):
                raise _refuse(option, "it only means something to mount(8) or /etc/fstab")
            elif name in _SELINUX:
                raise _refuse(option, "SELinux context mount options are not supported by this driver")
            elif name in _OTHER_DEVICE:
                raise _refuse(option, "it names another block device for the file system to write to")
            else:
                data.append(option)
    if len(",".join(data)) > _MAX_DATA:
        raise errors.InvalidArgument(f"mount flags are longer than the kernel accepts ({_MAX_DATA} bytes)")
    return MountOptions(flags, tuple(data))


_SHOWN_PER_MOUNT = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "nosymfollow": MS_NOSYMFOLLOW,
}


def shown_per_mount_flags(mount_options: Sequence[str]) -> int:
    """The ``MS_*`` bits a mountinfo entry's per-mount options stand for, so a bind remount can keep them (it
    replaces them all). mountinfo shows neither ``noatime`` nor ``relatime`` for a strictatime mount."""
    flags = 0
    for option in mount_options:
        flags |= _SHOWN_PER_MOUNT.get(option, 0)
    if not flags & (MS_NOATIME | MS_RELATIME):
        flags |= MS_STRICTATIME
    return flags
