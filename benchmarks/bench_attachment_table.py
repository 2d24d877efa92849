"""Attachment table throughput: the Cython module against its pure-Python twin, measured in the same run.

Workload: 10^4 volumes, each with two candidate nodes (so attach never meets a third node), a mix of
is_attached / attach / detach calls drawn in advance so the loop measures the table, not the random generator.
Run: ``python benchmarks/bench_attachment_table.py [--volumes N] [--ops N] [--threads 1,2]``.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from types import ModuleType
from typing import Any

from rds_csi._native import AccessKind, available_backends

KIND = AccessKind.MULTI_NODE_BLOCK
NODES = [f"node-{i}" for i in range(8)]

Op = tuple[int, str, str]


def _workload(volumes: int, ops: int, seed: int, read_share: float) -> list[Op]:
    rng = random.Random(seed)
    result: list[Op] = []
    for _ in range(ops):
        index = rng.randrange(volumes)
        node = NODES[(index + rng.randrange(2)) % len(NODES)]
        roll = rng.random()
        code = 0 if roll < read_share else (1 if roll < (1 + read_share) / 2 else 2)
        result.append((code, f"pvc-{index:08d}", node))
    return result


def _prepared_table(backend: ModuleType, volumes: int, stripes: int) -> Any:
    table = backend.AttachmentTable(stripes=stripes)
    for index in range(volumes):
        table.attach(f"pvc-{index:08d}", NODES[index % len(NODES)], KIND, 0.0)
    return table


def _run(table: Any, ops: list[Op]) -> None:
    is_attached, attach, detach = table.is_attached, table.attach, table.detach
    now = 1.0
    for code, volume, node in ops:
        if code == 0:
            is_attached(volume, node)
        elif code == 1:
            attach(volume, node, KIND, now)
        else:
            detach(volume, node, now)


def measure(backend: ModuleType, threads: int, args: argparse.Namespace) -> float:
    """Best-of-``repeat`` operations per second over all threads together."""
    best = 0.0
    for attempt in range(args.repeat):
        table = _prepared_table(backend, args.volumes, args.stripes)
        loads = [_workload(args.volumes, args.ops, 1000 * attempt + i, args.read_share) for i in range(threads)]
        barrier = threading.Barrier(threads + 1)

        def worker(load: list[Op], table: Any = table, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            _run(table, load)

        workers = [threading.Thread(target=worker, args=(load,)) for load in loads]
        for thread in workers:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in workers:
            thread.join()
        elapsed = time.perf_counter() - started
        best = max(best, threads * args.ops / elapsed)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=200_000, help="operations per thread per run")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--stripes", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the best is reported")
    parser.add_argument("--read-share", type=float, default=0.8, help="share of is_attached calls")
    args = parser.parse_args(argv)
    thread_counts = [int(part) for part in args.threads.split(",")]
    backends = available_backends()
    names = [name for name in ("python", "cython") if name in backends]
    if "cython" not in backends:
        print("cython backend unavailable (not built, or RDS_CSI_NO_EXTENSIONS set): python only")

    results = {(name, n): measure(backends[name], n, args) for name in names for n in thread_counts}
    print(
        f"attachment table: {args.volumes} volumes, {args.ops} ops/thread, {args.read_share:.0%} is_attached, "
        f"rest attach/detach, {args.stripes} stripes, best of {args.repeat}"
    )
    header = f"{'threads':>7} | " + " | ".join(f"{name + ' ops/s':>14}" for name in names)
    if len(names) == 2:
        header += f" | {'cython/python':>13}"
    print(header)
    print("-" * len(header))
    for n in thread_counts:
        row = f"{n:>7} | " + " | ".join(f"{results[name, n]:>14,.0f}" for name in names)
        if len(names) == 2:
            row += f" | {results['cython', n] / results['python', n]:>12.2f}x"
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
