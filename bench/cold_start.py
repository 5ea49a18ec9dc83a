"""Cold start: what importing each handler costs against `import boto3`, in fresh interpreters of the same Python.

Each sample is a new interpreter that imports one thing and prints how long it took (`time.perf_counter` around
the import statement): `boto3`, or a handler module as Lambda imports it (`planner`, `collector`, `api`, with its
function folder and the layer on the path and the environment template.yaml gives it), with the template's default
`Tracing=PassThrough` (the X-Ray SDK never loads) and with `Tracing=Active`.
The median of `--runs` samples each, interleaved so a busy moment hurts every module alike. Then one
`-X importtime` run per handler, its self times summed by top-level package: where the time goes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

from bench.common import REPO_ROOT, table

TITLE: Final = "cold start: each handler's import time against import boto3 (fresh interpreters, median)"
HANDLERS: Final = {"planner": "functions/planner", "collector": "functions/collector", "api": "functions/api"}
# What template.yaml's Globals and functions set that matters at import (the values are not secrets).
FUNCTION_ENV: Final = {
    "POWERTOOLS_SERVICE_NAME": "xengage",
    "POWERTOOLS_METRICS_NAMESPACE": "XEngagementCollector",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
}
# Wall and CPU time of the import: on a shared VM the wall time also holds the moments this VM was not scheduled
# (steal); the CPU time (time.process_time) is the import's own work, and steadier from run to run.
TIMED_IMPORT: Final = (
    "import time; t, c = time.perf_counter(), time.process_time(); import {module}; "
    "print(time.perf_counter() - t, time.process_time() - c)"
)


def _env(module: str, tracing: bool) -> dict[str, str]:
    paths = [str(REPO_ROOT / "layers/common")]
    if module in HANDLERS:
        paths.insert(0, str(REPO_ROOT / HANDLERS[module]))
    keep = {name: value for name, value in os.environ.items() if not name.startswith(("POWERTOOLS_", "PYTHON"))}
    trace_disabled = "false" if tracing else "true"  # what the template sets for Active / PassThrough
    return {
        **keep,
        **FUNCTION_ENV,
        "POWERTOOLS_TRACE_DISABLED": trace_disabled,
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def import_seconds(module: str, tracing: bool = False) -> float:
    """One fresh interpreter's wall time to import `module` (bytecode caches warm, as in a deployed package)."""
    return import_times(module, tracing)[0]


def import_times(module: str, tracing: bool = False) -> tuple[float, float]:
    """One fresh interpreter's (wall, CPU) seconds to import `module`."""
    answer = subprocess.run(
        [sys.executable, "-c", TIMED_IMPORT.format(module=module)],
        env=_env(module, tracing),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = answer.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def medians(modules: Sequence[str], runs: int, tracing: bool) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each module's import, modules interleaved run by run."""
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for module in modules:
        import_times(module, tracing)  # warm the bytecode and the disk cache once, unmeasured
    for _ in range(runs):
        for module in modules:
            samples[module].append(import_times(module, tracing))
    return {
        module: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for module, values in samples.items()
    }


def import_profile(module: str, tracing: bool = False) -> dict[str, float]:
    """Seconds of `-X importtime` self time per module imported by `import module` (one fresh interpreter)."""
    answer = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=_env(module, tracing),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    modules: dict[str, float] = {}
    for line in answer.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[0].strip().isdigit():
            modules[parts[2].strip()] = int(parts[0]) / 1e6
    return modules


def profile(module: str, tracing: bool = False) -> dict[str, float]:
    """Seconds of self time per top-level package: where the import's time goes."""
    by_package: dict[str, float] = defaultdict(float)
    for name, seconds in import_profile(module, tracing).items():
        by_package[name.split(".")[0]] += seconds
    return dict(by_package)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per module")
    args = parser.parse_args(argv or [])
    print(f"setup: {sys.executable} ({sys.version.split()[0]}), median of {args.runs} fresh interpreters each")
    rows = []
    for tracing, label in ((False, "PassThrough (default)"), (True, "Active")):
        times = medians(["boto3", *HANDLERS], args.runs, tracing)
        (wall, cpu) = times["boto3"]
        rows.append([f"Tracing={label}: import boto3", f"{wall * 1000:.0f}", "1.00", f"{cpu * 1000:.0f}", "1.00"])
        rows += [
            [
                f"  import {name}",
                f"{times[name][0] * 1000:.0f}",
                f"{times[name][0] / wall:.2f}",
                f"{times[name][1] * 1000:.0f}",
                f"{times[name][1] / cpu:.2f}",
            ]
            for name in HANDLERS
        ]
    print(table(["module", "wall ms (median)", "x boto3", "CPU ms (median)", "x boto3 (CPU)"], rows))
    for tracing in (False, True):
        for name in HANDLERS:
            spent = sorted(profile(name, tracing).items(), key=lambda item: -item[1])
            shown = ", ".join(f"{package} {seconds * 1000:.0f}" for package, seconds in spent[:8] if seconds >= 0.002)
            print(f"  {name}, tracing {'on' if tracing else 'off'} (-X importtime self ms by package): {shown}")


if __name__ == "__main__":
    main(sys.argv[1:])
