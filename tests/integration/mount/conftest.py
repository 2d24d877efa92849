"""Real loop devices for the mount tests: sparse images under the test's tmp dir, attached with ``losetup``, and
always unmounted and detached at teardown, even when the test failed half-way."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rds_csi.mount import DeviceNumber, read_mountinfo

MiB = 1 << 20
# mkfs.xfs refuses file systems smaller than 300 MiB.
XFS_MIN = 320 * MiB


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


@dataclass(frozen=True)
class LoopDevice:
    path: Path
    image: Path

    @property
    def number(self) -> DeviceNumber:
        return DeviceNumber.from_rdev(os.stat(self.path).st_rdev)

    def digest(self) -> str:
        """A checksum of every byte of the device: equal before and after means nothing was written."""
        sha = hashlib.sha256()
        with open(self.path, "rb") as device:
            while chunk := device.read(4 * MiB):
                sha.update(chunk)
        return sha.hexdigest()

    def grow(self, size: int) -> None:
        """Grow the backing file and tell the loop driver to re-read its size (what a namespace rescan does)."""
        os.truncate(self.image, size)
        run("losetup", "-c", str(self.path))


@dataclass
class LoopDevices:
    directory: Path
    attached: list[LoopDevice] = field(default_factory=list)

    def create(self, size: int, *, image_dir: Path | None = None) -> LoopDevice:
        image = (image_dir or self.directory) / f"disk{len(self.attached)}.img"
        with open(image, "wb") as file:
            file.truncate(size)
        device = LoopDevice(Path(run("losetup", "-f", "--show", str(image)).strip()), image)
        self.attached.append(device)
        return device

    def _unmount(self, wanted: DeviceNumber | None) -> list[str]:
        failures = []
        for entry in reversed(read_mountinfo().under(self.directory)):
            if wanted is None or entry.device == wanted:
                done = subprocess.run(["umount", entry.mount_point], capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    failures.append(f"umount {entry.mount_point}: {done.stderr.strip()}")
        return failures

    def cleanup(self) -> None:
        # Newest first: a device whose image lives on an older device's file system goes before it.
        failures = []
        for device in reversed(self.attached):
            failures += self._unmount(device.number)
            done = subprocess.run(["losetup", "-d", str(device.path)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                failures.append(f"losetup -d {device.path}: {done.stderr.strip()}")
        failures += self._unmount(None)
        assert not failures, failures


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[LoopDevices]:
    if os.geteuid() != 0:
        pytest.skip("needs root: loop devices and mounts")
    devices = LoopDevices(tmp_path)
    try:
        yield devices
    finally:
        devices.cleanup()
