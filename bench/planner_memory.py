"""Planner memory for 100,000 tracked Posts: does `plan()` stream DueIndex, or hold every due Post?

    python -m bench.planner_memory        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Setup: DynamoDB is dynalite (`local.stack.dynamodb.start_dynalite`, its own Node.js process; `make node-deps`
installs it), SQS and Secrets Manager are a moto server in a child process, so this process holds only the
planner, its boto3 clients and the pages it reads. Tables and queue come from template.yaml
(`tests.aws_fixtures.create_resources`). /totals due markers of app-only Posts are written with the item shapes
RegistryDal writes (`registry.post_items`) through the DAL table's batch writer; then `plan(Endpoint.TOTALS)` runs
at 1,000, 10,000 and 100,000 markers, once timed (ru_maxrss growth: the kernel's peak-RSS mark is reset through
/proc/self/clear_refs before the run) and once under tracemalloc (peak of Python allocations). Flat figures mean
streaming; figures proportional to the markers would mean buffering.

Why not moto for DynamoDB: moto answers each Query page by reading and sorting the whole table and serializing
every returned item through its generic serializer (~1 ms an item); dynalite keeps items in key order like
DynamoDB, so a page costs what the page holds. Without dynalite the benchmark stops and says why; it does not fall
back to moto. Before measuring it checks that iter_due, in pages of 25, returns each of the first 1,000 seeded
markers exactly once, and each measured plan() must find every seeded marker due.
"""

from __future__ import annotations

import gc
import multiprocessing
import re
import resource
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bench.common import (
    CallCounter,
    ceil_div,
    fake_aws_env,
    header,
    mib,
    quiet_library_output,
    scoped_env,
    table,
)
from tests.aws_fixtures import AwsResources, create_resources

if TYPE_CHECKING:
    from xengage.dal import CollectQueue, RegistryDal

TITLE: Final = "planner peak memory: plan() over 100,000 /totals due markers (dynalite + moto SQS)"
SIZES: Final = (1_000, 10_000, 100_000)
CHECK_PAGE: Final = 25  # small pages: at 1,000 markers (~63 a shard) every shard takes several pages
SERVER_START_TIMEOUT: Final = 60.0
_STATUS: Final = Path("/proc/self/status")
_CLEAR_REFS: Final = Path("/proc/self/clear_refs")


@dataclass
class Measurement:
    markers: int
    due: int
    messages: int
    send_calls: int
    queries: int
    seconds: float
    traced_seconds: float
    traced_peak: int  # bytes, tracemalloc
    rss_growth: int  # bytes: ru_maxrss after plan() minus ru_maxrss just before it (reset: the RSS then)
    rss_reset: bool  # False: the peak could not be reset, so the growth only counts a new process-wide peak
    rss_before: int


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


def _no_dynalite(reason: str) -> SystemExit:
    return SystemExit(
        f"planner_memory: dynalite cannot run here: {reason}.\n"
        "This benchmark needs dynalite as its DynamoDB and does not fall back to moto (moto's Query reads the "
        "whole table, ~1 ms an item). Fix: install Node.js, then `make node-deps` (npm ci in local/dynamodb)."
    )


@contextmanager
def dynalite() -> Iterator[str]:
    """dynalite (its own Node.js process) on a free port; yields its URL. SystemExit when it cannot run."""
    from local.stack.dynamodb import DynaliteUnavailable, dynalite_missing, start_dynalite

    missing = dynalite_missing()
    if missing:
        raise _no_dynalite(missing)
    try:
        server = start_dynalite()
    except DynaliteUnavailable as exc:
        raise _no_dynalite(str(exc)) from exc
    try:
        yield server.url
    finally:
        server.stop()


def main() -> None:
    quiet_library_output()
    with (
        dynalite() as dynamodb_url,
        moto_server() as moto_url,
        scoped_env(fake_aws_env(AWS_ENDPOINT_URL=moto_url, AWS_ENDPOINT_URL_DYNAMODB=dynamodb_url)),
    ):
        print(
            f"setup: DynamoDB = dynalite ({dynamodb_url}, Node.js process); SQS and Secrets Manager = moto server "
            f"in a child process; tables and queue from template.yaml; app-only Posts; "
            f"sizes {', '.join(f'{n:,}' for n in SIZES)}"
        )
        resources = create_resources()
        with scoped_env(resources.environment()):
            measure_sizes(resources, dynamodb_url)


def _marker_items(ids: list[str], due_at: str) -> Iterator[dict[str, object]]:
    """The /totals due marker of each app-only Post, exactly as RegistryDal writes it (no Post item: the planner
    reads DueIndex only)."""
    from xengage.dal.registry import post_items

    for tweet_id in ids:
        for item in post_items(tweet_id, None, now=due_at):
            if str(item["sk"]).startswith("DUE#"):
                yield item


def _seed(registry: RegistryDal, ids: list[str], due_at: str) -> None:
    with registry.table.batch_writer() as batch:
        for item in _marker_items(ids, due_at):
            batch.put_item(Item=item)


def _post_ids(count: int, now: datetime, first: int = 0) -> list[str]:
    """Snowflake ids of Posts created one a minute back from `now`; the sequence bits spread them over the shards."""
    from local.emulator import snowflake_for

    return [snowflake_for(now - timedelta(minutes=index + 1), index) for index in range(first, first + count)]


def check_iter_due(registry: RegistryDal, ids: list[str], due_at: str, counter: CallCounter) -> None:
    """iter_due, in small pages, must return every seeded marker exactly once (else the figures mean nothing)."""
    from xengage.api_client import Endpoint

    counter.take()
    started = time.perf_counter()
    seen = Counter(marker.tweet_id for marker in registry.iter_due(Endpoint.TOTALS, due_at, page_size=CHECK_PAGE))
    seconds = time.perf_counter() - started
    pages = counter.take()["Query"]
    seeded = set(ids)
    missing = len(seeded - seen.keys())
    unknown = len(seen.keys() - seeded)
    repeated = sum(1 for count in seen.values() if count > 1)
    ok = not (missing or unknown or repeated)
    print(
        f"check: iter_due in pages of {CHECK_PAGE} over {len(ids):,} seeded markers: {seen.total():,} returned in "
        f"{pages} Query pages, {seconds:.2f} s; every marker exactly once: "
        f"{'yes' if ok else f'NO ({missing} missing, {repeated} repeated, {unknown} unknown)'}"
    )
    if not ok:
        raise RuntimeError("iter_due does not return every seeded marker exactly once; the figures would mean nothing")


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


def measure_sizes(resources: AwsResources, dynamodb_url: str) -> None:
    from xengage.api_client import Endpoint
    from xengage.dal import RegistryDal
    from xengage.dal.aws import dynamodb_resource
    from xengage.pipeline.planner import plan
    from xengage.timeutil import to_iso

    tick = datetime.now(UTC).replace(second=0, microsecond=0)
    due_at = to_iso(tick)
    registry = RegistryDal(resources.registry_table)
    queues = FreshQueues(resources.collect_queue_url)
    client = dynamodb_resource().meta.client
    if client.meta.endpoint_url.rstrip("/") != dynamodb_url.rstrip("/"):
        raise RuntimeError(f"the DAL's DynamoDB client talks to {client.meta.endpoint_url}, not dynalite")
    counter = CallCounter(client)
    rows = []
    results: list[Measurement] = []
    seeded = 0
    seed_seconds = 0.0
    for size in SIZES:
        ids = _post_ids(size - seeded, tick, first=seeded)
        counter.take()
        started = time.perf_counter()
        _seed(registry, ids, due_at)
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
            # warm-up: first-call costs (lazy imports, first SendMessageBatch) are not the planner's
            plan(Endpoint.TOTALS, tick, registry=registry, queue=queues.next())
        result = _measure(size, registry, queues, tick, counter)
        results.append(result)
        rows.append(
            [
                f"{size:,}",
                f"{result.due:,}",
                f"{result.messages} ({ceil_div(size, Endpoint.TOTALS.max_ids)})",
                str(result.send_calls),
                str(result.queries),
                f"{result.seconds:.2f}",
                mib(result.traced_peak),
                mib(result.rss_growth) + ("" if result.rss_reset else " (not reset)"),
            ]
        )
    counter.close()
    print(f"seeding {seeded:,} markers took {seed_seconds:.1f} s in all")
    print(f"plan(/totals) at {due_at}, every marker due (messages: minimum in parentheses, 250 ids each):")
    headers = ["markers", "due", "messages", "SendMessageBatch", "Query pages", "plan() s", "tracemalloc peak"]
    print(table([*headers, "ru_maxrss growth"], rows))
    base, last = results[-2], results[-1]
    print(
        f"  {last.markers // base.markers}x the markers ({base.markers:,} -> {last.markers:,}): tracemalloc peak "
        f"x{last.traced_peak / base.traced_peak:.2f}, plan() time x{last.seconds / base.seconds:.1f} "
        f"(under tracemalloc {last.traced_seconds:.1f} s at {last.markers:,}); RSS before plan() {mib(last.rss_before)}"
    )


def _measure(
    size: int, registry: RegistryDal, queues: FreshQueues, tick: datetime, counter: CallCounter
) -> Measurement:
    from xengage.api_client import Endpoint
    from xengage.pipeline.planner import plan

    gc.collect()
    counter.take()
    reset = _reset_peak_rss()
    rss_before = _ru_maxrss()  # just after a reset: the RSS now
    started = time.perf_counter()
    summary = plan(Endpoint.TOTALS, tick, registry=registry, queue=queues.next())
    seconds = time.perf_counter() - started
    rss_growth = _ru_maxrss() - rss_before
    queries = counter.take()["Query"]
    quiet_library_output()
    if summary.due != size:
        raise RuntimeError(f"plan() found {summary.due:,} due markers of {size:,}; the figures would mean nothing")

    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    plan(Endpoint.TOTALS, tick, registry=registry, queue=queues.next())
    traced_seconds = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    quiet_library_output()
    counter.take()
    return Measurement(
        markers=size,
        due=summary.due,
        messages=summary.messages,
        send_calls=summary.send_calls,
        queries=queries,
        seconds=seconds,
        traced_seconds=traced_seconds,
        traced_peak=traced_peak,
        rss_growth=rss_growth,
        rss_reset=reset,
        rss_before=rss_before,
    )


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM, which ru_maxrss reports); False where it cannot be reset."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _ru_maxrss() <= _status_bytes("VmRSS") + resource.getpagesize()


def _ru_maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _status_bytes(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    return int(match[1]) * 1024 if match else 0


if __name__ == "__main__":
    header(TITLE)
    main()
