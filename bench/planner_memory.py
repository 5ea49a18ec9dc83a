"""Planner memory for 100,000 tracked Posts: does `plan()` stream DueIndex, or hold every due Post?

    python -m bench.planner_memory        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Setup: DynamoDB is dynalite (`local.stack.dynamodb.start_dynalite`, its own Node.js process; `make node-deps`
installs it), SQS and Secrets Manager are a moto server in a child process, so this process holds only the
planner, its boto3 clients and the pages it reads. Tables, queue and app secret (not the template's placeholder)
come from template.yaml (`tests.aws_fixtures.create_resources`). /totals due markers of app-only Posts are written
with the item shapes RegistryDal writes (`registry.post_items`) through the DAL table's batch writer; then
`plan(Endpoint.TOTALS)` runs at 1,000, 10,000 and 100,000 markers, once timed (ru_maxrss growth: the kernel's
peak-RSS mark is reset through /proc/self/clear_refs before the run) and once under tracemalloc (peak of Python
allocations). Flat figures mean streaming; figures proportional to the markers would mean buffering.

Leases are not written in these runs. The planner leases each Post's due marker before queueing it (one conditional
UpdateItem per Post, `RegistryDal.lease_due_many`, 8 at a time): a real lease would leave nothing due for the second
run at the same size, and 100,000 lease writes per run would make the run measure dynalite's UpdateItem rather than
the planner's streaming. The measured runs therefore use `UnwrittenLeases`, a RegistryDal whose `lease_due_many`
grants the lease without writing it (and each run must make no UpdateItem at all). Real leases are measured apart,
each size in its own RegistryTable: at 1,000 markers, and at 10,000 when the 1,000-marker figure says that takes
under a minute, one plan() with real leases (time, UpdateItem calls, time per lease), then a second plan() at the
same tick, which must find nothing due (the leases hold).

Why not moto for DynamoDB: moto answers each Query page by reading and sorting the whole table and serializing
every returned item through its generic serializer (~1 ms an item); dynalite keeps items in key order like
DynamoDB, so a page costs what the page holds. Without dynalite the benchmark stops and says why; it does not fall
back to moto. Before measuring it checks that iter_due (which merges the 16 shards' Query streams oldest-due
first), in pages of 25, returns each of the first 1,000 seeded markers exactly once and in due_sk order, and each
measured plan() must find, and plan, every seeded marker.
"""

from __future__ import annotations

import gc
import multiprocessing
import resource
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Final

from bench.common import (
    CallCounter,
    dynalite,
    fake_aws_env,
    header,
    mib,
    quiet_library_output,
    reset_peak_rss,
    scoped_env,
    table,
)
from tests.aws_fixtures import AwsResources, create_resources
from xengage.dal.paging import ceil_div

if TYPE_CHECKING:
    from xengage.dal import CollectQueue, RegistryDal
    from xengage.pipeline.planner import PlannerDeps, PlanSummary

WHY_DYNALITE: Final = "it does not fall back to moto (moto's Query reads the whole table, ~1 ms an item)"
TITLE: Final = "planner peak memory: plan() over 100,000 /totals due markers (dynalite + moto SQS)"
SIZES: Final = (1_000, 10_000, 100_000)
LEASE_SIZES: Final = (1_000, 10_000)  # plan() with real leases (one UpdateItem a Post), each in its own table
LEASE_BUDGET_SECONDS: Final = 60.0  # a real-lease size runs only when the previous size projects it under this
LEASE_SAMPLE: Final = 100  # leased markers read back (one BatchGetItem) to check they name the tick
SPREAD_MINUTES: Final = 60  # markers fell due over the hour before the tick
CHECK_PAGE: Final = 25  # small pages: at 1,000 markers (~63 a shard) every shard takes several pages
SERVER_START_TIMEOUT: Final = 60.0
NOT_WRITTEN: Final = "leases not written in these runs"


@dataclass
class Measurement:
    markers: int
    due: int
    leases: int  # granted by UnwrittenLeases (none written)
    messages: int
    send_calls: int
    due_pages: int  # DueIndex Query pages (the app state's one Query is not counted)
    seconds: float
    traced_seconds: float
    traced_peak: int  # bytes, tracemalloc
    rss_growth: int  # bytes: ru_maxrss after plan() minus ru_maxrss just before it (reset: the RSS then)
    rss_reset: bool  # False: the peak could not be reset, so the growth only counts a new process-wide peak
    rss_before: int
    other_calls: Counter[str]  # DynamoDB calls of the timed run besides its DueIndex pages


@dataclass
class LeaseRun:
    markers: int
    seconds: float  # the whole plan(), leases included
    lease_seconds: float  # inside lease_due_many
    update_items: int
    planned: int
    messages: int
    again_due: int  # what a second plan() at the same tick found due
    again_messages: int
    again_seconds: float


def serve_moto(connection: Connection) -> None:
    """Child-process entry point: moto server (SQS, Secrets Manager) until told to stop.

    Sends its URL once it listens, then waits for any message on `connection`.
    """
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        connection.send(f"http://{host}:{port}")
        connection.recv()
    except EOFError:
        pass  # the benchmark went away: stop as well
    finally:
        moto.stop()


@contextmanager
def moto_server() -> Iterator[str]:
    """moto server in a child process (spawn: none of this process's state); yields its URL."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve_moto, args=(theirs,), name="bench-moto", daemon=True)
    process.start()
    try:
        if not ours.poll(SERVER_START_TIMEOUT):
            raise RuntimeError("the moto server process did not start")
        url: str = ours.recv()
        yield url
    finally:
        ours.send("stop")
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join()


def main(sizes: Sequence[int] = SIZES, lease_sizes: Sequence[int] = LEASE_SIZES) -> list[Measurement]:
    """Run at `sizes` (at least two, ascending: the last two are compared) and real leases at `lease_sizes`."""
    quiet_library_output()
    with (
        dynalite("planner_memory", WHY_DYNALITE) as dynamodb_url,
        moto_server() as moto_url,
        scoped_env(fake_aws_env(AWS_ENDPOINT_URL=moto_url, AWS_ENDPOINT_URL_DYNAMODB=dynamodb_url)),
    ):
        print(
            f"setup: DynamoDB = dynalite ({dynamodb_url}, Node.js process); SQS and Secrets Manager = moto server "
            f"in a child process; tables, queue and app secret from template.yaml; app-only Posts; "
            f"sizes {', '.join(f'{n:,}' for n in sizes)} ({NOT_WRITTEN}); real leases at "
            f"{', '.join(f'{n:,}' for n in lease_sizes)} (each in its own RegistryTable)"
        )
        resources = create_resources()
        with scoped_env(resources.environment()):
            return measure_sizes(resources, dynamodb_url, sizes, lease_sizes)


class DueIndexPages:
    """Counts the Query calls on DueIndex (plan() also makes one Query of the app state, which this leaves out).

    Hooked where botocore receives the call's parameters (before-call sees the serialized request only)."""

    def __init__(self, client: Any) -> None:
        self.pages = 0
        self._events = client.meta.events
        self._events.register("before-parameter-build.dynamodb.Query", self._count)

    def _count(self, params: Any = None, **_: Any) -> None:
        if isinstance(params, dict) and params.get("IndexName") == "DueIndex":
            self.pages += 1

    def take(self) -> int:
        taken, self.pages = self.pages, 0
        return taken

    def close(self) -> None:
        self._events.unregister("before-parameter-build.dynamodb.Query", self._count)


def unwritten_leases(table_name: str) -> RegistryDal:
    """A RegistryDal whose `lease_due_many` grants every lease without writing it (the measured runs; module doc)."""

    from xengage.dal import DueMarker, RegistryDal

    class UnwrittenLeases(RegistryDal):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.granted = 0

        def lease_due_many(self, markers: Sequence[DueMarker], *, lease: str, until: str) -> list[str]:
            for marker in markers:
                if marker.due_sk is None:  # what the real lease refuses: a marker not read from DueIndex
                    raise ValueError(f"marker of {marker.tweet_id} was not read from DueIndex (no due_sk)")
            self.granted += len(markers)
            return [marker.tweet_id for marker in markers]

    return UnwrittenLeases(table_name)


def granted(registry: RegistryDal) -> int:
    return int(getattr(registry, "granted", 0))


def _due_at(tick: datetime, index: int) -> str:
    """Seeded markers fell due over the hour before the tick (a backlog): iter_due's merge of the 16 shards has an
    order to keep, and plan() finds every one due."""
    from xengage.timeutil import to_iso

    return to_iso(tick - timedelta(minutes=index % SPREAD_MINUTES))


def _marker_items(ids: list[str], tick: datetime, first: int) -> Iterator[dict[str, object]]:
    """The /totals due marker of each app-only Post, exactly as RegistryDal writes it (no Post item: the planner
    reads DueIndex only)."""
    from xengage.dal.registry import post_items

    for index, tweet_id in enumerate(ids, start=first):
        for item in post_items(tweet_id, None, now=_due_at(tick, index)):
            if str(item["sk"]).startswith("DUE#"):
                yield item


def _seed(registry: RegistryDal, ids: list[str], tick: datetime, *, first: int = 0) -> None:
    with registry.table.batch_writer() as batch:
        for item in _marker_items(ids, tick, first):
            batch.put_item(Item=item)


def _post_ids(count: int, now: datetime, first: int = 0) -> list[str]:
    """Snowflake ids of Posts created one a minute back from `now`; the sequence bits spread them over the shards."""
    from local.emulator import snowflake_for

    return [snowflake_for(now - timedelta(minutes=index + 1), index) for index in range(first, first + count)]


def check_iter_due(registry: RegistryDal, ids: list[str], due_at: str, counter: CallCounter) -> None:
    """iter_due, in small pages, must return every seeded marker exactly once, oldest due first (it merges the
    16 shards' streams by due_sk), else the figures mean nothing."""
    from xengage.api_client import Endpoint

    counter.take()
    started = time.perf_counter()
    markers = list(registry.iter_due(Endpoint.TOTALS, due_at, page_size=CHECK_PAGE))
    seconds = time.perf_counter() - started
    pages = counter.take()["Query"]
    seen = Counter(marker.tweet_id for marker in markers)
    due_sks = [marker.due_sk or "" for marker in markers]
    seeded = set(ids)
    missing = len(seeded - seen.keys())
    unknown = len(seen.keys() - seeded)
    repeated = sum(1 for count in seen.values() if count > 1)
    in_order = all(earlier <= later for earlier, later in pairwise(due_sks))
    ok = not (missing or unknown or repeated) and in_order
    problems = f"{missing} missing, {repeated} repeated, {unknown} unknown, in due_sk order: {in_order}"
    print(
        f"check: iter_due in pages of {CHECK_PAGE} over {len(ids):,} seeded markers: {seen.total():,} returned in "
        f"{pages} Query pages, {seconds:.2f} s; every marker exactly once, in due_sk order across the 16 shards: "
        f"{'yes' if ok else f'NO ({problems})'}"
    )
    if not ok:
        raise RuntimeError(
            "iter_due does not return every seeded marker exactly once in due order; the figures would mean nothing"
        )


class FreshQueues:
    """An empty queue (with the template queue's attributes) for every plan() run.

    moto's SendMessageBatch slows down as a queue fills (400 messages a run add ~1 s to the next run's sends),
    which would be charged to the planner.
    """

    def __init__(self, template_queue_url: str) -> None:
        from xengage.dal.aws import sqs_client

        self.sqs = sqs_client()
        answer = self.sqs.get_queue_attributes(QueueUrl=template_queue_url, AttributeNames=["VisibilityTimeout"])
        self.attributes = {"VisibilityTimeout": answer["Attributes"]["VisibilityTimeout"]}
        self.name = template_queue_url.rsplit("/", 1)[-1]
        self.created = 0

    def next(self) -> CollectQueue:
        from xengage.dal import CollectQueue

        self.created += 1
        name = f"{self.name}-run{self.created}"
        return CollectQueue(self.sqs.create_queue(QueueName=name, Attributes=self.attributes)["QueueUrl"])


def measure_sizes(
    resources: AwsResources, dynamodb_url: str, sizes: Sequence[int], lease_sizes: Sequence[int]
) -> list[Measurement]:
    from xengage.api_client import Endpoint
    from xengage.dal.aws import dynamodb_client, dynamodb_resource
    from xengage.deps import Deps
    from xengage.pipeline.planner import plan
    from xengage.settings import PlannerSettings, from_env
    from xengage.timeutil import to_iso

    tick = datetime.now(UTC).replace(second=0, microsecond=0)
    due_at = to_iso(tick)
    registry = unwritten_leases(resources.registry_table)
    deps = Deps(from_env(PlannerSettings), registry=registry)
    queues = FreshQueues(resources.collect_queue_url)
    client = dynamodb_resource().meta.client
    if client.meta.endpoint_url.rstrip("/") != dynamodb_url.rstrip("/"):
        raise RuntimeError(f"the DAL's DynamoDB client talks to {client.meta.endpoint_url}, not dynalite")
    counter = CallCounter(client, dynamodb_client())
    due_pages = DueIndexPages(client)
    rows = []
    results: list[Measurement] = []
    seeded = 0
    seed_seconds = 0.0
    for size in sizes:
        ids = _post_ids(size - seeded, tick, first=seeded)
        counter.take()
        started = time.perf_counter()
        _seed(registry, ids, tick, first=seeded)
        step_seconds = time.perf_counter() - started
        seed_seconds += step_seconds
        seeded = size
        print(
            f"seeded {size:,} markers: +{len(ids):,} in {step_seconds:.1f} s ({len(ids) / step_seconds:,.0f} items/s, "
            f"{counter.take()['BatchWriteItem']:,} BatchWriteItem calls through the DAL table's batch_writer)",
            flush=True,
        )
        if not results:
            check_iter_due(registry, ids, due_at, counter)
            # warm-up: first-call costs (lazy imports, the app secret, first SendMessageBatch) are not the planner's
            plan(Endpoint.TOTALS, tick, deps=deps.replace(queue=queues.next()))
            quiet_library_output()
        result = _measure(size, deps, queues, tick, counter, due_pages)
        results.append(result)
        rows.append(
            [
                f"{size:,}",
                f"{result.due:,}",
                f"{result.leases:,}",
                f"{result.messages} ({ceil_div(size, Endpoint.TOTALS.max_ids)})",
                str(result.send_calls),
                str(result.due_pages),
                f"{result.seconds:.2f}",
                mib(result.traced_peak),
                mib(result.rss_growth) + ("" if result.rss_reset else " (not reset)"),
            ]
        )
    print(f"seeding {seeded:,} markers took {seed_seconds:.1f} s in all")
    print(
        f"plan(/totals) at {due_at}, every marker due (over the hour before); {NOT_WRITTEN}: UnwrittenLeases "
        "grants each lease with no UpdateItem (real leases below). Messages: minimum in parentheses, 250 ids each:"
    )
    headers = ["markers", "due", "leases (unwritten)", "messages", "SendMessageBatch", "DueIndex pages", "plan() s"]
    print(table([*headers, "tracemalloc peak", "ru_maxrss growth"], rows))
    base, last = results[-2], results[-1]
    print(
        f"  {last.markers // base.markers}x the markers ({base.markers:,} -> {last.markers:,}): tracemalloc peak "
        f"x{last.traced_peak / base.traced_peak:.2f}, plan() time x{last.seconds / base.seconds:.1f} "
        f"(under tracemalloc {last.traced_seconds:.1f} s at {last.markers:,}); RSS before plan() {mib(last.rss_before)}"
    )
    other = " / ".join(sorted({_calls_text(result.other_calls) for result in results}))
    print(
        f"  DynamoDB calls of each run besides DueIndex: {other} "
        "(the app state; no UpdateItem); the app secret comes from Powertools' cache (DescribeSecret only when the "
        "app is flagged)"
    )
    measure_real_leases(resources, queues, tick, counter, lease_sizes)
    due_pages.close()
    counter.close()
    return results


def _measure(
    size: int, deps: PlannerDeps, queues: FreshQueues, tick: datetime, counter: CallCounter, due_pages: DueIndexPages
) -> Measurement:
    from xengage.api_client import Endpoint
    from xengage.pipeline.planner import plan

    gc.collect()
    counter.take()
    due_pages.take()
    granted_before = granted(deps.registry)
    reset = reset_peak_rss()
    rss_before = _ru_maxrss()  # just after a reset: the RSS now
    started = time.perf_counter()
    summary = plan(Endpoint.TOTALS, tick, deps=deps.replace(queue=queues.next()))
    seconds = time.perf_counter() - started
    rss_growth = _ru_maxrss() - rss_before
    calls = counter.take()
    pages = due_pages.take()
    leases = granted(deps.registry) - granted_before
    quiet_library_output()
    _check_measured_run(summary, size, leases, calls)

    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    traced = plan(Endpoint.TOTALS, tick, deps=deps.replace(queue=queues.next()))
    traced_seconds = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    quiet_library_output()
    _check_measured_run(traced, size, granted(deps.registry) - granted_before - leases, counter.take())
    due_pages.take()
    return Measurement(
        markers=size,
        due=summary.due,
        leases=leases,
        messages=summary.messages,
        send_calls=summary.send_calls,
        due_pages=pages,
        seconds=seconds,
        traced_seconds=traced_seconds,
        traced_peak=traced_peak,
        rss_growth=rss_growth,
        rss_reset=reset,
        rss_before=rss_before,
        other_calls=calls - Counter(Query=pages),
    )


def _calls_text(calls: Counter[str]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(calls.items())) or "none"


def _check_measured_run(summary: PlanSummary, size: int, leases: int, calls: Counter[str]) -> None:
    """Each measured plan() must find and plan every seeded marker, granting each lease once and writing none."""
    problems = []
    if summary.paused:
        problems.append(f"planning paused: {summary.paused}")
    if summary.due != size or summary.planned != size or summary.already_leased:
        problems.append(f"found {summary.due:,} due, planned {summary.planned:,} of {size:,}")
    if leases != size:
        problems.append(f"granted {leases:,} leases for {size:,} markers")
    if calls["UpdateItem"]:
        problems.append(f"{calls['UpdateItem']:,} UpdateItem calls in a run that should write no lease")
    if problems:
        raise RuntimeError(f"plan() run: {'; '.join(problems)}; the figures would mean nothing")


def timed_leases(table_name: str) -> RegistryDal:
    """The real RegistryDal, adding up the time spent leasing (conditional UpdateItems, 8 at a time)."""

    from xengage.dal import DueMarker, RegistryDal

    class TimedLeases(RegistryDal):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.seconds = 0.0

        def lease_due_many(self, markers: Sequence[DueMarker], *, lease: str, until: str) -> list[str]:
            started = time.perf_counter()
            try:
                return super().lease_due_many(markers, lease=lease, until=until)
            finally:
                self.seconds += time.perf_counter() - started

    return TimedLeases(table_name)


def measure_real_leases(
    resources: AwsResources, queues: FreshQueues, tick: datetime, counter: CallCounter, lease_sizes: Sequence[int]
) -> None:
    """plan() with real leases, each size in a fresh RegistryTable, then a second plan() at the same tick."""
    from tests.aws_fixtures import load_template, table_kwargs
    from xengage.api_client import Endpoint
    from xengage.dal.aws import dynamodb_resource
    from xengage.deps import Deps
    from xengage.pipeline.planner import plan
    from xengage.settings import PlannerSettings, from_env
    from xengage.timeutil import to_iso

    due_at = to_iso(tick)
    properties = load_template()["Resources"]["RegistryTable"]["Properties"]
    client = dynamodb_resource().meta.client
    runs: list[LeaseRun] = []
    skipped = ""
    for size in lease_sizes:
        if runs:
            projected = runs[-1].seconds * size / runs[-1].markers
            if projected > LEASE_BUDGET_SECONDS:
                skipped = f"{size:,} markers skipped: projected {projected:.0f} s > {LEASE_BUDGET_SECONDS:.0f} s"
                break
        name = f"{resources.registry_table}-leases-{size}"
        client.create_table(**table_kwargs(properties, name))
        registry = timed_leases(name)
        ids = _post_ids(size, tick)
        _seed(registry, ids, tick)
        deps = Deps(from_env(PlannerSettings), registry=registry)
        counter.take()
        started = time.perf_counter()
        summary = plan(Endpoint.TOTALS, tick, deps=deps.replace(queue=queues.next()))
        seconds = time.perf_counter() - started
        calls = counter.take()
        started = time.perf_counter()
        again = plan(Endpoint.TOTALS, tick, deps=deps.replace(queue=queues.next()))
        again_seconds = time.perf_counter() - started
        again_calls = counter.take()
        quiet_library_output()
        sample = registry.get_due_markers(ids[:LEASE_SAMPLE], Endpoint.TOTALS).values()
        named = sum(1 for marker in sample if marker.lease == due_at)
        counter.take()
        run = LeaseRun(
            markers=size,
            seconds=seconds,
            lease_seconds=getattr(registry, "seconds", 0.0),
            update_items=calls["UpdateItem"],
            planned=summary.planned,
            messages=summary.messages,
            again_due=again.due,
            again_messages=again.messages,
            again_seconds=again_seconds,
        )
        runs.append(run)
        print(
            f"real leases, {size:,} markers: plan() {seconds:.2f} s, {run.update_items:,} UpdateItem "
            f"({run.lease_seconds:.2f} s leasing, {run.lease_seconds / size * 1e3:.2f} ms a lease), "
            f"{run.messages} messages; plan() again at the same tick: {again.due} due, {again.messages} messages "
            f"in {again_seconds:.2f} s ({again_calls['UpdateItem']} UpdateItem); markers read back naming the "
            f"tick as their lease: {named} of {min(size, LEASE_SAMPLE)}",
            flush=True,
        )
        if summary.due != size or summary.planned != size or run.update_items != size or summary.already_leased:
            raise RuntimeError(
                f"real leases: {summary.due:,} due, {summary.planned:,} planned, {run.update_items:,} UpdateItem "
                f"for {size:,} markers"
            )
        if again.due or again.messages or again_calls["UpdateItem"] or named != min(size, LEASE_SAMPLE):
            raise RuntimeError(f"the leases did not hold: plan() again found {again.due:,} due")
    rows = [
        [
            f"{run.markers:,}",
            f"{run.update_items:,}",
            f"{run.seconds:.2f}",
            f"{run.lease_seconds:.2f}",
            f"{run.lease_seconds / run.markers * 1e3:.2f}",
            f"{(run.seconds - run.lease_seconds) / run.markers * 1e6:.0f}",
            f"{run.again_due} / {run.again_messages}",
        ]
        for run in runs
    ]
    print(f"plan(/totals) with real leases (a fresh RegistryTable per size, every marker due by {due_at}):")
    headers = ["markers", "UpdateItem", "plan() s", "leasing s", "ms / lease", "rest µs / marker"]
    print(table([*headers, "again: due / msgs"], rows))
    if skipped:
        print(f"  {skipped}")
    print("  leases hold: a second plan() at the same tick finds nothing due and queues nothing")


def _ru_maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


if __name__ == "__main__":
    header(TITLE)
    main()
