"""What one tick costs for 1,000 tracked Posts: SQS messages, Engagement API calls and DynamoDB writes.

    python -m bench.pipeline_writes        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Setup: moto in-process (`mock_aws`) with the tables, queue and app secret created from template.yaml by
`tests.aws_fixtures.create_resources`; the Engagement API emulator on loopback with one registered account (its
tokens in Secrets Manager, its registry item: the planner plans no Post of an account that is not registered or
needs re-authorization) owning 1,000 public Posts aged 1 to 72 hours; the app secret holds the emulator's app
credentials (the template's placeholder would pause planning). The Posts are tracked with
`RegistryDal.track_posts`; then, per endpoint, the planner runs one tick (`pipeline.planner.plan`, which leases
each Post's due marker before queueing it: one conditional UpdateItem a Post), the same tick is planned again
while its messages are still queued (the leases hold: nothing is due), and the collector
(`pipeline.collector.collect` with the real EngagementClient, on the emulator's pinned clock) takes every queued
message. Then the same tick is planned once more and every first-tick message is delivered a second time: the
collector finds their Posts no longer leased by that tick (`already_done`) and fetches nothing, so nothing is
duplicated. DynamoDB calls are counted per phase: the planner's (lease UpdateItems) apart from the collector's.
Last, the next hourly /28hr tick (an hour later; every Post here is due hourly) is planned and collected, and the
collector's writes are priced in write units per Post by `bench.cost_units.CapacityMeter` (DynamoDB's rules,
index writes included): MetricsTable's day items apart from RegistryTable's settling write.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from bench.client_calls import VirtualTime
from bench.common import (
    CallCounter,
    fake_aws_env,
    header,
    quiet_library_output,
    scoped_env,
    table,
)
from tests.aws_fixtures import AwsResources, create_resources
from xengage.dal.paging import ceil_div

if TYPE_CHECKING:
    from local.emulator import EmulatorServer, World
    from xengage.api_client import EngagementClient
    from xengage.api_client.credentials import AppCredentials
    from xengage.pipeline.collector import CollectorDeps
    from xengage.pipeline.planner import PlannerDeps

TITLE: Final = "pipeline writes: one tick for 1,000 tracked Posts (moto in-process + emulator)"
POSTS: Final = 1_000
MAX_AGE_DAYS: Final = 3.0


@dataclass
class EndpointRun:
    """What planning and collecting one endpoint did."""

    endpoint: str
    max_ids: int
    due: int = 0  # found due by the planner
    planned: int = 0  # leased and queued by the planner
    already_leased: int = 0  # due, but leased by another planner run first
    messages: int = 0  # sent by the planner
    bodies: list[dict[str, Any]] = field(default_factory=list)  # collected
    api_calls: int = 0  # as the client counted them
    api_calls_seen: int = 0  # as the emulator counted them
    retries: int = 0
    items_written: int = 0
    items_stored: int = 0  # MetricsTable growth
    batch_write_calls: int = 0
    item_updates: int = 0  # day items updated alone (MetricsTable UpdateItem)
    transactions: int = 0  # TransactWriteItems: day items with their account's rollup differences
    transacted_days: int = 0  # day items those wrote
    rollup_writes: int = 0  # RollupsTable items those added to
    statuses: Counter[str] = field(default_factory=Counter)
    posts_delivered: int = 0  # Post ids in the messages collected
    already_done: int = 0  # Posts the collector skipped: no longer leased by the message's tick
    continuations: int = 0  # messages the collector handed on
    plan_calls: Counter[str] = field(default_factory=Counter)  # the planner's DynamoDB calls (leases: UpdateItem)
    other_calls: Counter[str] = field(default_factory=Counter)  # the collector's DynamoDB calls but BatchWriteItem
    plan_seconds: float = 0.0
    collect_seconds: float = 0.0


class Pipeline:
    """The planner and collector wired to moto (in-process) and the emulator, with call counters."""

    def __init__(self, resources: AwsResources, emulator: EmulatorServer, clock: VirtualTime) -> None:
        from xengage.dal import CollectQueue
        from xengage.dal.aws import dynamodb_client, dynamodb_resource, session
        from xengage.deps import Deps
        from xengage.settings import CollectorSettings, PlannerSettings, from_env

        self.resources = resources
        self.emulator = emulator
        self.clock = clock
        self._clients: dict[AppCredentials, EngagementClient] = {}
        self.queue = CollectQueue(resources.collect_queue_url)
        self.deps: CollectorDeps = Deps(
            from_env(CollectorSettings),
            client_factory=self._client_for,
            now=clock.now,
            queue=self.queue,
            rng=random.Random(5),
        )
        self.planner_deps: PlannerDeps = Deps(
            from_env(PlannerSettings), registry=self.deps.registry, queue=self.queue, app_state=self.deps.app_state
        )
        self.sqs = session().client("sqs")
        self.dynamodb = dynamodb_resource().meta.client
        self.counter = CallCounter(self.dynamodb, dynamodb_client())

    def _client_for(self, app: AppCredentials) -> EngagementClient:
        from xengage.api_client import EngagementClient, RetryPolicy

        if app not in self._clients:
            self._clients[app] = EngagementClient(
                app,
                base_url=self.emulator.url,
                retry=RetryPolicy(),
                sleep=self.clock.sleep,
                now=self.clock.now,
                rng=random.Random(5),
            )
        return self._clients[app]

    def stored_items(self) -> int:
        # moto keeps DescribeTable's ItemCount live (DynamoDB refreshes it every ~6 hours): cheaper than a Scan.
        table = self.dynamodb.describe_table(TableName=self.resources.metrics_table)["Table"]
        return int(table["ItemCount"])

    def plan(self, run: EndpointRun, tick: datetime) -> None:
        from xengage.api_client import Endpoint
        from xengage.pipeline.planner import plan

        self.counter.take()
        started = time.perf_counter()
        summary = plan(Endpoint(run.endpoint), tick, deps=self.planner_deps)
        run.plan_seconds += time.perf_counter() - started
        run.plan_calls.update(self.counter.take())
        quiet_library_output()
        if summary.paused:
            raise RuntimeError(f"planning paused: {summary.paused}")
        run.due += summary.due
        run.planned += summary.planned
        run.already_leased += summary.already_leased
        run.messages += summary.messages

    def collect(self, run: EndpointRun, bodies: list[dict[str, Any]] | None = None) -> None:
        """Collect every queued message, or `bodies` (a redelivery), adding up what the collector reports."""
        from xengage.pipeline.collector import collect, parse_message

        self.counter.take()
        started = time.perf_counter()
        log_before = len(self.emulator.log)
        for body in self.received() if bodies is None else bodies:
            run.bodies.append(body)
            summary = collect(parse_message(body), self.deps)
            run.posts_delivered += len(body["tweet_ids"])
            run.already_done += summary.already_done
            run.continuations += summary.continuations
            run.api_calls += summary.calls
            run.retries += summary.retries
            run.items_written += summary.items_written
            run.batch_write_calls += summary.batch_write_calls
            run.item_updates += summary.item_updates
            run.transactions += summary.transactions
            run.transacted_days += summary.transacted_days
            run.rollup_writes += summary.rollup_writes
            run.statuses.update(summary.counts)
            quiet_library_output()  # drop the metrics collect() added, so none is auto-flushed to stdout
        run.api_calls_seen += len(self.emulator.log) - log_before
        run.collect_seconds += time.perf_counter() - started
        run.other_calls.update({name: n for name, n in self.counter.take().items() if name != "BatchWriteItem"})

    def received(self) -> list[dict[str, Any]]:
        """Every message on the queue, received and deleted (what the event source mapping hands over)."""
        bodies: list[dict[str, Any]] = []
        url = self.resources.collect_queue_url
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies


def main(posts: int = POSTS) -> HourlyTick:
    from moto import mock_aws

    quiet_library_output()
    started = time.perf_counter()
    with scoped_env(fake_aws_env()), mock_aws():
        resources = create_resources()
        with scoped_env(resources.environment()):
            hourly = run_benchmark(resources, setup_seconds=time.perf_counter() - started, posts=posts)
    print(f"wall time: {time.perf_counter() - started:.1f} s")
    return hourly


def run_benchmark(resources: AwsResources, *, setup_seconds: float, posts: int = POSTS) -> HourlyTick:
    from local.emulator import EmulatorServer, World
    from xengage.api_client import Endpoint
    from xengage.timeutil import to_iso

    real_now = datetime.now(UTC)
    tick = real_now.replace(minute=5, second=0, microsecond=0)  # the schedule's <aws.scheduler.scheduled-time>
    world = World.generate(users=1, posts_per_user=posts, now=real_now, max_age_days=MAX_AGE_DAYS, seed=7)
    with EmulatorServer(world=world, port=0, now=tick) as emulator:
        pipeline = Pipeline(resources, emulator, VirtualTime(emulator, tick + timedelta(minutes=1)))
        account_id = register_account(pipeline, world, tick)
        ids = world.tweet_ids()
        ages = sorted((tick - world.posts[tweet_id].created_at).total_seconds() / 3600 for tweet_id in ids)
        print(
            f"setup: 1 account, {len(ids):,} public Posts aged {ages[0]:.0f}-{ages[-1]:.0f} h, tick {to_iso(tick)}; "
            f"moto in-process (resources from template.yaml, {setup_seconds:.1f} s), emulator on loopback"
        )
        pipeline.counter.take()
        started = time.perf_counter()
        tracked = pipeline.deps.registry.track_posts(ids, account_id, now=to_iso(tick))
        print(
            f"registration: RegistryDal.track_posts tracked {len(tracked):,} Posts in "
            f"{time.perf_counter() - started:.1f} s ({_calls_text(pipeline.counter.take())})"
        )

        first, held = [], []
        for endpoint in Endpoint:
            run = EndpointRun(endpoint.value, endpoint.max_ids)
            before = pipeline.stored_items()
            pipeline.plan(run, tick)
            retried = EndpointRun(endpoint.value, endpoint.max_ids)
            pipeline.plan(retried, tick)  # a retried tick while the first one's messages wait: the leases hold
            held.append(retried)
            pipeline.collect(run)
            run.items_stored = pipeline.stored_items() - before
            first.append(run)
        stored_after_first = pipeline.stored_items()

        again = []
        for run in first:
            rerun = EndpointRun(run.endpoint, run.max_ids)
            pipeline.plan(rerun, tick)  # a retried tick after collection: the markers it collected have moved on
            pipeline.collect(rerun)
            pipeline.collect(rerun, bodies=run.bodies)  # SQS redelivering every first-tick message
            again.append(rerun)
        stored_after_second = pipeline.stored_items()
        hourly = _next_hourly_tick(pipeline, tick + timedelta(hours=1))
        pipeline.counter.close()
    _report(first, held, again, stored_after_first, stored_after_second, len(ids))
    _report_hourly(hourly)
    return hourly


@dataclass
class HourlyTick:
    """What the next hourly /28hr tick wrote, priced by `bench.cost_units.CapacityMeter` (index writes included)."""

    run: EndpointRun
    units: Counter[str]
    metrics_table: str


def _next_hourly_tick(pipeline: Pipeline, tick: datetime) -> HourlyTick:
    """Plan and collect /28hr an hour later (every Post here is under 7 days old: due hourly) and price its writes."""
    from bench.cost_units import CapacityMeter, table_schemas
    from tests.aws_fixtures import load_template
    from xengage.api_client import Endpoint
    from xengage.dal.aws import dynamodb_client

    pipeline.clock.moment = tick + timedelta(minutes=1)
    pipeline.emulator.set_now(pipeline.clock.moment)
    run = EndpointRun(Endpoint.HOURLY_28HR.value, Endpoint.HOURLY_28HR.max_ids)
    pipeline.plan(run, tick)  # the planner's leases are not metered: one UpdateItem a Post, as before
    meter = CapacityMeter(table_schemas(load_template()), pipeline.dynamodb, dynamodb_client())
    try:
        pipeline.collect(run)
    finally:
        meter.close()
    return HourlyTick(run=run, units=meter.take(), metrics_table=pipeline.resources.metrics_table)


def _report_hourly(hourly: HourlyTick) -> None:
    run, posts, units = hourly.run, max(1, hourly.run.posts_delivered), hourly.units

    def per_post(kind: str, table_name: str) -> str:
        return f"{units[f'{kind} {table_name}'] / posts:.2f}"

    tables = sorted({key.split(" ", 1)[1] for key in units if key.startswith("item_writes ")})
    others = ", ".join(
        f"{name.rsplit('-', 1)[-1]} {per_post('item_writes', name)} writes {per_post('write_units', name)} WCU"
        for name in tables
        if name != hourly.metrics_table
    )
    print(
        f"next hourly /28hr tick, an hour later: {run.posts_delivered:,} Posts, {run.api_calls} API calls; "
        f"statuses {dict(run.statuses)}; write units per Post (index writes included):"
    )
    print(
        f"  MetricsTable {per_post('item_writes', hourly.metrics_table)} item writes, "
        f"{per_post('write_units', hourly.metrics_table)} WCU; {others}"
    )
    messages = max(1, len(run.bodies))
    per_message = ", ".join(
        f"{name.rsplit('-', 1)[-1]} {units[f'write_units {name}'] / messages:.1f} WCU" for name in tables
    )
    print(
        f"  per collector message ({messages}): {per_message}; {run.transactions} TransactWriteItems "
        f"({run.transacted_days:,} day items + {run.rollup_writes:,} rollup items)"
    )


def register_account(pipeline: Pipeline, world: World, tick: datetime) -> str:
    """The account's tokens in Secrets Manager and its registry item; the app secret set to the emulator's app."""
    from xengage.api_client import UserTokens
    from xengage.dal.aws import secretsmanager_client
    from xengage.timeutil import to_iso

    app = world.app
    secretsmanager_client().put_secret_value(
        SecretId=pipeline.resources.app_secret_arn,
        SecretString=json.dumps(
            {"consumer_key": app.consumer_key, "consumer_secret": app.consumer_secret, "bearer_token": app.bearer_token}
        ),
    )
    if pipeline.deps.load_app() != app:
        raise RuntimeError("the collector does not read the emulator's app credentials from the app secret")
    user = next(iter(world.users.values()))
    pipeline.deps.secrets.save_tokens(UserTokens(user.access_token, user.access_token_secret, user_id=user.user_id))
    pipeline.deps.registry.put_account(user.user_id, user.screen_name, now=to_iso(tick))
    return user.user_id


def _calls_text(calls: Counter[str]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(calls.items())) or "no calls"


def _report(
    first: list[EndpointRun],
    held: list[EndpointRun],
    again: list[EndpointRun],
    stored_first: int,
    stored_second: int,
    posts: int,
) -> None:
    rows = []
    for run in first:
        minimum = ceil_div(posts, run.max_ids)
        rows.append(
            [
                f"/{run.endpoint}",
                f"{run.messages} ({minimum})",
                f"{run.api_calls} ({minimum})",
                f"{run.items_written:,}",
                f"{run.items_stored:,}",
                f"{run.batch_write_calls:,}",
                f"{run.item_updates:,}",
                f"{run.transactions:,} ({run.transacted_days:,} + {run.rollup_writes:,})",
                f"{run.plan_calls['UpdateItem']:,}",
                f"{run.other_calls['UpdateItem'] - run.item_updates:,}",
                f"{run.plan_seconds:.1f} + {run.collect_seconds:.1f}",
            ]
        )
    headers = [
        "endpoint",
        "SQS msgs",
        "API calls",
        "points",
        "items stored",
        "BatchWriteItem",
        "UpdateItem days",
        "TransactWriteItems (days + rollups)",
    ]
    print("first tick (minimum in parentheses: ceil(Posts / ids per call); points: snapshots and hour buckets, stored")
    print("as items of their own (/totals) or in day items; UpdateItem: day items, the planner's leases, then the")
    print("collector's settling writes: status, due marker and latest totals, one UpdateItem a Post):")
    print(table([*headers, "UpdateItem plan", "UpdateItem settle", "plan+collect s"], rows))
    for run in first:
        print(
            f"  /{run.endpoint:<11} planned {run.planned:,} of {run.due:,} due; statuses {dict(run.statuses)}; "
            f"continuations {run.continuations}"
        )
        print(f"  {'':<12} planner DynamoDB calls: {_calls_text(run.plan_calls)}")
        print(f"  {'':<12} collector DynamoDB calls but BatchWriteItem: {_calls_text(run.other_calls)}")
        if run.api_calls != run.api_calls_seen or run.retries:
            print(f"  /{run.endpoint:<11} ! client counted {run.api_calls} calls, emulator {run.api_calls_seen}")
    leases = sum(run.plan_calls["UpdateItem"] for run in first)
    settling = sum(run.other_calls["UpdateItem"] - run.item_updates for run in first)
    days = sum(run.item_updates + run.transacted_days for run in first)
    print(
        f"  UpdateItem over the three ticks: {leases:,} leases (planner) + {settling:,} settling + {days:,} day items "
        f"(collector): {settling / (3 * posts):.2f} settling writes a Post a tick"
    )
    print("same tick again (idempotency):")
    replanned = ", ".join(f"/{run.endpoint} {run.due} due, {run.messages} msgs" for run in held)
    print(f"  plan() again while the first tick's messages were queued: {replanned} (leases hold)")
    replanned = ", ".join(f"/{run.endpoint} {run.due} due, {run.messages} msgs" for run in again)
    print(f"  plan() again after they were collected: {replanned} (collected markers moved on)")
    redelivered = ", ".join(f"/{run.endpoint} {run.already_done:,} of {run.posts_delivered:,}" for run in again)
    messages = sum(len(run.bodies) for run in first)
    print(
        f"  SQS redelivering all {messages} first-tick messages: Posts already_done {redelivered}; "
        f"{sum(run.api_calls for run in again)} API calls, {sum(run.items_written for run in again):,} points written "
        f"again; DynamoDB calls: {_calls_text(sum((run.other_calls for run in again), Counter()))}"
    )
    verdict = "unchanged" if stored_first == stored_second else "CHANGED: not idempotent"
    print(f"  MetricsTable items: {stored_first:,} after the first tick, {stored_second:,} after the rerun ({verdict})")


if __name__ == "__main__":
    header(TITLE)
    main()
