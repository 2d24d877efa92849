"""Attachments: rebuilding the attachment state from VolumeAttachments, and ControllerPublishVolume latency.

Three parts, each against a baseline measured in the same run:

- ``rebuild``: ``AttachmentManager.rebuild()`` of 10^5 ``VolumeAttachmentFact``s (mostly single-node volumes, a
  tenth multi-node block, 1 % of the volumes in a live migration with two VolumeAttachments) for every table
  backend; the ratio is cython/python.
- ``startup``: what ``KubeAttachmentSync.start`` does before it starts the watches, against the Kubernetes API
  emulator (its own process) seeded with N VolumeAttachments and their PVs: ``list_pvs``,
  ``list_volume_attachments``, ``fact_from_record`` and the rebuild, timed one by one. A plain HTTP GET of both
  lists (server and wire, no client models) is the baseline the client's share is read against.
- ``publish``: ControllerPublishVolume / ControllerUnpublishVolume over real gRPC (unix socket) to a controller
  plugin in this process, against the simulator (its own process, over SSH) with the ``zero`` and the
  ``realistic`` latency profile, ``kube_api`` off and a static node list. C callers each publish and unpublish
  their own volumes to their own node; the baseline at the same concurrency is ``Probe`` (gRPC plus one RouterOS
  command and nothing else), and ``ControllerGetVolume`` (two RouterOS commands) is shown beside it.

Run: ``python benchmarks/bench_attachments.py [--parts rebuild,startup,publish] [--vas 100000]
[--startup-vas 20000] [--callers 10] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from bench_controller import CAPABILITY, command_counts
from bench_routeros_backend import (
    SIM_USER,
    SimulatorProcess,
    percentile_ms,
    run_threads,
    simulator_process,
    write_report,
)

from rds_csi import DEFAULT_DRIVER_NAME
from rds_csi._native import BACKEND, available_backends
from rds_csi.attach import AttachmentManager, VolumeAttachmentFact
from rds_csi.attach.rebuild import plan_rebuild
from rds_csi.controller.attachment_sync import LoggingEventSink, StaticNodeFacts, fact_from_record
from rds_csi.core.clock import SystemClock
from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from rds_csi.kube import KubeApi, KubeSettings
from rds_csi.observability.logging import configure_logging
from rds_csi.observability.metrics import Metrics
from rds_csi.plugin.config import load_plugin_config
from rds_csi.plugin.lifecycle import Plugin

PARTS = ("rebuild", "startup", "publish")
GiB = 1 << 30
RPC_TIMEOUT = 60.0
MIGRATION_WINDOW = 300.0  # the default migrationTimeoutSeconds: a target younger than this is a live migration
DAY = 86_400.0


# ---- the VolumeAttachments of a large cluster -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VaSpec:
    """One VolumeAttachment to build: as a fact for the rebuild, or as objects in the API emulator."""

    volume_id: str
    node_id: str
    multi_node_block: bool
    age_s: float  # how long ago it was created


def workload(vas: int, nodes: int, migration_share: float, block_share: float, seed: int) -> list[VaSpec]:
    """``vas`` VolumeAttachments: per volume, a migration (two, the target a few minutes old) with probability
    ``migration_share``, else one on a multi-node block volume with probability ``block_share``, else one on a
    single-node volume. Ids look like the provisioner's (``pvc-<uuid>``), since the table hashes and copies them."""
    rng = random.Random(seed)
    node_names = [f"worker-{index:04d}" for index in range(nodes)]
    specs: list[VaSpec] = []
    while len(specs) < vas:
        volume = f"pvc-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        roll = rng.random()
        if roll < migration_share and vas - len(specs) >= 2:
            source, target = rng.sample(node_names, 2)
            specs.append(VaSpec(volume, source, True, rng.uniform(1.0, 30.0) * DAY))
            specs.append(VaSpec(volume, target, True, rng.uniform(0.0, MIGRATION_WINDOW / 2)))
        else:
            block = roll < migration_share + block_share
            specs.append(VaSpec(volume, rng.choice(node_names), block, rng.uniform(0.0, 30.0) * DAY))
    return specs


def migrating_volumes(specs: list[VaSpec]) -> int:
    return sum(1 for count in Counter(spec.volume_id for spec in specs).values() if count == 2)


def workload_text(specs: list[VaSpec], nodes: int) -> str:
    volumes = len({spec.volume_id for spec in specs})
    block = len({spec.volume_id for spec in specs if spec.multi_node_block})
    return (
        f"{len(specs):,} VolumeAttachments, {volumes:,} volumes on {nodes} nodes ({block:,} multi-node block, "
        f"{migrating_volumes(specs):,} in a live migration with two VolumeAttachments)"
    )


# ---- part 1a: AttachmentManager.rebuild() per table backend ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RebuildRow:
    backend: str
    rebuild_s: tuple[float, ...]  # AttachmentManager.rebuild(), each run
    replace_all_s: tuple[float, ...]  # of which the table's own replace_all, timed apart on the same plan

    @property
    def rebuild(self) -> float:
        return statistics.median(self.rebuild_s)

    @property
    def replace_all(self) -> float:
        return statistics.median(self.replace_all_s)


def new_manager(backend: ModuleType) -> AttachmentManager:
    return AttachmentManager(
        backend.AttachmentTable(), StaticNodeFacts(()), LoggingEventSink(), SystemClock(), Metrics()
    )


def timed(action: Callable[[], object]) -> float:
    gc.collect()  # garbage of the previous run is not this run's cost
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def check_rebuilt(manager: AttachmentManager, specs: list[VaSpec]) -> None:
    """Every VolumeAttachment must be in the table: a migrating volume with both its nodes."""
    expected: dict[str, int] = Counter(spec.volume_id for spec in specs)
    for volume, count in expected.items():
        if len(manager.published_nodes(volume)) != count:
            raise RuntimeError(f"rebuild lost attachments of {volume}: {manager.published_nodes(volume)}")


def bench_rebuild(specs: list[VaSpec], repeat: int) -> tuple[list[RebuildRow], tuple[float, ...]]:
    """Rows per backend, and the times of ``plan_rebuild`` alone (pure Python, the same for every backend)."""
    now = SystemClock().now()
    facts = [
        VolumeAttachmentFact(s.volume_id, s.node_id, now - s.age_s, attached=True, multi_node_block=s.multi_node_block)
        for s in specs
    ]
    backends = available_backends()
    names = [name for name in ("python", "cython") if name in backends]
    rebuilds: dict[str, list[float]] = {name: [] for name in names}
    replaces: dict[str, list[float]] = {name: [] for name in names}
    plans: list[float] = []
    plan = plan_rebuild(facts)
    for _ in range(repeat):
        plans.append(timed(lambda: plan_rebuild(facts)))
        for name in names:  # interleaved, so that a noisy moment hits every backend alike
            manager = new_manager(backends[name])
            rebuilds[name].append(timed(partial(manager.rebuild, facts)))
            check_rebuilt(manager, specs)
            table = backends[name].AttachmentTable()
            replaces[name].append(timed(partial(table.replace_all, plan.entries)))
    rows = [RebuildRow(name, tuple(rebuilds[name]), tuple(replaces[name])) for name in names]
    return rows, tuple(plans)


# ---- part 1b: the start-up path against the API emulator ------------------------------------------------------------


def _import_tests() -> None:
    """The emulator lives in the repository's ``tests`` package, which is not installed."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)


def _serve_emulator(specs: list[VaSpec], conn: Connection) -> None:
    """Child process: seed the emulator, send (url, seeding seconds), serve until told to stop."""
    _import_tests()
    from tests.kube_emulator import KubeEmulator

    emulator = KubeEmulator().start()
    try:
        started = time.perf_counter()
        seen: set[str] = set()
        for spec in specs:
            if spec.volume_id not in seen:
                seen.add(spec.volume_id)
                emulator.add_pv(
                    spec.volume_id,
                    driver=DEFAULT_DRIVER_NAME,
                    claim=("default", f"claim-{spec.volume_id}"),
                    access_modes=("ReadWriteMany",) if spec.multi_node_block else ("ReadWriteOnce",),
                    volume_mode="Block" if spec.multi_node_block else "Filesystem",
                    volume_attributes={"volumePath": "/storage-pool/metal-csi", "nvmePort": "4420"},
                )
            emulator.add_volume_attachment(spec.volume_id, spec.node_id, DEFAULT_DRIVER_NAME)
        conn.send((emulator.url, time.perf_counter() - started))
        conn.recv()
    finally:
        emulator.stop()


@contextmanager
def emulator_process(specs: list[VaSpec]) -> Iterator[tuple[str, float]]:
    context = multiprocessing.get_context("spawn")  # no threads of this process are copied into the server
    ours, theirs = context.Pipe()
    process = context.Process(target=_serve_emulator, args=(specs, theirs), daemon=True)
    process.start()
    try:
        if not ours.poll(600):
            raise RuntimeError("the API emulator was not seeded within 10 minutes")
        url, seconds = ours.recv()
        yield str(url), float(seconds)
    finally:
        if process.is_alive():
            ours.send("stop")
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()


@dataclass(frozen=True, slots=True)
class StartupRun:
    raw_get_s: float  # plain HTTP GET of both lists: the server and the wire, no client models
    list_pvs_s: float
    list_vas_s: float
    convert_s: float
    rebuild_s: float

    @property
    def api_s(self) -> float:
        return self.list_pvs_s + self.list_vas_s

    @property
    def total_s(self) -> float:
        return self.api_s + self.convert_s + self.rebuild_s


def raw_get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=600) as response:
        return len(response.read())


def startup_once(url: str, api: KubeApi, expected_vas: int) -> StartupRun:
    gc.collect()
    started = time.perf_counter()
    size = raw_get(f"{url}/api/v1/persistentvolumes") + raw_get(f"{url}/apis/storage.k8s.io/v1/volumeattachments")
    raw = time.perf_counter() - started
    if size <= 0:
        raise RuntimeError("the API emulator answered empty lists")
    manager = new_manager(available_backends()[BACKEND])
    clock = SystemClock()
    gc.collect()
    # The steps of KubeAttachmentSync.start before its watches, timed apart.
    t0 = time.perf_counter()
    pvs = {pv.name: pv for pv in api.list_pvs(DEFAULT_DRIVER_NAME)}
    t1 = time.perf_counter()
    records, _version = api.list_volume_attachments(DEFAULT_DRIVER_NAME)
    t2 = time.perf_counter()
    facts = [fact_from_record(record, pvs.get(record.volume_id), clock) for record in records]
    t3 = time.perf_counter()
    manager.rebuild(facts)
    t4 = time.perf_counter()
    if len(records) != expected_vas or sum(len(manager.published_nodes(v)) for v in pvs) != expected_vas:
        raise RuntimeError(f"start-up saw {len(records)} VolumeAttachments, expected {expected_vas}")
    return StartupRun(raw, t1 - t0, t2 - t1, t3 - t2, t4 - t3)


def bench_startup(specs: list[VaSpec], repeat: int) -> tuple[list[StartupRun], float]:
    """Runs of the start-up path, and how long seeding the emulator took (not part of any run)."""
    with emulator_process(specs) as (url, seeding_s):
        api = KubeApi(KubeSettings(base_url=url, request_timeout=600.0))
        try:
            return [startup_once(url, api, len(specs)) for _ in range(repeat)], seeding_s
        finally:
            api.close()


# ---- part 2: ControllerPublishVolume over gRPC ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishRow:
    """One RPC at one profile: per-run values, reported as medians over runs."""

    profile: str
    rpc: str
    phase: str  # the burst the RPC was measured in ("publish+unpublish" holds both attachment RPCs)
    calls: int  # of this RPC, per run
    rates: tuple[float, ...]  # calls/s of the whole phase, each run
    p50s_ms: tuple[float, ...]
    p99s_ms: tuple[float, ...]
    commands_per_call: dict[str, float]  # RouterOS operations per call of the phase (per pair for the attachment)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.p50s_ms)

    @property
    def p99_ms(self) -> float:
        return statistics.median(self.p99s_ms)


@dataclass(frozen=True, slots=True)
class PhaseRun:
    wall_s: float
    latencies: dict[str, list[float]]  # rpc -> seconds of each call
    commands: Counter[str]
    units: int  # calls, or publish+unpublish pairs


class PublishBench:
    """A controller plugin in this process with C callers' volumes already created."""

    def __init__(self, sim: SimulatorProcess, directory: Path, args: argparse.Namespace) -> None:
        self.callers: int = args.callers
        self.per_caller: int = args.calls_per_caller
        self.nodes = [f"bench-node-{index:02d}" for index in range(self.callers)]
        socket_path = directory / "csi.sock"
        flags = {
            "mode": "controller",
            "endpoint": f"unix://{socket_path}",
            "metrics_address": "off",
            "kube_api": "off",
            "static_nodes": ",".join(self.nodes),
            "state_dir": str(directory / "attachments"),
            "grpc_workers": str(args.grpc_workers),
            "routeros_transport": "ssh",
            "routeros_address": "127.0.0.1",
            "routeros_ssh_port": str(sim.ssh_port),
            "routeros_user": SIM_USER,
            "routeros_ssh_key": str(sim.key_file),
            "routeros_host_key": sim.host_key,
            "routeros_pool_size": str(args.pool_size),
        }
        self.plugin = Plugin(load_plugin_config(flags, {}))
        self.plugin.start()
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.identity = csi_pb2_grpc.IdentityStub(self.channel)
        self.controller = csi_pb2_grpc.ControllerStub(self.channel)
        self.volumes: list[list[csi_pb2.Volume]] = []

    def close(self) -> None:
        self.channel.close()
        self.plugin.stop()

    def create_volumes(self, per_caller: int) -> None:
        names = [[f"bench-att-{c:02d}-{v}" for v in range(per_caller)] for c in range(self.callers)]

        created: list[list[csi_pb2.Volume | None]] = [[None] * per_caller for _ in names]

        def create(index: int) -> object:
            caller, own = divmod(index, per_caller)
            request = csi_pb2.CreateVolumeRequest(
                name=names[caller][own],
                capacity_range=csi_pb2.CapacityRange(required_bytes=GiB),
                volume_capabilities=[CAPABILITY],
            )
            created[caller][own] = self.controller.CreateVolume(request, timeout=RPC_TIMEOUT).volume
            return None

        run_threads(self.callers, per_caller, create)
        self.volumes = [[volume for volume in caller if volume is not None] for caller in created]

    def probe(self, index: int) -> object:
        response = self.identity.Probe(csi_pb2.ProbeRequest(), timeout=RPC_TIMEOUT)
        if not response.ready.value:
            raise RuntimeError("Probe answered not ready")
        return response

    def get_volume(self, index: int) -> object:
        volume = self._volume(index)
        request = csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id)
        return self.controller.ControllerGetVolume(request, timeout=RPC_TIMEOUT)

    def _volume(self, index: int) -> csi_pb2.Volume:
        own = self.volumes[index // self.per_caller]
        return own[index % len(own)]

    def attachment_pair(self, latencies: dict[str, list[list[float]]]) -> Callable[[int], object]:
        """Publish one of the caller's volumes to the caller's node, then unpublish it; each RPC timed apart."""

        def pair(index: int) -> object:
            caller = index // self.per_caller
            volume = self._volume(index)
            node = self.nodes[caller]
            started = time.perf_counter()
            self.controller.ControllerPublishVolume(
                csi_pb2.ControllerPublishVolumeRequest(
                    volume_id=volume.volume_id,
                    node_id=node,
                    volume_capability=CAPABILITY,
                    volume_context=volume.volume_context,
                ),
                timeout=RPC_TIMEOUT,
            )
            published = time.perf_counter()
            self.controller.ControllerUnpublishVolume(
                csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=node), timeout=RPC_TIMEOUT
            )
            latencies["ControllerPublishVolume"][caller].append(published - started)
            latencies["ControllerUnpublishVolume"][caller].append(time.perf_counter() - published)
            return None

        return pair

    def phase(self, name: str) -> PhaseRun:
        before = command_counts(self.plugin)
        if name == "publish+unpublish":
            per_caller: dict[str, list[list[float]]] = {
                rpc: [[] for _ in range(self.callers)]
                for rpc in ("ControllerPublishVolume", "ControllerUnpublishVolume")
            }
            wall, _pairs = run_threads(self.callers, self.per_caller, self.attachment_pair(per_caller))
            latencies = {rpc: [s for caller in lists for s in caller] for rpc, lists in per_caller.items()}
        else:
            call = self.probe if name == "Probe" else self.get_volume
            wall, samples = run_threads(self.callers, self.per_caller, call)
            latencies = {name: samples}
        commands = command_counts(self.plugin) - before
        return PhaseRun(wall, latencies, commands, self.callers * self.per_caller)


PHASES = ("Probe", "ControllerGetVolume", "publish+unpublish")


def bench_publish(profile: str, args: argparse.Namespace) -> list[PublishRow]:
    runs: dict[str, list[PhaseRun]] = {phase: [] for phase in PHASES}
    with tempfile.TemporaryDirectory(prefix="rds-bench-att-") as tmp, simulator_process(profile) as sim:
        bench = PublishBench(sim, Path(tmp), args)
        try:
            bench.create_volumes(args.volumes_per_caller)
            # Untimed: opens the pool's connections and warms every code path, as in a running controller.
            for phase in PHASES:
                bench.phase(phase)
            for _ in range(args.repeat):
                for phase in PHASES:  # interleaved, so that a noisy moment hits every phase alike
                    runs[phase].append(bench.phase(phase))
        finally:
            bench.close()
    rows: list[PublishRow] = []
    for phase, phase_runs in runs.items():
        calls = sum(len(samples) for samples in phase_runs[0].latencies.values())
        total = sum((run.commands for run in phase_runs), Counter[str]())
        units = sum(run.units for run in phase_runs)
        for rpc in phase_runs[0].latencies:
            rows.append(
                PublishRow(
                    profile,
                    rpc,
                    phase,
                    len(phase_runs[0].latencies[rpc]),
                    tuple(calls / run.wall_s for run in phase_runs),
                    tuple(percentile_ms(run.latencies[rpc], 50) for run in phase_runs),
                    tuple(percentile_ms(run.latencies[rpc], 99) for run in phase_runs),
                    {op: count / units for op, count in sorted(total.items())},
                )
            )
    return rows


# ---- report ---------------------------------------------------------------------------------------------------------


def print_rebuild(rows: list[RebuildRow], plans: tuple[float, ...], text: str, repeat: int) -> None:
    print(f"rebuild: AttachmentManager.rebuild() of {text}; median of {repeat} runs")
    print(f"plan_rebuild alone (pure Python, the same for every backend): {statistics.median(plans):.3f} s")
    python = next((row for row in rows if row.backend == "python"), None)
    header = f"{'backend':<7} | {'rebuild s':>9} | {'of which replace_all s':>21} | {'vs python':>9}"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row.rebuild / python.rebuild:>8.2f}x" if python is not None else f"{'-':>9}"
        print(f"{row.backend:<7} | {row.rebuild:>9.3f} | {row.replace_all:>21.3f} | {ratio}")
    if len(rows) == 1:
        print("cython backend unavailable (not built, or RDS_CSI_NO_EXTENSIONS set): python only")


def print_startup(runs: list[StartupRun], seeding_s: float, text: str) -> None:
    def median(values: Iterable[float]) -> float:
        return statistics.median(list(values))

    total = median(run.total_s for run in runs)
    print(
        f"start-up: API emulator (own process, seeded in {seeding_s:.1f} s) with {text}; "
        f"{BACKEND} table; median of {len(runs)} runs"
    )
    header = f"{'step':<40} | {'seconds':>8} | {'share':>6}"
    print(header)
    print("-" * len(header))
    steps = [
        ("list_pvs", median(run.list_pvs_s for run in runs)),
        ("list_volume_attachments", median(run.list_vas_s for run in runs)),
        ("fact_from_record (conversion)", median(run.convert_s for run in runs)),
        ("AttachmentManager.rebuild", median(run.rebuild_s for run in runs)),
        ("total", total),
    ]
    for step, seconds in steps:
        print(f"{step:<40} | {seconds:>8.2f} | {seconds / total:>6.1%}")
    raw = median(run.raw_get_s for run in runs)
    api = median(run.api_s for run in runs)
    print(f"baseline: plain HTTP GET of both lists {raw:.2f} s; the API client's two lists take {api / raw:.1f}x that")


def print_publish(rows: list[PublishRow], args: argparse.Namespace) -> None:
    print(
        f"publish: {args.callers} concurrent callers x {args.calls_per_caller} calls per run over gRPC (unix socket), "
        f"SSH pool {args.pool_size}, {args.grpc_workers} gRPC workers; medians of {args.repeat} runs"
    )
    header = (
        f"{'profile':<9} | {'rpc':<25} | {'calls':>5} | {'phase calls/s':>13} | {'p50 ms':>7} | {'p99 ms':>7} | "
        f"{'p50 vs Probe':>12} | {'p99 vs Probe':>12} | RouterOS commands per call (per pair)"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        probe = next(r for r in rows if r.profile == row.profile and r.rpc == "Probe")
        commands = ", ".join(f"{count:.3g} {op}" for op, count in row.commands_per_call.items()) or "none"
        print(
            f"{row.profile:<9} | {row.rpc:<25} | {row.calls:>5} | {row.rate:>13,.0f} | {row.p50_ms:>7.2f} | "
            f"{row.p99_ms:>7.2f} | {row.p50_ms / probe.p50_ms:>11.2f}x | {row.p99_ms / probe.p99_ms:>11.2f}x | "
            f"{commands}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated VolumeAttachments")
    parser.add_argument("--nodes", type=int, default=500, help="nodes the VolumeAttachments are spread over")
    parser.add_argument("--migration-share", type=float, default=0.01, help="share of volumes in a migration")
    parser.add_argument("--block-share", type=float, default=0.10, help="share of multi-node block volumes")
    parser.add_argument("--vas", type=int, default=100_000, help="VolumeAttachments for the rebuild part")
    parser.add_argument("--rebuild-repeat", type=int, default=5, help="runs per backend; the median is reported")
    parser.add_argument(
        "--startup-vas", type=int, default=20_000, help="VolumeAttachments in the API emulator (100000 takes minutes)"
    )
    parser.add_argument("--startup-repeat", type=int, default=3, help="start-up runs; the median is reported")
    parser.add_argument("--profiles", default="zero,realistic", help="simulator latency profiles for publish")
    parser.add_argument("--callers", type=int, default=10, help="concurrent gRPC callers")
    parser.add_argument("--calls-per-caller", type=int, default=40, help="calls (or pairs) per caller per run")
    parser.add_argument("--volumes-per-caller", type=int, default=2, help="volumes each caller cycles through")
    parser.add_argument("--pool-size", type=int, default=10, help="RouterOS SSH connections of the controller")
    parser.add_argument("--grpc-workers", type=int, default=16, help="the plugin's gRPC worker threads")
    parser.add_argument("--repeat", type=int, default=3, help="publish runs per profile; medians are reported")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="error")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    configure_logging("text", args.log_level)
    results: dict[str, Any] = {}

    if "rebuild" in parts:
        specs = workload(args.vas, args.nodes, args.migration_share, args.block_share, args.seed)
        rows, plans = bench_rebuild(specs, args.rebuild_repeat)
        print_rebuild(rows, plans, workload_text(specs, args.nodes), args.rebuild_repeat)
        results["rebuild"] = {
            "workload": workload_text(specs, args.nodes),
            "plan_rebuild_s": plans,
            "rows": [{**asdict(row), "rebuild": row.rebuild, "replace_all": row.replace_all} for row in rows],
        }
        print()
    if "startup" in parts:
        specs = workload(args.startup_vas, args.nodes, args.migration_share, args.block_share, args.seed)
        runs, seeding_s = bench_startup(specs, args.startup_repeat)
        print_startup(runs, seeding_s, workload_text(specs, args.nodes))
        results["startup"] = {
            "workload": workload_text(specs, args.nodes),
            "backend": BACKEND,
            "seeding_s": seeding_s,
            "runs": [{**asdict(run), "api_s": run.api_s, "total_s": run.total_s} for run in runs],
        }
        print()
    if "publish" in parts:
        profiles = [name.strip() for name in args.profiles.split(",") if name.strip()]
        publish_rows = [row for profile in profiles for row in bench_publish(profile, args)]
        print_publish(publish_rows, args)
        results["publish"] = [
            {**asdict(row), "rate": row.rate, "p50_ms": row.p50_ms, "p99_ms": row.p99_ms} for row in publish_rows
        ]
    if args.json is not None:
        write_report(args.json, "attachments", args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
