"""Test doubles for the pipeline: a fake Engagement client and helpers to make Posts and drain the queue."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from xengage.api_client.catalog import STATUS_OK, Endpoint, Reason
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.deadline import Deadline
from xengage.api_client.models import DEADLINE, RATE_LIMIT, TRANSIENT, EngagementResult, PostMetrics
from xengage.dal.aws import session
from xengage.dal.series import day_hours, hour_at, is_day_item
from xengage.deps import Deps
from xengage.pipeline.collector import CollectorDeps, collect, parse_message
from xengage.settings import CollectorSettings, from_env
from xengage.timeutil import SNOWFLAKE_EPOCH_MS, floor_hour

TICK = datetime(2026, 11, 25, 18, 15, tzinfo=UTC)
PENDING_RETRY = timedelta(seconds=30)  # when the fake says a rate_limited / deferred Post may be asked again


def snowflake(created_at: datetime, sequence: int = 0) -> str:
    """A Post id whose snowflake creation time is `created_at` (sequence keeps ids distinct)."""
    millis = int(created_at.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS
    return str((millis << 22) + sequence)


def post_ids(count: int, *, age: timedelta = timedelta(hours=3), now: datetime = TICK, first: int = 0) -> list[str]:
    return [snowflake(now - age, first + index) for index in range(count)]


@dataclass
class FakeCall:
    endpoint: Endpoint
    tweet_ids: list[str]
    user: UserTokens | None
    start: datetime | None
    end: datetime | None
    engagement_types: list[str] | None = None


@dataclass
class FakeEngagementClient:
    """Answers like EngagementClient.fetch: every id back, `ok` with metrics derived from the id, or a Reason.

    `outcomes` maps tweet id -> Reason value ("deadline": not asked, no time left); `script` gives the outcomes of
    the next calls, one mapping per call (then `outcomes` again; "*" stands for every id); `error` is raised instead
    of answering; `refuse` names engagement types the API refuses (reported in `refused_metrics`, never served).
    """

    outcomes: dict[str, str] = field(default_factory=dict)
    script: list[dict[str, str]] = field(default_factory=list)
    error: Exception | None = None
    refuse: dict[str, str] = field(default_factory=dict)
    series_hours: int = 3
    totals: dict[str, int] | None = None  # every /totals answer (else derived from the id)
    calls: list[FakeCall] = field(default_factory=list)

    def fetch(
        self,
        endpoint: Endpoint | str,
        tweet_ids: Sequence[str | int],
        *,
        engagement_types: Sequence[str] | None = None,
        user: UserTokens | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        deadline: Deadline | None = None,
    ) -> EngagementResult:
        endpoint = Endpoint(endpoint)
        ids = [str(tweet_id) for tweet_id in tweet_ids]
        asked = list(engagement_types) if engagement_types is not None else None
        self.calls.append(FakeCall(endpoint, ids, user, start, end, asked))
        if self.error is not None:
            raise self.error
        outcomes = self.script.pop(0) if self.script else self.outcomes
        result = EngagementResult(endpoint=endpoint, calls=math.ceil(len(ids) / endpoint.max_ids))
        result.refused_metrics = {m: why for m, why in self.refuse.items() if asked is None or m in asked}
        for tweet_id in ids:
            post = PostMetrics(tweet_id=tweet_id)
            post.unsupported_metrics = set(result.refused_metrics)
            status = outcomes.get(tweet_id, outcomes.get("*", STATUS_OK))
            if status == "deadline":  # no time was left to ask: no call made
                post.defer(Reason.DEFERRED, "out of time", TICK, cause=DEADLINE)
                result.calls = 0
            elif status != STATUS_OK and Reason(status).pending:
                cause = RATE_LIMIT if status == Reason.RATE_LIMITED.value else TRANSIENT
                post.defer(Reason(status), f"fake answer: {status}", TICK + PENDING_RETRY, cause=cause)
            elif status != STATUS_OK:
                post.mark(Reason(status), f"fake answer: {status}")
            elif endpoint is Endpoint.TOTALS:
                post.totals = dict(self.totals) if self.totals else {"favorites": int(tweet_id) % 97, "retweets": 2}
            else:
                last = floor_hour(end) if end else floor_hour(TICK)
                first = max(
                    start or last - timedelta(hours=self.series_hours), last - timedelta(hours=self.series_hours)
                )
                hour = first
                while hour < last:
                    post.hourly[hour] = {"impressions": int(tweet_id) % 13 + hour.hour, "engagements": 1}
                    hour += timedelta(hours=1)
            result.posts[tweet_id] = post
        return result


def fake_deps(client: FakeEngagementClient, *, now: datetime = TICK) -> CollectorDeps:
    """Real DAL and secrets (moto), the fake client, a fixed clock."""
    return Deps(from_env(CollectorSettings), client_factory=lambda app: client, now=lambda: now)


def register_account(deps: CollectorDeps, user_id: str, *, token: str = "account-access-token-value") -> None:
    """An account in the registry and its tokens in Secrets Manager (as the HTTP API would leave them)."""
    deps.registry.put_account(user_id, f"user{user_id}", now="2026-11-01T00:00:00Z")
    deps.secrets.save_tokens(
        UserTokens(access_token=token, access_token_secret=f"{token}-secret", user_id=user_id),
    )


def drain_queue(queue_url: str, deps: CollectorDeps, *, delete: bool = True) -> list[dict[str, Any]]:
    """Receive every message (delays ignored: moto serves a delayed message only after it) and collect it; returns
    the bodies seen. Continuations the collector sends are drained too."""
    sqs = session().client("sqs")
    bodies: list[dict[str, Any]] = []
    while True:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        messages = received.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            parsed = parse_message(message["Body"])
            bodies.append(parsed.to_body())
            collect(parsed, deps)
            if delete:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def scan_items(table_name: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a table — tests may Scan to see everything; the code never does."""
    table = session().resource("dynamodb").Table(table_name)
    items: list[dict[str, Any]] = []
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def scan_keys(table_name: str) -> list[tuple[str, str]]:
    """Every (pk, sk) of a table."""
    return sorted((item["pk"], item["sk"]) for item in scan_items(table_name, ProjectionExpression="pk, sk"))


def stored_points(table_name: str) -> list[tuple[str, str]]:
    """Every stored point of MetricsTable as (pk, at): a /totals snapshot, or an hour of a day item."""
    points: list[tuple[str, str]] = []
    for item in scan_items(table_name):
        if is_day_item(item):
            points += [(item["pk"], hour_at(item["sk"], hour)) for hour in day_hours(item)]
        else:
            points.append((item["pk"], item["sk"]))
    return sorted(points)


def app_credentials() -> AppCredentials:
    return AppCredentials("test-consumer-key", "test-consumer-secret", "test-bearer")
