"""Latency of the stored-metrics API for one Post with a year of hourly /historical points, over real HTTP.

    python -m bench.api_latency        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Setup: the local stack (`LocalStack` on the real template.yaml, ephemeral ports): moto server, the stack's
DynamoDB (dynalite when Node.js and `make node-deps` are there, else moto), the ApiFunction in its worker process,
the API Gateway-style HTTP server. From this process, through the DAL against the stack's DynamoDB, one Post is
tracked and 8,760 hourly points (17 metrics each, as the collector stores them) are written to MetricsTable with
`MetricsDal.put_points`. Then `GET /tweets/{id}/metrics?endpoint=historical` is timed with a keep-alive HTTP
client: the default page (limit 500), limit=1000, a whole-year read following next_cursor, a one-day from/to
window and CSV. Cold starts are measured by restarting the function's worker first (its "function" time then
excludes the init; the HTTP time includes it).

Each kind of request runs up to 200 times within a time budget, so n is printed with each row. "function" is the
worker's own time (ApiFunction handler, including its DynamoDB Query); "raw Query" times the same Query sent
straight to the stack's DynamoDB, to show how much of the latency is the local DynamoDB rather than the API.
"""

from __future__ import annotations

import functools
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import requests

from bench.common import (
    LATENCY_HEADERS,
    TEMPLATE_PATH,
    fake_aws_env,
    header,
    latency_row,
    percentile,
    quiet_library_output,
    scoped_env,
    table,
)

if TYPE_CHECKING:
    from local.stack.functions import Invocation
    from local.stack.stack import LocalStack

TITLE: Final = "API latency: GET /tweets/{id}/metrics?endpoint=historical, one year of hourly points (local stack)"
HOURS: Final = 8_760
ACCOUNT_ID: Final = "1000000001"
FUNCTION: Final = "ApiFunction"
MAX_REQUESTS: Final = 200
BUDGET_SECONDS: Final = 20.0  # per kind of request; a whole-year read counts as one request of its own kind
MIN_REQUESTS: Final = 10
COLD_STARTS: Final = 2
WARM_UP_REQUESTS: Final = 3


@dataclass(frozen=True)
class Run:
    """How much to store and how long to sample (the smoke test runs it small)."""

    hours: int = HOURS
    max_requests: int = MAX_REQUESTS
    budget_seconds: float = BUDGET_SECONDS
    min_requests: int = MIN_REQUESTS
    cold_starts: int = COLD_STARTS


RAW_QUERY_SAMPLES: Final = 10  # or fewer (at least 3) when they take over RAW_QUERY_BUDGET_SECONDS
RAW_QUERY_BUDGET_SECONDS: Final = 4.0


@dataclass
class Samples:
    """HTTP latencies and the function's own durations (ms) of one kind of request."""

    label: str
    http_ms: list[float] = field(default_factory=list)
    function_ms: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    raw_query_ms: list[float] = field(default_factory=list)

    def row(self) -> list[str]:
        return [
            *latency_row(self.label, self.http_ms),
            f"{percentile(self.function_ms, 0.5):.1f}" if self.function_ms else "-",
            f"{percentile(self.raw_query_ms, 0.5):.1f}" if self.raw_query_ms else "-",
            f"{percentile(self.sizes, 0.5) / 1024:.0f}" if self.sizes else "-",
        ]


class Client:
    """Keep-alive HTTP client of the stack's API that also records the function's duration of each request."""

    def __init__(self, stack: LocalStack, tweet_id: str) -> None:
        assert stack.api is not None, "the stack runs without its API server"
        self.url = f"{stack.api.url}/tweets/{tweet_id}/metrics"
        self.session = requests.Session()
        self.durations: list[float] = []
        api = stack.api
        invoke = api.invoke

        def timed_invoke(function_id: str, event: Any) -> Invocation:
            invocation = invoke(function_id, event)
            self.durations.append(invocation.duration_ms)
            return invocation

        api.invoke = timed_invoke

    def get(self, params: dict[str, str], samples: Samples | None = None) -> requests.Response:
        started = time.perf_counter()
        response = self.session.get(self.url, params=params, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {response.url} answered {response.status_code}: {response.text[:300]}")
        if samples is not None:
            samples.http_ms.append(elapsed)
            samples.function_ms.append(self.durations[-1])
            samples.sizes.append(len(response.content))
        return response


def main(run: Run = Run()) -> dict[str, Samples]:
    from local.stack.stack import LocalStack, StackSettings

    quiet_library_output()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-api-logs-") as logs:
        settings = StackSettings(
            template_path=TEMPLATE_PATH, moto_port=0, api_port=0, start_pollers=False, log_dir=Path(logs)
        )
        with LocalStack(settings) as stack:
            region = stack.template.region
            dynamodb_url = str(stack.client("dynamodb").meta.endpoint_url)  # moto's, or dynalite's when it runs
            backend = "moto" if dynamodb_url.rstrip("/") == stack.endpoint_url.rstrip("/") else "dynalite"
            print(
                f"setup: local stack on template.yaml started in {time.perf_counter() - started:.1f} s; DynamoDB: "
                f"{backend} ({dynamodb_url}), API {stack.api.url if stack.api else '-'}; SQS pollers off"
            )
            environment = fake_aws_env(
                AWS_ENDPOINT_URL=stack.endpoint_url,
                AWS_ENDPOINT_URL_DYNAMODB=dynamodb_url,
                AWS_REGION=region,
                AWS_DEFAULT_REGION=region,
            )
            with scoped_env(environment):
                measured = run_benchmark(stack, RawQuery(stack, dynamodb_url, backend), run)
    print(f"wall time: {time.perf_counter() - started:.1f} s")
    return measured


def run_benchmark(stack: LocalStack, raw: RawQuery, run: Run) -> dict[str, Samples]:
    tweet_id, first_hour = store_year(stack, run.hours)
    client = Client(stack, tweet_id)
    raw.partition = f"{tweet_id}#historical"

    cold = Samples("cold start (worker restarted)")
    first = Samples("first call after stack start")
    client.get({"endpoint": "historical"}, first)
    for _ in range(run.cold_starts):
        stack.workers[FUNCTION].stop()  # the next invoke starts a new process: Lambda's init + first invoke
        client.get({"endpoint": "historical"}, cold)
    for _ in range(WARM_UP_REQUESTS):
        client.get({"endpoint": "historical"})

    day = first_hour + timedelta(hours=run.hours // 2)
    day_window = {"from": _iso(day), "to": _iso(day + timedelta(hours=23))}
    kinds: list[tuple[Samples, dict[str, str], Callable[[requests.Response], bool], dict[str, Any]]] = [
        (Samples("(a) default page, limit 500"), {}, _json_points(500), {"limit": 500}),
        (Samples("(b) limit=1000"), {"limit": "1000"}, _json_points(1000), {"limit": 1000}),
        (Samples("(d) one day, from/to"), day_window, _json_points(24), {"limit": 500, "window": day_window}),
        (Samples("(e) CSV, limit 500"), {"format": "csv"}, _csv_rows(500), {"limit": 500}),
    ]
    raw_queries: dict[str, list[float]] = {}  # the CSV page sends the same Query as the default page
    for samples, params, check, query in kinds:
        _repeat(functools.partial(_checked_get, client, params, samples, check), run)
        key = json.dumps(query, sort_keys=True)
        if key not in raw_queries:
            raw_queries[key] = raw.sample(**query)
        samples.raw_query_ms = raw_queries[key]

    pages = Samples("(c) its pages, limit=1000")
    year = Samples("(c) whole year via next_cursor")
    pages.raw_query_ms = list(kinds[1][0].raw_query_ms)  # the same limit=1000 query
    _repeat(lambda: _read_year(client, pages, year, run.hours), replace(run, min_requests=1))

    print(
        f"{len(cold.http_ms)} cold starts, then {WARM_UP_REQUESTS} warm-up requests; each kind below: up to "
        f"{run.max_requests} requests or {run.budget_seconds:.0f} s; function = the worker's time, its DynamoDB Query "
        f"included; raw Query = the same Query sent straight to {raw.backend} (up to {RAW_QUERY_SAMPLES} "
        "samples, no client parsing)"
    )
    print(
        table(
            [*LATENCY_HEADERS, "function p50", "raw Query p50", "KiB"],
            [cold.row(), first.row(), *(samples.row() for samples, *_ in kinds), year.row(), pages.row()],
        )
    )
    print("  where a p50 request goes (raw Query; the rest of the function; API server, worker pipe and HTTP):")
    for samples, *_ in kinds:
        raw_ms, function = percentile(samples.raw_query_ms, 0.5), percentile(samples.function_ms, 0.5)
        transport = percentile([http - fn for http, fn in zip(samples.http_ms, samples.function_ms, strict=True)], 0.5)
        print(
            f"    {samples.label:<28} {raw_ms:6.1f} ms {raw.backend} + {function - raw_ms:6.1f} ms function "
            f"+ {transport:5.1f} ms API server/pipe/HTTP"
        )
    return {samples.label: samples for samples in (cold, first, *(kind[0] for kind in kinds), year, pages)}


class RawQuery:
    """The MetricsDal.query_points Query, signed and sent to the stack's DynamoDB without botocore's parsing.

    When moto serves DynamoDB it runs in this process (a LocalStack thread): timing the query through boto3 here
    would add this process's response parsing, competing with moto for the GIL, to the query's own time.
    """

    def __init__(self, stack: LocalStack, url: str, backend: str) -> None:
        from botocore.credentials import Credentials

        self.url = url.rstrip("/") + "/"
        self.backend = backend
        self.table = stack.ids.ref("MetricsTable")
        self.region = stack.template.region
        self.partition = ""  # "{tweet_id}#historical", set once the Post exists
        self.credentials = Credentials("testing", "testing", "testing")
        self.session = requests.Session()

    def sample(self, *, limit: int, window: dict[str, str] | None = None) -> list[float]:
        deadline = time.monotonic() + RAW_QUERY_BUDGET_SECONDS
        samples: list[float] = []
        while len(samples) < RAW_QUERY_SAMPLES and (len(samples) < 3 or time.monotonic() < deadline):
            samples.append(self.time_ms(limit=limit, window=window))
        return samples

    def time_ms(self, *, limit: int, window: dict[str, str] | None = None) -> float:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        from xengage.dal.paging import ceil_div
        from xengage.dal.series import HOURS_PER_DAY, day_of

        # The DAL's Query: the days of the window (and hour items of the previous layout on its last day)
        bounds = {":start": {"S": day_of(window["from"])}, ":end": {"S": day_of(window["to"]) + "~"}} if window else {}
        body: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk" + (" AND sk BETWEEN :start AND :end" if window else ""),
            "ExpressionAttributeValues": {":pk": {"S": self.partition}, **bounds},
            "Limit": ceil_div(limit, HOURS_PER_DAY) + 2,
            "ScanIndexForward": True,
        }
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.Query"}
        payload = json.dumps(body)
        request = AWSRequest(method="POST", url=self.url, data=payload, headers=headers)
        SigV4Auth(self.credentials, "dynamodb", self.region).add_auth(request)
        started = time.perf_counter()
        response = self.session.post(self.url, data=payload, headers=dict(request.headers), timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or response.json().get("Count") != len(response.json().get("Items", [])):
            raise RuntimeError(
                f"{self.backend} answered the raw Query with {response.status_code}: {response.text[:300]}"
            )
        return elapsed


def store_year(stack: LocalStack, hours: int = HOURS) -> tuple[str, datetime]:
    """Track one Post and write a year of hourly /historical points for it through the DAL; returns the id."""
    from local.emulator import snowflake_for
    from xengage.api_client import Endpoint
    from xengage.api_client.catalog import TIME_SERIES_METRICS
    from xengage.dal import MetricPoint, MetricsDal, RegistryDal

    now = datetime.now(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    first_hour = last_hour - timedelta(hours=hours - 1)
    tweet_id = snowflake_for(first_hour - timedelta(minutes=7), 1)
    registry = RegistryDal(stack.ids.ref("RegistryTable"))
    registry.put_account(ACCOUNT_ID, "bench_account", now=_iso(now))
    registry.track_posts([tweet_id], ACCOUNT_ID, now=_iso(now))

    rng = random.Random(3)
    points = []
    for hour in range(hours):
        decay = 1.0 / (1.0 + hour / 48.0)
        values = {name: int(rng.randint(0, 4000) * decay) for name in TIME_SERIES_METRICS}
        at = _iso(first_hour + timedelta(hours=hour))
        points.append(MetricPoint(tweet_id, Endpoint.HISTORICAL, at, values, _iso(now), ACCOUNT_ID))
    started = time.perf_counter()
    stats = MetricsDal(stack.ids.ref("MetricsTable"), stack.ids.ref("RollupsTable")).put_points(points)
    print(
        f"stored {stats.items:,} hourly points ({len(TIME_SERIES_METRICS)} metrics each) for Post {tweet_id} in "
        f"{time.perf_counter() - started:.1f} s as {stats.item_writes:,} items ({stats.transact_calls} "
        f"TransactWriteItems with {stats.rollup_writes} rollup items through the DAL)"
    )
    return tweet_id, first_hour


def _checked_get(
    client: Client, params: dict[str, str], samples: Samples, check: Callable[[requests.Response], bool]
) -> None:
    check(client.get(_query(params), samples))


def _repeat(request: Callable[[], Any], run: Run) -> None:
    deadline = time.monotonic() + run.budget_seconds
    for count in range(run.max_requests):
        if count >= run.min_requests and time.monotonic() > deadline:
            return
        request()


def _read_year(client: Client, pages: Samples, year: Samples, hours: int) -> None:
    """Every point of the year, limit=1000 pages following next_cursor; one sample of `year` per read."""
    cursor: str | None = None
    points = 0
    started = time.perf_counter()
    functions = 0.0
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        body = client.get(_query(params), pages).json()
        functions += pages.function_ms[-1]
        points += len(body["points"])
        cursor = body.get("next_cursor")
        if not cursor:
            break
    if points != hours:
        raise RuntimeError(f"a whole-year read returned {points} points, not {hours}")
    year.http_ms.append((time.perf_counter() - started) * 1000)
    year.function_ms.append(functions)


def _query(params: dict[str, str]) -> dict[str, str]:
    return {"endpoint": "historical", **params}


def _json_points(expected: int) -> Callable[[requests.Response], bool]:
    def check(response: requests.Response) -> bool:
        points = len(response.json()["points"])
        if points != expected:
            raise RuntimeError(f"expected {expected} points, got {points}")
        return True

    return check


def _csv_rows(expected: int) -> Callable[[requests.Response], bool]:
    def check(response: requests.Response) -> bool:
        rows = response.text.count("\n") - 1  # minus the header line
        if rows != expected or not response.headers.get("Content-Type", "").startswith("text/csv"):
            raise RuntimeError(f"expected {expected} CSV rows, got {rows} ({response.headers.get('Content-Type')})")
        return True

    return check


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    header(TITLE)
    main()
