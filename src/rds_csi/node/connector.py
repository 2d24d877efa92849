"""The one boundary of the node use cases that needs the kernel's NVMe/TCP host: attaching a volume's namespace.

``Connector`` is what stage, unstage, stats and expansion ask of it. Production uses ``KernelConnector``, the
kernel's fabrics interface through ``rds_csi.nvme``; hosts without nvme-tcp test the same flows with loop devices
behind the same protocol (tests/integration/node/loop_connector.py), failures included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rds_csi.core import errors
from rds_csi.core.clock import Clock
from rds_csi.mount import DeviceNumber
from rds_csi.nvme import (
    FabricsTarget,
    HostIdentity,
    LinuxNvmeKernel,
    NamespaceResolver,
    NvmeConnector,
    NvmeKernel,
    ready_namespace,
    rescan_controller,
)
from rds_csi.nvme.kernel import DEFAULT_DEV

LIVE = "live"


@dataclass(frozen=True, slots=True)
class BlockDevice:
    """A namespace's block device as the kernel shows it now."""

    path: Path  # /dev/nvme0n1
    number: DeviceNumber
    size_bytes: int  # 0 right after a connect, until the namespace is identified


@dataclass(frozen=True, slots=True)
class Subsystem:
    """The kernel's view of one subsystem NQN: its controllers' states and the namespace device, if any yet."""

    nqn: str
    controller_states: tuple[str, ...]  # "live", "connecting", "resetting", "deleting", ...
    device: BlockDevice | None

    @property
    def live(self) -> bool:
        return LIVE in self.controller_states


class Connector(Protocol):
    def connect(self, target: FabricsTarget) -> None:
        """Attach the target's subsystem. Already attached (in any state but deleting) is success: a connect
        that is still coming up is never torn down or repeated. ``Unavailable`` when the target refuses or
        cannot be reached."""
        ...

    def subsystem(self, nqn: str) -> Subsystem | None:
        """What is attached for ``nqn`` now; None when nothing is."""
        ...

    def managed_subsystems(self) -> list[str]:
        """The NQNs under the managed prefix that are attached now (in any state)."""
        ...

    def owner_of(self, device: DeviceNumber) -> str | None:
        """The subsystem NQN whose namespace is the block device ``device``; None when no such device exists (any
        more) or it is not a namespace."""
        ...

    def rescan(self, nqn: str) -> None:
        """Ask the kernel to re-read the namespace's size (after the storage grew it)."""
        ...

    def disconnect(self, nqn: str) -> None:
        """Flush the namespace and detach every controller of ``nqn``; nothing attached is success. Only NQNs
        under the managed prefix are ever detached (``FailedPrecondition`` otherwise)."""
        ...


class KernelConnector:
    """``Connector`` over the kernel's NVMe/TCP host (``rds_csi.nvme``): connects and disconnects through
    ``NvmeConnector``, reads state through the uevent-fed ``NamespaceResolver``.

    Connecting needs the node's host identity, which the plugin settles when it starts: ``bind_host`` is called
    then, before any CSI call is served.
    """

    def __init__(
        self,
        managed_prefix: str,
        clock: Clock,
        *,
        resolver: NamespaceResolver | None = None,
        kernel: NvmeKernel | None = None,
        dev_root: Path = DEFAULT_DEV,
    ) -> None:
        self.resolver = resolver or NamespaceResolver()
        self._kernel = kernel or LinuxNvmeKernel()
        self._managed_prefix = managed_prefix
        self._clock = clock
        self._dev_root = dev_root
        self._nvme: NvmeConnector | None = None

    def bind_host(self, host: HostIdentity) -> None:
        self._nvme = NvmeConnector(
            self._kernel, self.resolver, host, self._managed_prefix, self._clock, dev_root=self._dev_root
        )

    def _connector(self) -> NvmeConnector:
        if self._nvme is None:
            raise errors.Unavailable("the node's NVMe host identity is not settled yet; retry")
        return self._nvme

    def connect(self, target: FabricsTarget) -> None:
        self._connector().connect(target)

    def subsystem(self, nqn: str) -> Subsystem | None:
        found = self.resolver.lookup(nqn)
        if found is None:
            return None
        namespace = ready_namespace(found, self._dev_root)
        device = None
        if namespace is not None:
            number = DeviceNumber(namespace.major, namespace.minor)
            device = BlockDevice(self._dev_root / namespace.name, number, namespace.size_bytes)
        return Subsystem(nqn, tuple(c.state for c in found.controllers), device)

    def managed_subsystems(self) -> list[str]:
        return [s.nqn for s in self.resolver.subsystems() if s.nqn.startswith(self._managed_prefix)]

    def owner_of(self, device: DeviceNumber) -> str | None:
        for subsystem in self.resolver.subsystems():
            if any(DeviceNumber(n.major, n.minor) == device for n in subsystem.namespaces):
                return subsystem.nqn
        return None

    def rescan(self, nqn: str) -> None:
        found = self.resolver.lookup(nqn)
        live = [c.name for c in found.controllers if c.state == LIVE] if found is not None else []
        if not live:
            raise errors.Unavailable(f"{nqn} has no live controller to rescan its namespace through; retry")
        fd = os.open(self._dev_root / live[0], os.O_RDONLY | os.O_CLOEXEC)
        try:
            rescan_controller(fd)
        except OSError as error:
            raise errors.Unavailable(f"rescanning {live[0]} of {nqn} failed: {error.strerror}; retry") from None
        finally:
            os.close(fd)

    def disconnect(self, nqn: str) -> None:
        self._connector().disconnect(nqn)
