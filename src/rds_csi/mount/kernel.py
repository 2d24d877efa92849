"""mount(2) and umount2(2) through ctypes: the only place the mount layer calls the kernel to change mounts.

Why the system calls rather than mount(8)/umount(8): the errno comes back exact (EBUSY, EINVAL, EROFS) instead of
an exit status 32 and an English message that differs between util-linux versions; no helper programs or
``/etc/mtab`` are involved (ext4 and xfs are in-kernel, bind mounts need nothing else); no process per call; and
the options that reach the kernel are exactly the ones ``parse_mount_flags`` validated. What mount(8) would add
for us, the two-step read-only bind and option-name translation, is a few lines here.
"""

from __future__ import annotations

import ctypes
import os

UMOUNT_NOFOLLOW = 8

# The interpreter's own symbol table holds libc's mount/umount2 (no ldconfig lookup at import).
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _raise_errno(call: str, path: str) -> None:
    code = ctypes.get_errno()
    raise OSError(code, f"{call}: {os.strerror(code)}", path)


def mount(source: str | None, target: str, fs_type: str | None, flags: int, data: str | None) -> None:
    """mount(2); ``OSError`` with the kernel's errno on failure."""
    if _libc.mount(_bytes(source), os.fsencode(target), _bytes(fs_type), flags, _bytes(data)) != 0:
        _raise_errno("mount", target)


def umount(target: str, flags: int = UMOUNT_NOFOLLOW) -> None:
    """umount2(2), by default without following a symlink at ``target``; ``OSError`` with the errno on failure."""
    if _libc.umount2(os.fsencode(target), flags) != 0:
        _raise_errno("umount2", target)
