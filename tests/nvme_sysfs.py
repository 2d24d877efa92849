"""A synthetic sysfs NVMe tree laid out exactly as a real kernel's, and a fake NVMe host kernel acting on it.

The layout copies what a 6.1 kernel (native multipath on) shows after ``nvme connect`` over TCP, read in the
project's VM: class entries are symlinks into ``devices/virtual``, a subsystem directory links its controllers
(``nvmeM -> ../../nvme-fabrics/ctl/nvmeM``) and holds its namespace heads (``nvmeNnK``, the block devices) and
generic char devices (``ngNnK``); each controller holds its hidden per-path devices (``nvmeNcMnK``, no ``dev``).
Without multipath the namespaces (``nvmeMnK``) hang off the controller instead. Only the attributes the driver
or nvme-cli read are written, with the kernel's formatting (one value and a newline).

``FakeNvmeKernel`` stands in for /dev/nvme-fabrics and ``delete_controller`` where the host kernel has no
nvme-tcp: it answers as the VM's kernel did (``instance=N,cntlid=M``; EALREADY for a duplicate; EIO when the
target refuses the host or does not export the NQN; ECONNREFUSED where nothing listens; EINVAL for an option it
does not know) and changes the tree as the kernel would, numbering controllers and subsystems with the lowest
free instance, so a reconnect can renumber.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

SECTOR = 512
NAMESPACE_MAJOR = 259
CONTROLLER_MAJOR = 246
GENERIC_MAJOR = 243
_CONNECT_OPTIONS = frozenset(
    {
        "nqn", "transport", "traddr", "trsvcid", "hostnqn", "hostid", "ctrl_loss_tmo", "reconnect_delay",
        "keep_alive_tmo", "nr_io_queues", "queue_size", "host_traddr", "host_iface", "duplicate_connect",
        "nr_write_queues", "nr_poll_queues", "tos", "fast_io_fail_tmo", "hdr_digest", "data_digest",
    }
)  # fmt: skip


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, (value + "\n").encode())
    finally:
        os.close(fd)


def _attributes(directory: Path, values: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        _write(directory / name, value)


def _link(link: Path, target: str) -> None:
    os.symlink(target, link)


class _Instances:
    """The kernel's ida: the lowest free instance number."""

    def __init__(self) -> None:
        self._taken: set[int] = set()
        self._lowest_free = 0

    def take(self) -> int:
        number = self._lowest_free
        self._taken.add(number)
        while self._lowest_free in self._taken:
            self._lowest_free += 1
        return number

    def release(self, number: int) -> None:
        self._taken.discard(number)
        self._lowest_free = min(self._lowest_free, number)


@dataclass
class Namespace:
    name: str  # nvmeNnK
    size_bytes: int
    minor: int


@dataclass
class Controller:
    instance: int
    subsystem: int
    cntlid: int

    @property
    def name(self) -> str:
        return f"nvme{self.instance}"


@dataclass
class Subsystem:
    instance: int
    nqn: str
    controllers: list[int] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"nvme-subsys{self.instance}"


class SysfsTree:
    """Subsystems, controllers and namespaces under ``root`` (the sysfs mount) as the kernel lays them out."""

    def __init__(self, root: Path, *, multipath: bool = True, dev_root: Path | None = None) -> None:
        self.root = root
        self.multipath = multipath
        self.dev_root = dev_root  # when set, block device nodes come and go there as devtmpfs makes them (root)
        self.subsystems: dict[int, Subsystem] = {}
        self.controllers: dict[int, Controller] = {}
        self._subsystem_ids = _Instances()
        self._controller_ids = _Instances()
        self._next_minor = 1
        self._next_cntlid = 1
        for directory in ("class/nvme", "class/nvme-subsystem", "block"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        if dev_root is not None:
            dev_root.mkdir(parents=True, exist_ok=True)

    # ---- paths ------------------------------------------------------------------------------------------------

    def subsystem_dir(self, instance: int) -> Path:
        return self.root / "devices/virtual/nvme-subsystem" / f"nvme-subsys{instance}"

    def controller_dir(self, instance: int) -> Path:
        return self.root / "devices/virtual/nvme-fabrics/ctl" / f"nvme{instance}"

    # ---- building ---------------------------------------------------------------------------------------------

    def add_subsystem(self, nqn: str) -> Subsystem:
        subsystem = Subsystem(self._subsystem_ids.take(), nqn)
        _attributes(
            self.subsystem_dir(subsystem.instance),
            {
                "subsysnqn": nqn,
                "model": "Linux" + " " * 35,
                "serial": f"{subsystem.instance:020x}",
                "firmware_rev": "6.1.0-57",
                "iopolicy": "numa",
            },
        )
        _link(
            self.root / "class/nvme-subsystem" / subsystem.name,
            f"../../devices/virtual/nvme-subsystem/{subsystem.name}",
        )
        self.subsystems[subsystem.instance] = subsystem
        return subsystem

    def add_controller(
        self,
        subsystem: Subsystem,
        *,
        traddr: str = "10.0.0.5",
        trsvcid: int = 4420,
        host_nqn: str = "nqn.2014-08.org.nvmexpress:uuid:5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21",
        host_id: str = "5b2c0e44-7a35-4d0a-9f51-3c4e1f0a7d21",
        state: str = "live",
        transport: str = "tcp",
    ) -> Controller:
        controller = Controller(self._controller_ids.take(), subsystem.instance, self._next_cntlid)
        self._next_cntlid += 1
        directory = self.controller_dir(controller.instance)
        _attributes(
            directory,
            {
                "state": state,
                "address": f"traddr={traddr},trsvcid={trsvcid},src_addr=10.0.0.9" if transport == "tcp" else "",
                "transport": transport,
                "subsysnqn": subsystem.nqn,
                "cntlid": str(controller.cntlid),
                "hostnqn": host_nqn,
                "hostid": host_id,
                "dev": f"{CONTROLLER_MAJOR}:{controller.instance}",
            },
        )
        (directory / "delete_controller").touch(mode=0o200)
        _link(self.root / "class/nvme" / controller.name, f"../../devices/virtual/nvme-fabrics/ctl/{controller.name}")
        _link(self.subsystem_dir(subsystem.instance) / controller.name, f"../../nvme-fabrics/ctl/{controller.name}")
        self.controllers[controller.instance] = controller
        subsystem.controllers.append(controller.instance)
        for namespace in subsystem.namespaces:
            self._add_path(subsystem, controller, namespace)
        return controller

    def add_namespace(self, subsystem: Subsystem, size_bytes: int) -> Namespace:
        """A namespace of ``subsystem`` on every controller it has (add controllers first without multipath)."""
        number = len(subsystem.namespaces) + 1
        minor = self._next_minor
        self._next_minor += 2  # the kernel gives the head and its first path consecutive minors
        if self.multipath:
            namespace = Namespace(f"nvme{subsystem.instance}n{number}", size_bytes, minor)
            directory = self.subsystem_dir(subsystem.instance)
            self._write_block(directory / namespace.name, namespace)
            _link(
                self.root / "block" / namespace.name,
                f"../devices/virtual/nvme-subsystem/{subsystem.name}/{namespace.name}",
            )
            _attributes(directory / f"ng{subsystem.instance}n{number}", {"dev": f"{GENERIC_MAJOR}:{minor}"})
            subsystem.namespaces.append(namespace)
            for instance in subsystem.controllers:
                self._add_path(subsystem, self.controllers[instance], namespace)
            return namespace
        first = self.controllers[subsystem.controllers[0]]
        namespace = Namespace(f"nvme{first.instance}n{number}", size_bytes, minor)
        self._write_block(self.controller_dir(first.instance) / namespace.name, namespace)
        _link(
            self.root / "block" / namespace.name, f"../devices/virtual/nvme-fabrics/ctl/{first.name}/{namespace.name}"
        )
        subsystem.namespaces.append(namespace)
        return namespace

    def _add_path(self, subsystem: Subsystem, controller: Controller, namespace: Namespace) -> None:
        if not self.multipath:
            return
        number = namespace.name.rpartition("n")[2]
        path = f"nvme{subsystem.instance}c{controller.instance}n{number}"
        directory = self.controller_dir(controller.instance) / path
        # A hidden path: size and nsid like the head, but no dev (no /dev node to open).
        _attributes(directory, {"size": str(namespace.size_bytes // SECTOR), "nsid": number, "hidden": "1"})
        _link(directory / "device", f"../../{controller.name}")
        _link(self.root / "block" / path, f"../devices/virtual/nvme-fabrics/ctl/{controller.name}/{path}")

    def _write_block(self, directory: Path, namespace: Namespace) -> None:
        if self.dev_root is not None:
            os.mknod(self.dev_root / namespace.name, stat.S_IFBLK | 0o600, os.makedev(NAMESPACE_MAJOR, namespace.minor))
        _attributes(
            directory,
            {
                "size": str(namespace.size_bytes // SECTOR),
                "dev": f"{NAMESPACE_MAJOR}:{namespace.minor}",
                "nsid": "1",
                "hidden": "0",
                "ro": "0",
            },
        )

    def connect(
        self,
        nqn: str,
        *,
        size_bytes: int = 1 << 30,
        paths: int = 1,
        traddr: str = "10.0.0.5",
        trsvcid: int = 4420,
        state: str = "live",
    ) -> Subsystem:
        """One connected subsystem: its controllers (``paths``) and one namespace of ``size_bytes``."""
        subsystem = next((s for s in self.subsystems.values() if s.nqn == nqn), None) or self.add_subsystem(nqn)
        for _ in range(paths):
            self.add_controller(subsystem, traddr=traddr, trsvcid=trsvcid, state=state)
        if not subsystem.namespaces:
            self.add_namespace(subsystem, size_bytes)
        return subsystem

    # ---- changing ---------------------------------------------------------------------------------------------

    def set_state(self, controller: int, state: str) -> None:
        _write(self.controller_dir(controller) / "state", state)

    def set_size(self, subsystem: Subsystem, size_bytes: int) -> None:
        for namespace in subsystem.namespaces:
            namespace.size_bytes = size_bytes
            parent = (
                self.subsystem_dir(subsystem.instance)
                if self.multipath
                else self.controller_dir(subsystem.controllers[0])
            )
            _write(parent / namespace.name / "size", str(size_bytes // SECTOR))

    def remove_controller(self, instance: int) -> None:
        """What ``delete_controller`` does: the controller goes, and the subsystem with its last controller."""
        controller = self.controllers.pop(instance)
        subsystem = self.subsystems[controller.subsystem]
        subsystem.controllers.remove(instance)
        for link in (self.root / "block").iterdir():
            if link.name.startswith(f"nvme{subsystem.instance}c{instance}n"):
                link.unlink()
        if not self.multipath and not subsystem.controllers:
            for namespace in subsystem.namespaces:
                self._drop_block(namespace)
        (self.subsystem_dir(subsystem.instance) / controller.name).unlink()
        (self.root / "class/nvme" / controller.name).unlink()
        shutil.rmtree(self.controller_dir(instance))
        self._controller_ids.release(instance)
        if not subsystem.controllers:
            self._drop_subsystem(subsystem)

    def remove_subsystem(self, instance: int) -> None:
        subsystem = self.subsystems[instance]
        for controller in list(subsystem.controllers):
            self.remove_controller(controller)  # the last one drops the subsystem
        if instance in self.subsystems:  # it had no controller
            self._drop_subsystem(subsystem)

    def _drop_block(self, namespace: Namespace) -> None:
        (self.root / "block" / namespace.name).unlink()
        if self.dev_root is not None:
            (self.dev_root / namespace.name).unlink()

    def _drop_subsystem(self, subsystem: Subsystem) -> None:
        if self.multipath:
            for namespace in subsystem.namespaces:
                self._drop_block(namespace)
        (self.root / "class/nvme-subsystem" / subsystem.name).unlink()
        shutil.rmtree(self.subsystem_dir(subsystem.instance))
        del self.subsystems[subsystem.instance]
        self._subsystem_ids.release(subsystem.instance)


@dataclass(frozen=True)
class Target:
    nqn: str
    traddr: str
    trsvcid: int
    allowed_hosts: frozenset[str] | None = None  # None: any host
    size_bytes: int = 1 << 30


class FakeNvmeKernel:
    """/dev/nvme-fabrics, delete_controller and block device flushes, answered as the VM's 6.1 kernel did."""

    def __init__(self, tree: SysfsTree) -> None:
        self.tree = tree
        self.targets: list[Target] = []
        self.connects: list[str] = []  # every option string written
        self.flushed: list[str] = []
        self.deleted: list[str] = []
        self.flush_error: int | None = None  # errno the write-backs fail with
        self.held: set[str] = set()  # block devices in use (mounted): an exclusive open fails with EBUSY
        self.namespace_size_on_connect: int | None = None  # e.g. 0: the namespace reads 0 until set_size

    def export(self, target: Target) -> None:
        self.targets.append(target)

    # ---- the NvmeKernel protocol ------------------------------------------------------------------------------

    def connect(self, options: str) -> str:
        self.connects.append(options)
        fields: dict[str, str] = {}
        for part in options.split(","):
            key, _, value = part.partition("=")
            if key not in _CONNECT_OPTIONS:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            fields[key] = value
        if fields.get("transport") != "tcp" or not {"nqn", "traddr", "trsvcid"} <= fields.keys():
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        nqn, traddr, trsvcid = fields["nqn"], fields["traddr"], int(fields["trsvcid"])
        host_nqn = fields.get("hostnqn", "")
        listening = [t for t in self.targets if (t.traddr, t.trsvcid) == (traddr, trsvcid)]
        if not listening:
            raise OSError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        target = next((t for t in listening if t.nqn == nqn), None)
        if target is None or (target.allowed_hosts is not None and host_nqn not in target.allowed_hosts):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        for subsystem in self.tree.subsystems.values():
            if subsystem.nqn != nqn:
                continue
            for instance in subsystem.controllers:
                directory = self.tree.controller_dir(instance)
                address = (directory / "address").read_text()
                same_host = (directory / "hostnqn").read_text().strip() == host_nqn
                state = (directory / "state").read_text().strip()
                if f"traddr={traddr},trsvcid={trsvcid}," in address and same_host and not state.startswith("deleting"):
                    raise OSError(errno.EALREADY, os.strerror(errno.EALREADY))
        size = target.size_bytes if self.namespace_size_on_connect is None else self.namespace_size_on_connect
        subsystem = next((s for s in self.tree.subsystems.values() if s.nqn == nqn), None) or self.tree.add_subsystem(
            nqn
        )
        controller = self.tree.add_controller(
            subsystem, traddr=traddr, trsvcid=trsvcid, host_nqn=host_nqn, host_id=fields.get("hostid", "")
        )
        if not subsystem.namespaces:
            self.tree.add_namespace(subsystem, size)
        return f"instance={controller.instance},cntlid={controller.cntlid}\n"

    def delete_controller(self, controller: str, nqn: str) -> bool:
        instance = int(controller.removeprefix("nvme"))
        known = self.tree.controllers.get(instance)
        if known is None or self.tree.subsystems[known.subsystem].nqn != nqn:
            return False
        self.deleted.append(controller)
        self.tree.remove_controller(instance)
        return True

    def flush(self, device: str, *, write_back: bool) -> None:
        if not (self.tree.root / "block" / device).exists():
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        if device in self.held:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        if write_back:
            if self.flush_error is not None:
                raise OSError(self.flush_error, os.strerror(self.flush_error))
            self.flushed.append(device)
