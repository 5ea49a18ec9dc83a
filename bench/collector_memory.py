"""Collector peak memory on its heaviest inputs, and the Lambda memory size that fits it.

    python -m bench.collector_memory        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Setup: DynamoDB is dynalite (its own Node.js process), SQS and Secrets Manager a moto server in a child process,
the Engagement API the emulator on loopback (real clock). Each scenario gets its own stack of resources from
template.yaml (`local.stack.resources.create_stack_resources`, under its own stack name, so one scenario's Posts are
never due in another's) and the functions' environments as the template gives them (`local.stack.functions.
function_specs`, `ENGAGEMENT_API_URL` pointed at the emulator). The app secret holds the emulator's app; the
scenario's accounts are registered with their tokens and their Posts tracked through the DAL (`local.stack.seed`);
the real planner (`plan()`, with the planner's environment) leases the due markers and queues the messages; the
messages are received from the queue and delivered to the real collector handler (`collector.lambda_handler`) as
Lambda's event source mapping would: SQS records, `BatchSize` of the template's event (5) to an event.

The handler runs in a fresh process per scenario (`local.stack.functions.FunctionWorker`: a warm Lambda container
that imported the handler), so what it holds belongs to that scenario alone. Baseline: its RSS just after the init
phase (imports). Then its peak-RSS mark (VmHWM, what ru_maxrss reports) is reset through /proc/<pid>/clear_refs and
the batches are delivered; peak: VmHWM after them, growth: peak - baseline. "peak RSS" in the table is the
process's ru_maxrss over its life (init included), what Lambda's Max Memory Used would report less the runtime's
own bootstrap. CPU seconds are the process's own (utime + stime), apart from dynalite, moto and the emulator.

Each run must collect every Post: the handler reports no failed record, every due marker is released with a
collection time, every Post's status is `ok`, the items the collector wrote are the items MetricsTable holds, and
the emulator answered exactly the calls the collector counted. A run that fetched nothing cannot pass as small.

Scenarios (sizes are arguments, so the smoke test runs small ones): /totals, one account, 1,250 Posts: 5 messages
of 250 ids in one batch (one invocation); /historical, one account, 25 Posts created in the hour 28 days before
the tick's hour and never collected: the planner asks from their creation hour, one full 28-day window, the most one
call may ask (672 hours x 25 Posts: 16,800 items); the same for 5 accounts, 5 such messages in one batch (does
memory come back between messages?); /28hr, one account, 25 Posts three days old, for comparison.

The figures end with the template's MemorySize and Timeout for the collector (read from template.yaml) against
candidate sizes: how far each is over the measured peak, and the heaviest message and batch projected at its CPU
share (Lambda gives one vCPU at 1,769 MB, less in proportion; the CPU seconds measured here are stretched, the waits
kept). The recommendation is the smallest size at least HEADROOM times the peak whose heaviest message fits in
TIMEOUT_SHARE of the timeout.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bench.common import (
    TEMPLATE_PATH,
    dynalite,
    fake_aws_env,
    header,
    proc_status_bytes,
    quiet_library_output,
    reset_peak_rss,
    scoped_env,
    stored_items_and_points,
    table,
)
from bench.planner_memory import moto_server
from xengage.dal.paging import ceil_div

if TYPE_CHECKING:
    from local.emulator import EmulatorServer
    from local.stack.functions import FunctionSpec, FunctionWorker
    from local.stack.template import PhysicalIds

TITLE: Final = "collector peak memory: the Lambda handler on its heaviest batches (dynalite + moto + emulator)"
WHY_DYNALITE: Final = "the collector's reads and writes should cost what DynamoDB's do (moto's Query reads the table)"
STACK_PREFIX: Final = "xengage-mem"
# Lambda allocates CPU in proportion to memory: the equivalent of one vCPU at 1,769 MB
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
MB_PER_VCPU: Final = 1_769
CANDIDATE_MB: Final = (128, 256, 512, 1_024, MB_PER_VCPU)
# Memory a size must leave over the measured peak: responses vary with the data, and a function out of memory is
# killed mid-batch (every record of the batch comes back), so headroom is cheap insurance.
HEADROOM: Final = 2.0
# The heaviest batch, at a size's CPU share, must fit in this share of the timeout (the collector keeps a fifth
# of its time for writes and hands on what does not fit: a batch planned to fill it would be handed on).
TIMEOUT_SHARE: Final = 0.5
USER_ID_BASE: Final = 3_000_000_000
_MIB: Final = 1 << 20
DAY: Final = timedelta(days=1)


@dataclass(frozen=True)
class Scenario:
    name: str
    key: str  # part of the scenario's stack name
    endpoint: str  # Endpoint value
    accounts: int
    posts_per_account: int
    age: timedelta  # the Posts were created this long before the tick's hour

    @property
    def posts(self) -> int:
        return self.accounts * self.posts_per_account


def scenarios(
    *,
    totals_accounts: int = 1,
    totals_posts: int = 1_250,
    historical_posts: int = 25,
    window_days: int = 28,
    historical_batch: int | None = 5,
    hourly_posts: int | None = 25,
) -> list[Scenario]:
    """The heaviest inputs: /totals at 250 ids a message; /historical over a full window, one message and a batch of
    `historical_batch` such messages (one account each); /28hr for comparison. None leaves a scenario out.
    `totals_posts` is per account: each account's Posts go in messages of their own."""
    window = timedelta(days=window_days)
    found = [
        Scenario(
            f"/totals {totals_accounts} x {totals_posts:,} Posts",
            "totals",
            "totals",
            totals_accounts,
            totals_posts,
            DAY,
        ),
        Scenario(f"/historical {window_days} d, 1 msg", "historical", "historical", 1, historical_posts, window),
    ]
    if historical_batch:
        name = f"/historical {window_days} d, {historical_batch} msgs"
        found.append(Scenario(name, "historical-batch", "historical", historical_batch, historical_posts, window))
    if hourly_posts:
        found.append(Scenario("/28hr (comparison)", "28hr", "28hr", 1, hourly_posts, 3 * DAY))
    return found


@dataclass
class Result:
    scenario: Scenario
    memory_size: int  # the template's MemorySize for the collector (MB)
    timeout: int  # the template's Timeout for the collector (s)
    messages: int = 0
    invocations: int = 0
    window_hours: list[int] = field(default_factory=list)  # /historical: each message's window
    min_calls: int = 0  # one a message, one a 4-week window for /historical
    api_calls: int = 0  # as the emulator counted them
    items_written: int = 0  # as the collector counted them
    items_stored: int = 0  # MetricsTable items after the run (a fresh table)
    points_stored: int = 0  # the points they hold (snapshots, and hours of day items)
    statuses: Counter[str] = field(default_factory=Counter)
    collected: int = 0  # due markers released with a collection time
    baseline: int = 0  # bytes: RSS after init
    init_peak: int = 0  # bytes: VmHWM after init
    peak: int = 0  # bytes: VmHWM over the invocations (reset after init)
    reset: bool = False
    seconds: float = 0.0  # the invocations, as the worker timed them
    cpu_seconds: float = 0.0  # the handler process's CPU over the invocations
    init_cpu_seconds: float = 0.0  # ... and over its init phase

    @property
    def peak_rss(self) -> int:
        return max(self.init_peak, self.peak)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@dataclass
class Services:
    """What every scenario's stack shares: dynalite, the moto server, the emulator, a folder for the logs."""

    dynamodb_url: str
    moto_url: str
    emulator: EmulatorServer
    log_dir: Path
    tick: datetime


def main() -> None:
    print(
        "setup: DynamoDB = dynalite, SQS and Secrets Manager = moto server (child process), Engagement API = emulator "
        "(real clock); a stack of resources from template.yaml per scenario; the real planner leases and queues, the "
        "real collector handler runs in a fresh worker process per scenario (a Lambda container) on SQS events"
    )
    results = run(scenarios())
    report(results)


@contextmanager
def services() -> Iterator[Services]:
    from local.emulator import EmulatorServer, World

    tick = datetime.now(UTC).replace(second=0, microsecond=0)  # the schedule's <aws.scheduler.scheduled-time>
    with (
        dynalite("collector_memory", WHY_DYNALITE) as dynamodb_url,
        moto_server() as moto_url,
        EmulatorServer(world=World(), port=0) as emulator,
        tempfile.TemporaryDirectory(prefix="collector-memory-") as log_dir,
        scoped_env(fake_aws_env()),
    ):
        yield Services(dynamodb_url, moto_url, emulator, Path(log_dir), tick)


def run(chosen: Sequence[Scenario]) -> list[Result]:
    """Each scenario on its own stack and in its own collector process; raises when a run did not collect."""
    quiet_library_output()
    with services() as shared:
        return [run_scenario(scenario, shared) for scenario in chosen]


def run_scenario(scenario: Scenario, shared: Services) -> Result:
    from local.stack.functions import FunctionWorker

    ids, specs = _stack(scenario, shared)
    collector = specs["CollectorFunction"]
    result = Result(scenario, memory_size=collector.memory_size, timeout=collector.timeout)
    tweet_ids = _register(scenario, shared, specs["ApiFunction"])
    log_before = len(shared.emulator.log)
    with scoped_env(_outside_lambda(specs["PlannerFunction"])):
        events = _plan(scenario, shared.tick, collector, result)
    worker = FunctionWorker(collector, log_path=shared.log_dir / f"{scenario.key}.log")
    worker.start()
    try:
        _invoke(worker, events, result)
    finally:
        worker.stop()
    result.api_calls = len(shared.emulator.log) - log_before
    with scoped_env(_outside_lambda(specs["PlannerFunction"])):
        _check(scenario, result, tweet_ids, shared, ids.ref("MetricsTable"))
    return result


def _outside_lambda(spec: FunctionSpec) -> dict[str, str]:
    """A function's environment for running its code in this process: its tables, queue, secrets and endpoints,
    without the Lambda runtime's variables (Lambda's log level would override the quiet one set here)."""
    return {name: value for name, value in spec.environment.items() if not name.startswith(("AWS_LAMBDA_", "_"))}


def _stack(scenario: Scenario, shared: Services) -> tuple[PhysicalIds, dict[str, FunctionSpec]]:
    """The template's tables, queues and secrets under the scenario's stack name, and each function's spec."""
    from local.stack.functions import function_specs
    from local.stack.resources import create_stack_resources, put_secret_json
    from local.stack.template import load_template

    template = load_template(TEMPLATE_PATH, stack_name=f"{STACK_PREFIX}-{scenario.key}")
    ids = create_stack_resources(template, shared.moto_url, shared.dynamodb_url)
    emulator_url = shared.emulator.url
    specs = function_specs(
        template,
        template.resolver(ids),
        endpoint_url=shared.moto_url,
        dynamodb_url=shared.dynamodb_url,
        environment_overrides={"ENGAGEMENT_API_URL": emulator_url, "X_API_URL": emulator_url},
    )
    app = shared.emulator.world.app
    app_secret = {"consumer_key": app.consumer_key, "consumer_secret": app.consumer_secret}
    put_secret_json(
        shared.moto_url, template.region, ids.ref("AppSecret"), {**app_secret, "bearer_token": app.bearer_token}
    )
    return ids, specs


def _register(scenario: Scenario, shared: Services, api: FunctionSpec) -> list[str]:
    """The scenario's accounts (emulator users, registered with their tokens) and their Posts, tracked."""
    from local.stack.seed import SeedAccount, SeedPlan, seed_stack
    from xengage.timeutil import floor_hour, to_iso

    world = shared.emulator.world
    created = floor_hour(shared.tick) - scenario.age
    plan = SeedPlan(now=to_iso(shared.tick))
    for number in range(scenario.accounts):
        user_id = str(USER_ID_BASE + len(world.users) + 1)
        user = world.add_user(user_id, f"mem_{scenario.key}_{number}", f"{user_id}-mem-token", f"mem-secret-{user_id}")
        plan.accounts.append(SeedAccount(user_id, user.screen_name, user.access_token, user.access_token_secret))
        # One second apart within the hour: the same creation hour (one /historical window), distinct ids.
        posts = [
            world.add_post(user_id, created + timedelta(seconds=index)) for index in range(scenario.posts_per_account)
        ]
        plan.posts_by_account[user_id] = world.tweet_ids(posts)
    counts = seed_stack(api, plan)
    if counts["posts"] != scenario.posts:
        raise RuntimeError(f"{scenario.name}: tracked {counts['posts']} Posts of {scenario.posts}")
    return [tweet_id for tweet_ids in plan.posts_by_account.values() for tweet_id in tweet_ids]


def _plan(scenario: Scenario, tick: datetime, collector: FunctionSpec, result: Result) -> list[dict[str, Any]]:
    """The planner's tick (it leases every due marker), then the queued messages as the SQS events Lambda's event
    source mapping delivers: BatchSize records an event."""
    from local.stack.sqs_poller import sqs_record
    from xengage.api_client import Endpoint
    from xengage.api_client.catalog import HISTORICAL_MAX_WINDOW
    from xengage.dal.aws import sqs_client
    from xengage.deps import Deps
    from xengage.pipeline.planner import plan
    from xengage.settings import PlannerSettings, from_env
    from xengage.timeutil import parse_iso

    deps = Deps(from_env(PlannerSettings))
    summary = plan(Endpoint(scenario.endpoint), tick, deps=deps)
    quiet_library_output()
    if summary.paused or summary.planned != scenario.posts:
        raise RuntimeError(f"{scenario.name}: planned {summary.planned} of {scenario.posts} ({summary.paused})")
    source = next(event["Properties"] for event in collector.events.values() if event.get("Type") == "SQS")
    batch_size = int(source.get("BatchSize", 10))
    queue_url = deps.settings.collect_queue_url
    sqs = sqs_client()
    received: list[dict[str, Any]] = []
    while len(received) < summary.messages:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=collector.timeout * 6,
            AttributeNames=["All"],
        )
        if not answer.get("Messages"):
            raise RuntimeError(f"{scenario.name}: received {len(received)} of {summary.messages} messages")
        received += answer["Messages"]
    result.messages = len(received)
    if result.messages != scenario.accounts * ceil_div(scenario.posts_per_account, Endpoint(scenario.endpoint).max_ids):
        raise RuntimeError(f"{scenario.name}: {result.messages} messages, not the fewest the Posts fit in")
    for message in received:
        body = json.loads(message["Body"])
        window = parse_iso(body["end"]) - parse_iso(body["start"]) if body["start"] else None
        if window is not None:
            result.window_hours.append(round(window / timedelta(hours=1)))
        result.min_calls += math.ceil(window / HISTORICAL_MAX_WINDOW) if window is not None else 1
    records = [
        sqs_record(message, queue_arn=str(source["Queue"]), region=collector.environment["AWS_REGION"])
        for message in received
    ]
    return [{"Records": records[start : start + batch_size]} for start in range(0, len(records), batch_size)]


def _invoke(worker: FunctionWorker, events: list[dict[str, Any]], result: Result) -> None:
    """Deliver the events to the warm worker, measuring its memory and CPU from its init to after the last."""
    pid = worker.pid
    if pid is None:
        raise RuntimeError("the collector worker is not running")
    result.init_cpu_seconds = _cpu_seconds(pid)
    result.baseline = proc_status_bytes("VmRSS", pid)
    result.init_peak = proc_status_bytes("VmHWM", pid)
    result.reset = reset_peak_rss(pid)
    for event in events:
        invocation = worker.invoke(event)
        failures = invocation.payload.get("batchItemFailures") if isinstance(invocation.payload, dict) else None
        if not invocation.ok or failures:
            raise RuntimeError(f"{result.scenario.name}: the collector failed: {invocation.payload}")
        result.invocations += 1
        result.seconds += invocation.duration_ms / 1000
    result.peak = proc_status_bytes("VmHWM", pid)
    result.cpu_seconds = _cpu_seconds(pid) - result.init_cpu_seconds


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/<pid>/stat fields 14 and 15, after the command name in parentheses)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _collector_summaries(log: Path) -> Iterator[dict[str, Any]]:
    """The summary of each message the collector logged ("collected", Powertools JSON lines)."""
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"collected"' in line:
            record = json.loads(line)
            if record.get("message") == "collected":
                yield record["summary"]


def _check(scenario: Scenario, result: Result, tweet_ids: list[str], shared: Services, metrics_table: str) -> None:
    """Every Post collected: markers released, statuses ok, points written = stored, calls = the emulator's."""
    from xengage.api_client import Endpoint
    from xengage.deps import Deps
    from xengage.settings import SharedSettings, from_env

    calls = 0
    for summary in _collector_summaries(shared.log_dir / f"{scenario.key}.log"):
        calls += summary["calls"]
        result.items_written += summary["items_written"]
        result.statuses.update(summary["counts"])
    markers = Deps(from_env(SharedSettings)).registry.get_due_markers(tweet_ids, Endpoint(scenario.endpoint)).values()
    result.collected = sum(1 for marker in markers if marker.lease is None and marker.last_collected_at)
    result.items_stored, result.points_stored = stored_items_and_points(metrics_table)
    problems = []
    if result.collected != scenario.posts or result.statuses != Counter(ok=scenario.posts):
        problems.append(f"{result.collected} markers released, statuses {dict(result.statuses)}")
    if not result.items_written or result.items_written != result.points_stored:
        problems.append(f"{result.items_written} points written, {result.points_stored} stored")
    if calls != result.api_calls:
        problems.append(f"the collector counted {calls} calls, the emulator {result.api_calls}")
    if problems:
        raise RuntimeError(f"{scenario.name}: not every Post was collected: {'; '.join(problems)}")


# --- figures ------------------------------------------------------------------------------------------------------


def _mib(size: int) -> str:
    return f"{size / _MIB:.1f}"


def report(results: list[Result]) -> None:
    rows = [
        [
            result.scenario.name,
            f"{result.scenario.posts:,}",
            f"{result.messages} in {result.invocations}",
            f"{result.api_calls} ({result.min_calls})",
            f"{result.items_written:,}",
            _mib(result.baseline),
            _mib(result.peak_rss),
            _mib(result.growth) + ("" if result.reset else " (not reset)"),
            f"{result.seconds:.1f}",
            f"{result.cpu_seconds:.1f}",
        ]
        for result in results
    ]
    print("API calls: minimum in parentheses (one a message; /historical: one a 4-week window of it)")
    headers = ["scenario", "Posts", "msgs in events", "API calls", "points written", "baseline RSS MiB"]
    print(table([*headers, "peak RSS MiB", "growth MiB", "wall s", "CPU s"], rows))
    for result in results:
        windows = f"; /historical windows {sorted(set(result.window_hours))} h" if result.window_hours else ""
        print(
            f"  {result.scenario.name}: statuses {dict(result.statuses)}, {result.collected:,} markers released, "
            f"{result.points_stored:,} points stored in {result.items_stored:,} items{windows}; "
            f"init: peak {_mib(result.init_peak)} MiB, CPU {result.init_cpu_seconds:.2f} s"
        )
    recommend(results)


def _projected(result: Result, share: float, parts: int) -> float:
    """Seconds a `parts`-th of the run would take with `share` of a vCPU: its waits as measured, its CPU stretched."""
    return ((result.seconds - result.cpu_seconds) + result.cpu_seconds / share) / parts


def recommend(results: list[Result]) -> int:
    """Print the candidate sizes against the measured peak and CPU; returns the smallest that fits (0: none)."""
    peak = max(result.peak_rss for result in results)
    message = max(results, key=lambda result: result.cpu_seconds / result.messages)
    batch = max(results, key=lambda result: result.cpu_seconds / result.invocations)
    memory_size, timeout = results[0].memory_size, results[0].timeout
    rows = []
    chosen = 0
    for size in CANDIDATE_MB:
        share = min(1.0, size / MB_PER_VCPU)
        message_seconds = _projected(message, share, message.messages)
        batch_seconds = _projected(batch, share, batch.invocations)
        fits = size * _MIB >= HEADROOM * peak and message_seconds <= TIMEOUT_SHARE * timeout
        chosen = chosen or (size if fits else 0)
        rows.append(
            [
                f"{size:,}" + (" (template)" if size == memory_size else ""),
                f"{share:.2f}",
                f"{size * _MIB / peak:.1f}x",
                f"{message.init_cpu_seconds / share:.1f}",
                f"{message_seconds:.1f}",
                f"{batch_seconds:.1f}",
                f"{size / 1024 * batch_seconds:.1f}",
                "yes" if fits else "no",
            ]
        )
    print(
        f"memory size: template MemorySize {memory_size} MB, Timeout {timeout} s; measured peak RSS {_mib(peak)} MiB. "
        f"Each size's CPU share (one vCPU at {MB_PER_VCPU:,} MB; a core here taken as one vCPU) stretches the CPU "
        f"seconds measured, waits stay as measured: heaviest message from {message.scenario.name}, heaviest batch "
        f"(one invocation) from {batch.scenario.name}:"
    )
    headers = ["MB", "vCPU", "over peak", "init s", "heaviest msg s", "heaviest batch s", "GB-s batch"]
    print(table([*headers, f"fits: >= {HEADROOM:.0f}x peak, msg <= {TIMEOUT_SHARE:.0%} of timeout"], rows))
    verdict = "the template's size" if chosen == memory_size else f"the template has {memory_size} MB"
    print(
        f"  recommended: {chosen:,} MB, the smallest that fits ({verdict}). Lambda charges per GB-s: above it a "
        f"second costs more while only the CPU part of the time shrinks ({message.cpu_seconds / message.seconds:.0%} "
        f"of the heaviest message here, against dynalite and an emulator on loopback: DynamoDB's and X's waits are "
        "longer, so that part is smaller there). A batch past its deadline is not lost: the collector hands what is "
        "left on in continuation messages."
    )
    return chosen


if __name__ == "__main__":
    header(TITLE)
    main()
