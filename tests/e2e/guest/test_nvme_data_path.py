"""The node's NVMe/TCP data path (rds_csi.nvme) against the real kernel, inside the VM: the kernel's nvmet target
exports volumes on loopback and the connector connects, finds, flushes and disconnects them through the kernel's
own interfaces, with both scanner and ioctl backends."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rds_csi._native import available_ioctls, available_sysfs_scanners
from rds_csi.core import errors
from rds_csi.core.clock import SystemClock
from rds_csi.nvme import (
    Connection,
    FabricsTarget,
    HostIdentity,
    KernelUevents,
    LinuxNvmeKernel,
    NamespaceResolver,
    NvmeConnector,
    NvmeNamespace,
)
from rds_csi.simulator.dataplane import Export
from rds_csi.simulator.images import ImageStore
from rds_csi.simulator.nvmet import NvmetDataPlane
from tests.e2e.guest import fabrics
from tests.support import wait_until

PREFIX = "nqn.2000-02.com.mikrotik:"
VOLUME_A = PREFIX + "pvc-data-path-a"
VOLUME_B = PREFIX + "pvc-data-path-b"
FOREIGN = "nqn.2014-08.com.example:boot-disk"  # what a node booted from NVMe-oF would have connected
HOST_ID = "3d9a7c1e-2b4f-4e8a-9c61-7f0e5d2a1b34"
HOST = HostIdentity(f"nqn.2014-08.org.nvmexpress:uuid:{HOST_ID}", HOST_ID)
FOREIGN_HOST = "nqn.2014-08.org.nvmexpress:uuid:3d9a7c1e-0000-4e8a-9c61-7f0e5d2a1b34"
PORT = 4430
MIB = 1 << 20
SIZE = 64 * MIB


@pytest.fixture
def target(tmp_path: Path) -> Iterator[NvmetDataPlane]:
    """Loopback exports of VOLUME_A, VOLUME_B and FOREIGN (any host), withdrawn afterwards."""
    images = ImageStore(Path(os.environ["RDS_CSI_GUEST_SCRATCH"]) / f"images-{tmp_path.name}")
    plane = NvmetDataPlane(images, "127.0.0.1")
    for disk_id, nqn in enumerate((VOLUME_A, VOLUME_B, FOREIGN)):
        image = f"disk-{disk_id}.img"
        images.create(image, SIZE)
        plane.set_export(disk_id, Export(nqn, PORT, image, ()))
    try:
        yield plane
    finally:
        for controller in sorted(os.listdir("/sys/class/nvme")):  # whatever a failed test left connected
            if Path(f"/sys/class/nvme/{controller}/subsysnqn").read_text().strip() in (VOLUME_A, VOLUME_B, FOREIGN):
                Path(f"/sys/class/nvme/{controller}/delete_controller").write_text("1")
        plane.close()


@pytest.fixture
def resolver() -> NamespaceResolver:
    return NamespaceResolver(Path("/sys"))


@pytest.fixture
def connector(resolver: NamespaceResolver) -> NvmeConnector:
    return NvmeConnector(LinuxNvmeKernel(), resolver, HOST, PREFIX, SystemClock())


def volume(nqn: str, port: int = PORT) -> FabricsTarget:
    return FabricsTarget(nqn=nqn, address="127.0.0.1", port=port, ctrl_loss_tmo=0, reconnect_delay=1)


def attached(connector: NvmeConnector, nqn: str) -> tuple[Connection, NvmeNamespace]:
    connection = connector.connect(volume(nqn))
    return connection, connector.wait_for_device(nqn, deadline=time.monotonic() + 30)


def controllers_of(nqn: str) -> list[str]:
    return sorted(
        c for c in os.listdir("/sys/class/nvme") if Path(f"/sys/class/nvme/{c}/subsysnqn").read_text().strip() == nqn
    )


@pytest.mark.usefixtures("target")
def test_connect_twice_find_the_device_on_both_scanners_and_disconnect(connector: NvmeConnector) -> None:
    first, namespace = attached(connector, VOLUME_A)
    again = connector.connect(volume(VOLUME_A))

    assert not first.already_connected
    assert again == Connection(VOLUME_A, first.controller, already_connected=True)
    assert controllers_of(VOLUME_A) == [first.controller]  # one connection, not two
    assert namespace.size_bytes == SIZE
    for name, scanner in available_sysfs_scanners().items():
        found = scanner.find_subsystem("/sys", VOLUME_A)
        assert found is not None, name
        assert [c.name for c in found.controllers] == [first.controller], name
        assert (found.controllers[0].state, found.controllers[0].transport) == ("live", "tcp"), name
        assert "traddr=127.0.0.1,trsvcid=4430" in found.controllers[0].address, name
        assert found.namespaces == (namespace,), name
    device = Path("/dev") / namespace.name
    assert os.stat(device).st_rdev == os.makedev(namespace.major, namespace.minor)

    assert connector.disconnect(VOLUME_A) == (first.controller,)

    assert controllers_of(VOLUME_A) == []
    assert all(s.find_subsystem("/sys", VOLUME_A) is None for s in available_sysfs_scanners().values())
    assert wait_until(lambda: not device.exists())
    assert connector.disconnect(VOLUME_A) == ()


@pytest.mark.usefixtures("target")
def test_namespace_ioctls_on_the_real_device_over_both_backends(connector: NvmeConnector) -> None:
    connection, namespace = attached(connector, VOLUME_A)
    try:
        block = os.open(f"/dev/{namespace.name}", os.O_RDONLY | os.O_CLOEXEC)
        controller = os.open(f"/dev/{connection.controller}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            for name, ioctls in available_ioctls().items():
                assert ioctls.namespace_id(block) == 1, name  # the simulator exports nsid 1
                assert ioctls.block_size_bytes(block) == SIZE, name
                ioctls.flush_buffers(block)
                ioctls.rescan_controller(controller)
                with pytest.raises(OSError) as info:  # a controller is no namespace
                    ioctls.namespace_id(controller)
                assert info.value.errno == errno.ENOTTY, name
        finally:
            os.close(block)
            os.close(controller)
    finally:
        connector.disconnect(VOLUME_A)


def test_a_grown_namespace_is_seen_after_a_controller_rescan(
    target: NvmetDataPlane, connector: NvmeConnector, resolver: NamespaceResolver
) -> None:
    connection, _ = attached(connector, VOLUME_A)
    try:
        target.images.resize("disk-0.img", 2 * SIZE)
        target.resized("disk-0.img")
        for name, ioctls in available_ioctls().items():
            controller = os.open(f"/dev/{connection.controller}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                ioctls.rescan_controller(controller)
            finally:
                os.close(controller)

            def grown() -> bool:
                found = resolver.lookup(VOLUME_A)
                return found is not None and [n.size_bytes for n in found.namespaces] == [2 * SIZE]

            assert wait_until(grown), name
    finally:
        connector.disconnect(VOLUME_A)


@pytest.mark.usefixtures("target")
def test_cleanup_disconnects_unused_managed_volumes_and_never_the_foreign_one(connector: NvmeConnector) -> None:
    boot = fabrics.connect(FOREIGN, FOREIGN_HOST, PORT)  # connected by someone else, as a boot disk would be
    try:
        attached(connector, VOLUME_A)
        attached(connector, VOLUME_B)

        assert connector.disconnect_unused(in_use={VOLUME_B}) == [VOLUME_A]
        with pytest.raises(errors.FailedPrecondition, match="never disconnects"):
            connector.disconnect(FOREIGN)
        assert connector.disconnect_unused(in_use=set()) == [VOLUME_B]

        assert controllers_of(FOREIGN) == [boot.controller]
        assert Path(f"/sys/class/nvme/{boot.controller}/state").read_text().strip() == "live"
        assert controllers_of(VOLUME_A) == controllers_of(VOLUME_B) == []
    finally:
        boot.disconnect()


@pytest.mark.usefixtures("target")
def test_a_mounted_device_is_not_disconnected(connector: NvmeConnector, tmp_path: Path) -> None:
    connection, namespace = attached(connector, VOLUME_A)
    mountpoint = Path(os.environ["RDS_CSI_GUEST_SCRATCH"]) / f"mnt-{tmp_path.name}"
    mountpoint.mkdir()
    subprocess.run(["mkfs.ext4", "-q", "-F", f"/dev/{namespace.name}"], check=True, timeout=120)
    subprocess.run(["mount", f"/dev/{namespace.name}", str(mountpoint)], check=True, timeout=60)
    try:
        with pytest.raises(errors.FailedPrecondition, match="in use"):
            connector.disconnect(VOLUME_A)
        assert controllers_of(VOLUME_A) == [connection.controller]
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True, timeout=60)
    assert connector.disconnect(VOLUME_A) == (connection.controller,)


@pytest.mark.usefixtures("target")
def test_the_resolver_follows_renumbering_on_the_real_kernel(
    connector: NvmeConnector, resolver: NamespaceResolver
) -> None:
    attached(connector, VOLUME_A)
    before = resolver.lookup(VOLUME_A)
    assert before is not None
    connector.disconnect(VOLUME_A)
    # B takes A's numbers; A comes back under new ones.
    attached(connector, VOLUME_B)
    # No uevents reach this resolver: the stale entry must be caught by the lookup itself.
    _, namespace = attached(connector, VOLUME_A)
    after = resolver.lookup(VOLUME_A)
    try:
        assert after is not None
        assert after.name != before.name
        assert after.namespaces == (namespace,)
        assert resolver.lookup(VOLUME_B) is not None
    finally:
        connector.disconnect(VOLUME_A)
        connector.disconnect(VOLUME_B)


@pytest.mark.usefixtures("target")
def test_kernel_uevents_make_the_first_lookup_after_a_connect_a_hit(connector: NvmeConnector) -> None:
    resolver = NamespaceResolver(Path("/sys"))
    uevents = KernelUevents(resolver.observe)
    assert uevents.start()
    own = NvmeConnector(LinuxNvmeKernel(), resolver, HOST, PREFIX, SystemClock())
    try:
        # Connect through the kernel directly, so that only the uevent can tell the resolver.
        raw = fabrics.connect(VOLUME_B, FOREIGN_HOST, PORT)
        assert wait_until(lambda: VOLUME_B in resolver.cached())
        found = resolver.lookup(VOLUME_B)
        assert found is not None
        assert [c.name for c in found.controllers] == [raw.controller]
        assert (resolver.stats().hits, resolver.stats().misses) == (1, 0)
        own.disconnect(VOLUME_B)
        assert wait_until(lambda: VOLUME_B not in resolver.cached())
    finally:
        assert uevents.stop()


@pytest.mark.usefixtures("target")
@pytest.mark.parametrize(
    ("refused", "kind", "says"),
    [
        (volume(PREFIX + "pvc-not-exported"), errors.FailedPrecondition, "not exported there"),
        (volume(VOLUME_A, port=PORT + 1), errors.Unavailable, "ECONNREFUSED"),
    ],
)
def test_the_kernels_refusals_are_domain_errors(
    connector: NvmeConnector, refused: FabricsTarget, kind: type[Exception], says: str
) -> None:
    with pytest.raises(kind, match=says):
        connector.connect(refused)
    assert controllers_of(VOLUME_A) == []


def test_a_host_the_target_does_not_allow_is_failed_precondition(
    target: NvmetDataPlane, connector: NvmeConnector
) -> None:
    target.set_export(0, Export(VOLUME_A, PORT, "disk-0.img", ("nqn.2014-08.com.example:someone-else",)))

    with pytest.raises(errors.FailedPrecondition, match=f"host {HOST.nqn} is not allowed"):
        connector.connect(volume(VOLUME_A))
