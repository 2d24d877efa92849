"""NQN -> block device resolution: the Cython scanner against its pure-Python twin and against a full
``nvme list-subsys -o json``-style parse of the same tree, measured in the same run.

Trees of N connected subsystems (one controller and one namespace each), laid out as the kernel's sysfs by
``tests/nvme_sysfs.py``. What is timed is what the node calls, ``NamespaceResolver.lookup``:
- warm: the NQN is cached, so a lookup re-reads that one subsystem (the check that it still carries the NQN);
- cold: nothing cached, so a lookup reads ``subsysnqn`` files until one matches, then that subsystem;
- baseline: what a driver shelling out to ``nvme list-subsys -o json`` pays, minus the process: read every
  subsystem with its controllers and namespaces, render the JSON, parse it, search it. (nvme-cli's own start-up,
  several milliseconds, would come on top.)
NQNs are drawn over the whole tree in advance; a warm cell is its fastest batch of 20 lookups, a cold or baseline
cell its fastest whole pass (a scan stops at its match, so only NQNs spread over the tree average fairly). Run:
``python benchmarks/bench_nvme_resolve.py [--sizes 16,256,1024,4096] [--dir DIR]`` (a tmpfs DIR is closest to sysfs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rds_csi._native import SysfsScanner, available_sysfs_scanners
from rds_csi.nvme import NamespaceResolver

PREFIX = "nqn.2000-02.com.mikrotik:pvc-"


def _tree(directory: Path, size: int) -> Path:
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.nvme_sysfs import SysfsTree

    tree = SysfsTree(directory / f"sys-{size}")
    for index in range(size):
        tree.connect(f"{PREFIX}{index:05d}", size_bytes=(1 << 30) + index * 512)
    return tree.root


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def list_subsys_json(sysfs: str) -> str:
    """The document ``nvme list-subsys -o json`` prints, built by reading the whole tree as nvme-cli does."""
    subsystems = []
    base = f"{sysfs}/class/nvme-subsystem"
    for name in sorted(os.listdir(base)):
        directory = f"{base}/{name}"
        paths, namespaces = [], []
        for entry in sorted(os.listdir(directory)):
            if entry.startswith("nvme") and entry[4:].isdigit():
                controller = f"{directory}/{entry}"
                paths.append(
                    {
                        "Name": entry,
                        "Transport": _read(f"{controller}/transport"),
                        "Address": _read(f"{controller}/address"),
                        "State": _read(f"{controller}/state"),
                    }
                )
            elif entry.startswith("nvme") and "n" in entry[4:] and "c" not in entry[4:]:
                namespace = f"{directory}/{entry}"
                namespaces.append(
                    {"NameSpace": entry, "Size": _read(f"{namespace}/size"), "Device": _read(f"{namespace}/dev")}
                )
        subsystems.append(
            {
                "Name": name,
                "NQN": _read(f"{directory}/subsysnqn"),
                "Model": _read(f"{directory}/model"),
                "Serial": _read(f"{directory}/serial"),
                "Firmware": _read(f"{directory}/firmware_rev"),
                "IOPolicy": _read(f"{directory}/iopolicy"),
                "Paths": paths,
                "Namespaces": namespaces,
            }
        )
    return json.dumps([{"HostNQN": "", "Subsystems": subsystems}], indent=2)


def baseline_lookup(sysfs: str, nqn: str) -> dict[str, Any] | None:
    for host in json.loads(list_subsys_json(sysfs)):
        for subsystem in host["Subsystems"]:
            if subsystem["NQN"] == nqn:
                found: dict[str, Any] = subsystem
                return found
    return None


def _per_call_us(call: Callable[[str], object], nqns: list[str], batch: int, repeat: int) -> float:
    """Microseconds per call in the fastest batch: on a shared machine the closest to an unloaded one."""
    best = float("inf")
    for _ in range(repeat):
        for start in range(0, len(nqns), batch):
            chunk = nqns[start : start + batch]
            started = time.perf_counter()
            for nqn in chunk:
                if call(nqn) is None:
                    raise AssertionError(f"{nqn} not found")
            best = min(best, (time.perf_counter() - started) / len(chunk))
    return best * 1e6


def measure(root: Path, size: int, scanners: dict[str, SysfsScanner], args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(size)
    nqns = [f"{PREFIX}{rng.randrange(size):05d}" for _ in range(args.lookups)]
    # Scans read every subsystem: fewer of them, so that the 4,096 tree's cells take seconds, not minutes.
    cold_nqns = nqns[: max(16, min(len(nqns), args.cold_budget // size))]
    baseline_nqns = nqns[: max(8, min(len(nqns), args.baseline_budget // size))]
    results: dict[str, float] = {}
    for name, scanner in scanners.items():
        warm = NamespaceResolver(root, scanner)
        for nqn in set(nqns):
            warm.lookup(nqn)
        results[f"{name} warm"] = _per_call_us(warm.lookup, nqns, 20, args.repeat)

        def cold(nqn: str, scanner: SysfsScanner = scanner) -> object:
            return NamespaceResolver(root, scanner).lookup(nqn)

        # A scan stops at its match: only whole passes over NQNs spread across the tree are a fair average.
        results[f"{name} cold"] = _per_call_us(cold, cold_nqns, len(cold_nqns), args.repeat)
    results["list-subsys"] = _per_call_us(
        lambda nqn: baseline_lookup(str(root), nqn), baseline_nqns, len(baseline_nqns), args.repeat
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="16,256,1024,4096", help="comma-separated controller counts")
    parser.add_argument("--lookups", type=int, default=2000, help="warm lookups per run (cold ones are fewer)")
    parser.add_argument("--cold-budget", type=int, default=200_000, help="subsystems read per cold run, about")
    parser.add_argument("--baseline-budget", type=int, default=40_000, help="subsystems read per baseline run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the fastest batch is reported")
    parser.add_argument("--dir", default=None, help="where the trees are built (default: the temp directory)")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.sizes.split(",")]
    scanners = dict(sorted(available_sysfs_scanners().items(), key=lambda item: item[0] != "cython"))
    if "cython" not in scanners:
        print("cython backend unavailable (not built, or RDS_CSI_NO_EXTENSIONS set): python only")
    with tempfile.TemporaryDirectory(prefix="rds-nvme-bench-", dir=args.dir) as directory:
        rows = {}
        for size in sizes:
            started = time.perf_counter()
            root = _tree(Path(directory), size)
            built = time.perf_counter() - started
            rows[size] = measure(root, size, scanners, args)
            print(f"  built and measured {size} controllers (tree built in {built:.1f} s)", file=sys.stderr)
    columns = [*(f"{name} {kind}" for kind in ("warm", "cold") for name in scanners), "list-subsys"]
    print("NQN resolve, microseconds per lookup (fastest batch); one subsystem, controller and namespace each")
    header = f"{'ctrls':>6} | " + " | ".join(f"{c:>13}" for c in columns)
    if "cython" in scanners:
        header += f" | {'py/cy warm':>10} | {'py/cy cold':>10} | {'base/cy cold':>12} | {'base/py cold':>12}"
    print(header)
    print("-" * len(header))
    for size, result in rows.items():
        line = f"{size:>6} | " + " | ".join(f"{result[c]:>13,.1f}" for c in columns)
        if "cython" in scanners:
            line += (
                f" | {result['python warm'] / result['cython warm']:>9.1f}x"
                f" | {result['python cold'] / result['cython cold']:>9.1f}x"
                f" | {result['list-subsys'] / result['cython cold']:>11.1f}x"
                f" | {result['list-subsys'] / result['python cold']:>11.1f}x"
            )
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
