"""Cold start: what importing each handler costs against `import boto3`, in fresh interpreters of the same Python.

Each sample is a new interpreter that imports one thing and prints how long it took (`time.perf_counter` around
the import statement): `boto3`, or a handler module as Lambda imports it (`planner`, `collector`, `api`, with its
function folder and the layer on the path and the environment template.yaml gives it), with the template's default
`Tracing=PassThrough` (the X-Ray SDK never loads) and with `Tracing=Active`.
The layer's own code is a copy of `layers/common/xengage` compiled as its Makefile compiles it (unchecked-hash .pyc of
this interpreter's version), as boto3 and the other packages carry their own bytecode. One more row imports the
copy without bytecode: what a layer built where no python3.13 was found costs, compiling at every cold start.
The median of `--runs` samples each, interleaved so a busy moment hurts every module alike. Then one
`-X importtime` run per handler, its self times summed by top-level package: where the time goes.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from py_compile import PycInvalidationMode
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


@contextmanager
def built_layer(bytecode: bool = True) -> Iterator[Path]:
    """A copy of the layer's code, as `make build-CommonLayer` leaves it: with bytecode, or (bytecode=False) without."""
    with tempfile.TemporaryDirectory(prefix="xengage-layer-") as root:
        layer = Path(root)
        shutil.copytree(
            REPO_ROOT / "layers/common/xengage", layer / "xengage", ignore=shutil.ignore_patterns("__pycache__")
        )
        if bytecode:
            compileall.compile_dir(layer, quiet=1, workers=0, invalidation_mode=PycInvalidationMode.UNCHECKED_HASH)
        yield layer


def _env(module: str, tracing: bool, layer: Path) -> dict[str, str]:
    paths = [str(layer)]
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


def import_seconds(module: str, layer: Path, tracing: bool = False) -> float:
    """One fresh interpreter's wall time to import `module` with the layer copy `layer` (see `built_layer`)."""
    return import_times(module, layer, tracing)[0]


def import_times(module: str, layer: Path, tracing: bool = False) -> tuple[float, float]:
    """One fresh interpreter's (wall, CPU) seconds to import `module`."""
    answer = subprocess.run(
        [sys.executable, "-c", TIMED_IMPORT.format(module=module)],
        env=_env(module, tracing, layer),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = answer.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def medians(modules: Sequence[str], layer: Path, runs: int, tracing: bool) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each module's import, modules interleaved run by run."""
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for module in modules:
        import_times(module, layer, tracing)  # warm the disk cache once, unmeasured
    for _ in range(runs):
        for module in modules:
            samples[module].append(import_times(module, layer, tracing))
    return {
        module: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for module, values in samples.items()
    }


def import_profile(module: str, layer: Path, tracing: bool = False) -> dict[str, float]:
    """Seconds of `-X importtime` self time per module imported by `import module` (one fresh interpreter)."""
    answer = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=_env(module, tracing, layer),
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


def profile(module: str, layer: Path, tracing: bool = False) -> dict[str, float]:
    """Seconds of self time per top-level package: where the import's time goes."""
    by_package: dict[str, float] = defaultdict(float)
    for name, seconds in import_profile(module, layer, tracing).items():
        by_package[name.split(".")[0]] += seconds
    return dict(by_package)


# (label, Tracing=Active?, layer with bytecode?): the default deployment first.
SCENARIOS: Final = (
    ("Tracing=PassThrough (default)", False, True),
    ("Tracing=Active", True, True),
    ("PassThrough, layer without bytecode", False, False),
)


def scenario_rows(label: str, times: dict[str, tuple[float, float]]) -> list[list[str]]:
    """Table rows of one scenario: boto3, then each handler as a multiple of it (wall and CPU)."""
    wall, cpu = times["boto3"]
    rows = [[f"{label}: import boto3", f"{wall * 1000:.0f}", "1.00", f"{cpu * 1000:.0f}", "1.00"]]
    for name in HANDLERS:
        rows.append(
            [
                f"  import {name}",
                f"{times[name][0] * 1000:.0f}",
                f"{times[name][0] / wall:.2f}",
                f"{times[name][1] * 1000:.0f}",
                f"{times[name][1] / cpu:.2f}",
            ]
        )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per module")
    args = parser.parse_args(argv or [])
    print(f"setup: {sys.executable} ({sys.version.split()[0]}), median of {args.runs} fresh interpreters each")
    rows = []
    for label, tracing, bytecode in SCENARIOS:
        with built_layer(bytecode) as layer:
            rows += scenario_rows(label, medians(["boto3", *HANDLERS], layer, args.runs, tracing))
    print(table(["module", "wall ms (median)", "x boto3", "CPU ms (median)", "x boto3 (CPU)"], rows))
    with built_layer() as layer:
        for tracing in (False, True):
            for name in HANDLERS:
                spent = sorted(profile(name, layer, tracing).items(), key=lambda item: -item[1])
                shown = ", ".join(f"{pkg} {seconds * 1000:.0f}" for pkg, seconds in spent[:8] if seconds >= 0.002)
                print(f"  {name}, tracing {'on' if tracing else 'off'} (-X importtime self ms by package): {shown}")


if __name__ == "__main__":
    main(sys.argv[1:])
