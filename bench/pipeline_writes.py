"""What one tick costs for 1,000 tracked Posts: SQS messages, Engagement API calls and DynamoDB writes.

    python -m bench.pipeline_writes        (from the repo root, with layers/common on PYTHONPATH; `make bench`)

Setup: moto in-process (`mock_aws`) with the tables, queue and app secret created from template.yaml by
`tests.aws_fixtures.create_resources`; the Engagement API emulator on loopback with one account owning 1,000
public Posts aged 1 to 72 hours. The Posts are tracked with `RegistryDal.track_posts`; then, per endpoint, the
planner runs one tick (`pipeline.planner.plan`) and the collector (`pipeline.collector.collect` with the real
EngagementClient, on the emulator's pinned clock) takes every queued message. Then the same tick is planned again
and the first message of each endpoint is delivered a second time, to show that nothing is duplicated.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from bench.client_calls import VirtualTime
from bench.common import (
    CallCounter,
    ceil_div,
    fake_aws_env,
    header,
    quiet_library_output,
    scoped_env,
    table,
)
from tests.aws_fixtures import AwsResources, create_resources

if TYPE_CHECKING:
    from local.emulator import EmulatorServer, World
    from xengage.api_client import EngagementClient
    from xengage.api_client.credentials import AppCredentials
    from xengage.pipeline.collector import CollectorDeps

TITLE: Final = "pipeline writes: one tick for 1,000 tracked Posts (moto in-process + emulator)"
POSTS: Final = 1_000
MAX_AGE_DAYS: Final = 3.0
BATCH_WRITE_MAX: Final = 25  # BatchWriteItem items per call
# First-tick messages delivered again per endpoint. Each Post costs the collector 2-3 UpdateItems (~10 ms each on
# moto in-process), so redelivering all 116 messages would double the run; the first message of each shows it.
REDELIVERED: Final = 1


@dataclass
class EndpointRun:
    """What planning and collecting one endpoint did."""

    endpoint: str
    max_ids: int
    messages: int = 0  # sent by the planner
    bodies: list[dict[str, Any]] = field(default_factory=list)  # collected
    api_calls: int = 0  # as the client counted them
    api_calls_seen: int = 0  # as the emulator counted them
    retries: int = 0
    items_written: int = 0
    items_stored: int = 0  # MetricsTable growth
    batch_write_calls: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    other_calls: Counter[str] = field(default_factory=Counter)  # DynamoDB calls other than BatchWriteItem
    plan_seconds: float = 0.0
    collect_seconds: float = 0.0


class Pipeline:
    """The planner and collector wired to moto (in-process) and the emulator, with call counters."""

    def __init__(self, resources: AwsResources, emulator: EmulatorServer, clock: VirtualTime) -> None:
        from xengage.dal import CollectQueue
        from xengage.dal.aws import dynamodb_resource, session
        from xengage.pipeline.collector import default_deps

        self.resources = resources
        self.emulator = emulator
        self.clock = clock
        self._clients: dict[AppCredentials, EngagementClient] = {}
        self.deps: CollectorDeps = replace(default_deps(), client_factory=self._client_for, now=clock.now)
        self.queue = CollectQueue(resources.collect_queue_url)
        self.sqs = session().client("sqs")
        self.dynamodb = dynamodb_resource().meta.client
        self.counter = CallCounter(self.dynamodb)

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

        started = time.perf_counter()
        run.messages += plan(Endpoint(run.endpoint), tick, registry=self.deps.registry, queue=self.queue).messages
        run.plan_seconds += time.perf_counter() - started

    def collect(self, run: EndpointRun, bodies: list[dict[str, Any]] | None = None) -> None:
        """Collect every queued message, or `bodies` (a redelivery), adding up what the collector reports."""
        from xengage.pipeline.collector import PostsFailed, collect, parse_message

        self.counter.take()
        started = time.perf_counter()
        log_before = len(self.emulator.log)
        for body in self._received() if bodies is None else bodies:
            run.bodies.append(body)
            try:
                summary = collect(parse_message(body), self.deps)
            except PostsFailed as failed:
                summary = failed.summary
            run.api_calls += summary.calls
            run.retries += summary.retries
            run.items_written += summary.items_written
            run.batch_write_calls += summary.batch_write_calls
            run.statuses.update(summary.counts)
            quiet_library_output()  # drop the metrics collect() added, so none is auto-flushed to stdout
        run.api_calls_seen += len(self.emulator.log) - log_before
        run.collect_seconds += time.perf_counter() - started
        run.other_calls.update({name: n for name, n in self.counter.take().items() if name != "BatchWriteItem"})

    def _received(self) -> list[dict[str, Any]]:
        """Every message on the queue, received and deleted (what the event source mapping hands over)."""
        bodies: list[dict[str, Any]] = []
        url = self.resources.collect_queue_url
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return bodies


def main() -> None:
    from moto import mock_aws

    quiet_library_output()
    started = time.perf_counter()
    with scoped_env(fake_aws_env()), mock_aws():
        resources = create_resources()
        with scoped_env(resources.environment()):
            run_benchmark(resources, setup_seconds=time.perf_counter() - started)
    print(f"wall time: {time.perf_counter() - started:.1f} s")


def run_benchmark(resources: AwsResources, *, setup_seconds: float) -> None:
    from local.emulator import EmulatorServer, World
    from xengage.api_client import Endpoint
    from xengage.timeutil import to_iso

    real_now = datetime.now(UTC)
    tick = real_now.replace(minute=5, second=0, microsecond=0)  # the schedule's <aws.scheduler.scheduled-time>
    world = World.generate(users=1, posts_per_user=POSTS, now=real_now, max_age_days=MAX_AGE_DAYS, seed=7)
    with EmulatorServer(world=world, port=0, now=tick) as emulator:
        pipeline = Pipeline(resources, emulator, VirtualTime(emulator, tick + timedelta(minutes=1)))
        account_id = _register_account(pipeline, world, tick)
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

        first = []
        for endpoint in Endpoint:
            run = EndpointRun(endpoint.value, endpoint.max_ids)
            before = pipeline.stored_items()
            pipeline.plan(run, tick)
            pipeline.collect(run)
            run.items_stored = pipeline.stored_items() - before
            first.append(run)
        stored_after_first = pipeline.stored_items()

        again = []
        for run in first:
            rerun = EndpointRun(run.endpoint, run.max_ids)
            pipeline.plan(rerun, tick)  # a retried tick: the markers it collected have moved on
            pipeline.collect(rerun)
            pipeline.collect(rerun, bodies=run.bodies[:REDELIVERED])  # SQS redelivering first-tick messages
            again.append(rerun)
        stored_after_second = pipeline.stored_items()
        pipeline.counter.close()
    _report(first, again, stored_after_first, stored_after_second, len(ids))


def _register_account(pipeline: Pipeline, world: World, tick: datetime) -> str:
    """The account's tokens in Secrets Manager and its registry item; the app secret set to the emulator's app."""
    from xengage.api_client import UserTokens
    from xengage.dal.aws import secretsmanager_client
    from xengage.dal.secrets import save_account_tokens
    from xengage.timeutil import to_iso

    app = world.app
    secretsmanager_client().put_secret_value(
        SecretId=pipeline.resources.app_secret_arn,
        SecretString=json.dumps(
            {"consumer_key": app.consumer_key, "consumer_secret": app.consumer_secret, "bearer_token": app.bearer_token}
        ),
    )
    user = next(iter(world.users.values()))
    save_account_tokens(
        pipeline.resources.secret_prefix, UserTokens(user.access_token, user.access_token_secret, user_id=user.user_id)
    )
    pipeline.deps.registry.put_account(user.user_id, user.screen_name, now=to_iso(tick))
    return user.user_id


def _calls_text(calls: Counter[str]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(calls.items())) or "no calls"


def _report(
    first: list[EndpointRun], again: list[EndpointRun], stored_first: int, stored_second: int, posts: int
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
                f"{run.batch_write_calls:,} ({ceil_div(run.items_written, BATCH_WRITE_MAX):,})",
                f"{run.plan_seconds:.1f} + {run.collect_seconds:.1f}",
            ]
        )
    headers = ["endpoint", "SQS msgs", "API calls", "items written", "items stored", "BatchWriteItem", "plan+collect s"]
    print("first tick (minimum in parentheses: ceil(Posts / ids per call); ceil(items / 25) for BatchWriteItem):")
    print(table(headers, rows))
    for run in first:
        other = _calls_text(run.other_calls)
        print(f"  /{run.endpoint:<11} statuses {dict(run.statuses)}; other DynamoDB calls: {other}")
        if run.api_calls != run.api_calls_seen or run.retries:
            print(f"  /{run.endpoint:<11} ! client counted {run.api_calls} calls, emulator {run.api_calls_seen}")
    print("same tick again (idempotency):")
    replanned = ", ".join(f"/{run.endpoint} {run.messages}" for run in again)
    print(f"  plan() at the same scheduled time queued {replanned} messages (collected markers moved on)")
    redelivered = ", ".join(f"/{run.endpoint} {sum(run.statuses.values())}" for run in again)
    print(
        f"  SQS redelivering the first message of each endpoint (Posts: {redelivered}): "
        f"{sum(run.api_calls for run in again)} API calls, {sum(run.items_written for run in again):,} items written "
        f"again in {sum(run.batch_write_calls for run in again):,} BatchWriteItem calls"
    )
    verdict = "unchanged" if stored_first == stored_second else "CHANGED: not idempotent"
    print(f"  MetricsTable items: {stored_first:,} after the first tick, {stored_second:,} after the rerun ({verdict})")


if __name__ == "__main__":
    header(TITLE)
    main()
