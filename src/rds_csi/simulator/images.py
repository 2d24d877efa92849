"""Real backing files for the simulator's data plane: sparse images under one data directory.

The model keeps RouterOS names (``storage-pool/metal-csi/pvc-1.img``); this maps each to a file below the data
directory, refusing any name that would leave it. Images are sparse, copies are reflinks where the file system
can (btrfs, XFS) and sparse-aware copies elsewhere, so a clone costs what the source has written, not its size.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from rds_csi.core.errors import Internal, InvalidArgument

# ioctl(dest, FICLONE, src): share every extent of src (linux/fs.h _IOW(0x94, 9, int)).
_FICLONE = 0x40049409
_NO_REFLINK = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS})


class ImageStore:
    """Sparse image files for model file names, confined under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()  # created with the first image, so a refused start leaves nothing behind

    def path(self, name: str) -> Path:
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") or "\x00" in p for p in parts):
            raise InvalidArgument(f"invalid image name {name!r}")
        path = self.root.joinpath(*parts)
        if not path.resolve().is_relative_to(self.root):  # a symlink planted under the root must not lead out
            raise InvalidArgument(f"image {name!r} resolves outside the data directory")
        return path

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def size(self, name: str) -> int:
        return self.path(name).stat().st_size

    def allocated(self, name: str) -> int:
        """Bytes the file system really holds for the image (what writes through NVMe/TCP consumed); a missing
        image holds nothing."""
        try:
            return self.path(name).stat().st_blocks * 512
        except FileNotFoundError:
            return 0

    def create(self, name: str, size: int) -> None:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "xb") as image:
                os.ftruncate(image.fileno(), size)
        except OSError as exc:
            raise Internal(f"cannot create image {name}: {exc.strerror}") from exc

    def copy(self, source: str, name: str) -> None:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.path(source), "rb") as src, open(target, "xb") as dst:
                _clone_or_copy(src.fileno(), dst.fileno())
        except OSError as exc:
            target.unlink(missing_ok=True)
            raise Internal(f"cannot copy image {source} to {name}: {exc.strerror}") from exc

    def resize(self, name: str, size: int) -> None:
        try:
            os.truncate(self.path(name), size)
        except OSError as exc:
            raise Internal(f"cannot resize image {name}: {exc.strerror}") from exc

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def _clone_or_copy(src: int, dst: int) -> None:
    try:
        fcntl.ioctl(dst, _FICLONE, src)
        return
    except OSError as exc:
        if exc.errno not in _NO_REFLINK:
            raise
    size = os.fstat(src).st_size
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole up to the end
                break
            raise
        end = os.lseek(src, start, os.SEEK_HOLE)
        position = start
        while position < end:
            copied = os.copy_file_range(src, dst, end - position, position, position)
            if copied == 0:
                break
            position += copied
        offset = end
    os.ftruncate(dst, size)
