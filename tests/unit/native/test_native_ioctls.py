"""Block ioctls on a real loop device of this host, over the Cython module and its pure-Python twin (the NVMe
ioctls need an NVMe device: they are tested in the VM, tests/e2e/guest/test_nvme_data_path.py)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from rds_csi._native import available_ioctls
from tests.unit.native.backends import backend_params

pytestmark = [pytest.mark.native, pytest.mark.root]

MIB = 1 << 20


@pytest.fixture(params=backend_params(available_ioctls()))
def ioctls(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


@pytest.fixture(scope="module")
def loop_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup")
    image = tmp_path_factory.mktemp("loop") / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(3 * MIB)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=False, timeout=30)


@pytest.fixture
def loop_fd(loop_device: str) -> Iterator[int]:
    fd = os.open(loop_device, os.O_RDWR | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def test_block_size_is_the_loop_devices_size_in_bytes(ioctls: ModuleType, loop_fd: int) -> None:
    assert ioctls.block_size_bytes(loop_fd) == 3 * MIB


def test_flush_writes_back_what_was_written_through_the_device(
    ioctls: ModuleType, loop_device: str, loop_fd: int
) -> None:
    pattern = os.urandom(4096)
    os.pwrite(loop_fd, pattern, MIB)

    ioctls.flush_buffers(loop_fd)

    backing = subprocess.run(
        ["losetup", "--noheadings", "--output", "BACK-FILE", loop_device], capture_output=True, text=True, check=True
    ).stdout.strip()
    with open(backing, "rb") as image:
        image.seek(MIB)
        assert image.read(4096) == pattern


@pytest.mark.parametrize("helper", ["namespace_id", "rescan_controller"])
def test_nvme_ioctls_on_a_device_that_is_not_nvme_are_the_drivers_os_error(
    ioctls: ModuleType, loop_fd: int, helper: str
) -> None:
    with pytest.raises(OSError) as info:
        getattr(ioctls, helper)(loop_fd)
    assert info.value.errno == errno.EINVAL  # the loop driver's answer to a command it does not know


def test_block_ioctls_on_a_regular_file_are_os_error_enotty(ioctls: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            ioctls.block_size_bytes(fd)
    finally:
        os.close(fd)
    assert info.value.errno == errno.ENOTTY


def test_closed_descriptor_is_os_error_ebadf(ioctls: ModuleType, tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as info:
        ioctls.flush_buffers(fd)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize(
    ("fd", "error"), [(-1, ValueError), (1 << 40, ValueError), ("3", TypeError), (True, TypeError)]
)
def test_a_descriptor_that_is_not_an_int_or_out_of_range_is_refused(
    ioctls: ModuleType, fd: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        ioctls.block_size_bytes(fd)
