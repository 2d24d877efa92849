"""RouterOS backend throughput: a pool of persistent SSH connections against a new SSH connection per command,
and REST with a connection pool, all measured in the same run against the simulator with zero latency.

The simulator runs as its own process (``rds-csi simulator``), so its GIL and CPU time are not the client's: what
is measured is the driver's side (handshakes, channel setup, parsing) plus one loopback round trip. Every cell runs
the same read command (``RouterOSClient.get_disk`` of one of a few existing disks, or ``list_disks``) from the same
number of threads; the "fresh" cell opens, authenticates and closes one SSH connection per command, which is what
the driver would do without a pool. Ratios are against that fresh cell of the same run.

Run: ``python benchmarks/bench_routeros_backend.py [--pools 1,2,4,8] [--threads 8] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import rds_csi
from rds_csi.plugin.routeros_factory import ensure_client_key
from rds_csi.routeros.client import RouterOSClient
from rds_csi.routeros.names import backing_file_path
from rds_csi.routeros.rest import RestSettings, RestTransport
from rds_csi.routeros.ssh import SshPool, SshSettings, SshTransport
from rds_csi.routeros.transport import Transport

SIM_USER = "bench"
BASE_PATH = "/storage-pool/metal-csi"
GiB = 1 << 30
_READY_PREFIX = "simulator ready "


# ---- the simulator process (shared with bench_controller.py) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulatorProcess:
    """A running ``rds-csi simulator`` and what a client needs to reach it over SSH (key auth) and REST."""

    ssh_port: int
    rest_url: str  # without the trailing /rest
    host_key: str  # SHA256 fingerprint, as the ready line prints it
    key_file: Path
    password: str
    certificate: Path

    def ssh_settings(self, pool_size: int) -> SshSettings:
        return SshSettings(
            host="127.0.0.1",
            port=self.ssh_port,
            username=SIM_USER,
            key_file=str(self.key_file),
            pinned_host_key=self.host_key,
            pool_size=pool_size,
        )

    def rest_settings(self, pool_size: int) -> RestSettings:
        return RestSettings(
            base_url=self.rest_url,
            username=SIM_USER,
            password=self.password,
            ca_file=str(self.certificate),
            pool_size=pool_size,
        )


@contextmanager
def simulator_process(profile: str) -> Iterator[SimulatorProcess]:
    """Start ``rds-csi simulator --profile <profile>`` on loopback ephemeral ports; stop it on exit."""
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rds-bench-")))
        key_file, public_file = ensure_client_key(directory)
        password = secrets.token_urlsafe(16)
        password_file = directory / "password"
        password_file.write_text(password)
        state = directory / "sim"
        argv = [
            sys.executable, "-m", "rds_csi.cli", "simulator", "--ssh-port", "0", "--rest-port", "0",
            "--profile", profile, "--state-dir", str(state), "--user", SIM_USER,
            "--password-file", str(password_file), "--authorized-keys", str(public_file),
        ]  # fmt: skip
        # The child must import the same rds_csi as this process, wherever it was started from.
        source_root = str(Path(rds_csi.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))}
        log_path = directory / "simulator.log"
        log = stack.enter_context(log_path.open("w"))
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        stack.callback(_stop, process)
        fields = _ready_fields(process)
        if fields is None:
            process.kill()
            process.wait()
            raise RuntimeError(f"simulator did not start: {log_path.read_text()}")
        yield SimulatorProcess(
            ssh_port=int(fields["ssh"].rsplit(":", 1)[1]),
            rest_url=fields["rest"].removesuffix("/rest"),
            host_key=fields["host_key"],
            key_file=key_file,
            password=password,
            certificate=state / "rest-cert.pem",
        )


def _ready_fields(process: subprocess.Popen[str]) -> dict[str, str] | None:
    assert process.stdout is not None
    # The simulator prints exactly one line on stdout; end of file means it exited before being ready.
    for line in process.stdout:
        if line.startswith(_READY_PREFIX):
            return dict(part.split("=", 1) for part in line[len(_READY_PREFIX) :].split())
    return None


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---- measuring ------------------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    """What the numbers depend on, recorded with them."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "libraries": {name: metadata.version(name) for name in ("paramiko", "grpcio", "urllib3", "cryptography")},
    }


def write_report(path: Path, benchmark: str, args: argparse.Namespace, results: object) -> None:
    """The JSON form of a run: machine facts, the settings it ran with, and its results."""
    report = {
        "benchmark": benchmark,
        "machine": machine_facts(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")


def percentile_ms(samples: list[float], percent: int) -> float:
    """The ``percent``-th percentile of latencies given in seconds, in milliseconds."""
    if len(samples) == 1:
        return samples[0] * 1000
    return statistics.quantiles(samples, n=100, method="inclusive")[percent - 1] * 1000


def run_threads(threads: int, per_thread: int, call: Callable[[int], object]) -> tuple[float, list[float]]:
    """Run ``call(i)`` ``per_thread`` times in each of ``threads`` threads started together.

    Returns the wall time from the common start to the last finish, and every call's latency. An error ends its
    thread and fails the whole measurement: a benchmark that counts failures as throughput would be lying.
    """
    barrier = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        mine = latencies[index]
        barrier.wait()
        try:
            for i in range(per_thread):
                started = time.perf_counter()
                call(index * per_thread + i)
                mine.append(time.perf_counter() - started)
        except Exception as exc:
            failures.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} of {threads} threads failed; first: {failures[0]!r}") from failures[0]
    return elapsed, [sample for per_worker in latencies for sample in per_worker]


@dataclass(frozen=True, slots=True)
class Cell:
    """One row of the table: a way of reaching RouterOS, measured ``repeat`` times."""

    transport: str  # "ssh pool", "ssh fresh" or "rest pool"
    pool_size: int
    threads: int
    commands: int  # per run
    rates: tuple[float, ...]  # commands/s of each run
    p50_ms: float  # over the latencies of all runs
    p99_ms: float
    # CPU time of this whole process (every thread, paramiko's included) per command: the driver's own cost,
    # which the simulator's throughput ceiling does not hide. Median over runs.
    client_cpu_us: float

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


def measure(
    transport: str, pool_size: int, command: Callable[[int], object], args: argparse.Namespace, commands: int
) -> Cell:
    per_thread = max(1, commands // args.threads)
    # Untimed: opens the pool's connections and warms the code paths, as in a long-running controller.
    run_threads(args.threads, 2, command)
    rates: list[float] = []
    cpu: list[float] = []
    samples: list[float] = []
    for _ in range(args.repeat):
        cpu_before = time.process_time()
        elapsed, latencies = run_threads(args.threads, per_thread, command)
        cpu.append((time.process_time() - cpu_before) / len(latencies) * 1e6)
        rates.append(len(latencies) / elapsed)
        samples += latencies
    return Cell(
        transport,
        pool_size,
        args.threads,
        per_thread * args.threads,
        tuple(rates),
        percentile_ms(samples, 50),
        percentile_ms(samples, 99),
        statistics.median(cpu),
    )


def read_command(client: RouterOSClient, slots: list[str], name: str) -> Callable[[int], object]:
    if name == "list_disks":
        return lambda i: client.list_disks()
    return lambda i: client.get_disk(slots[i % len(slots)])


def pooled(sim: SimulatorProcess, transport: str, pool_size: int, slots: list[str], args: argparse.Namespace) -> Cell:
    backend: Transport = (
        SshTransport(SshPool(sim.ssh_settings(pool_size)))
        if transport == "ssh pool"
        else RestTransport(sim.rest_settings(pool_size))
    )
    try:
        command = read_command(RouterOSClient(backend), slots, args.command)
        return measure(
            transport, pool_size, command, args, args.commands if transport == "ssh pool" else args.rest_commands
        )
    finally:
        backend.close()


def fresh(sim: SimulatorProcess, slots: list[str], args: argparse.Namespace) -> Cell:
    settings = sim.ssh_settings(1)

    def once(i: int) -> object:
        # The driver's own connect path (handshake, host key pin, key auth), minus the reuse.
        transport = SshTransport(SshPool(settings))
        try:
            return read_command(RouterOSClient(transport), slots, args.command)(i)
        finally:
            transport.close()

    return measure("ssh fresh", 1, once, args, args.fresh_commands)


def seed_disks(sim: SimulatorProcess, count: int) -> list[str]:
    """Create ``count`` exported disks for the reads to find."""
    transport = SshTransport(SshPool(sim.ssh_settings(1)))
    client = RouterOSClient(transport)
    slots = [f"bench-{index:03d}" for index in range(count)]
    try:
        for slot in slots:
            client.create_disk(slot=slot, file_path=backing_file_path(BASE_PATH, slot), size_bytes=GiB, port=4420)
    finally:
        transport.close()
    return slots


# ---- report ---------------------------------------------------------------------------------------------------------


def print_table(cells: list[Cell], baseline: Cell) -> None:
    header = (
        f"{'transport':<10} | {'pool':>4} | {'threads':>7} | {'commands/s':>10} | {'p50 ms':>7} | {'p99 ms':>7}"
        f" | {'vs fresh':>8} | {'client CPU us/cmd':>17}"
    )
    print(header)
    print("-" * len(header))
    for cell in cells:
        print(
            f"{cell.transport:<10} | {cell.pool_size:>4} | {cell.threads:>7} | {cell.rate:>10,.0f} | "
            f"{cell.p50_ms:>7.2f} | {cell.p99_ms:>7.2f} | {cell.rate / baseline.rate:>7.2f}x | "
            f"{cell.client_cpu_us:>17,.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pools", default="1,2,4,8", help="comma-separated pool sizes (SSH and REST)")
    parser.add_argument("--threads", type=int, default=8, help="client threads issuing commands")
    parser.add_argument("--commands", type=int, default=600, help="commands per run through an SSH pool")
    parser.add_argument("--fresh-commands", type=int, default=120, help="commands per run, new connection each")
    parser.add_argument("--rest-commands", type=int, default=120, help="commands per run through a REST pool")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median rate is reported")
    parser.add_argument("--disks", type=int, default=16, help="disks on the simulator")
    parser.add_argument("--command", choices=("get_disk", "list_disks"), default="get_disk")
    parser.add_argument("--no-rest", action="store_true", help="skip the REST cells")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    pool_sizes = [int(part) for part in args.pools.split(",")]

    with simulator_process("zero") as sim:
        slots = seed_disks(sim, args.disks)
        baseline = fresh(sim, slots, args)
        cells = [pooled(sim, "ssh pool", size, slots, args) for size in pool_sizes]
        if not args.no_rest:
            cells += [pooled(sim, "rest pool", size, slots, args) for size in pool_sizes]

    print(
        f"RouterOS backend: {args.command} against the simulator (profile zero, own process), "
        f"{args.threads} threads, median of {args.repeat} runs; p50/p99 over all runs"
    )
    print_table([baseline, *cells], baseline)
    if args.json is not None:
        results = [{**asdict(c), "rate": c.rate, "vs_fresh": c.rate / baseline.rate} for c in [baseline, *cells]]
        write_report(args.json, "routeros_backend", args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
