"""Controller throughput: 100 concurrent CreateVolume, then 100 concurrent DeleteVolume (distinct names), over real
gRPC on a unix socket, against the simulator with realistic latency, compared with the backend's own lower bound.

The controller runs in this process (as ``rds-csi plugin --mode controller`` would) and reaches the simulator, in
its own process, over SSH with a pool of P connections. Every RPC must succeed on its first try: failures are
counted by status code, printed, and make the exit status 1. The lower bound of a phase is the simulator's latency
summed over the RouterOS commands that phase issued, divided by P: P connections run at most P commands at once,
so no scheduling can beat it. The commands are counted from the plugin's own ``rds_csi_routeros_commands_total``;
the ratio wall time / lower bound says how much the controller adds on top.

Run: ``python benchmarks/bench_controller.py [--pool-sizes 4,8] [--volumes 100] [--repeat 3] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from bench_routeros_backend import (
    SIM_USER,
    SimulatorProcess,
    percentile_ms,
    run_threads,
    simulator_process,
    write_report,
)

from rds_csi.csi.proto import csi_pb2, csi_pb2_grpc
from rds_csi.observability.logging import configure_logging
from rds_csi.plugin.config import load_plugin_config
from rds_csi.plugin.lifecycle import Plugin
from rds_csi.simulator import PROFILES

PROFILE = "realistic"
GiB = 1 << 30
RPC_TIMEOUT = 300.0

# The simulator's latency class of each client operation, i.e. of the command verb each one sends.
LATENCY_CLASS = {
    "disk_get": "print",
    "disk_list": "print",
    "file_list": "print",
    "pool_capacity": "print",
    "system_resource": "print",
    "disk_add": "add",
    "disk_resize": "set",
    "disk_set_allowed_hosts": "set",
    "disk_remove": "remove",
    "file_remove": "remove",
    "disk_traffic": "monitor",
}

CAPABILITY = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER),
)


@dataclass(frozen=True, slots=True)
class Phase:
    """One burst of concurrent RPCs and what the backend did for it."""

    rpc: str
    calls: int
    wall_s: float
    lower_bound_s: float
    commands: dict[str, int]  # RouterOS operation -> commands issued during the burst
    latencies_s: tuple[float, ...]
    codes: tuple[str, ...]  # gRPC status code name of each call, in call order

    @property
    def failures(self) -> Counter[str]:
        return Counter(code for code in self.codes if code != "OK")


@dataclass(frozen=True, slots=True)
class Summary:
    """The runs of one RPC (or of both, ``rpc="both"``) at one pool size: medians over runs."""

    rpc: str
    pool_size: int
    runs: int
    calls: int
    wall_s: float
    lower_bound_s: float
    ratio: float
    p50_ms: float | None  # RPC latency over all runs; None for the "both" row
    p99_ms: float | None
    commands_per_call: dict[str, float]
    failures: dict[str, int]  # status code -> failed calls, over all runs

    @classmethod
    def of(cls, rpc: str, pool_size: int, phases: list[Phase]) -> Summary:
        latencies = [sample for phase in phases for sample in phase.latencies_s]
        calls = phases[0].calls
        totals: Counter[str] = Counter()
        failures: Counter[str] = Counter()
        for phase in phases:
            totals.update(phase.commands)
            failures += phase.failures
        return cls(
            rpc,
            pool_size,
            len(phases),
            calls,
            statistics.median(p.wall_s for p in phases),
            statistics.median(p.lower_bound_s for p in phases),
            statistics.median(p.wall_s / p.lower_bound_s for p in phases),
            percentile_ms(latencies, 50),
            percentile_ms(latencies, 99),
            {op: count / (calls * len(phases)) for op, count in sorted(totals.items())},
            dict(failures),
        )

    @classmethod
    def both(cls, pool_size: int, creates: list[Phase], deletes: list[Phase]) -> Summary:
        """Create and delete of the same run added up."""
        walls = [c.wall_s + d.wall_s for c, d in zip(creates, deletes, strict=True)]
        bounds = [c.lower_bound_s + d.lower_bound_s for c, d in zip(creates, deletes, strict=True)]
        return cls(
            "both",
            pool_size,
            len(walls),
            creates[0].calls + deletes[0].calls,
            statistics.median(walls),
            statistics.median(bounds),
            statistics.median(w / b for w, b in zip(walls, bounds, strict=True)),
            None,
            None,
            {},
            dict(sum((p.failures for p in (*creates, *deletes)), Counter[str]())),
        )


def command_counts(plugin: Plugin) -> Counter[str]:
    """RouterOS commands the plugin has had answered so far, by operation.

    Commands that ended ``unavailable`` are left out: against a healthy simulator that means no connection was
    free in time, so the command never reached the router and used none of its time.
    """
    counts: Counter[str] = Counter()
    for family in plugin.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "rds_csi_routeros_commands_total" and sample.labels["result"] != "unavailable":
                counts[sample.labels["op"]] += int(sample.value)
    return counts


def lower_bound(commands: Counter[str], pool_size: int) -> float:
    """Seconds P connections need at least to run ``commands`` at the profile's latencies."""
    profile = PROFILES[PROFILE]
    unknown = set(commands) - set(LATENCY_CLASS)
    if unknown:
        raise RuntimeError(f"no latency class for RouterOS operations {sorted(unknown)}; extend LATENCY_CLASS")
    busy = sum(count * profile.seconds.get(LATENCY_CLASS[op], profile.default) for op, count in commands.items())
    return busy / pool_size


def burst(plugin: Plugin, rpc: str, pool_size: int, call: Callable[[int], object], calls: int) -> Phase:
    """``calls`` RPCs from as many threads at once. A failed call is recorded by its status code, not retried:
    the point is to see whether every call succeeds the first time."""
    codes = ["OK"] * calls

    def recorded(index: int) -> None:
        try:
            call(index)
        except grpc.RpcError as exc:
            codes[index] = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"

    before = command_counts(plugin)
    wall, latencies = run_threads(calls, 1, recorded)
    commands = command_counts(plugin) - before
    return Phase(rpc, calls, wall, lower_bound(commands, pool_size), dict(commands), tuple(latencies), tuple(codes))


def start_controller(sim: SimulatorProcess, socket_path: Path, pool_size: int, workers: int) -> Plugin:
    flags = {
        "mode": "controller",
        "endpoint": f"unix://{socket_path}",
        "metrics_address": "off",
        "state_dir": str(socket_path.parent / "attachments"),
        "grpc_workers": str(workers),
        "routeros_transport": "ssh",
        "routeros_address": "127.0.0.1",
        "routeros_ssh_port": str(sim.ssh_port),
        "routeros_user": SIM_USER,
        "routeros_ssh_key": str(sim.key_file),
        "routeros_host_key": sim.host_key,
        "routeros_pool_size": str(pool_size),
    }
    plugin = Plugin(load_plugin_config(flags, {}))
    plugin.start()
    return plugin


def creator(controller: csi_pb2_grpc.ControllerStub, names: list[str]) -> Callable[[int], object]:
    def create(index: int) -> object:
        request = csi_pb2.CreateVolumeRequest(
            name=names[index],
            capacity_range=csi_pb2.CapacityRange(required_bytes=GiB),
            volume_capabilities=[CAPABILITY],
        )
        response = controller.CreateVolume(request, timeout=RPC_TIMEOUT)
        if response.volume.volume_id != names[index]:
            raise RuntimeError(f"CreateVolume {names[index]} answered volume id {response.volume.volume_id!r}")
        return response

    return create


def deleter(controller: csi_pb2_grpc.ControllerStub, names: list[str]) -> Callable[[int], object]:
    def delete(index: int) -> object:
        return controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=names[index]), timeout=RPC_TIMEOUT)

    return delete


def listed_volumes(controller: csi_pb2_grpc.ControllerStub) -> set[str]:
    response = controller.ListVolumes(csi_pb2.ListVolumesRequest(), timeout=RPC_TIMEOUT)
    return {entry.volume.volume_id for entry in response.entries}


def bench_pool_size(sim: SimulatorProcess, directory: Path, pool_size: int, args: argparse.Namespace) -> list[Summary]:
    socket_path = directory / f"csi-{pool_size}.sock"
    plugin = start_controller(sim, socket_path, pool_size, args.grpc_workers)
    creates: list[Phase] = []
    deletes: list[Phase] = []
    try:
        with grpc.insecure_channel(f"unix://{socket_path}") as channel:
            controller = csi_pb2_grpc.ControllerStub(channel)
            # Untimed: opens the pool's connections, as a controller that has been running has them open.
            run_threads(pool_size, 1, lambda i: listed_volumes(controller))
            for attempt in range(args.repeat):
                names = [f"bench-p{pool_size}-r{attempt}-{index:03d}" for index in range(args.volumes)]
                creates.append(burst(plugin, "CreateVolume", pool_size, creator(controller, names), len(names)))
                created = {name for name, code in zip(names, creates[-1].codes, strict=True) if code == "OK"}
                missing = created - listed_volumes(controller)
                if missing:
                    raise RuntimeError(f"{len(missing)} created volumes are not listed, e.g. {min(missing)}")
                delete = deleter(controller, names)
                deletes.append(burst(plugin, "DeleteVolume", pool_size, delete, len(names)))
                # Untimed clean-up after failed deletes, so that every run starts from the same empty RDS.
                for name in set(names) & listed_volumes(controller):
                    delete(names.index(name))
                left = set(names) & listed_volumes(controller)
                if left:
                    raise RuntimeError(f"{len(left)} deleted volumes are still listed, e.g. {min(left)}")
    finally:
        plugin.stop()
    return [
        Summary.of("CreateVolume", pool_size, creates),
        Summary.of("DeleteVolume", pool_size, deletes),
        Summary.both(pool_size, creates, deletes),
    ]


# ---- report ---------------------------------------------------------------------------------------------------------


def _commands_text(per_call: dict[str, float]) -> str:
    return ", ".join(f"{count:.3g} {op}" for op, count in per_call.items()) or "-"


def print_table(summaries: list[Summary]) -> None:
    header = (
        f"{'pool':>4} | {'rpc':<12} | {'calls':>5} | {'wall s':>7} | {'bound s':>7} | {'wall/bound':>10}"
        f" | {'p50 ms':>7} | {'p99 ms':>7} | {'failed':>6} | RouterOS commands per call"
    )
    print(header)
    print("-" * len(header))
    for s in summaries:
        p50 = f"{s.p50_ms:>7.0f}" if s.p50_ms is not None else f"{'-':>7}"
        p99 = f"{s.p99_ms:>7.0f}" if s.p99_ms is not None else f"{'-':>7}"
        print(
            f"{s.pool_size:>4} | {s.rpc:<12} | {s.calls:>5} | {s.wall_s:>7.2f} | {s.lower_bound_s:>7.2f} | "
            f"{s.ratio:>9.2f}x | {p50} | {p99} | {sum(s.failures.values()):>6} | "
            f"{_commands_text(s.commands_per_call)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pool-sizes", default="4,8", help="comma-separated SSH pool sizes")
    parser.add_argument("--volumes", type=int, default=100, help="concurrent CreateVolume (then DeleteVolume) calls")
    parser.add_argument("--repeat", type=int, default=3, help="runs per pool size; medians are reported")
    parser.add_argument("--grpc-workers", type=int, default=16, help="the plugin's gRPC worker threads")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="error")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    pool_sizes = [int(part) for part in args.pool_sizes.split(",")]
    configure_logging("text", args.log_level)

    summaries: list[Summary] = []
    with tempfile.TemporaryDirectory(prefix="rds-bench-ctl-") as tmp, simulator_process(PROFILE) as sim:
        for pool_size in pool_sizes:
            summaries += bench_pool_size(sim, Path(tmp), pool_size, args)

    latencies = ", ".join(f"{op} {seconds * 1000:g} ms" for op, seconds in PROFILES[PROFILE].seconds.items())
    print(
        f"controller: {args.volumes} concurrent CreateVolume then DeleteVolume over gRPC, SSH backend, simulator "
        f"profile {PROFILE} ({latencies}), {args.grpc_workers} gRPC workers, median of {args.repeat} runs"
    )
    print_table(summaries)
    failed = [s for s in summaries if s.failures and s.rpc != "both"]
    for s in failed:
        codes = ", ".join(f"{count} {code}" for code, count in sorted(s.failures.items()))
        print(f"FAILED: pool {s.pool_size} {s.rpc}: {codes} (of {s.calls * s.runs} calls)")
    if args.json is not None:
        profile = {"name": PROFILE, "seconds": dict(PROFILES[PROFILE].seconds)}
        write_report(args.json, "controller", args, {"profile": profile, "summaries": [asdict(s) for s in summaries]})
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
