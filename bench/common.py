"""What the benchmarks share: a scoped AWS environment, quiet library output, call counters, figures."""

from __future__ import annotations

import logging
import math
import os
import re
import resource
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
TEMPLATE_PATH: Final = REPO_ROOT / "template.yaml"

# Obviously fake credentials: nothing a benchmark does may reach real AWS.
FAKE_AWS_ENV: Final[dict[str, str]] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "xengage-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "XEngageBench",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
# Endpoint variables that would send boto3 past an in-process moto mock (the local stack sets them).
ENDPOINT_VARIABLES: Final = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS")


def _no_dynalite(bench: str, why: str, reason: str) -> SystemExit:
    return SystemExit(
        f"{bench}: dynalite cannot run here: {reason}.\n"
        f"This benchmark needs dynalite as its DynamoDB: {why}. "
        "Fix: install Node.js, then `make node-deps` (npm ci in local/dynamodb)."
    )


@contextmanager
def dynalite(bench: str, why: str) -> Iterator[str]:
    """dynalite (its own Node.js process) on a free port; yields its URL. SystemExit, naming `bench`, when it cannot
    run: the benchmarks that need it do not fall back to moto, and `why` says so."""
    from local.stack.dynamodb import DynaliteUnavailable, dynalite_missing, start_dynalite

    missing = dynalite_missing()
    if missing:
        raise _no_dynalite(bench, why, missing)
    try:
        server = start_dynalite()
    except DynaliteUnavailable as exc:
        raise _no_dynalite(bench, why, str(exc)) from exc
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def scoped_env(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables, the functions starting cold inside (no Deps built: nothing
    cached in one); the previous values and Deps are restored after."""
    from xengage import deps

    saved, built = {name: os.environ.get(name) for name in values}, deps.BUILT
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        deps.BUILT = {}
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        deps.BUILT = built


def fake_aws_env(**extra: str | None) -> dict[str, str | None]:
    """FAKE_AWS_ENV without any endpoint override, plus `extra`."""
    return {**FAKE_AWS_ENV, **dict.fromkeys(ENDPOINT_VARIABLES), **extra}


def quiet_library_output() -> None:
    """Keep the benchmarks' output to figures: no per-call log lines, no auto-flushed EMF metric blobs."""
    from xengage.observability import client_logger, logger, metrics

    logger.setLevel(logging.WARNING)
    client_logger.setLevel(logging.ERROR)  # retries are counted, not narrated
    metrics.clear_metrics()


class CallCounter:
    """Counts boto3 clients' API calls by operation name (a `before-call` hook on each client's events): the DAL
    uses the resource's client and, for the planner's parallel leases, a low-level client of its own."""

    def __init__(self, *clients: Any) -> None:
        self.calls: Counter[str] = Counter()
        self._hooks = [
            (client.meta.events, f"before-call.{client.meta.service_model.endpoint_prefix}") for client in clients
        ]
        for events, event in self._hooks:
            events.register(event, self._count)

    def _count(self, model: Any = None, **_: Any) -> None:
        if model is not None:
            self.calls[model.name] += 1

    def take(self) -> Counter[str]:
        """The calls counted since the last take, then start again from zero."""
        taken, self.calls = self.calls, Counter()
        return taken

    def close(self) -> None:
        for events, event in self._hooks:
            events.unregister(event, self._count)


# --- peak RSS (Linux /proc) ------------------------------------------------------------------------------------


def proc_status_bytes(field: str, pid: int | str = "self") -> int:
    """A size field of /proc/<pid>/status (VmRSS: resident now; VmHWM: the peak, what ru_maxrss reports), bytes."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(match[1]) * 1024 if match else 0


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of a process to its RSS now; False where it cannot be reset."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return proc_status_bytes("VmHWM", pid) <= proc_status_bytes("VmRSS", pid) + resource.getpagesize()


def stored_items_and_points(metrics_table: str) -> tuple[int, int]:
    """MetricsTable's items and the points they hold (a Scan: benchmarks may, the code never does)."""
    from xengage.dal.aws import dynamodb_table
    from xengage.dal.series import day_hours, is_day_item

    items = points = 0
    kwargs: dict[str, Any] = {}
    while True:
        page = dynamodb_table(metrics_table).scan(**kwargs)
        items += len(page["Items"])
        points += sum(len(day_hours(item)) if is_day_item(item) else 1 for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return items, points
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- figures -------------------------------------------------------------------------------------------------


def header(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, indent: str = "  ") -> str:
    """Columns aligned: the first left-aligned, the others right-aligned."""
    cells = [[str(cell) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    lines = []
    for number, row in enumerate(cells):
        parts = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        lines.append(indent + "  ".join(parts).rstrip())
        if number == 0:
            lines.append(indent + "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_row(label: str, samples_ms: Sequence[float]) -> list[str]:
    """label, n, p50, p95, p99, max (milliseconds)."""
    return [
        label,
        str(len(samples_ms)),
        *(f"{percentile(samples_ms, fraction):.1f}" for fraction in (0.50, 0.95, 0.99)),
        f"{max(samples_ms):.1f}",
    ]


LATENCY_HEADERS: Final = ("request", "n", "p50 ms", "p95 ms", "p99 ms", "max ms")


def mib(size_bytes: float) -> str:
    return f"{size_bytes / (1 << 20):.2f} MiB"
