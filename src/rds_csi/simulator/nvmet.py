"""The simulator's optional data plane: RouterOS NVMe/TCP exports made real with the kernel's nvmet target.

Each exported disk becomes an nvmet subsystem named by its ``nvme-tcp-server-nqn`` with one namespace (nsid 1)
backed by the disk's image file, linked to a TCP port on the data-plane address and the disk's
``nvme-tcp-server-port``. An empty ``nvme-tcp-server-allow-host-name`` list admits any host, as on RouterOS;
otherwise only the listed host NQNs may connect. Growing an image revalidates the namespace so connected hosts
see the new size.

Only what this class made is ever removed: ports and host entries created by somebody else are reused and left
alone, and subsystems of an earlier, crashed run are recognised by their namespace's image path (under our
data directory) before they are rebuilt.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import threading
from pathlib import Path

from rds_csi.core.errors import FailedPrecondition, Internal, InvalidArgument
from rds_csi.observability.logging import log_event
from rds_csi.simulator.dataplane import Export
from rds_csi.simulator.images import ImageStore

log = logging.getLogger(__name__)

CONFIGFS_ROOT = Path("/sys/kernel/config/nvmet")
NAMESPACE_ID = "1"


def _configfs_name(value: str, what: str) -> str:
    # NQNs become configfs directory names: anything that is not one plain path component is refused.
    if not value or "/" in value or "\x00" in value or value in (".", ".."):
        raise InvalidArgument(f"{what} {value!r} cannot be an nvmet name")
    return value


class NvmetDataPlane:
    """Keeps the kernel's nvmet configuration equal to the model's exports. Thread-safe; every change is
    applied before the model commits it, so a failure leaves both sides as they were."""

    def __init__(self, images: ImageStore, address: str, configfs: Path = CONFIGFS_ROOT) -> None:
        if not (configfs / "subsystems").is_dir():
            raise FailedPrecondition(
                f"{configfs} is missing: load the nvmet and nvmet-tcp kernel modules (configfs mounted)"
            )
        self._images = images
        self._address = str(ipaddress.ip_address(address))
        self._family = "ipv4" if ipaddress.ip_address(address).version == 4 else "ipv6"
        self._root = configfs
        self._lock = threading.Lock()
        self._exports: dict[int, Export] = {}  # by disk id
        self._own_ports: set[str] = set()
        self._own_hosts: set[str] = set()

    @property
    def images(self) -> ImageStore:
        return self._images

    # ---- the interface the model uses -----------------------------------------------------------------

    def restore(self, images: dict[str, int], exports: dict[int, Export]) -> None:
        """Start-up: make every image exist (sparse, never shrunk), drop leftovers of a crashed run of ours,
        then export what the model says."""
        with self._lock:
            for name, size in images.items():
                if not self._images.exists(name):
                    self._images.create(name, size)
                elif self._images.size(name) < size:
                    self._images.resize(name, size)
            for subsystem in self._subsystems_of_ours():
                self._remove_subsystem(subsystem)
            for disk_id, export in exports.items():
                self._export(export)
                self._exports[disk_id] = export

    def set_export(self, disk_id: int, export: Export | None) -> None:
        """Make one disk's kernel export match ``export`` (None: not exported)."""
        with self._lock:
            current = self._exports.get(disk_id)
            if current == export:
                return
            if (
                current is not None
                and export is not None
                and (current.nqn, current.port, current.image)
                == (
                    export.nqn,
                    export.port,
                    export.image,
                )
            ):
                self._set_hosts(export.nqn, current.allowed_hosts, export.allowed_hosts)
            else:
                if export is not None:
                    self._check_free(disk_id, export)
                if current is not None:
                    self._unexport(current)
                    del self._exports[disk_id]
                if export is not None:
                    self._export(export)
            if export is None:
                self._exports.pop(disk_id, None)
            else:
                self._exports[disk_id] = export

    def resized(self, image: str) -> None:
        """Tell connected hosts that ``image`` grew: revalidate every namespace it backs."""
        with self._lock:
            for export in self._exports.values():
                if export.image == image:
                    self._revalidate(export.nqn)

    def close(self) -> None:
        """Tear down every export and whatever ports and hosts this data plane created. Images stay."""
        with self._lock:
            for export in list(self._exports.values()):
                try:
                    self._unexport(export)
                except Internal as exc:
                    log_event(log, "sim.nvmet.teardown_failed", logging.WARNING, nqn=export.nqn, error=exc.message)
            self._exports.clear()

    # ---- configfs --------------------------------------------------------------------------------------

    def _check_free(self, disk_id: int, export: Export) -> None:
        if any(other.nqn == export.nqn for other_id, other in self._exports.items() if other_id != disk_id):
            raise Internal(f"nvmet: subsystem {export.nqn} is already exported by another disk")

    def _export(self, export: Export) -> None:
        nqn = _configfs_name(export.nqn, "NQN")
        for host in export.allowed_hosts:
            _configfs_name(host, "host NQN")
        subsystem = self._root / "subsystems" / nqn
        try:
            subsystem.mkdir()
        except OSError as exc:
            raise Internal(f"nvmet: cannot create subsystem {nqn}: {exc.strerror}") from exc
        try:
            _write(subsystem / "attr_allow_any_host", "0" if export.allowed_hosts else "1")
            namespace = subsystem / "namespaces" / NAMESPACE_ID
            namespace.mkdir()
            _write(namespace / "device_path", str(self._images.path(export.image)))
            # Buffered I/O works on every file system (tmpfs has no O_DIRECT); the simulator is no benchmark.
            _write(namespace / "buffered_io", "1")
            _write(namespace / "enable", "1")
            for host in export.allowed_hosts:
                self._allow(nqn, host)
            port = self._port_for(export.port)
            os.symlink(subsystem, self._root / "ports" / port / "subsystems" / nqn)
        except OSError as exc:
            try:
                self._remove_subsystem(nqn)
            except OSError as cleanup:  # report the first failure; the leftover is named in the log
                log_event(log, "sim.nvmet.cleanup_failed", logging.WARNING, nqn=nqn, error=cleanup.strerror)
            raise Internal(f"nvmet: cannot export {nqn} on port {export.port}: {exc.strerror}") from exc
        log_event(log, "sim.nvmet.exported", nqn=nqn, port=export.port, hosts=",".join(export.allowed_hosts) or "any")

    def _unexport(self, export: Export) -> None:
        try:
            self._remove_subsystem(export.nqn)
        except OSError as exc:
            raise Internal(f"nvmet: cannot remove subsystem {export.nqn}: {exc.strerror}") from exc
        log_event(log, "sim.nvmet.unexported", nqn=export.nqn)

    def _remove_subsystem(self, nqn: str) -> None:
        subsystem = self._root / "subsystems" / nqn
        ports = self._root / "ports"
        for port in _children(ports):
            link = ports / port / "subsystems" / nqn
            if link.is_symlink():
                link.unlink()
                self._drop_port_if_unused(port)
        for host in _children(subsystem / "allowed_hosts"):
            (subsystem / "allowed_hosts" / host).unlink()
            self._drop_host_if_unused(host)
        namespaces = subsystem / "namespaces"
        for namespace in _children(namespaces):
            _write(namespaces / namespace / "enable", "0")
            (namespaces / namespace).rmdir()
        if subsystem.exists():
            subsystem.rmdir()

    def _set_hosts(self, nqn: str, before: tuple[str, ...], after: tuple[str, ...]) -> None:
        for host in after:
            _configfs_name(host, "host NQN")
        subsystem = self._root / "subsystems" / nqn
        try:
            # The kernel refuses allow-any while explicit hosts are linked: order the steps around that.
            if after:
                _write(subsystem / "attr_allow_any_host", "0")
            for host in set(after) - set(before):
                self._allow(nqn, host)
            for host in set(before) - set(after):
                (subsystem / "allowed_hosts" / host).unlink()
                self._drop_host_if_unused(host)
            if not after:
                _write(subsystem / "attr_allow_any_host", "1")
        except OSError as exc:
            raise Internal(f"nvmet: cannot change the hosts allowed on {nqn}: {exc.strerror}") from exc
        log_event(log, "sim.nvmet.hosts", nqn=nqn, hosts=",".join(after) or "any")

    def _allow(self, nqn: str, host: str) -> None:
        entry = self._root / "hosts" / host
        if not entry.exists():
            entry.mkdir()
            self._own_hosts.add(host)
        os.symlink(entry, self._root / "subsystems" / nqn / "allowed_hosts" / host)

    def _revalidate(self, nqn: str) -> None:
        namespace = self._root / "subsystems" / nqn / "namespaces" / NAMESPACE_ID
        try:
            if (namespace / "revalidate_size").exists():
                _write(namespace / "revalidate_size", "1")
            else:  # kernels before 5.15: re-enabling re-reads the size (connected hosts see a brief hiccup)
                _write(namespace / "enable", "0")
                _write(namespace / "enable", "1")
        except OSError as exc:
            raise Internal(f"nvmet: cannot revalidate {nqn}: {exc.strerror}") from exc

    def _port_for(self, trsvcid: int) -> str:
        ports = self._root / "ports"
        for port in _children(ports):
            entry = ports / port
            if (_read(entry / "addr_trtype"), _read(entry / "addr_traddr"), _read(entry / "addr_trsvcid")) == (
                "tcp",
                self._address,
                str(trsvcid),
            ):
                return port
        taken = {int(p) for p in _children(ports) if p.isdigit()}
        port = str(next(n for n in range(1, 65536) if n not in taken))
        entry = ports / port
        entry.mkdir()
        self._own_ports.add(port)
        _write(entry / "addr_trtype", "tcp")
        _write(entry / "addr_adrfam", self._family)
        _write(entry / "addr_traddr", self._address)
        _write(entry / "addr_trsvcid", str(trsvcid))
        return port

    def _drop_port_if_unused(self, port: str) -> None:
        entry = self._root / "ports" / port
        if port in self._own_ports and not _children(entry / "subsystems"):
            entry.rmdir()
            self._own_ports.discard(port)

    def _drop_host_if_unused(self, host: str) -> None:
        if host not in self._own_hosts:
            return
        subsystems = self._root / "subsystems"
        if any((subsystems / s / "allowed_hosts" / host).is_symlink() for s in _children(subsystems)):
            return
        (self._root / "hosts" / host).rmdir()
        self._own_hosts.discard(host)

    def _subsystems_of_ours(self) -> list[str]:
        ours = []
        subsystems = self._root / "subsystems"
        for nqn in _children(subsystems):
            device = _read(subsystems / nqn / "namespaces" / NAMESPACE_ID / "device_path")
            if device and Path(device).is_relative_to(self._images.root):
                ours.append(nqn)
        return ours


def _children(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return ""
        raise


def _write(path: Path, value: str) -> None:
    # configfs attributes take one write of the whole value.
    with open(path, "w", encoding="utf-8") as attribute:
        attribute.write(value + "\n")
