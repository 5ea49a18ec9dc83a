"""What the Engagement API accepts: endpoints, metric names, limits and per-Post reason codes.

Every number here comes from ../shared/reference/engagement-api.md (sections 2, 3 and 5); the
client, the emulator and the HTTP API all validate against this one module so they never disagree.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Final


class Endpoint(StrEnum):
    TOTALS = "totals"
    HOURLY_28HR = "28hr"
    HISTORICAL = "historical"

    @property
    def path(self) -> str:
        return f"/insights/engagement/{self.value}"

    @property
    def max_ids(self) -> int:
        return MAX_IDS_PER_CALL[self]

    @property
    def is_time_series(self) -> bool:
        return self is not Endpoint.TOTALS


class ErrorKind(StrEnum):
    """The error taxonomy shared by the client, the collector and the API: what a failure means for the work."""

    TRANSIENT = "transient"  # 429, 5xx, timeouts, resets, truncated JSON, out of time: the same request later
    PERMANENT = "permanent"  # a 400 not about availability, a 404: the same request will fail again
    POST = "post"  # about one Post (unavailable, protected, not owned): final for that Post, the others go on
    METRIC = "metric"  # an engagement type refused or no longer offered: drop it, keep the others
    USER_AUTH = "user_auth"  # the account's tokens: that account needs re-authorization
    APP_AUTH = "app_auth"  # the app's bearer token or consumer key: every call fails until the app secret changes
    QUOTA = "quota"  # the deployment's own monthly @handle cap: no call is made; waits for the month or a higher cap


class Reason(StrEnum):
    """Why a requested Post has no (or not all its) metrics. Every Post of a run ends `ok` or with one of these."""

    UNAVAILABLE = "unavailable"  # deleted or otherwise gone: listed in unavailable_tweet_ids
    PROTECTED = "protected"  # 400 "Tweet ID(s) are unavailable", isolated by bisection
    NOT_OWNED = "not_owned"  # "Forbidden to access tweets: ..." for the tokens used
    UNSUPPORTED_METRIC = "unsupported_metric"  # too old for impressions/engagements or video views
    AUTH_FAILED = "auth_failed"  # 401, or a 403 about the account's tokens themselves
    APP_AUTH_FAILED = "app_auth_failed"  # the app's credentials were refused: waits for a new app secret
    RATE_LIMITED = "rate_limited"  # the per-minute limit is spent: handed on, with the time of the next attempt
    DEFERRED = "deferred"  # out of time or transient errors: handed on, with the time of the next attempt
    FAILED = "failed"  # a permanent error (400, 404), or transient errors that outlasted every attempt
    USAGE_CAPPED = "usage_capped"  # a new @handle past the monthly cap (MONTHLY_HANDLE_CAP): not called, rescheduled

    @property
    def kind(self) -> ErrorKind:
        return REASON_KINDS[self]

    @property
    def pending(self) -> bool:
        """The Post will be asked again soon (a continuation carries it); it has a next attempt time."""
        return self in (Reason.RATE_LIMITED, Reason.DEFERRED)


REASON_KINDS: Final[dict[Reason, ErrorKind]] = {
    Reason.UNAVAILABLE: ErrorKind.POST,
    Reason.PROTECTED: ErrorKind.POST,
    Reason.NOT_OWNED: ErrorKind.POST,
    Reason.UNSUPPORTED_METRIC: ErrorKind.METRIC,
    Reason.AUTH_FAILED: ErrorKind.USER_AUTH,
    Reason.APP_AUTH_FAILED: ErrorKind.APP_AUTH,
    Reason.RATE_LIMITED: ErrorKind.TRANSIENT,
    Reason.DEFERRED: ErrorKind.TRANSIENT,
    Reason.FAILED: ErrorKind.PERMANENT,
    Reason.USAGE_CAPPED: ErrorKind.QUOTA,
}


class Refusal(StrEnum):
    """Why a metric asked for a Post was not served (the Post may still be `ok` with its other metrics)."""

    OVER_90_DAYS = "over_90_days"  # /totals impressions, engagements: unsupported_for_impressions_engagements_tweet_ids
    OVER_1800_DAYS = "over_1800_days"  # video_views: unsupported_for_video_views_tweet_ids
    REFUSED_BY_API = "refused_by_api"  # the engagement type was refused (not offered, retired): the API's words
    UNKNOWN = "unknown"  # stored before the reasons were kept (only the names are known)


STATUS_OK: Final = "ok"

MAX_IDS_PER_CALL: Final[dict[Endpoint, int]] = {
    Endpoint.TOTALS: 250,
    Endpoint.HOURLY_28HR: 25,
    Endpoint.HISTORICAL: 25,
}
MAX_GROUPINGS: Final = 3

# Metrics /totals answers with the app's bearer token for any public Post.
PUBLIC_TOTALS_METRICS: Final = ("favorites", "retweets", "quote_tweets", "replies", "video_views")
TOTALS_METRICS: Final = ("impressions", "engagements", *PUBLIC_TOTALS_METRICS)
# /28hr and /historical: the 17 names of the docs' sample scripts (no quote_tweets).
TIME_SERIES_METRICS: Final = (
    "impressions",
    "engagements",
    "favorites",
    "retweets",
    "replies",
    "video_views",
    "media_views",
    "media_engagements",
    "url_clicks",
    "hashtag_clicks",
    "detail_expands",
    "permalink_clicks",
    "app_install_attempts",
    "app_opens",
    "email_tweet",
    "user_follows",
    "user_profile_clicks",
)
METRICS_BY_ENDPOINT: Final[dict[Endpoint, tuple[str, ...]]] = {
    Endpoint.TOTALS: TOTALS_METRICS,
    Endpoint.HOURLY_28HR: TIME_SERIES_METRICS,
    Endpoint.HISTORICAL: TIME_SERIES_METRICS,
}

# What an engagement type's name looks like (the catalog's and any X adds: EXTRA_ENGAGEMENT_TYPES, stored names).
METRIC_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"


def extra_metrics(endpoint: Endpoint) -> tuple[str, ...]:
    """Engagement types X added since this release, configured for the deployment (`EXTRA_ENGAGEMENT_TYPES`)."""
    from xengage.settings import catalog_settings  # parsed once per process; imported here: no import cycle

    documented = METRICS_BY_ENDPOINT[endpoint]
    return tuple(m for m in catalog_settings().extra_engagement_types.get(endpoint, ()) if m not in documented)


def metrics_for(endpoint: Endpoint) -> tuple[str, ...]:
    """Every engagement type the endpoint takes here: the documented ones, then the configured extras."""
    return METRICS_BY_ENDPOINT[endpoint] + extra_metrics(endpoint)


def all_metrics() -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for endpoint in Endpoint for name in metrics_for(endpoint)))


GROUP_BY_BY_ENDPOINT: Final[dict[Endpoint, frozenset[str]]] = {
    Endpoint.TOTALS: frozenset({"tweet.id", "engagement.type"}),
    Endpoint.HOURLY_28HR: frozenset({"tweet.id", "engagement.type", "engagement.day", "engagement.hour"}),
    Endpoint.HISTORICAL: frozenset({"tweet.id", "engagement.type", "engagement.day", "engagement.hour"}),
}
# The only two 4-item orders the API accepts, and only one such grouping per request.
FOUR_ITEM_ORDERS: Final = (
    ("tweet.id", "engagement.type", "engagement.day", "engagement.hour"),
    ("engagement.type", "tweet.id", "engagement.day", "engagement.hour"),
)

HISTORICAL_MAX_WINDOW: Final = timedelta(weeks=4)
HISTORICAL_LOOKBACK: Final = timedelta(days=365)
IMPRESSIONS_MAX_AGE: Final = timedelta(days=90)  # /totals impressions & engagements, by Post creation
VIDEO_VIEWS_MAX_AGE: Final = timedelta(days=1800)

DEFAULT_BASE_URL: Final = "https://data-api.x.com"
DEFAULT_OAUTH_BASE_URL: Final = "https://api.x.com"


def needs_user_context(endpoint: Endpoint, engagement_types: tuple[str, ...] | list[str]) -> bool:
    """True when the call must be signed with the Post owner's OAuth 1.0a tokens."""
    if endpoint is not Endpoint.TOTALS:
        return True
    return any(metric not in PUBLIC_TOTALS_METRICS for metric in engagement_types)
