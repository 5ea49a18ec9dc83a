"""Collector: fetch one message's Posts from the Engagement API and store metrics, statuses and due markers.

Everything written is keyed by the tick (`scheduled_time`) or the hour bucket, so a retried tick or a redelivered
SQS message overwrites the same items instead of adding new ones. Every Post of a message ends either stored or
with a status saying why not. Only transient failures (`failed`: retries exhausted) raise, so SQS redelivers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from xengage.api_client.catalog import DEFAULT_BASE_URL, STATUS_OK, Endpoint, Reason
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.errors import AuthError, RequestValidationError
from xengage.api_client.models import EngagementResult, PostMetrics
from xengage.dal import MetricPoint, MetricsDal, NotFound, RegistryDal, StatusDal, metrics_dal, registry_dal, status_dal
from xengage.dal.registry import ACCOUNT_NEEDS_REAUTH
from xengage.dal.secrets import SecretError, load_account_tokens, load_app_credentials
from xengage.observability import count, logger
from xengage.pipeline.cadence import earliest_historical_start, next_due_at
from xengage.pipeline.messages import CollectMessage
from xengage.settings import collector_settings
from xengage.timeutil import floor_hour, floor_minute, snowflake_created_at, to_iso, utc_now

NEEDS_REAUTH_MESSAGE = "account needs re-authorization"


class Fetcher(Protocol):
    """What the collector needs of `EngagementClient`."""

    def fetch(
        self,
        endpoint: Endpoint | str,
        tweet_ids: Sequence[str | int],
        *,
        engagement_types: Sequence[str] | None = None,
        user: UserTokens | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> EngagementResult: ...


@dataclass(slots=True)
class CollectorDeps:
    registry: RegistryDal
    metrics: MetricsDal
    statuses: StatusDal
    client_factory: Callable[[AppCredentials], Fetcher]
    load_app: Callable[[], AppCredentials]
    load_tokens: Callable[[str], UserTokens]
    now: Callable[[], datetime] = utc_now


@dataclass(slots=True)
class CollectSummary:
    endpoint: str
    account_id: str | None
    scheduled_time: str
    posts: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # status -> Posts
    items_written: int = 0
    batch_write_calls: int = 0
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    skipped: str | None = None  # why no call was made, if none was

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: CollectSummary) -> None:
        self.posts += other.posts
        for status, posts in other.counts.items():
            self.counts[status] = self.counts.get(status, 0) + posts
        self.items_written += other.items_written
        self.batch_write_calls += other.batch_write_calls
        self.calls += other.calls
        self.retries += other.retries
        self.throttled += other.throttled


class PostsFailed(RuntimeError):
    """Some Posts failed transiently; raised after their statuses are stored so SQS redelivers the message."""

    def __init__(self, summary: CollectSummary) -> None:
        super().__init__(
            f"{summary.counts.get(Reason.FAILED.value, 0)} of {summary.posts} Posts failed on {summary.endpoint}"
        )
        self.summary = summary


class InvalidPayload(ValueError):
    """A console payload or SQS body that is not a valid collection request; the message names the problem."""


@functools.cache
def _engagement_client(app: AppCredentials, base_url: str) -> Fetcher:
    # Imported here so the planner never pays for requests/oauthlib; cached so warm starts reuse the session.
    from xengage.api_client.client import EngagementClient

    return EngagementClient(app, base_url=base_url)


def default_deps() -> CollectorDeps:
    """Dependencies wired from the collector's environment (cached DAL objects and secrets)."""
    settings = collector_settings()
    base_url = settings.engagement_api_url or DEFAULT_BASE_URL
    return CollectorDeps(
        registry=registry_dal(),
        metrics=metrics_dal(),
        statuses=status_dal(),
        client_factory=lambda app: _engagement_client(app, base_url),
        load_app=lambda: load_app_credentials(settings.app_secret_arn),
        load_tokens=lambda user_id: load_account_tokens(settings.secret_prefix, user_id),
    )


def parse_message(body: Mapping[str, Any] | str) -> CollectMessage:
    try:
        if isinstance(body, str):
            return CollectMessage.model_validate_json(body)
        return CollectMessage.model_validate(body)
    except ValidationError as exc:
        raise InvalidPayload(_describe(exc)) from exc


def collect(message: CollectMessage, deps: CollectorDeps, *, advance_markers: bool = True) -> CollectSummary:
    """Collect one message. Raises PostsFailed (after storing everything else) when Posts failed transiently."""
    summary = CollectSummary(
        endpoint=message.endpoint.value, account_id=message.account_id, scheduled_time=to_iso(message.scheduled_time)
    )
    summary.posts = len(message.tweet_ids)
    log_keys = {"endpoint": message.endpoint.value, "account_id": message.account_id or "APP"}

    user: UserTokens | None = None
    if message.account_id:
        account = deps.registry.get_account(message.account_id)
        if account is None:
            return _skip_auth_failed(message, deps, summary, f"account {message.account_id} is not registered")
        if account.needs_reauth:
            return _skip_auth_failed(message, deps, summary, NEEDS_REAUTH_MESSAGE)
        try:
            user = deps.load_tokens(message.account_id)
        except SecretError as exc:
            _mark_needs_reauth(deps, message.account_id, str(exc))
            return _skip_auth_failed(
                message, deps, summary, f"no usable tokens stored for account {message.account_id}"
            )
    app = deps.load_app()  # a missing app secret is a deployment problem: let it raise and redeliver

    start = message.start
    if start is not None and message.endpoint is Endpoint.HISTORICAL:
        start = max(start, earliest_historical_start(deps.now()))
    try:
        result = deps.client_factory(app).fetch(
            message.endpoint, message.tweet_ids, user=user, start=start, end=message.end
        )
    except AuthError as exc:
        if message.account_id:
            _mark_needs_reauth(deps, message.account_id, str(exc))
        return _skip_auth_failed(message, deps, summary, str(exc))
    except RequestValidationError as exc:
        # Retrying cannot fix a request the client refuses to send: record why and drop the message.
        logger.error("request refused before sending", extra={**log_keys, "error": str(exc)})
        _record_all(message, deps, Reason.FAILED.value, str(exc), summary)
        return summary

    summary.calls, summary.retries, summary.throttled = result.calls, result.retries, result.throttled
    posts = _every_requested_post(message, result)
    at = summary.scheduled_time
    collected_at = to_iso(deps.now())

    write = deps.metrics.put_points(_points(message, posts, at, collected_at))
    summary.items_written, summary.batch_write_calls = write.items, write.batch_write_calls

    for post in posts:
        deps.statuses.record(post.tweet_id, message.endpoint, post.status, at=collected_at, message=post.reason)
        summary.counts[post.status] = summary.counts.get(post.status, 0) + 1
        if message.endpoint is Endpoint.TOTALS and post.ok:
            deps.registry.update_latest_totals(post.tweet_id, post.totals, at=at)
        if advance_markers and post.status != Reason.FAILED.value:
            deps.registry.advance_due(
                post.tweet_id,
                message.endpoint,
                next_due_at=_iso_or_none(next_due_at(message.endpoint, post.tweet_id, message.scheduled_time)),
                collected_at=collected_at,
                last_hour_collected=_last_hour(message, post),
            )

    if message.account_id and summary.counts.get(STATUS_OK):
        deps.registry.mark_account_success(message.account_id, now=collected_at)

    _emit(summary)
    logger.info("collected", extra={**log_keys, "summary": summary.as_dict()})
    if summary.counts.get(Reason.FAILED.value):
        raise PostsFailed(summary)
    return summary


def collect_direct(payload: Any, deps: CollectorDeps | None = None) -> dict[str, Any]:
    """The console invocation `{"endpoint","tweet_ids","account_id"?,"start"?,"end"?}`: any number of ids.

    Splits ids into the endpoint's batch size, collects each batch now (due markers are left alone: a manual
    run does not shift the schedule) and returns counts by status. Raises InvalidPayload naming the problem.
    """
    if not isinstance(payload, Mapping):
        raise InvalidPayload("payload must be a JSON object with endpoint and tweet_ids")
    unknown = set(payload) - {"endpoint", "tweet_ids", "account_id", "start", "end"}
    if unknown:
        raise InvalidPayload(f"unknown field(s): {', '.join(sorted(unknown))}")
    endpoint_name = payload.get("endpoint")
    try:
        endpoint = Endpoint(str(endpoint_name))
    except ValueError as exc:
        choices = ", ".join(e.value for e in Endpoint)
        raise InvalidPayload(f"endpoint must be one of {choices}, not {endpoint_name!r}") from exc
    tweet_ids = payload.get("tweet_ids")
    if not isinstance(tweet_ids, list) or not tweet_ids:
        raise InvalidPayload("tweet_ids must be a non-empty list of tweet id strings")
    unique_ids = list(dict.fromkeys(str(tweet_id) for tweet_id in tweet_ids))

    deps = deps or default_deps()
    scheduled_time = floor_minute(deps.now())
    messages = [
        parse_message(
            {
                "endpoint": endpoint.value,
                "tweet_ids": chunk,
                "account_id": payload.get("account_id"),
                "scheduled_time": to_iso(scheduled_time),
                "start": payload.get("start"),
                "end": payload.get("end"),
            }
        )
        for chunk in _chunks(unique_ids, endpoint.max_ids)
    ]
    total = CollectSummary(
        endpoint=endpoint.value, account_id=payload.get("account_id") or None, scheduled_time=to_iso(scheduled_time)
    )
    for message in messages:
        try:
            total.add(collect(message, deps, advance_markers=False))
        except PostsFailed as exc:  # a person is waiting: report failures instead of raising
            total.add(exc.summary)
    return {
        "endpoint": total.endpoint,
        "account_id": total.account_id,
        "scheduled_time": total.scheduled_time,
        "requested": len(unique_ids),
        "counts": total.counts,
        "items_written": total.items_written,
        "calls": total.calls,
    }


def _every_requested_post(message: CollectMessage, result: EngagementResult) -> list[PostMetrics]:
    """The client promises every id back; if one is missing anyway it ends `failed`, never silently dropped."""
    posts = []
    for tweet_id in message.tweet_ids:
        post = result.posts.get(tweet_id)
        if post is None:
            post = PostMetrics(tweet_id=tweet_id)
            post.mark(Reason.FAILED, "missing from the client's answer")
        posts.append(post)
    return posts


def metric_points(
    endpoint: Endpoint, post: PostMetrics, *, snapshot_at: str, collected_at: str, account_id: str
) -> Iterator[MetricPoint]:
    """The MetricsTable items of one Post's answer: one /totals snapshot at `snapshot_at`, or one per hour.

    Hours before the Post's creation hour (a /28hr window reaches back 28 h, a new Post is younger) are dropped:
    nothing happened then, and the API answers them with zeros.
    """
    if endpoint is Endpoint.TOTALS:
        if post.totals:
            yield MetricPoint(post.tweet_id, endpoint, snapshot_at, dict(post.totals), collected_at, account_id)
        return
    for hour, values in post_hours(post):
        yield MetricPoint(post.tweet_id, endpoint, to_iso(hour), dict(values), collected_at, account_id)


def post_hours(post: PostMetrics) -> list[tuple[datetime, dict[str, int]]]:
    """A Post's hour buckets from its creation hour on, oldest first."""
    created = floor_hour(snowflake_created_at(post.tweet_id))
    return [(hour, values) for hour, values in sorted(post.hourly.items()) if hour >= created]


def _points(message: CollectMessage, posts: Sequence[PostMetrics], at: str, collected_at: str) -> Iterator[MetricPoint]:
    for post in posts:
        if post.ok:
            yield from metric_points(
                message.endpoint, post, snapshot_at=at, collected_at=collected_at, account_id=message.account_id or ""
            )


def _last_hour(message: CollectMessage, post: PostMetrics) -> str | None:
    """Where the next /historical window starts: the end of this one (also recorded for /28hr, for readers)."""
    if message.endpoint is Endpoint.HISTORICAL and message.end is not None:
        return to_iso(message.end)
    if message.endpoint.is_time_series and post.hourly:
        return to_iso(max(post.hourly))
    return None


def _skip_auth_failed(
    message: CollectMessage, deps: CollectorDeps, summary: CollectSummary, reason: str
) -> CollectSummary:
    summary.skipped = reason
    _record_all(message, deps, Reason.AUTH_FAILED.value, reason, summary)
    _emit(summary)
    logger.warning(
        "posts not collected: auth failed",
        extra={"endpoint": message.endpoint.value, "account_id": message.account_id or "APP", "reason": reason},
    )
    return summary


def _record_all(
    message: CollectMessage, deps: CollectorDeps, status: str, reason: str, summary: CollectSummary
) -> None:
    at = to_iso(deps.now())
    for tweet_id in message.tweet_ids:
        deps.statuses.record(tweet_id, message.endpoint, status, at=at, message=reason)
    summary.counts[status] = summary.counts.get(status, 0) + len(message.tweet_ids)


def _mark_needs_reauth(deps: CollectorDeps, account_id: str, error: str) -> None:
    try:
        deps.registry.set_account_status(account_id, ACCOUNT_NEEDS_REAUTH, now=to_iso(deps.now()), last_error=error)
    except NotFound:
        return
    count("AccountsNeedingReauth")
    logger.warning("account marked needs_reauth", extra={"account_id": account_id, "error": error})


def _emit(summary: CollectSummary) -> None:
    count("EngagementCalls", summary.calls)
    count("Retries", summary.retries)
    count("Throttled", summary.throttled)
    count("PostsCollected", summary.counts.get(STATUS_OK, 0))
    count("MetricItemsWritten", summary.items_written)
    for status, posts in summary.counts.items():
        if status != STATUS_OK:
            count(f"Posts_{status}", posts)


def _iso_or_none(moment: datetime | None) -> str | None:
    return to_iso(moment) if moment is not None else None


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
