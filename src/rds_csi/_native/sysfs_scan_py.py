"""Pure-Python NVMe sysfs scanner: the reference behaviour of ``sysfs_scan`` (the Cython module).

Every attribute is read with one ``read`` of at most a page (what sysfs serves) and its trailing whitespace cut;
a file or directory that cannot be read counts as absent, because in sysfs that means the device went away
between listing and reading it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from rds_csi._native.sysfs_types import (
    SECTOR_BYTES,
    NvmeController,
    NvmeNamespace,
    NvmeSubsystem,
    check_nqn,
    check_root,
    check_subsystem_name,
    instance_key,
    sorted_subsystems,
)

_PAGE = 4096
_CONTROLLER_NAME = re.compile(rb"nvme[0-9]+")
# A namespace block device; a multipath head's hidden per-controller paths (nvmeNcMnK) and the generic char
# devices (ngNnK) do not match.
_NAMESPACE_NAME = re.compile(rb"nvme[0-9]+n[0-9]+")
_DECIMAL = re.compile(r"[0-9]{1,19}")  # what fits the unsigned 64 bits the Cython module parses into


def _classify(entries: Iterable[bytes], pattern: re.Pattern[bytes]) -> list[bytes]:
    return sorted((e for e in entries if pattern.fullmatch(e)), key=instance_key)


def _decimal(text: str | None) -> int | None:
    return int(text) if text is not None and _DECIMAL.fullmatch(text) else None


def _read(path: bytes) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, _PAGE).rstrip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _text(path: bytes) -> str | None:
    data = _read(path)
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _entries(directory: bytes) -> list[bytes]:
    try:
        return [name for name in os.listdir(directory) if not name.startswith(b".")]
    except OSError:
        return []


def _controller(directory: bytes, name: bytes) -> NvmeController | None:
    base = directory + b"/" + name + b"/"
    state = _text(base + b"state")
    if state is None:  # deleted since the directory was listed
        return None
    return NvmeController(
        name=name.decode(),
        state=state,
        transport=_text(base + b"transport") or "",
        address=_text(base + b"address") or "",
        host_nqn=_text(base + b"hostnqn") or "",
    )


def _namespace(directory: bytes, name: bytes) -> NvmeNamespace | None:
    """A namespace from its ``size`` (sectors) and ``dev`` (``major:minor``); None unless both are valid, i.e. the
    block device is registered (a size of 0 is valid: a namespace can read 0 right after a connect)."""
    base = directory + b"/" + name + b"/"
    sectors = _decimal(_text(base + b"size"))
    major_text, colon, minor_text = (_text(base + b"dev") or "").partition(":")
    major, minor = _decimal(major_text), _decimal(minor_text)
    if sectors is None or not colon or major is None or minor is None:
        return None
    return NvmeNamespace(name.decode(), sectors * SECTOR_BYTES, major, minor)


def _subsystem(root: bytes, name: bytes, wanted: bytes | None) -> NvmeSubsystem | None:
    directory = root + b"/class/nvme-subsystem/" + name
    nqn = _read(directory + b"/subsysnqn")
    if nqn is None or (wanted is not None and nqn != wanted):
        return None
    entries = _entries(directory)
    controllers = [c for c in (_controller(directory, e) for e in _classify(entries, _CONTROLLER_NAME)) if c]
    namespaces = [n for n in (_namespace(directory, e) for e in _classify(entries, _NAMESPACE_NAME)) if n]
    if not namespaces:  # without native multipath the block devices hang off each controller instead
        for controller in controllers:
            own = directory + b"/" + controller.name.encode()
            namespaces += [n for n in (_namespace(own, e) for e in _classify(_entries(own), _NAMESPACE_NAME)) if n]
    return NvmeSubsystem(name.decode(), nqn.decode("utf-8", "surrogateescape"), tuple(controllers), tuple(namespaces))


def find_subsystem(sysfs_root: str | os.PathLike[str], nqn: str) -> NvmeSubsystem | None:
    root = check_root(sysfs_root)
    wanted = check_nqn(nqn)
    class_dir = root + b"/class/nvme-subsystem/"
    for name in _entries(class_dir):
        if _read(class_dir + name + b"/subsysnqn") == wanted:
            # The first match decides: NQNs are unique among subsystems, and one that vanished since is absent.
            return _subsystem(root, name, wanted)
    return None


def read_subsystem(sysfs_root: str | os.PathLike[str], name: str, nqn: str) -> NvmeSubsystem | None:
    return _subsystem(check_root(sysfs_root), check_subsystem_name(name), check_nqn(nqn))


def list_subsystems(sysfs_root: str | os.PathLike[str]) -> list[NvmeSubsystem]:
    root = check_root(sysfs_root)
    found = (_subsystem(root, name, None) for name in _entries(root + b"/class/nvme-subsystem"))
    return sorted_subsystems(s for s in found if s is not None)
