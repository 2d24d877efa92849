"""The RouterOS client against the simulator over real SSH and real HTTPS REST: every operation, every fault."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from rds_csi.core import errors
from rds_csi.routeros.client import RouterOSClient
from rds_csi.routeros.models import FileEntry
from rds_csi.routeros.names import RouterPath, backing_file_path, parse_router_path
from rds_csi.routeros.rest import RestSettings, RestTransport
from rds_csi.routeros.ssh import HostKeyMismatch, SshPool, SshSettings, SshTransport
from rds_csi.routeros.transport import CommandOutcomeUnknown
from rds_csi.routeros.volumes import ContentSource, VolumeBackend
from rds_csi.simulator import FaultPlan, FaultRule, FlagColumn, FlagStyle, Simulator, SimulatorConfig
from tests.support import (
    SIM_PASSWORD,
    SIM_USER,
    SimulatorAccess,
    SimulatorProcess,
    spawn_simulator,
    start_simulator,
    wait_until,
    write_client_key,
)

GiB = 1 << 30
BASE = "/storage-pool/metal-csi"
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorAccess]:
    access = start_simulator(tmp_path_factory.mktemp("routeros-sim"))
    yield access
    access.simulator.stop()


def make_client(sim: SimulatorAccess, backend: str, pool_size: int = 2, timeout: float = TIMEOUT) -> RouterOSClient:
    if backend == "ssh":
        settings = SshSettings(
            host="127.0.0.1",
            port=sim.simulator.ssh_port,
            username=SIM_USER,
            key_file=str(sim.key_file),
            pinned_host_key=sim.simulator.host_public_key,
            pool_size=pool_size,
            backoff_initial=0.05,
            backoff_max=0.2,
        )
        return RouterOSClient(SshTransport(SshPool(settings)), command_timeout=timeout)
    rest = RestSettings(
        base_url=sim.simulator.rest_url.removesuffix("/rest"),
        username=SIM_USER,
        password=SIM_PASSWORD,
        ca_file=str(sim.simulator.rest_certificate),
        pool_size=pool_size,
    )
    return RouterOSClient(RestTransport(rest), command_timeout=timeout)


@pytest.fixture(params=["ssh", "rest"])
def client(request: pytest.FixtureRequest, sim: SimulatorAccess) -> Iterator[RouterOSClient]:
    sim.simulator.faults.clear_rules()
    client = make_client(sim, str(request.param))
    yield client
    sim.simulator.faults.clear_rules()
    client.transport.close()


def fresh_slot(prefix: str = "pvc-it") -> str:
    return f"{prefix}-{os.urandom(4).hex()}"


def create(client: RouterOSClient, slot: str, size: int = GiB) -> None:
    client.create_disk(slot=slot, file_path=backing_file_path(BASE, slot), size_bytes=size, port=4420)


def test_every_operation_round_trips(client: RouterOSClient) -> None:
    slot = fresh_slot()
    path = backing_file_path(BASE, slot)
    disk = client.create_disk(slot=slot, file_path=path, size_bytes=3 * GiB // 2, port=4420)
    assert disk.slot == slot
    assert disk.size_bytes == 3 * GiB // 2
    assert disk.file_path == path.disk_path
    assert disk.nvme_export
    assert disk.nqn == f"nqn.2000-02.com.mikrotik:{slot}"
    assert disk.port == 4420

    assert client.get_disk(slot) == disk
    assert [d.slot for d in client.list_disks(slot)] == [slot]

    grown = client.resize_disk(slot, 2 * GiB)
    assert grown.size_bytes == 2 * GiB

    hosts = ("nqn.2014-08.org.nvmexpress:uuid:0f923194-922a-5dd8-b376-c2c6ccb56dd8",)
    client.set_allowed_hosts(slot, hosts)
    assert client.get_disk(slot).allowed_hosts == hosts  # type: ignore[union-attr]
    client.set_allowed_hosts(slot, ())
    assert client.get_disk(slot).allowed_hosts == ()  # type: ignore[union-attr]

    traffic = client.disk_traffic(slot)
    assert traffic.slot == slot

    pool = client.pool_capacity("storage-pool")
    assert 0 < pool.free_bytes <= pool.size_bytes

    files = client.list_files(parse_router_path(BASE))
    assert path.file_name in {f.name for f in files}

    assert client.system_resource().version
    client.check()

    client.remove_disk(slot)
    client.remove_file(path)
    assert client.get_disk(slot) is None
    assert path.file_name not in {f.name for f in client.list_files(parse_router_path(BASE))}
    client.remove_disk(slot)  # idempotent
    client.remove_file(path)


def test_duplicate_slot_is_already_exists(client: RouterOSClient) -> None:
    slot = fresh_slot()
    create(client, slot)
    try:
        with pytest.raises(errors.AlreadyExists):
            create(client, slot)
    finally:
        client.remove_disk(slot)
        client.remove_file(backing_file_path(BASE, slot))


def test_more_than_free_space_is_resource_exhausted(client: RouterOSClient) -> None:
    slot = fresh_slot()
    with pytest.raises(errors.ResourceExhausted):
        create(client, slot, size=1 << 50)
    assert client.get_disk(slot) is None


def add_fault(sim: SimulatorAccess, **rule: object) -> None:
    sim.simulator.faults.add_rule(FaultRule(**rule))  # type: ignore[arg-type]


def test_injected_no_space_is_resource_exhausted(client: RouterOSClient, sim: SimulatorAccess) -> None:
    add_fault(sim, op="add", kind="error", message="not enough space")
    with pytest.raises(errors.ResourceExhausted):
        create(client, fresh_slot())


def test_hung_command_is_unavailable_within_the_timeout_and_pool_recovers(
    client: RouterOSClient, sim: SimulatorAccess
) -> None:
    add_fault(sim, op="print", kind="hang", times=1)
    started = time.monotonic()
    with pytest.raises(errors.Unavailable):
        client.get_disk(fresh_slot())
    assert time.monotonic() - started < TIMEOUT + 1.0
    assert client.get_disk(fresh_slot()) is None  # the next command works


def test_dropped_connection_on_add_never_repeats_the_add_blindly(client: RouterOSClient, sim: SimulatorAccess) -> None:
    slot = fresh_slot()
    add_fault(sim, op="add", kind="drop", times=1)
    try:
        disk = client.create_disk(slot=slot, file_path=backing_file_path(BASE, slot), size_bytes=GiB, port=4420)
    except errors.Unavailable as exc:
        assert "safe to retry" in exc.message or isinstance(exc, CommandOutcomeUnknown)
        disk = None
    found = client.get_disk(slot)
    assert found == disk  # either it happened and we returned it, or it did not and we said so
    client.remove_disk(slot)
    client.remove_file(backing_file_path(BASE, slot))


def test_garbage_output_is_internal(client: RouterOSClient, sim: SimulatorAccess) -> None:
    add_fault(sim, op="print", kind="garbage", times=1)
    with pytest.raises(errors.Internal):
        client.list_disks("pvc-")
    client.list_disks("pvc-")


def test_unreadable_answer_to_a_change_is_outcome_unknown_and_repeated_once(
    client: RouterOSClient, sim: SimulatorAccess
) -> None:
    slot = fresh_slot()
    create(client, slot)
    try:
        add_fault(sim, op="set", kind="garbage", times=1)
        assert client.resize_disk(slot, 2 * GiB).size_bytes == 2 * GiB  # the idempotent repeat got through
        add_fault(sim, op="set", kind="garbage", times=2)
        with pytest.raises(CommandOutcomeUnknown, match=r"never prints|non-JSON"):
            client.resize_disk(slot, 3 * GiB)
    finally:
        client.remove_disk(slot)
        client.remove_file(backing_file_path(BASE, slot))


def test_a_resize_the_router_did_not_carry_out_is_internal(client: RouterOSClient, sim: SimulatorAccess) -> None:
    slot = fresh_slot()
    create(client, slot)
    try:
        add_fault(sim, op="set", kind="ignore", times=1)
        with pytest.raises(errors.Internal, match=f"lists it with {GiB} bytes"):
            client.resize_disk(slot, 2 * GiB)
    finally:
        client.remove_disk(slot)
        client.remove_file(backing_file_path(BASE, slot))


def test_failure_after_n_operations(client: RouterOSClient, sim: SimulatorAccess) -> None:
    add_fault(sim, op="print", kind="error", message="timeout while waiting for disk", after=2, times=1)
    client.get_disk(fresh_slot())
    client.get_disk(fresh_slot())
    with pytest.raises(errors.Unavailable):
        client.get_disk(fresh_slot())
    assert client.get_disk(fresh_slot()) is None


@pytest.mark.parametrize("backend", ["ssh", "rest"])
def test_concurrent_commands_share_the_pool(sim: SimulatorAccess, backend: str) -> None:
    client = make_client(sim, backend, pool_size=4, timeout=30.0)  # waiting for a connection counts too
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                client.list_disks("pvc-")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    client.transport.close()
    assert failures == []
    if isinstance(client.transport, SshTransport):
        assert client.transport.pool_stats() == (0, 0)


def _open_fds() -> dict[str, str]:
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory handle listdir itself used
            continue
    return fds


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    process = spawn_simulator(tmp_path_factory.mktemp("routeros-sim-process"))
    yield process
    process.stop()


def process_client(sim: SimulatorProcess, backend: str) -> RouterOSClient:
    if backend == "ssh":
        settings = SshSettings(
            host="127.0.0.1",
            port=sim.ssh_port,
            username=SIM_USER,
            key_file=str(sim.key_file),
            pinned_host_key=sim.host_key,
            pool_size=2,
        )
        return RouterOSClient(SshTransport(SshPool(settings)), command_timeout=TIMEOUT)
    rest = RestSettings(
        base_url=sim.rest_url, username=SIM_USER, password=SIM_PASSWORD, ca_file=str(sim.certificate), pool_size=2
    )
    return RouterOSClient(RestTransport(rest), command_timeout=TIMEOUT)


@pytest.mark.parametrize("backend", ["ssh", "rest"])
def test_no_thread_or_connection_leaks_after_faults(sim_process: SimulatorProcess, backend: str) -> None:
    """The simulator runs in its own process, so every thread and descriptor counted here is the driver's."""
    warm = process_client(sim_process, backend)
    warm.list_disks("pvc-")
    warm.transport.close()
    threads_before, fds_before = threading.active_count(), _open_fds()
    try:
        for _ in range(3):
            client = process_client(sim_process, backend)
            sim_process.add_fault(op="print", kind="hang", times=1)
            with pytest.raises(errors.Unavailable):
                client.list_disks("pvc-")
            sim_process.add_fault(op="print", kind="drop", times=1)
            with pytest.raises(errors.Unavailable):
                client.list_disks("pvc-")
            assert client.list_disks("pvc-") is not None  # the pool recovered
            client.transport.close()
    finally:
        sim_process.clear_faults()
    # Exceptions keep their frames (and so a dropped socket) in reference cycles until the collector runs.
    gc.collect()
    assert wait_until(lambda: threading.active_count() <= threads_before), threading.enumerate()
    assert wait_until(lambda: len(_open_fds()) <= len(fds_before)), {
        fd: target for fd, target in _open_fds().items() if fds_before.get(fd) != target
    }


def test_untrusted_host_key_is_refused(sim: SimulatorAccess) -> None:
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd5ZCO8d7QOkQqWfnbx0Un8q1xk2m9gpTjz2GLt2c0b"
    settings = SshSettings(
        host="127.0.0.1",
        port=sim.simulator.ssh_port,
        username=SIM_USER,
        key_file=str(sim.key_file),
        pinned_host_key=other,
    )
    pool = SshPool(settings)
    with pytest.raises(HostKeyMismatch, match="not trusted"):
        pool.run("/system resource print", 2.0)
    pool.close()


def test_known_hosts_file_is_honoured(sim: SimulatorAccess, short_tmp: Path) -> None:
    known = short_tmp / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sim.simulator.ssh_port} {sim.simulator.host_public_key}\n")
    settings = SshSettings(
        host="127.0.0.1",
        port=sim.simulator.ssh_port,
        username=SIM_USER,
        key_file=str(sim.key_file),
        known_hosts_file=str(known),
    )
    pool = SshPool(settings)
    try:
        assert pool.run("/system resource print", 5.0).exit_status == 0
    finally:
        pool.close()


def test_unreachable_router_is_unavailable_with_backoff() -> None:
    settings = SshSettings(
        host="127.0.0.1",
        port=1,  # nothing listens on tcpmux
        username="x",
        password="y",
        insecure_skip_host_key=True,
        backoff_initial=0.05,
        backoff_max=0.1,
    )
    pool = SshPool(settings)
    started = time.monotonic()
    with pytest.raises(errors.Unavailable, match=r"127\.0\.0\.1:1"):
        pool.run("/system resource print", 0.5)
    assert time.monotonic() - started < 2.0
    assert pool.stats() == (0, 0)
    pool.close()


def test_rsa_client_key_authenticates(short_tmp: Path) -> None:
    key = paramiko.RSAKey.generate(2048)
    key_file = short_tmp / "id_rsa"
    key.write_private_key_file(str(key_file))
    (short_tmp / "id_rsa.pub").write_text(f"{key.get_name()} {key.get_base64()}\n")
    simulator = Simulator(
        SimulatorConfig(
            state_dir=short_tmp / "rsa-sim",
            rest_port=None,
            control_port=None,
            faults=FaultPlan(profile="zero"),
            authorized_keys=(short_tmp / "id_rsa.pub",),
        )
    ).start()
    settings = SshSettings(
        host="127.0.0.1",
        port=simulator.ssh_port,
        username="admin",
        key_file=str(key_file),
        pinned_host_key=simulator.host_key_fingerprint,
    )
    client = RouterOSClient(SshTransport(SshPool(settings)), command_timeout=5)
    try:
        assert client.system_resource().version
    finally:
        client.transport.close()
        simulator.stop()


def test_pool_survives_an_rds_restart(short_tmp: Path) -> None:
    """Idle pooled connections die with the router; the next command reconnects transparently."""
    state = short_tmp / "restart-sim"
    key_file, public_file = write_client_key(short_tmp)

    def boot(port: int = 0) -> Simulator:
        return Simulator(
            SimulatorConfig(
                state_dir=state,
                ssh_port=port,
                rest_port=None,
                control_port=None,
                faults=FaultPlan(profile="zero"),
                persist_file=state / "model.json",
                authorized_keys=(public_file,),
            )
        ).start()

    first = boot()
    port = first.ssh_port
    settings = SshSettings(
        host="127.0.0.1",
        port=port,
        username="admin",
        key_file=str(key_file),
        pinned_host_key=first.host_public_key,  # the same persistent host key after the restart
        pool_size=2,
        backoff_initial=0.05,
        backoff_max=0.2,
    )
    transport = SshTransport(SshPool(settings))
    client = RouterOSClient(transport, command_timeout=5)
    try:
        slot = fresh_slot()
        create(client, slot)
        first.stop()
        second = boot(port)
        try:
            assert client.get_disk(slot) is not None  # persisted by the RDS, reached over a new connection
            assert transport.pool_stats() == (1, 0)  # one fresh connection, back in the pool
        finally:
            second.stop()
    finally:
        client.transport.close()


def test_pool_serves_waiters_in_arrival_order(sim: SimulatorAccess) -> None:
    """A thread issuing commands back to back must not starve another one waiting for the only connection."""
    sim.simulator.faults.clear_rules()
    settings = SshSettings(
        host="127.0.0.1",
        port=sim.simulator.ssh_port,
        username=SIM_USER,
        key_file=str(sim.key_file),
        pinned_host_key=sim.simulator.host_public_key,
        pool_size=1,
    )
    pool = SshPool(settings)
    progress = 0
    stop = threading.Event()

    def busy_loop() -> None:
        nonlocal progress
        while not stop.is_set():
            pool.run("/system resource print", 10.0)
            progress += 1

    hog = threading.Thread(target=busy_loop)
    hog.start()
    try:
        assert wait_until(lambda: progress >= 5)
        overtaken = []
        for _ in range(5):
            before = progress
            pool.run("/system resource print", 10.0)
            overtaken.append(progress - before)
        # FIFO: the hog finishes at most the command it was running, plus one queued before us.
        assert max(overtaken) <= 2, overtaken
    finally:
        stop.set()
        hog.join(10)
        pool.close()


def test_recovery_listeners_fire_once_when_routeros_answers_again(client: RouterOSClient, sim: SimulatorAccess) -> None:
    recovered: list[int] = []
    client.on_recovery(lambda: recovered.append(1))
    client.get_disk(fresh_slot())
    assert recovered == []  # healthy all along: nothing to recover from
    add_fault(sim, op="print", kind="hang", times=1)
    with pytest.raises(errors.Unavailable):
        client.get_disk(fresh_slot())
    client.get_disk(fresh_slot())
    client.get_disk(fresh_slot())
    assert recovered == [1]


def test_listed_snapshots_carry_their_file_times_from_one_listing_per_directory(client: RouterOSClient) -> None:
    volumes = VolumeBackend(client, base_path=BASE)
    source = fresh_slot()
    create(client, source)
    made = [volumes.create_snapshot(f"snap-req-{source}-{i}", source) for i in range(3)]
    listings = []
    real_list_files = client.list_files

    def counting_list_files(directory: RouterPath) -> list[FileEntry]:
        listings.append(directory)
        return real_list_files(directory)

    client.list_files = counting_list_files  # type: ignore[method-assign]
    listed = {s.snapshot_id: s for s in volumes.list_snapshots()}
    assert listings and len(listings) == len(set(listings))  # each directory listed once, whatever the count
    for snapshot in made:
        assert listed[snapshot.snapshot_id].created_at is not None  # the file's time, not a made-up one
        assert listed[snapshot.snapshot_id].created_at == volumes.get_snapshot(snapshot.snapshot_id).created_at  # type: ignore[union-attr]


@pytest.mark.parametrize("legend", [True, False], ids=["legend", "no-legend"])
def test_volumes_work_end_to_end_when_the_console_prints_every_documented_flag(short_tmp: Path, legend: bool) -> None:
    """Lower-case and mixed flag runs (``Bt``, ``BM``), with and without the ``Flags:`` legend, over real SSH."""
    key_file, public_file = write_client_key(short_tmp)
    simulator = Simulator(
        SimulatorConfig(
            state_dir=short_tmp / "flags-sim",
            rest_port=None,
            control_port=None,
            faults=FaultPlan(profile="zero"),
            authorized_keys=(public_file,),
            flags=FlagColumn(FlagStyle.DOCUMENTED, legend=legend),
        )
    ).start()
    settings = SshSettings(
        host="127.0.0.1",
        port=simulator.ssh_port,
        username="admin",
        key_file=str(key_file),
        pinned_host_key=simulator.host_public_key,
    )
    client = RouterOSClient(SshTransport(SshPool(settings)), command_timeout=5)
    volumes = VolumeBackend(client, base_path=BASE)
    try:
        volume = volumes.create_volume("pvc-flags", volume_path=BASE, size_bytes=GiB, port=4420, size_ok=bool)
        assert volumes.get_volume("pvc-flags") == volume
        assert client.get_disk("pvc-flags").flags == frozenset("Bt")  # type: ignore[union-attr]
        assert [v.volume_id for v in volumes.list_volumes()] == ["pvc-flags"]
        assert volumes.expand_volume("pvc-flags", 2 * GiB).capacity_bytes == 2 * GiB
        snapshot = volumes.create_snapshot("flags-snap", "pvc-flags")
        assert client.get_disk(snapshot.snapshot_id).flags == frozenset("B")  # type: ignore[union-attr]
        clone = volumes.create_volume(
            "pvc-flags-clone",
            volume_path=BASE,
            size_bytes=2 * GiB,
            port=4420,
            source=ContentSource("snapshot", snapshot.snapshot_id),
            size_ok=bool,
        )
        assert clone.exported and clone.capacity_bytes == 2 * GiB
        assert client.pool_capacity("storage-pool").free_bytes > 0  # the partition's "BM" entry
        for volume_id in ("pvc-flags-clone", "pvc-flags"):
            volumes.delete_volume(volume_id)
        volumes.delete_snapshot(snapshot.snapshot_id)
        assert volumes.list_volumes() == [] and volumes.list_snapshots() == []
    finally:
        client.transport.close()
        simulator.stop()
