"""Every benchmark, one after another: `python -m bench.run [name ...]` (what `make bench` runs).

Each benchmark's `main()` runs in a fresh interpreter (multiprocessing, spawn): environment variables, library
caches, moto state and the process's peak RSS never leak from one benchmark into the next, and one failing
benchmark does not hide the figures of the others. `python -m bench.<name>` runs one on its own.
"""

from __future__ import annotations

import importlib
import multiprocessing
import sys
import time
from collections.abc import Sequence
from typing import Final

from bench import (
    api_latency,
    bulk_tracking,
    cold_start,
    collector_memory,
    cost,
    fault_matrix,
    live_jobs,
    pipeline_writes,
    planner_memory,
    rate_budget,
)
from bench.common import header

BENCHMARKS: Final[dict[str, str]] = {
    "client_calls": "client calls: HTTP calls made vs the minimum, 1,000 ids per endpoint (emulator, virtual time)",
    "rate_budget": rate_budget.TITLE,
    "cold_start": cold_start.TITLE,
    "pipeline_writes": pipeline_writes.TITLE,
    "planner_memory": planner_memory.TITLE,
    "collector_memory": collector_memory.TITLE,
    "api_latency": api_latency.TITLE,
    "live_jobs": live_jobs.TITLE,
    "bulk_tracking": bulk_tracking.TITLE,
    "fault_matrix": fault_matrix.TITLE,
    "cost": cost.TITLE,
}


def run_main(module: str) -> None:
    """Child-process entry point: import `module` and call its main()."""
    importlib.import_module(module).main()


def main(argv: Sequence[str] = ()) -> int:
    names = list(argv) or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    timings: list[tuple[str, float, int | None]] = []
    for number, name in enumerate(names, start=1):
        header(f"{number}. {BENCHMARKS[name]}  [python -m bench.{name}]")
        began = time.perf_counter()
        process = context.Process(target=run_main, args=(f"bench.{name}",), name=f"bench-{name}")
        process.start()
        process.join()
        timings.append((name, time.perf_counter() - began, process.exitcode))
        print(f"[{name}: {timings[-1][1]:.1f} s]", flush=True)
    print(f"\n=== done in {time.perf_counter() - started:.1f} s ===")
    for name, seconds, exitcode in timings:
        print(f"  {name:<16} {seconds:6.1f} s  {'ok' if exitcode == 0 else f'FAILED (exit code {exitcode})'}")
    return 0 if all(exitcode == 0 for _, _, exitcode in timings) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
