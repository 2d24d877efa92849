"""Kernel uevents through the real netlink socket: a loop device attached on this host is seen by the monitor
the resolver relies on (the NVMe subsystem events themselves are seen in the VM, tests/e2e/guest)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from rds_csi.nvme import KernelUevents, Uevent
from tests.support import wait_until

pytestmark = pytest.mark.root


def test_a_loop_device_attached_here_is_delivered_as_a_block_uevent(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup")
    seen: list[Uevent] = []
    lock = threading.Lock()

    def record(event: Uevent) -> None:
        with lock:
            seen.append(event)

    image = tmp_path / "disk.img"
    image.write_bytes(bytes(1 << 20))
    uevents = KernelUevents(record, subsystems=("block",))
    assert uevents.start()
    try:
        device = subprocess.run(
            ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
        try:
            name = Path(device).name
            assert wait_until(lambda: any(e.name == name for e in list(seen)))
        finally:
            subprocess.run(["losetup", "--detach", device], check=False, timeout=30)
    finally:
        assert uevents.stop()
    with lock:
        mine = [e for e in seen if e.name == name]
    assert {e.subsystem for e in mine} == {"block"}
    assert {e.action for e in mine} <= {"add", "change", "remove"}


def test_stop_before_start_and_twice_is_harmless() -> None:
    uevents = KernelUevents(lambda event: None)
    assert uevents.stop()
    assert uevents.stop()
