"""The fault matrix: the whole pipeline on the local stack under each fault, and after it.

    python -m bench.fault_matrix                  every scenario, printed as a table (a few minutes)
    python -m bench.fault_matrix --all-429 600    every data call answered 429 for 10 minutes at X's real minute

The template runs as deployed (planner, SQS, collector, DynamoDB, Secrets Manager) on the local stack against the
emulator, with two things shortened so minutes pass in seconds: the API's rate window ("minute", client and emulator
agree on it: `RATE_WINDOW_SECONDS`) and the collector's timeout (`CollectorTimeoutSeconds`). One account with 20
Posts of various ages (two of them need two /historical windows, one is protected, one deleted) and 5 Posts tracked
with the app token only are collected at one tick on all three endpoints. The emulator's clock is pinned, so a run
without faults always stores the same items: that clean run is the reference.

Each scenario starts from empty tables, turns its fault on, fires the three schedules, lets the fault last, turns it
off, and then fires the schedules again (same tick) only as long as the state differs from the clean run. Measured:
Engagement API calls and 429s, function timeouts, the Posts' statuses while the fault lasted, items the clean run does
not have (duplicates), windows fetched twice (the same Post, endpoint and window answered 200 more than once), and
the ticks it took to recover. `tests/integration/test_fault_matrix.py` runs this matrix and asserts the invariants.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from local.emulator import DEMO_APP, EmulatorServer, FaultConfig, PostState, World
from local.stack.schedules import iso_utc
from local.stack.seed import SeedAccount, SeedPlan, seed_stack
from local.stack.stack import LocalStack, StackSettings

TITLE: Final = "fault matrix: the template on the local stack under 13 faults, each compared with a clean run"
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
WINDOW_SECONDS: Final = 3.0  # the shortened minute
COLLECTOR_TIMEOUT_SECONDS: Final = 20
OWNER: Final = ("2000000001", "matrix_brand", "2000000001-matrixAccessToken", "matrix-token-secret")
OTHER: Final = ("2000000002", "someone_else", "2000000002-otherAccessToken", "other-token-secret")
# Ages of the owner's public Posts at the tick: hours to days, and two that need two 4-week /historical windows.
OWNER_AGES: Final = (
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=20),
    *(timedelta(days=days) for days in (1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5)),
    timedelta(days=30),
    timedelta(days=33),
)
MAX_RECOVERY_TICKS: Final = 3
DRAIN_TIMEOUT_SECONDS: Final = 240.0


@dataclass
class Snapshot:
    """What a run leaves behind, without timestamps that differ between runs."""

    metrics: dict[tuple[str, str], dict[str, Any]]  # (pk, sk) -> metrics
    statuses: dict[tuple[str, str], str]  # (tweet id, endpoint) -> status
    markers: dict[tuple[str, str], tuple[str | None, str | None]]  # (pk, sk) -> (next_due_at, last_hour_collected)
    queued: set[tuple[str, str]] = field(default_factory=set)  # (tweet id, endpoint) leased to a message, no status yet

    def status_counts(self) -> Counter[str]:
        """Statuses by Post and endpoint, and "queued" for those in a message not yet collected."""
        counts = Counter(self.statuses.values())
        counts["queued"] = len(self.queued - set(self.statuses))
        return +counts

    def only(self, tweet_ids: set[str]) -> Snapshot:
        """The part of the snapshot about these Posts."""
        return Snapshot(
            {key: value for key, value in self.metrics.items() if key[0].split("#")[0] in tweet_ids},
            {key: value for key, value in self.statuses.items() if key[0] in tweet_ids},
            {key: value for key, value in self.markers.items() if key[0].removeprefix("POST#") in tweet_ids},
        )


@dataclass
class Outcome:
    scenario: str
    calls: int
    throttled: int
    timeouts: int
    during: Counter[str]  # statuses when the fault was turned off
    duplicates: int  # items the clean run does not have
    refetched: int  # (endpoint, Post, window) answered 200 more than once
    ticks_to_recover: int | None  # None: the state never matched the clean run
    seconds: float
    differences: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        return self.ticks_to_recover is not None


@dataclass
class Scenario:
    name: str
    inject: Callable[[Harness], None] = lambda harness: None
    during: Callable[[Harness], None] = lambda harness: None
    recover: Callable[[Harness], None] = lambda harness: None
    fault_seconds: float = 0.0  # keep the fault on at least this long after the ticks
    expect: Callable[[Snapshot], Snapshot] = lambda snapshot: snapshot  # the clean state this scenario must reach
    # Track only a few Posts (one per kind of /historical message, none protected): for faults that make every
    # call slow, where the full set's calls (bisection included) would take minutes.
    few_posts: bool = False


class Harness:
    """The emulator and the local stack of template.yaml, and the steps scenarios are made of."""

    def __init__(
        self,
        workdir: Path,
        *,
        window_seconds: float = WINDOW_SECONDS,
        collector_timeout: int = COLLECTOR_TIMEOUT_SECONDS,
    ) -> None:
        self.tick = datetime.now(UTC).replace(second=0, microsecond=0)
        self.window_seconds = window_seconds
        self.world = _world(self.tick)
        self.emulator = EmulatorServer(self.world, window_seconds=window_seconds, now=self.tick + timedelta(minutes=1))
        self.emulator.start()
        self.emulator.set_now(self.tick + timedelta(minutes=1))
        self.stack = LocalStack(
            StackSettings(
                template_path=REPO_ROOT / "template.yaml",
                parameter_overrides={"CollectorTimeoutSeconds": collector_timeout},
                environment_overrides={
                    "ENGAGEMENT_API_URL": self.emulator.url,
                    "X_API_URL": self.emulator.url,
                    "RATE_WINDOW_SECONDS": str(window_seconds),
                },
                app_secret_value=_secret(self.world),
                log_dir=workdir / "logs",
                aws_faults_file=workdir / "aws_faults.json",
                schedule_retry_delay_seconds=0,
                api_port=None,
            )
        )
        self.stack.start()
        self.clean: Snapshot | None = None
        self.tracked: set[str] | None = None

    def close(self) -> None:
        self.stack.stop()
        self.emulator.stop()

    # -- steps ---------------------------------------------------------------------------------------------------

    def reset(self, *, few_posts: bool = False) -> None:
        """Empty tables and queues, no fault, the original credentials, then the account and Posts tracked again."""
        self.stack.set_aws_faults(None)
        self.emulator.reset_faults()
        self.emulator.restore_credentials()
        self.settle()
        for poller in self.stack.pollers:
            poller.stats.recent_bodies.clear()
        for logical_id in ("RegistryTable", "MetricsTable"):
            _empty_table(self.stack, self.stack.ids.ref(logical_id))
        self.put_app_secret(_secret(self.world))
        self.tracked = self.few_posts() if few_posts else None
        self.register()
        self.emulator.clear_log()

    def few_posts(self) -> set[str]:
        """The owner's youngest public Post and one app-only Post: one call per message."""
        owned = self.world.tweet_ids(self.world.posts_of(OWNER[0], state=PostState.PUBLIC))
        return {owned[0], self.world.tweet_ids(self.world.posts_of(OTHER[0]))[0]}

    def register(self) -> None:
        owner = self.world.users[OWNER[0]]
        chosen = self.tracked
        posts = {
            owner.user_id: self.world.tweet_ids(self.world.posts_of(owner.user_id)),
            "": self.world.tweet_ids(self.world.posts_of(OTHER[0])),
        }
        plan = SeedPlan(
            now=iso_utc(self.tick),
            accounts=[SeedAccount(owner.user_id, owner.screen_name, owner.access_token, owner.access_token_secret)],
            posts_by_account={
                account: [i for i in ids if chosen is None or i in chosen] for account, ids in posts.items()
            },
        )
        seed_stack(self.stack.specs["ApiFunction"], plan)

    def put_app_secret(self, value: dict[str, str]) -> None:
        import json

        self.stack.client("secretsmanager").put_secret_value(
            SecretId=self.stack.ids.ref("AppSecret"), SecretString=json.dumps(value)
        )

    def fire_ticks(self) -> None:
        assert self.stack.schedules is not None
        for target in self.stack.schedules.targets:
            self.stack.schedules.fire(target, iso_utc(self.tick))

    def wait_drained(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> bool:
        return self.stack.wait_until_drained(timeout=timeout)

    def wait_idle(self, timeout: float = DRAIN_TIMEOUT_SECONDS) -> bool:
        """Until nothing runs, waits or is delayed, but for records a failure left to redelivery (which only the
        visibility timeout would bring back)."""
        sqs = self.stack.client("sqs")
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = True
            for poller in self.stack.pollers:
                counts = sqs.get_queue_attributes(QueueUrl=poller.queue_url, AttributeNames=names)["Attributes"]
                visible, in_flight, delayed = (int(counts.get(name, 0)) for name in names)
                idle = idle and not poller.busy and visible == delayed == 0
                idle = idle and in_flight <= poller.awaiting_redelivery
            if idle:
                return True
            time.sleep(0.2)
        return False

    def release_failed(self) -> int:
        return sum(poller.release_failed() for poller in self.stack.pollers)

    def collector_busy(self) -> bool:
        return any(poller.busy for poller in self.stack.pollers)

    def timeouts(self) -> int:
        return sum(worker.timeouts for worker in self.stack.workers.values())

    def snapshot(self) -> Snapshot:
        client = self.stack.client("dynamodb")
        metrics = dict(point for item in _scan(client, self.stack.ids.ref("MetricsTable")) for point in _points(item))
        due_markers = [
            item for item in _scan(client, self.stack.ids.ref("RegistryTable")) if item["sk"]["S"].startswith("DUE#")
        ]
        statuses = {  # kept on the due markers
            (item["tweet_id"]["S"], item["endpoint"]["S"]): item["status"]["S"]
            for item in due_markers
            if "status" in item
        }
        markers = {
            (item["pk"]["S"], item["sk"]["S"]): (
                item.get("next_due_at", {}).get("S"),
                item.get("last_hour_collected", {}).get("S"),
            )
            for item in due_markers
        }
        queued = {(item["tweet_id"]["S"], item["endpoint"]["S"]) for item in due_markers if "lease" in item}
        return Snapshot(metrics, statuses, markers, queued)

    # -- one scenario --------------------------------------------------------------------------------------------

    def run(self, scenario: Scenario) -> Outcome:
        clean = scenario.expect(self.reference())
        if scenario.few_posts:
            clean = clean.only(self.few_posts())
        self.reset(few_posts=scenario.few_posts)
        started = time.monotonic()
        timeouts_before = self.timeouts()
        scenario.inject(self)
        self.fire_ticks()
        scenario.during(self)
        if scenario.fault_seconds:
            time.sleep(scenario.fault_seconds)  # how long the fault lasts: the work goes on meanwhile
        else:
            self.wait_idle()
        during = self.snapshot().status_counts()
        scenario.recover(self)
        ticks = self._recover(clean)
        log = self.emulator.log
        final = self.snapshot()
        return Outcome(
            scenario=scenario.name,
            calls=len(log),
            throttled=sum(1 for entry in log if entry.status == 429),
            timeouts=self.timeouts() - timeouts_before,
            during=during,
            duplicates=len(set(final.metrics) - set(clean.metrics)),
            refetched=_refetched(log),
            ticks_to_recover=ticks,
            seconds=time.monotonic() - started,
            differences=_differences(final, clean),
        )

    def reference(self) -> Snapshot:
        if self.clean is None:
            self.reset()
            self.fire_ticks()
            if not self.wait_drained():
                raise RuntimeError("the clean run did not drain")
            self.clean = self.snapshot()
        return self.clean

    def _recover(self, clean: Snapshot) -> int | None:
        """Ticks fired after the fault until the state is the clean run's (0: it recovered by itself).

        Records a function error left to SQS redelivery are made visible at once: the visibility timeout's 900 s
        pass in no time.
        """
        for ticks in range(MAX_RECOVERY_TICKS + 1):
            if ticks:
                self.fire_ticks()
            self.settle()
            if not _differences(self.snapshot(), clean):
                return ticks
        return None

    def settle(self) -> None:
        """Until nothing runs or waits, failed records redelivered at once (their 900 s pass in no time)."""
        self.release_failed()
        self.wait_idle()
        while any(poller.awaiting_redelivery for poller in self.stack.pollers):
            self.release_failed()
            self.wait_idle()


# --- the scenarios ------------------------------------------------------------------------------------------------


def _emulator_faults(**options: Any) -> Callable[[Harness], None]:
    return lambda harness: harness.emulator.set_faults(FaultConfig(**options))


def _no_emulator_faults(harness: Harness) -> None:
    harness.emulator.reset_faults()


def _kill_collector_mid_batch(harness: Harness) -> None:
    """Wait until the collector is in a batch that has made a call, then kill its process."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (harness.collector_busy() and harness.emulator.log):
        time.sleep(0.05)
    harness.stack.workers["CollectorFunction"].kill()


def _deliver_everything_again(harness: Harness) -> None:
    """Every message the collector received is delivered a second time (SQS is at-least-once)."""
    harness.settle()
    sqs = harness.stack.client("sqs")
    for poller in harness.stack.pollers:
        for body in list(poller.stats.recent_bodies):
            sqs.send_message(QueueUrl=poller.queue_url, MessageBody=body)


def _tick_again(harness: Harness) -> None:
    """The scheduler retries the tick (its first delivery timed out on its side): the same scheduled time."""
    harness.fire_ticks()


def _revoke_owner_tokens(harness: Harness) -> None:
    harness.emulator.revoke_user_tokens(OWNER[0])


def _reauthorize_owner(harness: Harness) -> None:
    """The owner authorizes the app again (its tokens work again) and the account is registered again."""
    harness.emulator.restore_credentials()
    harness.register()


def _rotate_bearer(harness: Harness) -> None:
    harness.emulator.rotate_bearer_token()


def _store_new_bearer(harness: Harness) -> None:
    """The operator stores the app's new bearer token in the app secret (a new version)."""
    harness.put_app_secret(_secret(harness.world))


def _without_media_views(snapshot: Snapshot) -> Snapshot:
    metrics = {
        key: {name: value for name, value in values.items() if name != "media_views"}
        for key, values in snapshot.metrics.items()
    }
    return Snapshot(metrics, snapshot.statuses, snapshot.markers)


def scenarios(window: float = WINDOW_SECONDS) -> list[Scenario]:
    """Every scenario of issue 7's fault matrix, in the order of the table."""
    return [
        Scenario(
            "100% 429 for 5 (3 s) minutes, then none",
            inject=_emulator_faults(rate_429=1.0),
            recover=_no_emulator_faults,
            fault_seconds=5 * window,
        ),
        Scenario("20% 5xx", inject=_emulator_faults(rate_5xx=0.2, seed=3), recover=_no_emulator_faults),
        Scenario(
            "8 s latency on every call (2 Posts)",
            inject=_emulator_faults(latency_ms=8000),
            recover=_no_emulator_faults,
            few_posts=True,
        ),
        Scenario(
            "20% connection resets", inject=_emulator_faults(reset_share=0.2, seed=4), recover=_no_emulator_faults
        ),
        Scenario(
            "20% truncated JSON", inject=_emulator_faults(malformed_share=0.2, seed=5), recover=_no_emulator_faults
        ),
        Scenario(
            "DynamoDB throttling and UnprocessedItems",
            inject=lambda harness: harness.stack.set_aws_faults(
                {
                    "dynamodb.BatchWriteItem": {"unprocessed": 0.3, "throttle": 0.05, "seed": 6},
                    "dynamodb.UpdateItem": {"throttle": 0.05, "seed": 7},
                    "dynamodb.Query": {"throttle": 0.05, "seed": 8},
                }
            ),
            recover=lambda harness: harness.stack.set_aws_faults(None),
        ),
        Scenario(
            "Secrets Manager throttling",
            inject=lambda harness: harness.stack.set_aws_faults(
                {"secretsmanager.GetSecretValue": {"throttle": 0.5, "seed": 9}}
            ),
            recover=lambda harness: harness.stack.set_aws_faults(None),
        ),
        Scenario(
            "collector killed mid-batch",
            inject=_emulator_faults(latency_ms=1500),
            during=_kill_collector_mid_batch,
            recover=_no_emulator_faults,
        ),
        Scenario("every message delivered twice", during=_deliver_everything_again),
        Scenario("schedule tick retried", during=_tick_again),
        Scenario(
            "metric retired (media_views)",
            inject=_emulator_faults(retired_metrics=("media_views",)),
            expect=_without_media_views,
        ),
        Scenario("user tokens revoked", inject=_revoke_owner_tokens, recover=_reauthorize_owner),
        Scenario("app bearer token revoked", inject=_rotate_bearer, recover=_store_new_bearer),
    ]


# --- the 10-minute all-429 run ------------------------------------------------------------------------------------


def all_rate_limited(harness: Harness, seconds: float, out: Any = sys.stdout) -> dict[str, Any]:
    """Every data call answered 429 for `seconds` at the real minute; statuses sampled every minute, then recovery."""
    harness.reset()
    harness.emulator.set_faults(FaultConfig(rate_429=1.0))
    timeouts_before = harness.timeouts()
    harness.fire_ticks()
    started = time.monotonic()
    samples = []
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(60.0, seconds - elapsed))
        statuses = harness.snapshot().status_counts()
        pending = _pending_with_next_attempt(harness)
        samples.append((round(time.monotonic() - started), dict(statuses), pending))
        print(
            f"  {samples[-1][0]:>4} s  statuses {dict(statuses)}  with a next attempt {pending}", file=out, flush=True
        )
    log = harness.emulator.log
    harness.emulator.reset_faults()
    harness.wait_drained()
    after = harness.snapshot().status_counts()
    return {
        "calls": len(log),
        "429s": sum(1 for entry in log if entry.status == 429),
        "timeouts": harness.timeouts() - timeouts_before,
        "samples": samples,
        "after": dict(after),
    }


def _pending_with_next_attempt(harness: Harness) -> int:
    client = harness.stack.client("dynamodb")
    return sum(
        1
        for item in _scan(client, harness.stack.ids.ref("RegistryTable"))
        if item.get("status", {}).get("S") in ("rate_limited", "deferred") and "next_attempt_at" in item
    )


# --- helpers ------------------------------------------------------------------------------------------------------


def _world(tick: datetime) -> World:
    world = World(DEMO_APP)
    owner = world.add_user(*OWNER)
    other = world.add_user(*OTHER)
    for age in OWNER_AGES:
        world.add_post(owner.user_id, tick - age)
    world.add_post(owner.user_id, tick - timedelta(days=2), state=PostState.PROTECTED)
    world.add_post(owner.user_id, tick - timedelta(days=3), state=PostState.DELETED)
    for hours in (3, 9, 30, 50, 70):
        world.add_post(other.user_id, tick - timedelta(hours=hours))
    return world


def _secret(world: World) -> dict[str, str]:
    app = world.app
    return {"consumer_key": app.consumer_key, "consumer_secret": app.consumer_secret, "bearer_token": app.bearer_token}


def _scan(client: Any, table: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _empty_table(stack: LocalStack, table: str) -> None:
    client = stack.client("dynamodb")
    keys = [{"pk": item["pk"], "sk": item["sk"]} for item in _scan(client, table)]
    for start in range(0, len(keys), 25):
        request = {table: [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _points(item: dict[str, Any]) -> Iterator[tuple[tuple[str, str], dict[str, int]]]:
    """A MetricsTable item's points by (pk, at): a /totals snapshot, or each hour of a day item (wire form in)."""
    from boto3.dynamodb.types import TypeDeserializer

    from xengage.dal.series import day_hours, hour_at, is_day_item

    plain = {name: TypeDeserializer().deserialize(value) for name, value in item.items()}
    if not is_day_item(plain):
        yield (plain["pk"], plain["sk"]), {name: int(value) for name, value in plain["metrics"].items()}
        return
    for hour, values in day_hours(plain).items():
        yield (plain["pk"], hour_at(plain["sk"], hour)), values


def _refetched(log: list[Any]) -> int:
    """(endpoint, Post, window) answered 200 more than once. Answers the client never read (a hang it gave up on,
    a truncated body) do not count: it had to ask again."""
    answered: Counter[tuple[str, str, tuple[str, str] | None]] = Counter()
    for entry in log:
        if entry.status == 200 and entry.fault not in ("timeout", "malformed"):
            for tweet_id in entry.tweet_ids:
                answered[(entry.endpoint, tweet_id, entry.window)] += 1
    return sum(count - 1 for count in answered.values() if count > 1)


def _differences(found: Snapshot, clean: Snapshot) -> list[str]:
    problems = []
    for name in ("metrics", "statuses", "markers"):
        have, want = getattr(found, name), getattr(clean, name)
        if have != want:
            extra, missing = set(have) - set(want), set(want) - set(have)
            changed = [key for key in set(have) & set(want) if have[key] != want[key]]
            problems.append(f"{name}: {len(extra)} extra, {len(missing)} missing, {len(changed)} different")
    return problems


@contextmanager
def harness(workdir: Path | None = None, **options: Any) -> Iterator[Harness]:
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as scratch:
        running = Harness(workdir or Path(scratch), **options)
        try:
            yield running
        finally:
            running.close()


_COUNTED = frozenset({"ok", "rate_limited", "deferred", "queued"})


def format_table(outcomes: list[Outcome]) -> str:
    lines = [
        "| scenario | Engagement API calls | 429s | function timeouts "
        "| when the fault ended: ok / rate_limited or deferred / queued / other status "
        "| duplicate items | windows fetched twice | ticks until recovered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        during = outcome.during
        pending = during.get("rate_limited", 0) + during.get("deferred", 0)
        queued = during.get("queued", 0)
        other = sum(during.values()) - during.get("ok", 0) - pending - queued
        others = ", ".join(f"{n} {status}" for status, n in sorted(during.items()) if status not in _COUNTED)
        recovered = str(outcome.ticks_to_recover) if outcome.recovered else "not recovered"
        lines.append(
            f"| {outcome.scenario} | {outcome.calls} | {outcome.throttled} | {outcome.timeouts} "
            f"| {during.get('ok', 0)} / {pending} / {queued} / {other}{f' ({others})' if others else ''} "
            f"| {outcome.duplicates} | {outcome.refetched} | {recovered} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fault_matrix", description=__doc__.splitlines()[0])
    parser.add_argument("--all-429", type=float, metavar="SECONDS", help="the all-429 run instead, this long")
    args = parser.parse_args(argv or [])
    if args.all_429:
        with harness(window_seconds=60.0, collector_timeout=120) as running:
            print(f"every data call answered 429 for {args.all_429:.0f} s at X's 60 s minute", flush=True)
            print(all_rate_limited(running, args.all_429))
        return 0
    with harness() as running:
        clean = running.reference()
        print(f"clean run: {len(clean.metrics)} items, statuses {dict(clean.status_counts())}", flush=True)
        outcomes = []
        for scenario in scenarios():
            outcomes.append(running.run(scenario))
            print(f"  {scenario.name}: {outcomes[-1].seconds:.0f} s {outcomes[-1].differences}", flush=True)
        print(format_table(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
