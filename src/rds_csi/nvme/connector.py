"""Connect a volume's NVMe/TCP subsystem, wait for its block device, and disconnect it: the node's data path.

Only subsystems whose NQN starts with the managed prefix are ever connected, disconnected or cleaned up: a node
may boot from NVMe over Fabrics, and its root disk is nobody's to touch. Connecting what is already connected
(same subsystem, address, port and host) succeeds with the existing controller, whatever state the kernel has it
in, so a retried NodeStage continues from where the kernel is instead of tearing anything down.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from rds_csi._native import NvmeNamespace
from rds_csi.core import errors
from rds_csi.core.clock import Clock
from rds_csi.nvme.fabrics import (
    DELETING_STATES,
    FabricsTarget,
    HostIdentity,
    build_connect_options,
    connect_error,
    disconnect_error,
    matching_controller,
    parse_connect_reply,
)
from rds_csi.nvme.kernel import DEFAULT_DEV, NvmeKernel
from rds_csi.nvme.resolver import NamespaceResolver, wait_for_namespace
from rds_csi.observability.logging import log_event

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Connection:
    nqn: str
    controller: str  # nvmeM: the controller this host reaches the subsystem through
    already_connected: bool  # True: the kernel held it before this call, nothing was written


def resolve_ip(host: str) -> str:
    """An IP literal for ``host`` (the kernel's nvme-tcp takes no host names); ``Unavailable`` if it cannot."""
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise errors.Unavailable(f"cannot resolve the NVMe/TCP target {errors.quote_input(host)}: {error}") from error
    return ipaddress.ip_address(found[0][4][0]).compressed


class NvmeConnector:
    def __init__(
        self,
        kernel: NvmeKernel,
        resolver: NamespaceResolver,
        host: HostIdentity,
        managed_prefix: str,
        clock: Clock,
        *,
        dev_root: Path = DEFAULT_DEV,
        resolve_address: Callable[[str], str] = resolve_ip,
    ) -> None:
        self._kernel = kernel
        self._resolver = resolver
        self._host = host
        self._prefix = managed_prefix
        self._clock = clock
        self._dev_root = dev_root
        self._resolve_address = resolve_address

    @property
    def host(self) -> HostIdentity:
        return self._host

    def is_managed(self, nqn: str) -> bool:
        return nqn.startswith(self._prefix)

    def connect(self, target: FabricsTarget) -> Connection:
        """Connect ``target`` unless this host already is; the kernel's refusals become ``rds_csi.core.errors``."""
        if not self.is_managed(target.nqn):
            raise errors.InvalidArgument(
                f"nqn {target.nqn} is not under the managed prefix {self._prefix}: the node would never disconnect it"
            )
        traddr = self._resolve_address(target.address)
        existing = matching_controller(self._resolver.lookup(target.nqn), traddr, target.port, self._host)
        if existing is not None:
            log_event(_log, "nvme.connect", nqn=target.nqn, controller=existing.name, already_connected=True)
            return Connection(target.nqn, existing.name, already_connected=True)
        options = build_connect_options(target, traddr, self._host)
        started = self._clock.now()
        try:
            reply = parse_connect_reply(self._kernel.connect(options))
        except OSError as error:
            if error.errno != errno.EALREADY:
                raise connect_error(error, target, traddr, self._host) from error
            # Another connect won the race (or the kernel counts a controller the scan did not show yet).
            existing = matching_controller(self._resolver.lookup(target.nqn), traddr, target.port, self._host)
            if existing is None:
                raise errors.Unavailable(
                    f"the kernel reports {target.nqn} at {traddr}:{target.port} already connected, but no such "
                    "controller is visible yet; retrying will find it"
                ) from error
            log_event(_log, "nvme.connect", nqn=target.nqn, controller=existing.name, already_connected=True)
            return Connection(target.nqn, existing.name, already_connected=True)
        log_event(
            _log,
            "nvme.connect",
            nqn=target.nqn,
            controller=reply.controller,
            already_connected=False,
            took_ms=round((self._clock.now() - started) * 1000, 1),
        )
        return Connection(target.nqn, reply.controller, already_connected=False)

    def wait_for_device(self, nqn: str, deadline: float) -> NvmeNamespace:
        """``nqn``'s block device once usable; ``DeadlineExceeded`` (retryable) at ``deadline`` (clock time)."""
        return wait_for_namespace(self._resolver, nqn, deadline=deadline, clock=self._clock, dev_root=self._dev_root)

    def disconnect(self, nqn: str) -> tuple[str, ...]:
        """Flush the subsystem's block devices, then delete every controller of it; the controllers deleted.

        Nothing connected is success (``()``). Refused (``FailedPrecondition``) for an NQN outside the managed
        prefix, and while a block device is in use (mounted, or held by another device). Without a live path the
        write-back is skipped: it would wait for a reconnect that may never come, and deleting the controller
        fails the outstanding I/O either way.
        """
        if not self.is_managed(nqn):
            raise errors.FailedPrecondition(
                f"{nqn} is not under the managed prefix {self._prefix}: this node never disconnects it"
            )
        subsystem = self._resolver.lookup(nqn)
        if subsystem is None:
            return ()
        write_back = any(c.state == "live" for c in subsystem.controllers)
        for namespace in subsystem.namespaces:
            try:
                self._kernel.flush(namespace.name, write_back=write_back)
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
                    continue  # its node is gone: nothing buffered there any more
                raise disconnect_error(error, f"flushing {namespace.name} of {nqn}") from error
        deleted = []
        for controller in subsystem.controllers:
            if controller.state in DELETING_STATES:
                continue
            try:
                if self._kernel.delete_controller(controller.name, nqn):
                    deleted.append(controller.name)
            except OSError as error:
                raise disconnect_error(error, f"deleting controller {controller.name} of {nqn}") from error
        self._resolver.forget(nqn)
        log_event(
            _log,
            "nvme.disconnect",
            nqn=nqn,
            controllers=",".join(deleted) or "-",
            flushed=",".join(n.name for n in subsystem.namespaces) if write_back else "-",
        )
        return tuple(deleted)

    def disconnect_unused(self, in_use: Collection[str]) -> list[str]:
        """Disconnect every managed subsystem whose NQN is not in ``in_use``; the NQNs disconnected.

        Subsystems outside the managed prefix are never looked at twice. One that cannot be disconnected now (in
        use, a failing flush) is logged and left for the next pass.
        """
        disconnected = []
        for subsystem in self._resolver.subsystems():
            if not self.is_managed(subsystem.nqn) or subsystem.nqn in in_use:
                continue
            try:
                self.disconnect(subsystem.nqn)
            except errors.RdsCsiError as error:
                log_event(_log, "nvme.cleanup_skipped", logging.WARNING, nqn=subsystem.nqn, error=error.message)
                continue
            disconnected.append(subsystem.nqn)
        return disconnected
