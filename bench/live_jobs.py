"""Live queries and jobs on the local stack: the largest query answered within 29 s per endpoint, and the job path.

    python -m bench.live_jobs        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Setup: the local stack on the real template.yaml (moto server, dynalite when it can run, the API Gateway-style HTTP
server, the SQS pollers running the CollectorFunction), against the emulator on loopback with no per-minute limit
and no injected latency (what is measured is this code and the local services, not X). One owner account with
10,000 public Posts (created 400 days ago, so every /historical hour of the last year exists), seeded as `make run`
seeds.

1. Live: `POST /engagement/{endpoint}` over HTTP for growing sizes: /totals 250..1,000 ids, /28hr 25..250 ids,
   /historical 250 ids over 1..28 days and 25 ids over 365 days. Each row: the answer (200: everything within the
   29 s; 202: a job took the rest), the wall time, and the Engagement API calls the emulator saw against the minimum
   (ceil(ids / batch) x windows).
2. Jobs: `Prefer: respond-async` with 10,000 /totals ids, and a 365-day /historical backfill of 25 Posts; the time
   from the POST until `GET /jobs/{id}` says done (polled every 0.5 s), and the calls against the minimum.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import requests

from bench.common import TEMPLATE_PATH, fake_aws_env, quiet_library_output, scoped_env
from local.emulator import DEMO_APP, EmulatorServer, World
from xengage.api_client.catalog import HISTORICAL_MAX_WINDOW, Endpoint

if TYPE_CHECKING:
    from local.stack.stack import LocalStack

TITLE: Final = "live queries and jobs: the largest answered within 29 s per endpoint, 10,000 ids and a year as jobs"
OWNER: Final = ("1000000099", "jobs_bench", "1000000099-jobsBenchToken", "jobs-bench-token-secret")
JOB_TIMEOUT_SECONDS: Final = 600.0


@dataclass(frozen=True, slots=True)
class Sizes:
    posts: int = 10_000
    live: tuple[tuple[Endpoint, int, int | None], ...] = (
        (Endpoint.TOTALS, 250, None),
        (Endpoint.TOTALS, 500, None),
        (Endpoint.TOTALS, 1000, None),
        (Endpoint.HOURLY_28HR, 25, None),
        (Endpoint.HOURLY_28HR, 100, None),
        (Endpoint.HOURLY_28HR, 250, None),
        (Endpoint.HISTORICAL, 25, 1),
        (Endpoint.HISTORICAL, 250, 1),
        (Endpoint.HISTORICAL, 250, 7),
        (Endpoint.HISTORICAL, 250, 28),
        (Endpoint.HISTORICAL, 25, 365),
    )  # (endpoint, ids, /historical days)
    jobs: tuple[tuple[Endpoint, int, int | None], ...] = (
        (Endpoint.TOTALS, 10_000, None),
        (Endpoint.HISTORICAL, 25, 365),
    )


@dataclass(frozen=True, slots=True)
class Row:
    what: str
    status: int
    seconds: float
    calls: int
    minimum: int
    done_at_once: bool = False  # a 202 whose job was done already: the answer was too big for one response

    def line(self) -> str:
        answered = {200: "200 all answered", 202: "202 job for the rest"}.get(self.status, str(self.status))
        answered = "202 job, done (too big)" if self.done_at_once else answered
        return f"{self.what:<34} {answered:<22} {self.seconds:>8.1f} s {self.calls:>6} calls (minimum {self.minimum})"


class Bench:
    def __init__(self, stack: LocalStack, emulator: EmulatorServer, ids: list[str]) -> None:
        self.stack = stack
        self.emulator = emulator
        self.ids = ids
        assert stack.api is not None
        self.url = stack.api.url.rstrip("/")
        self.http = requests.Session()

    def query(self, endpoint: Endpoint, body: dict[str, Any], *, respond_async: bool = False) -> requests.Response:
        headers = {"Prefer": "respond-async"} if respond_async else {}
        return self.http.post(f"{self.url}/engagement/{endpoint.value}", json=body, headers=headers, timeout=60)

    def body(self, count: int, days: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"tweet_ids": self.ids[:count], "account_id": OWNER[0]}
        if days is not None:
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            body |= {"start": _iso(end - timedelta(days=days) + timedelta(hours=1)), "end": _iso(end)}
        return body

    def live(self, endpoint: Endpoint, count: int, days: int | None = None) -> Row:
        self.emulator.clear_log()
        started = time.perf_counter()
        reply = self.query(endpoint, self.body(count, days))
        seconds = time.perf_counter() - started
        if reply.status_code not in (200, 202):
            raise SystemExit(f"live /{endpoint.value} {count} ids: {reply.status_code} {reply.text[:300]}")
        done_at_once = reply.status_code == 202 and reply.json()["status"] == "done"
        if reply.status_code == 202:
            self.wait_for(reply.json()["job_id"])  # the calls counted are the live part's and its job's together
        what = f"/{endpoint.value} {count} ids" + (f" x {days} days" if days else "")
        minimum = _minimum(endpoint, count, days)
        return Row(what, reply.status_code, seconds, self.calls(endpoint), minimum, done_at_once)

    def job(self, endpoint: Endpoint, count: int, days: int | None = None) -> Row:
        self.emulator.clear_log()
        started = time.perf_counter()
        reply = self.query(endpoint, self.body(count, days), respond_async=True)
        if reply.status_code != 202:
            raise SystemExit(f"job /{endpoint.value} {count} ids: {reply.status_code} {reply.text[:300]}")
        accepted = time.perf_counter() - started
        done = self.wait_for(reply.json()["job_id"])
        seconds = time.perf_counter() - started
        what = f"job /{endpoint.value} {count} ids" + (f" x {days} days" if days else "")
        print(f"  {what}: 202 after {accepted:.1f} s; done: {done['progress']['by_status']}")
        return Row(what, 202, seconds, self.calls(endpoint), _minimum(endpoint, count, days))

    def wait_for(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            job = self.http.get(f"{self.url}/jobs/{job_id}", params={"limit": 1}, timeout=30).json()
            if job["status"] == "done":
                return dict(job)
            time.sleep(0.5)
        raise SystemExit(f"job {job_id} not done within {JOB_TIMEOUT_SECONDS:.0f} s")

    def calls(self, endpoint: Endpoint) -> int:
        return sum(1 for entry in self.emulator.log if entry.endpoint == endpoint.value and entry.status == 200)


def _minimum(endpoint: Endpoint, count: int, days: int | None) -> int:
    """Calls no client can go below: batches of the endpoint's size, times the /historical windows of the range."""
    windows = math.ceil((timedelta(days=days) - timedelta(hours=1)) / HISTORICAL_MAX_WINDOW) if days else 1
    return math.ceil(count / endpoint.max_ids) * windows


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _world(now: datetime, posts: int) -> tuple[World, list[str]]:
    world = World(DEMO_APP)
    world.add_user(*OWNER)
    created = now - timedelta(days=400)
    ids = [world.add_post(OWNER[0], created + timedelta(seconds=k)).tweet_id for k in range(posts)]
    return world, ids


def main(sizes: Sizes = Sizes()) -> dict[str, list[Row]]:
    quiet_library_output()
    now = datetime.now(UTC)
    world, ids = _world(now, sizes.posts)
    logs = tempfile.mkdtemp(prefix="bench-jobs-")  # the functions' logs; BENCH_KEEP_LOGS=1 keeps them
    try:
        return _measure(world, ids, now, Path(logs), sizes)
    finally:
        if not os.environ.get("BENCH_KEEP_LOGS"):
            shutil.rmtree(logs, ignore_errors=True)


def _measure(world: World, ids: list[str], now: datetime, logs: Path, sizes: Sizes) -> dict[str, list[Row]]:
    from local.stack.seed import SeedAccount, SeedPlan, seed_stack
    from local.stack.stack import LocalStack, StackSettings

    app = {"consumer_key": DEMO_APP.consumer_key, "consumer_secret": DEMO_APP.consumer_secret}
    with EmulatorServer(world, port=0) as emulator:
        settings = StackSettings(
            template_path=TEMPLATE_PATH,
            environment_overrides={"ENGAGEMENT_API_URL": emulator.url, "X_API_URL": emulator.url},
            app_secret_value={**app, "bearer_token": DEMO_APP.bearer_token},
            log_dir=logs,
        )
        started = time.perf_counter()
        with LocalStack(settings) as stack, scoped_env(fake_aws_env(AWS_ENDPOINT_URL=stack.endpoint_url)):
            seed_stack(
                stack.specs["ApiFunction"],
                SeedPlan(now=_iso(now), accounts=[SeedAccount(*OWNER)], posts_by_account={}),
            )
            print(f"setup: local stack and {len(ids):,} Posts in {time.perf_counter() - started:.1f} s; logs in {logs}")
            return run(Bench(stack, emulator, ids), sizes)


def run(bench: Bench, sizes: Sizes) -> dict[str, list[Row]]:
    print("live queries (the API's 29 s, part of it kept back to store and answer):")
    live: list[Row] = []
    for endpoint, count, days in sizes.live:
        live.append(bench.live(endpoint, count, days))
        print("  " + live[-1].line(), flush=True)
    for endpoint in (Endpoint.TOTALS, Endpoint.HOURLY_28HR, Endpoint.HISTORICAL):
        answered = [row for row in live if row.what.startswith(f"/{endpoint.value} ") and row.status == 200]
        largest = max(answered, key=lambda row: row.minimum, default=None)
        print(f"  largest answered within 29 s on /{endpoint.value}: {largest.what if largest else 'none'}")
    print("\njobs (Prefer: respond-async; time from the POST to GET /jobs/{id} done):")
    jobs = []
    for endpoint, count, days in sizes.jobs:
        jobs.append(bench.job(endpoint, count, days))
        print("  " + jobs[-1].line(), flush=True)
    return {"live": live, "jobs": jobs}


if __name__ == "__main__":
    main()
