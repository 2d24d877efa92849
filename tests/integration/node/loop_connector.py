"""A ``Connector`` for hosts without nvme-tcp: each subsystem is an image file, a connect attaches it as a loop
device. The one fake of the node tests, standing at the boundary this kernel cannot cross.

It behaves like the kernel's NVMe host where the node use cases can tell: its state is read back from the kernel
on every call (``/sys/block/loopN/loop/backing_file``), so a restarted plugin finds what the previous one attached
and a reattach may get another device number (renumbering); a connect of an already-attached subsystem is
success and is not repeated; a connect to a subsystem the "target" does not export, or that is refused, fails
with UNAVAILABLE; a device can be slow to appear or read size 0 for a while after the connect; a controller can
be reported not live; a rescan re-reads the size (``losetup --set-capacity``, as NVME_IOCTL_RESCAN); disconnect
flushes and detaches, and refuses NQNs outside the managed prefix.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rds_csi.core import errors
from rds_csi.mount import DeviceNumber
from rds_csi.node.connector import LIVE, BlockDevice, Subsystem
from rds_csi.nvme import FabricsTarget

SYS_BLOCK = Path("/sys/block")
MANAGED_PREFIX = "nqn.2000-02.com.mikrotik:"


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


@dataclass
class Gate:
    """Holds a connect inside the connector until released: a call that is provably in flight."""

    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class LoopConnector:
    def __init__(self, images: Path, managed_prefix: str = MANAGED_PREFIX) -> None:
        self.images = images
        self.managed_prefix = managed_prefix
        self.connects: list[str] = []  # every connect that attached something
        self.disconnects: list[str] = []
        self._lock = threading.Lock()
        self._refused: set[str] = set()
        self._absent_polls: dict[str, int] = {}
        self._zero_size_polls: dict[str, int] = {}
        self._states: dict[str, str] = {}
        self._gates: dict[str, Gate] = {}
        self._gone: set[str] = set()  # loop devices standing for namespaces the kernel removed (see renumber)

    # ---- the storage side: what the target exports -------------------------------------------------------------

    def image(self, nqn: str) -> Path:
        return self.images / f"{nqn}.img"

    def export(self, nqn: str, size: int) -> Path:
        """A sparse image the "target" serves as ``nqn``."""
        image = self.image(nqn)
        with open(image, "wb") as file:
            file.truncate(size)
        return image

    def grow(self, nqn: str, size: int) -> None:
        """The storage grows the volume; a connected host sees it after a rescan."""
        os.truncate(self.image(nqn), size)

    # ---- faults -----------------------------------------------------------------------------------------------

    def refuse(self, nqn: str) -> None:
        with self._lock:
            self._refused.add(nqn)

    def appear_after(self, nqn: str, polls: int, *, zero_size_polls: int = 0) -> None:
        """The namespace device shows up only after ``polls`` looks, then reads size 0 for ``zero_size_polls``."""
        with self._lock:
            self._absent_polls[nqn] = polls
            self._zero_size_polls[nqn] = zero_size_polls

    def set_state(self, nqn: str, state: str | None) -> None:
        """Report the controller in ``state`` (``connecting`` during an outage); None: back to live."""
        with self._lock:
            if state is None:
                self._states.pop(nqn, None)
            else:
                self._states[nqn] = state

    def renumber(self, nqn: str) -> Path:
        """The connection dropped and came back as another device (``nvme0n1`` -> ``nvme3n1``): the volume is now
        a new loop device, and the old one counts as gone (a mount keeps it alive, as a dead gendisk). Returns the
        new device."""
        old = self._loop_of(nqn)
        assert old is not None, f"{nqn} is not connected"
        new = Path(_run("losetup", "--find", "--show", str(self.image(nqn))).strip())
        with self._lock:
            self._gone.add(old)
        return new

    @contextmanager
    def gated(self, nqn: str) -> Iterator[Gate]:
        gate = Gate()
        with self._lock:
            self._gates[nqn] = gate
        try:
            yield gate
        finally:
            gate.released.set()
            with self._lock:
                self._gates.pop(nqn, None)

    # ---- Connector --------------------------------------------------------------------------------------------

    def connect(self, target: FabricsTarget) -> None:
        with self._lock:
            gate = self._gates.get(target.nqn)
            refused = target.nqn in self._refused
        if gate is not None:
            gate.entered.set()
            gate.released.wait(30)
        if refused:
            raise errors.Unavailable(f"connect to {target.nqn} at {target.address}:{target.port} was refused")
        if self._loop_of(target.nqn) is not None:
            return
        image = self.image(target.nqn)
        if not image.exists():
            raise errors.Unavailable(f"connect to {target.nqn}: the target has no such subsystem")
        _run("losetup", "--find", "--show", str(image))
        self.connects.append(target.nqn)

    def subsystem(self, nqn: str) -> Subsystem | None:
        loop = self._loop_of(nqn)
        if loop is None:
            return None
        with self._lock:
            state = self._states.get(nqn, LIVE)
            if self._absent_polls.get(nqn, 0) > 0:
                self._absent_polls[nqn] -= 1
                return Subsystem(nqn, ("connecting",), None)
            zero = self._zero_size_polls.get(nqn, 0) > 0
            if zero:
                self._zero_size_polls[nqn] -= 1
        number = DeviceNumber.parse((SYS_BLOCK / loop / "dev").read_text())
        size = 0 if zero else int((SYS_BLOCK / loop / "size").read_text()) * 512
        return Subsystem(nqn, (state,), BlockDevice(Path("/dev") / loop, number, size))

    def managed_subsystems(self) -> list[str]:
        return [nqn for _, nqn in self._attached() if nqn.startswith(self.managed_prefix)]

    def owner_of(self, device: DeviceNumber) -> str | None:
        for loop, nqn in self._attached():
            try:
                if DeviceNumber.parse((SYS_BLOCK / loop / "dev").read_text()) == device:
                    return nqn
            except FileNotFoundError:
                continue
        return None

    def rescan(self, nqn: str) -> None:
        loop = self._loop_of(nqn)
        if loop is None:
            raise errors.FailedPrecondition(f"{nqn} is not connected")
        _run("losetup", "--set-capacity", f"/dev/{loop}")

    def disconnect(self, nqn: str) -> None:
        if not nqn.startswith(self.managed_prefix):
            raise errors.FailedPrecondition(f"{nqn} is outside the managed prefix {self.managed_prefix!r}")
        loop = self._loop_of(nqn)
        if loop is None:
            return
        # As the kernel connector: an exclusive open, refused while anything holds the device, then a flush.
        try:
            fd = os.open(f"/dev/{loop}", os.O_RDONLY | os.O_EXCL)
        except OSError as error:
            if error.errno == errno.EBUSY:
                raise errors.FailedPrecondition(f"/dev/{loop} of {nqn} is in use: not disconnected") from None
            raise
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _run("losetup", "--detach", f"/dev/{loop}")
        self.disconnects.append(nqn)

    # ---- kernel state -----------------------------------------------------------------------------------------

    def _attached(self, *, gone_too: bool = False) -> list[tuple[str, str]]:
        """(loopN, nqn) for every loop device backed by one of our images (and not gone, unless ``gone_too``)."""
        with self._lock:
            gone = set() if gone_too else set(self._gone)
        found = []
        prefix = str(self.images) + "/"
        for entry in os.listdir(SYS_BLOCK):
            if not entry.startswith("loop"):
                continue
            try:
                backing = (SYS_BLOCK / entry / "loop" / "backing_file").read_text().strip()
            except (FileNotFoundError, NotADirectoryError):
                continue  # not attached
            if backing.startswith(prefix) and backing.endswith(".img") and entry not in gone:
                found.append((entry, backing[len(prefix) : -len(".img")]))
        return sorted(found)

    def _loop_of(self, nqn: str) -> str | None:
        return next((loop for loop, attached in self._attached() if attached == nqn), None)

    def detach_all(self) -> list[str]:
        """Test teardown: detach whatever is still attached (a failed test may leave some); the failures."""
        failures = []
        for loop, _ in self._attached(gone_too=True):
            done = subprocess.run(["losetup", "-d", f"/dev/{loop}"], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                failures.append(f"losetup -d /dev/{loop}: {done.stderr.strip()}")
        return failures
