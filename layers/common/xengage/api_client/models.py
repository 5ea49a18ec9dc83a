"""The normalized form every Engagement API answer is turned into, whatever its groupings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from xengage.api_client.catalog import STATUS_OK, Endpoint, Reason, Refusal

RATE_LIMIT: Final = "rate_limit"
DEADLINE: Final = "deadline"
TRANSIENT: Final = "transient"


@dataclass(frozen=True, slots=True)
class RefusedMetric:
    """Why one metric asked for a Post was not served: a `catalog.Refusal` and the words that say so."""

    reason: Refusal
    message: str


@dataclass(slots=True)
class PostMetrics:
    """Everything one call (or one run) learned about one Post.

    `totals` holds metric -> value for answers without a time level (all of /totals, and /28hr or
    /historical grouped by id and type only); `hourly` holds hour start (UTC, aware) -> metric -> value.
    Metric names the catalog does not know are kept as they came.
    """

    tweet_id: str
    status: str = STATUS_OK  # "ok" or a Reason value
    reason: str | None = None  # the API's own words when status is not ok
    totals: dict[str, int] = field(default_factory=dict)
    hourly: dict[datetime, dict[str, int]] = field(default_factory=dict)
    daily: dict[str, dict[str, int]] = field(default_factory=dict)  # "YYYY-MM-DD" -> metric -> value
    unsupported_metrics: set[str] = field(default_factory=set)  # asked for but not served for this Post
    refusals: dict[str, RefusedMetric] = field(default_factory=dict)  # metric -> why (see `refuse`)
    retry_at: datetime | None = None  # rate_limited / deferred: when the API will take the next attempt
    # Why it is pending: "rate_limit" (the minute's allowance), "deadline" (no time left to ask), or "transient"
    # (the API kept failing): only the last counts as a failed attempt.
    pending_cause: str | None = None

    def mark(self, reason: Reason, message: str) -> None:
        self.status = reason.value
        self.reason = message

    def refuse(self, metrics: Iterable[str], reason: Refusal, message: str) -> None:
        """These metrics were asked and not served: kept in `unsupported_metrics`, each with its first reason."""
        for metric in metrics:
            self.unsupported_metrics.add(metric)
            self.refusals.setdefault(metric, RefusedMetric(reason, message))

    def defer(self, reason: Reason, message: str, retry_at: datetime, *, cause: str) -> None:
        """Not (wholly) fetched in this run for a transient cause: the work is handed on, to try at `retry_at`."""
        self.mark(reason, message)
        self.retry_at = retry_at
        self.pending_cause = cause

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def pending(self) -> bool:
        """rate_limited or deferred: a later attempt will ask again."""
        return not self.ok and Reason(self.status).pending

    @property
    def has_data(self) -> bool:
        return bool(self.totals or self.hourly or self.daily)


@dataclass(slots=True)
class ParsedResponse:
    """One HTTP answer, normalized. Produced by parsing.parse_response."""

    posts: dict[str, PostMetrics] = field(default_factory=dict)
    # Groupings without tweet.id (for example only engagement.type) -> their flattened leaves.
    aggregates: dict[str, dict[str, int]] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    unavailable_tweet_ids: list[str] = field(default_factory=list)
    unsupported_for_video_views_tweet_ids: list[str] = field(default_factory=list)
    unsupported_for_impressions_engagements_tweet_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EngagementResult:
    """What a client call over any number of ids returns: every requested id is a key of `posts`."""

    endpoint: Endpoint
    posts: dict[str, PostMetrics] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    calls: int = 0  # HTTP requests made, retries included
    retries: int = 0
    throttled: int = 0  # 429 answers seen
    errors: list[str] = field(default_factory=list)
    # Engagement types the API refused for this endpoint (retired or not offered), with its words: asked no more.
    refused_metrics: dict[str, str] = field(default_factory=dict)
    # /historical: the start of the first window not fetched for every Post (None when every window was).
    resume_from: datetime | None = None
    # /historical: per Post handed on, the start of its first window not fetched (later than resume_from for Posts
    # whose batch finished the window the run stopped in).
    resume_at: dict[str, datetime] = field(default_factory=dict)
    rate_limit: int | None = None  # the x-per-minute-limit the API last reported for this endpoint

    def pending_ids(self) -> list[str]:
        return [tweet_id for tweet_id, post in self.posts.items() if post.pending]

    def counts_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for post in self.posts.values():
            counts[post.status] = counts.get(post.status, 0) + 1
        return counts
