"""What xengage costs a month for 10,000, 100,000 and 1,000,000 tracked Posts, computed from the code.

    python -m bench.cost [--posts 10000 100000 1000000] [--sample 6]      (`make cost`; from the repo root, with
                                                                             layers/common on PYTHONPATH)

Setup. Nothing here is typed in but the price table and the stated assumptions (ASSUMED_*, `Mix`):
- cadence: `pipeline.cadence.next_due_at` (and `historical_window`) run over each endpoint's whole life of one Post,
  tick by tick at the template's schedule rate; the age bands are where its interval changes;
- the template (parsed as `tests.aws_fixtures.load_template` does): schedule rates, MemorySize, Timeout, SQS
  BatchSize, billing mode, point-in-time recovery, log groups (retention), the Tracing default, CollectorMaxConcurrency;
- ids per call and endpoints: `api_client.catalog` (max_ids, HISTORICAL_MAX_WINDOW); which endpoints a Post gets:
  `dal.registry.endpoints_for`; batching: one account per message, as `pipeline.planner` groups;
- DynamoDB units, bytes stored, log bytes and local seconds per collection: measured by `bench.cost_units`, which runs
  the real planner and collector for a sample of Posts of each age band on moto + the emulator.
Age mix (`Mix`): the steady state of a team that tracks each new Post from its creation for `age_days`, Posts
arriving at a constant rate, so tracked ages are uniform over [0, age_days); `account_share` of the Posts belong to
registered accounts of `posts_per_account` Posts each (the rest are app-only: /totals only); the API answers
`api_queries_per_day` reads of `query_days` of a Post's hourly /historical points. A month is 30 days.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Final

from bench.common import header, table
from bench.cost_units import MEASURE_GAP, Band, Measurement, measure
from tests.aws_fixtures import load_template

TITLE: Final = "cost model: $/month for 10k, 100k and 1M tracked Posts (cadence, template, measured writes)"
MONTH: Final = timedelta(days=30)
MINUTES_A_MONTH: Final = MONTH.total_seconds() / 60
GB: Final = 1 << 30

# us-east-1 list prices as published on the services' pricing pages (aws.amazon.com/<service>/pricing), no free
# tier, no tiered discounts. Checked 2026-12-03 against third-party copies found with the search tool (no
# internet here): Lambda arm64 and requests, Secrets Manager, DynamoDB on-demand ($0.625 / $0.125 since the
# November 2024 cut; some pages still show $1.25 / $0.25) agreed; the others are taken as published, unchecked.
PRICES_DATE: Final = "2026-12-03"
PRICES: Final[dict[str, float]] = {
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "sqs_request": 0.40 / 1e6,  # standard queue, per 64 KB chunk
    "dynamodb_write_request_unit": 0.625 / 1e6,
    "dynamodb_read_request_unit": 0.125 / 1e6,
    "dynamodb_storage_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,  # continuous backups (point-in-time recovery)
    "secret_month": 0.40,
    "secrets_api_call": 0.05 / 10_000,
    "logs_ingested_gb": 0.50,
    "logs_stored_gb_month": 0.03,
    "xray_trace": 5.00 / 1e6,
    "scheduler_invocation": 1.00 / 1e6,
    "api_gateway_rest_request": 3.50 / 1e6,
    # CloudWatch, as published, unchecked: custom metrics (first 10,000; billed by the hour a metric is emitted),
    # standard-resolution alarms per metric they read (a metric math alarm of 4 metrics is 4), dashboards (3 free).
    "cloudwatch_custom_metric_month": 0.30,
    "cloudwatch_alarm_metric_month": 0.10,
    "cloudwatch_dashboard_month": 3.00,
}

# Stated assumptions (not measurable here):
ASSUMED_CALL_SECONDS: Final = 1.5  # an Engagement API call, as the template's sizing note says ("~1-2 s a call")
# The planner per due Post: bench/README planner_memory, 10,000 real leases on dynalite in 35.8 s (the sample's
# in-process moto is several times slower and pays each tick's 16 DueIndex pages for a handful of Posts).
ASSUMED_PLAN_SECONDS_PER_POST: Final = 35.8 / 10_000
ASSUMED_API_SECONDS: Final = 0.1  # an API read of a month of points (bench/README api_latency: p50 86 ms a page)
ASSUMED_API_LOG_BYTES: Final = 1_000  # the API's log lines per request
ASSUMED_IDLE_POLLERS: Final = 5  # SQS event source pollers, each a 20 s long poll while the queue is empty
REFERENCE_LIMIT: Final = 60  # calls/min: X publishes no number; Gnip-Insights-Interface paces at 1 call/s
CALLS_PER_COLLECTOR_MINUTE: Final = 60 / ASSUMED_CALL_SECONDS
RATE_BUDGET_WRITES_PER_CALL: Final = 1  # one conditional UpdateItem (< 1 KB) per call, dal/rate_budget.py


@dataclass(frozen=True)
class Mix:
    posts: int
    age_days: int = 365
    account_share: float = 0.8
    posts_per_account: int = 1_000
    api_queries_per_day: int = 200
    query_days: int = 30

    @property
    def accounts(self) -> int:
        return math.ceil(self.posts * self.account_share / self.posts_per_account)


# --- the template ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSettings:
    schedules: dict[str, timedelta]  # endpoint -> interval between ticks
    memory_mb: dict[str, int]
    timeout_s: dict[str, int]
    batch_size: int
    max_concurrency: int
    billing_modes: frozenset[str]
    pitr_tables: int
    log_retention_days: int | None  # None: no log group sets one, Lambda's groups never expire
    tracing: str
    tables: int = 3
    alarm_metrics: int = 0  # metrics the alarms read (those of alarms without a Condition, i.e. at the defaults)
    dashboards: int = 0


def _default(value: Any, parameters: dict[str, Any]) -> Any:
    """A parameter's default where the template says !Ref Parameter."""
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
        return parameters[value["Ref"]].get("Default")
    return value


def _schedules(planner: dict[str, Any], parameters: dict[str, Any]) -> dict[str, timedelta]:
    import json

    from xengage.pipeline.planner import schedule_interval

    schedules = {}
    for event in planner["Properties"]["Events"].values():
        if event["Type"] != "ScheduleV2":
            continue
        endpoint = json.loads(event["Properties"]["Input"]["Fn::Sub"].replace("${", "{"))["endpoint"]
        interval = schedule_interval(_default(event["Properties"]["ScheduleExpression"], parameters))
        if interval is None:
            raise SystemExit(f"cost: the {endpoint} schedule is not a rate(...): the model needs a fixed interval")
        schedules[endpoint] = interval
    return schedules


def template_settings(template: dict[str, Any] | None = None) -> TemplateSettings:
    template = template or load_template()
    parameters, resources = template["Parameters"], template["Resources"]
    function = template["Globals"]["Function"]
    functions = {
        name[: -len("Function")].lower(): name for name in ("PlannerFunction", "CollectorFunction", "ApiFunction")
    }
    properties = {short: resources[name]["Properties"] for short, name in functions.items()}
    tables = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table"]
    retention = [
        r["Properties"].get("RetentionInDays") for r in resources.values() if r["Type"] == "AWS::Logs::LogGroup"
    ]
    sqs = properties["collector"]["Events"]["CollectBatches"]["Properties"]
    return TemplateSettings(
        schedules=_schedules(resources["PlannerFunction"], parameters),
        memory_mb={short: int(p.get("MemorySize", function["MemorySize"])) for short, p in properties.items()},
        timeout_s={
            short: int(_default(p.get("Timeout", function["Timeout"]), parameters)) for short, p in properties.items()
        },
        batch_size=int(sqs["BatchSize"]),
        max_concurrency=int(_default(sqs["ScalingConfig"]["MaximumConcurrency"], parameters)),
        billing_modes=frozenset(t.get("BillingMode", "PROVISIONED") for t in tables),
        pitr_tables=sum(
            bool(t.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")) for t in tables
        ),
        log_retention_days=min(retention) if retention and None not in retention else None,
        tracing=str(_default(function["Tracing"], parameters)),
        tables=len(tables),
        alarm_metrics=sum(
            1 if "MetricName" in r["Properties"] else sum("MetricStat" in q for q in r["Properties"]["Metrics"])
            for r in resources.values()
            if r["Type"] == "AWS::CloudWatch::Alarm" and "Condition" not in r
        ),
        dashboards=sum(r["Type"] == "AWS::CloudWatch::Dashboard" for r in resources.values()),
    )


# --- the cadence -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collection:
    age: timedelta
    windows: int  # calls one Post's batch needs: /historical windows of 4 weeks, else 1


def life(endpoint: str, interval: timedelta, tracked_for: timedelta) -> list[Collection]:
    """Every collection of one Post on `endpoint` from its creation until `tracked_for`, at the schedule's ticks."""
    from local.emulator.world import snowflake_for
    from xengage.api_client.catalog import HISTORICAL_MAX_WINDOW, Endpoint
    from xengage.pipeline.cadence import historical_window, next_due_at

    first_tick = datetime(2026, 1, 1, tzinfo=UTC)
    created = first_tick - interval / 2  # halfway between ticks: the mean wait for the first one
    tweet_id, kind = snowflake_for(created), Endpoint(endpoint)
    collections, due, last_hour, tick = [], created, None, first_tick
    while tick - created < tracked_for:
        if due <= tick:
            window = historical_window(tweet_id, last_hour, tick) if kind is Endpoint.HISTORICAL else None
            if kind is not Endpoint.HISTORICAL or window is not None:
                windows = math.ceil((window[1] - window[0]) / HISTORICAL_MAX_WINDOW) if window else 1
                collections.append(Collection(tick - created, windows))
                last_hour = window[1] if window else None
                next_due = next_due_at(kind, tweet_id, tick)
                if next_due is None:
                    break
                due = next_due
        tick += max(interval, (due - tick) // interval * interval)
    return collections


def sample_bands(lives: dict[str, list[Collection]], tracked_for: timedelta) -> list[Band]:
    """One band per stretch of ages over which no endpoint's interval changes (stretches under a day join the
    band before), sampled at its middle, and at least a day and a half old: the sample exists at the warm-up tick."""
    edges = {timedelta(0), tracked_for}
    for collections in lives.values():
        ages = [collection.age for collection in collections]
        gaps = [later - earlier for earlier, later in pairwise(ages)]
        edges |= {ages[index] for index in range(1, len(gaps)) if gaps[index] != gaps[index - 1]}
    ordered = [edge for edge in sorted(edges) if edge <= tracked_for]
    starts = [ordered[0]] + [edge for edge in ordered[1:-1] if edge - ordered[0] >= MEASURE_GAP]
    starts = [edge for index, edge in enumerate(starts) if index == 0 or edge - starts[index - 1] >= MEASURE_GAP]
    bands = []
    for low, high in zip(starts, [*starts[1:], tracked_for], strict=True):
        age = max((low + high) / 2, MEASURE_GAP + timedelta(hours=12))
        bands.append(Band(f"{_days(low)}-{_days(high)}", age, low, high))
    return bands


def _days(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours / 24:.0f}d" if hours >= 48 else f"{hours:.0f}h"


def band_of(bands: list[Band], age: timedelta) -> Band:
    """The band a collection at `age` falls in."""
    return next((band for band in bands if band.low <= age < band.high), bands[-1])


# --- the model -------------------------------------------------------------------------------------------------


@dataclass
class EndpointLoad:
    endpoint: str
    interval: timedelta
    posts_due_per_tick: float = 0.0
    calls_per_tick: float = 0.0
    messages_per_tick: float = 0.0
    collections: float = 0.0  # per month
    units: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # per month
    plan_seconds_per_tick: float = 0.0
    collect_seconds: float = 0.0  # per month, local work (measured)
    log_bytes: float = 0.0  # per month
    stored_bytes: float = 0.0  # the tracked population's MetricsTable bytes at steady state

    @property
    def ticks(self) -> float:
        return MONTH / self.interval

    @property
    def calls(self) -> float:
        return self.calls_per_tick * self.ticks

    @property
    def messages(self) -> float:
        return self.messages_per_tick * self.ticks

    @property
    def limit_needed(self) -> int:
        """The per-minute limit under which every tick's calls fit before the next tick (planner capacity)."""
        return math.ceil(self.calls_per_tick / (self.interval.total_seconds() / 60))


def _batches(posts: float, max_ids: int) -> float:
    """Messages for `posts` due Posts of one auth context: a fraction below one Post is the chance of a message."""
    return posts if posts < 1 else math.ceil(posts / max_ids)


def endpoint_load(
    endpoint: str, interval: timedelta, mix: Mix, lifetime: list[Collection], bands: list[Band], measured: Measurement
) -> EndpointLoad:
    from xengage.api_client.catalog import Endpoint
    from xengage.dal.registry import endpoints_for

    kind = Endpoint(endpoint)
    app_posts = mix.posts * (1 - mix.account_share) if kind in endpoints_for(None) else 0.0
    population = mix.posts * mix.account_share + app_posts
    arrivals = population / mix.age_days * MONTH.days  # Posts starting their life this month = retiring
    load = EndpointLoad(endpoint, interval, collections=arrivals * len(lifetime))
    load.posts_due_per_tick = load.collections / load.ticks
    account_due = load.posts_due_per_tick * mix.posts * mix.account_share / population
    app_due = load.posts_due_per_tick - account_due
    load.messages_per_tick = mix.accounts * _batches(account_due / mix.accounts, kind.max_ids) + _batches(
        app_due, kind.max_ids
    )
    mean_windows = sum(c.windows for c in lifetime) / max(1, len(lifetime))
    load.calls_per_tick = load.messages_per_tick * mean_windows
    previous = timedelta(0)
    for collection in lifetime:
        tick = measured.ticks.get((endpoint, band_of(bands, collection.age).label))
        since, previous = collection.age - previous, collection.age
        if tick is None:
            continue
        for name in tick.units:
            load.units[name] += arrivals * tick.per_post(name)
        load.collect_seconds += arrivals * tick.collect_seconds / tick.posts
        load.log_bytes += arrivals * (tick.collect_log_bytes / tick.posts)
        # a /totals snapshot is new each time; a series adds the hours since the last collection (the measured
        # tick added a day's); the tracked population holds them for the rest of its tracked life
        added = tick.stored_bytes / tick.posts * (min(1.0, since / MEASURE_GAP) if kind.is_time_series else 1.0)
        load.stored_bytes += population * (1 - collection.age / timedelta(days=mix.age_days)) * added
    load.plan_seconds_per_tick = load.posts_due_per_tick * ASSUMED_PLAN_SECONDS_PER_POST
    load.log_bytes += load.ticks * _mean(measured, endpoint, "plan_log_bytes", per_post=False)
    load.units["write_units"] += load.calls * RATE_BUDGET_WRITES_PER_CALL
    load.units["write_requests"] += load.calls * RATE_BUDGET_WRITES_PER_CALL
    return load


def _mean(measured: Measurement, endpoint: str, name: str, *, per_post: bool = True) -> float:
    ticks = [tick for (each, _), tick in measured.ticks.items() if each == endpoint]
    if not ticks:
        return 0.0
    if per_post:
        return sum(getattr(tick, name) for tick in ticks) / sum(tick.posts for tick in ticks)
    return sum(getattr(tick, name) for tick in ticks) / len(ticks)


@dataclass
class Line:
    service: str
    what: str
    quantity: float
    unit: str
    dollars: float
    lever: str  # what to change first when this line dominates


@dataclass
class Model:
    mix: Mix
    loads: list[EndpointLoad]
    lines: list[Line]
    warnings: list[str]

    @property
    def dollars(self) -> float:
        return sum(line.dollars for line in self.lines)


def model(mix: Mix, settings: TemplateSettings, measured: Measurement, bands: list[Band]) -> Model:
    tracked_for = timedelta(days=mix.age_days)
    loads = [
        endpoint_load(endpoint, interval, mix, life(endpoint, interval, tracked_for), bands, measured)
        for endpoint, interval in settings.schedules.items()
    ]
    lines = [
        *_lambda_lines(mix, settings, measured, loads),
        *_dynamodb_lines(mix, settings, measured, loads),
        *_other_lines(mix, settings, measured, loads),
        *_cloudwatch_lines(settings),
    ]
    return Model(mix, loads, lines, _warnings(settings, loads))


def _collector_invocations(settings: TemplateSettings, loads: list[EndpointLoad]) -> float:
    # a tick queues its messages at once, so the event source hands them over in full batches
    return sum(math.ceil(load.messages_per_tick / settings.batch_size) * load.ticks for load in loads)


def _lambda_lines(mix: Mix, settings: TemplateSettings, measured: Measurement, loads: list[EndpointLoad]) -> list[Line]:
    ticks = sum(load.ticks for load in loads)
    collector = _collector_invocations(settings, loads)
    queries = mix.api_queries_per_day * MONTH.days
    seconds = {
        "planner": sum(load.plan_seconds_per_tick * load.ticks for load in loads),
        "collector": sum(load.calls * ASSUMED_CALL_SECONDS + load.collect_seconds for load in loads),
        "api": queries * ASSUMED_API_SECONDS,
    }
    gb_seconds = {name: seconds[name] * settings.memory_mb[name] / 1024 for name in seconds}
    invocations = ticks + collector + queries
    return [
        Line("Lambda", "invocations", invocations, "requests", invocations * PRICES["lambda_request"], "-"),
        *(
            Line(
                "Lambda",
                f"{name} GB-s ({settings.memory_mb[name]} MB)",
                gb_seconds[name],
                "GB-s",
                gb_seconds[name] * PRICES["lambda_gb_second_arm64"],
                f"{name} MemorySize (it waits on X, not on CPU) or fewer calls",
            )
            for name in gb_seconds
        ),
    ]


def _dynamodb_lines(
    mix: Mix, settings: TemplateSettings, measured: Measurement, loads: list[EndpointLoad]
) -> list[Line]:
    writes = sum(load.units["write_units"] for load in loads)
    reads: float = sum(load.units["read_units"] for load in loads)
    historical = measured.ticks.get(("historical", next(iter(_labels(measured, "historical")), "")))
    bytes_per_hour = historical.stored_bytes / historical.posts / 24 if historical else 0.0
    query_units = math.ceil(mix.query_days * 24 * bytes_per_hour / 4096) * 0.5
    reads += mix.api_queries_per_day * MONTH.days * query_units
    stored = sum(load.stored_bytes for load in loads) + mix.posts * measured.registry_bytes_per_post
    top = max(loads, key=lambda load: load.units["write_units"])
    return [
        Line(
            "DynamoDB",
            "write request units",
            writes,
            "WRU",
            writes * PRICES["dynamodb_write_request_unit"],
            f"/{top.endpoint} writes ({top.units['write_units'] / writes:.0%}): its cadence for young Posts "
            "or its items",
        ),
        Line("DynamoDB", "read request units", reads, "RRU", reads * PRICES["dynamodb_read_request_unit"], "-"),
        Line(
            "DynamoDB",
            "storage (+PITR)",
            stored / GB,
            "GB",
            stored
            / GB
            * (
                PRICES["dynamodb_storage_gb_month"]
                + PRICES["dynamodb_pitr_gb_month"] * settings.pitr_tables / settings.tables
            ),
            "a TTL or archive for retired Posts' series",
        ),
    ]


def _labels(measured: Measurement, endpoint: str) -> list[str]:
    return [band for each, band in measured.ticks if each == endpoint]


def _other_lines(mix: Mix, settings: TemplateSettings, measured: Measurement, loads: list[EndpointLoad]) -> list[Line]:
    ticks = sum(load.ticks for load in loads)
    collector = _collector_invocations(settings, loads)
    messages = sum(load.messages for load in loads)
    sends = sum(math.ceil(load.messages_per_tick / 10) * load.ticks for load in loads)
    idle_polls = ASSUMED_IDLE_POLLERS * 3 * MINUTES_A_MONTH
    sqs = sends + 2 * collector + idle_polls  # a receive and a delete per batch
    secrets = mix.accounts + 1  # one per account, plus the app's
    secret_calls = ticks + collector + messages * mix.account_share  # upper bound: Powertools caches 300 s
    queries = mix.api_queries_per_day * MONTH.days
    blob = max((tick.metrics_blob_bytes for tick in measured.ticks.values()), default=0)
    log_bytes = sum(load.log_bytes for load in loads) + collector * blob + queries * ASSUMED_API_LOG_BYTES
    stored_logs = log_bytes * (12 if settings.log_retention_days is None else settings.log_retention_days / 30)
    traces = (ticks + collector + queries) if settings.tracing == "Active" else 0
    return [
        Line("SQS", "requests", sqs, "requests", sqs * PRICES["sqs_request"], "-"),
        Line(
            "Secrets Manager",
            "secrets",
            secrets,
            "secrets",
            secrets * PRICES["secret_month"],
            "one secret per account: keep tokens of many accounts in one secret",
        ),
        Line(
            "Secrets Manager",
            "API calls (upper bound)",
            secret_calls,
            "calls",
            secret_calls * PRICES["secrets_api_call"],
            "-",
        ),
        Line(
            "CloudWatch Logs",
            "ingested",
            log_bytes / GB,
            "GB",
            log_bytes / GB * PRICES["logs_ingested_gb"],
            "LogLevel WARN (one INFO line per message)",
        ),
        Line(
            "CloudWatch Logs",
            "stored (12th month, no retention)" if settings.log_retention_days is None else "stored",
            stored_logs / GB,
            "GB",
            stored_logs / GB * PRICES["logs_stored_gb_month"],
            "a log retention",
        ),
        Line("X-Ray", f"traces (Tracing={settings.tracing})", traces, "traces", traces * PRICES["xray_trace"], "-"),
        Line("EventBridge Scheduler", "invocations", ticks, "invocations", ticks * PRICES["scheduler_invocation"], "-"),
        Line("API Gateway", "REST requests", queries, "requests", queries * PRICES["api_gateway_rest_request"], "-"),
    ]


def custom_metrics() -> int:
    """Metric series the functions can emit (`xengage.observability.EMITTED_METRICS`): one per name and service, one
    per non-ok status for `Posts_<status>`, one per endpoint for the planner's staleness gauges."""
    from xengage.api_client.catalog import Endpoint, Reason
    from xengage.observability import EMITTED_METRICS, PER_ENDPOINT_METRICS

    series = 0
    for names in EMITTED_METRICS.values():
        series += sum(len(Endpoint) if name in PER_ENDPOINT_METRICS else 1 for name in names)
    return series + len(Reason)


def _cloudwatch_lines(settings: TemplateSettings) -> list[Line]:
    """Fixed costs, whatever the number of Posts (EMF lines are in the logs' bytes)."""
    metrics = custom_metrics()
    return [
        Line(
            "CloudWatch",
            "custom metrics (upper bound: each emitted every hour)",
            metrics,
            "metrics",
            metrics * PRICES["cloudwatch_custom_metric_month"],
            "fewer series: Posts_<status> is one a status, the staleness gauges one an endpoint",
        ),
        Line(
            "CloudWatch",
            "alarm metrics",
            settings.alarm_metrics,
            "metrics",
            settings.alarm_metrics * PRICES["cloudwatch_alarm_metric_month"],
            "-",
        ),
        Line(
            "CloudWatch",
            "dashboards (no free tier)",
            settings.dashboards,
            "dashboards",
            settings.dashboards * PRICES["cloudwatch_dashboard_month"],
            "-",
        ),
    ]


def _warnings(settings: TemplateSettings, loads: list[EndpointLoad]) -> list[str]:
    from xengage.pipeline.planner import PLANNER_RESERVE_SECONDS

    warnings = []
    for load in loads:
        if load.limit_needed > REFERENCE_LIMIT:
            warnings.append(
                f"the per-minute limit: /{load.endpoint} needs {load.limit_needed:,} calls/min "
                f"(reference {REFERENCE_LIMIT})"
            )
        collectors = math.ceil(load.limit_needed / CALLS_PER_COLLECTOR_MINUTE)
        if collectors > settings.max_concurrency:
            warnings.append(
                f"CollectorMaxConcurrency: {collectors} collectors to make /{load.endpoint}'s "
                f"{load.limit_needed:,} calls/min (default {settings.max_concurrency})"
            )
        budget = settings.timeout_s["planner"] - PLANNER_RESERVE_SECONDS
        if load.plan_seconds_per_tick > budget:
            warnings.append(
                f"the planner's Timeout: a /{load.endpoint} tick of {load.posts_due_per_tick:,.0f} Posts takes "
                f"~{load.plan_seconds_per_tick:,.0f} s ({ASSUMED_PLAN_SECONDS_PER_POST * 1000:.1f} ms a Post), "
                f"over its {budget:.0f} s: the rest waits for the next tick"
            )
    return warnings


# --- the report ------------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def report_inputs(settings: TemplateSettings, mix: Mix, measured: Measurement, bands: list[Band]) -> None:
    schedules = ", ".join(f"/{name} every {_minutes(interval)}" for name, interval in settings.schedules.items())
    print(f"prices: us-east-1, as published, checked {PRICES_DATE} (no free tier)")
    print(
        f"template: {schedules}; MemorySize {settings.memory_mb}; Timeout {settings.timeout_s}; SQS BatchSize "
        f"{settings.batch_size}; CollectorMaxConcurrency {settings.max_concurrency}; "
        f"{'/'.join(sorted(settings.billing_modes))}; "
        f"PITR on {settings.pitr_tables} of {settings.tables} tables; log retention "
        f"{'none (never expires)' if settings.log_retention_days is None else settings.log_retention_days}; "
        f"Tracing={settings.tracing}"
    )
    print(
        f"age mix: tracked from creation for {mix.age_days} days at a constant rate (ages uniform), "
        f"{mix.account_share:.0%} of Posts of registered accounts ({mix.posts_per_account:,} Posts each), the rest "
        f"app-only (/totals); API: {mix.api_queries_per_day} reads a day of {mix.query_days} days of hourly points"
    )
    print(
        f"assumed: {ASSUMED_CALL_SECONDS} s an Engagement API call, {ASSUMED_PLAN_SECONDS_PER_POST * 1000:.1f} ms a "
        f"planned Post, {ASSUMED_API_SECONDS} s and "
        f"{ASSUMED_API_LOG_BYTES} log bytes an API request, {ASSUMED_IDLE_POLLERS} idle SQS pollers, "
        f"{RATE_BUDGET_WRITES_PER_CALL} rate-budget write a call"
    )
    rows = []
    for (endpoint, band), tick in sorted(
        measured.ticks.items(),
        key=lambda item: (item[0][0], next(b.low for b in bands if b.label == item[0][1])),
    ):
        rows.append(
            [
                f"/{endpoint} {band}",
                tick.posts,
                tick.messages,
                tick.calls,
                f"{tick.per_post('write_units'):.1f}",
                f"{tick.per_post('write_requests'):.2f}",
                f"{tick.per_post('read_units'):.2f}",
                f"{tick.stored_bytes / tick.posts:,.0f}",
                f"{(tick.plan_seconds + tick.collect_seconds) / tick.posts * 1000:.0f}",
            ]
        )
    print(
        f"measured per Post and collection ({measured.sample} Posts a band, moto + emulator, {measured.seconds:.1f} s; "
        f"RegistryTable {measured.registry_bytes_per_post:,.0f} B a Post):"
    )
    print(
        table(["endpoint, age", "Posts", "msgs", "calls", "WRU", "write reqs", "RRU", "bytes stored", "ms local"], rows)
    )


def _minutes(interval: timedelta) -> str:
    minutes = interval.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 60 else f"{minutes / 60:.0f} h"


def report(result: Model, settings: TemplateSettings) -> None:
    header(f"{result.mix.posts:,} tracked Posts ({result.mix.accounts:,} accounts): ${result.dollars:,.2f} a month")
    rows = [
        [
            f"/{load.endpoint}",
            _minutes(load.interval),
            f"{load.posts_due_per_tick:,.0f}",
            f"{load.calls_per_tick:,.1f}",
            f"{load.calls:,.0f}",
            f"{load.calls / MINUTES_A_MONTH:,.2f}",
            f"{load.limit_needed:,}",
            math.ceil(load.limit_needed / CALLS_PER_COLLECTOR_MINUTE),
        ]
        for load in result.loads
    ]
    print(
        table(
            [
                "endpoint",
                "tick",
                "Posts/tick",
                "calls/tick",
                "calls/month",
                "avg/min",
                "limit needed/min",
                "collectors",
            ],
            rows,
        )
    )
    rows = [
        [line.service, line.what, _number(line.quantity), line.unit, f"{line.dollars:,.2f}"] for line in result.lines
    ]
    print(table(["service", "what (a month)", "quantity", "unit", "$"], rows))
    print("what to change first:")
    for number, text in enumerate(what_to_change(result), start=1):
        print(f"  {number}. {text}")


def what_to_change(result: Model) -> list[str]:
    """The limits the deployment breaks first, then the dearest lines with a lever."""
    ranked = sorted((line for line in result.lines if line.lever != "-"), key=lambda line: -line.dollars)
    total = result.dollars or 1.0
    dearest = [
        f"{line.service} {line.what}: ${line.dollars:,.2f} ({line.dollars / total:.0%}) -> {line.lever}"
        for line in ranked[:3]
    ]
    return [*result.warnings, *dearest]


def main(argv: Sequence[str] | None = None) -> list[Model]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--sample", type=int, default=6, help="Posts measured per age band")
    parser.add_argument("--age-days", type=int, default=Mix.age_days)
    parser.add_argument("--account-share", type=float, default=Mix.account_share)
    parser.add_argument("--posts-per-account", type=int, default=Mix.posts_per_account)
    parser.add_argument("--api-queries-per-day", type=int, default=Mix.api_queries_per_day)
    args = parser.parse_args(argv)
    settings = template_settings()
    tracked_for = timedelta(days=args.age_days)
    lives = {endpoint: life(endpoint, interval, tracked_for) for endpoint, interval in settings.schedules.items()}
    bands = sample_bands(lives, tracked_for)
    measured = measure(bands, args.sample)
    mixes = [
        Mix(posts, args.age_days, args.account_share, args.posts_per_account, args.api_queries_per_day)
        for posts in args.posts
    ]
    report_inputs(settings, mixes[0], measured, bands)
    results = [model(mix, settings, measured, bands) for mix in mixes]
    for result in results:
        report(result, settings)
    return results


if __name__ == "__main__":
    header(TITLE)
    main()
