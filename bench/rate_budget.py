"""K concurrent collectors sharing one per-minute limit: 429s and throughput against the ceiling, for K = 1, 2, 4, 8.

Each collector is a thread with its own `EngagementClient` (as each Lambda instance has its own), fetching /totals
for 250 Posts a call, over and over, for a number of whole rate windows. The emulator meters calls per window
(`set_per_minute_limit`, `set_window_seconds`: a shortened minute, which client, budget and emulator agree on).

- `shared`: each client's gate is a `SharedRateBudget` of its own over one RegistryTable (dynalite: DynamoDB's
  conditional updates hold under concurrency, which moto in-process does not promise), so the budget's item is all
  the collectors share, as in a deployment.
- `alone` (before the budget): each client paces on the headers of its own answers (`Pacer`).

Figures per run, from the emulator's log: calls answered 200 within the measured windows, Posts fetched in them
against the ceiling (limit x 250 x windows), and every 429 of the run. Budget cost: DynamoDB requests per call.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import boto3

from bench.common import dynalite, fake_aws_env, quiet_library_output, scoped_env, table
from local.emulator import EmulatorServer, World
from tests.aws_fixtures import load_template, table_kwargs
from xengage.api_client import Endpoint, EngagementClient, RetryPolicy
from xengage.dal.rate_budget import SharedRateBudget, rate_key

TITLE: Final = "rate budget: K concurrent collectors on one per-minute limit (emulator, dynalite)"
WHY_DYNALITE: Final = "K threads race for one item's conditional updates, which moto in-process does not serialize"
IDS_PER_CALL: Final = Endpoint.TOTALS.max_ids
OWNER: Final = "1000000077"


@dataclass(frozen=True, slots=True)
class Setup:
    limit: int = 12
    window_seconds: float = 2.0
    windows: int = 8
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    modes: tuple[str, ...] = ("alone", "shared")


@dataclass(frozen=True, slots=True)
class Figures:
    mode: str
    collectors: int
    calls: int  # answered 200 within the measured windows
    posts: int
    ceiling: int
    throttled: int  # 429s over the whole run
    budget_requests: int  # DynamoDB requests the budgets made
    budget_calls: int  # calls the budgets granted

    @property
    def ratio(self) -> float:
        return self.posts / self.ceiling


def _world(now: datetime) -> tuple[World, list[str]]:
    from local.emulator.world import DEMO_APP

    world = World(DEMO_APP)
    world.add_user(OWNER, "budget_bench", f"{OWNER}-benchToken", "bench-token-secret")
    ids = [world.add_post(OWNER, now - timedelta(hours=2 + k)).tweet_id for k in range(IDS_PER_CALL)]
    return world, ids


def _next_boundary(window_seconds: float) -> float:
    now = time.time()
    return (now // window_seconds + 1) * window_seconds


class _Collector(threading.Thread):
    def __init__(self, emulator: EmulatorServer, ids: list[str], gate: SharedRateBudget | None, setup: Setup) -> None:
        super().__init__(daemon=True)
        self.gate = gate
        self.ids = ids
        self.client = EngagementClient(
            emulator.world.app,
            base_url=emulator.url,
            rate_window_seconds=setup.window_seconds,
            rate_gate=gate,
            retry=RetryPolicy(max_throttle_wait=setup.window_seconds * 3, total_wait_budget=3600),
        )
        self.begin = 0.0
        self.end = 0.0

    def run(self) -> None:
        time.sleep(max(0.0, self.begin - time.time()))
        with self.client:
            while time.time() < self.end:
                self.client.fetch(Endpoint.TOTALS, self.ids)


def measure(emulator: EmulatorServer, ids: list[str], registry: str, mode: str, k: int, setup: Setup) -> Figures:
    dynamodb = boto3.client("dynamodb")
    dynamodb.delete_item(TableName=registry, Key=rate_key(Endpoint.TOTALS.value))  # nothing learned yet
    gates = [SharedRateBudget(registry, window_seconds=setup.window_seconds, client=dynamodb) for _ in range(k)]
    collectors = [_Collector(emulator, ids, gates[n] if mode == "shared" else None, setup) for n in range(k)]
    begin = _next_boundary(setup.window_seconds)
    end = begin + setup.windows * setup.window_seconds
    emulator.clear_log()
    for collector in collectors:
        collector.begin, collector.end = begin, end
        collector.start()
    for collector in collectors:
        collector.join()
    log = list(emulator.log)
    measured = [e for e in log if e.status == 200 and begin <= e.at.timestamp() < end]
    used = gates if mode == "shared" else []
    return Figures(
        mode=mode,
        collectors=k,
        calls=len(measured),
        posts=sum(e.id_count for e in measured),
        ceiling=setup.limit * IDS_PER_CALL * setup.windows,
        throttled=sum(1 for e in log if e.status == 429),
        budget_requests=sum(g.stats.writes + g.stats.reads for g in used),
        budget_calls=sum(g.stats.granted for g in used),
    )


def run(setup: Setup) -> list[Figures]:
    """Every mode at every K, on one emulator and one dynalite table (each run starts with nothing learned)."""
    now = datetime.now(UTC)
    world, ids = _world(now)
    figures = []
    with (
        dynalite("rate_budget", WHY_DYNALITE) as dynamodb_url,
        scoped_env(fake_aws_env(AWS_ENDPOINT_URL_DYNAMODB=dynamodb_url)),
        EmulatorServer(world=world, port=0) as emulator,
    ):
        emulator.set_per_minute_limit(setup.limit)
        emulator.set_window_seconds(setup.window_seconds)
        registry = "bench-RegistryTable"
        properties = load_template()["Resources"]["RegistryTable"]["Properties"]
        boto3.client("dynamodb").create_table(**table_kwargs(properties, registry))
        for mode in setup.modes:
            for k in setup.concurrency:
                figures.append(measure(emulator, ids, registry, mode, k, setup))
    return figures


def report(setup: Setup, figures: Sequence[Figures]) -> None:
    print(
        f"setup: limit {setup.limit} calls per {setup.window_seconds:g} s window (the emulator's shortened minute, "
        f"the clients' and budgets' too), {setup.windows} windows measured, /totals x {IDS_PER_CALL} ids a call; "
        f"ceiling {setup.limit * IDS_PER_CALL * setup.windows:,} Posts"
    )
    rows: list[list[Any]] = []
    for f in figures:
        per_call = f"{f.budget_requests / f.budget_calls:.2f}" if f.budget_calls else "-"
        rows.append([f.mode, f.collectors, f.calls, f"{f.posts:,}", f"{f.ratio:.3f}", f.throttled, per_call])
    headers = ["pacing", "K", "calls 200", "Posts", "of ceiling", "429s", "budget DynamoDB req/call"]
    print(table(headers, rows))


def main(argv: Sequence[str] | None = None) -> None:
    defaults = Setup()
    parser = argparse.ArgumentParser(description=TITLE)
    parser.add_argument("--limit", type=int, default=defaults.limit, help="calls per window")
    parser.add_argument("--window", type=float, default=defaults.window_seconds, help="the shortened minute (s)")
    parser.add_argument("--windows", type=int, default=defaults.windows, help="windows measured per run")
    args = parser.parse_args(argv or [])
    quiet_library_output()
    setup = Setup(limit=args.limit, window_seconds=args.window, windows=args.windows)
    report(setup, run(setup))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
