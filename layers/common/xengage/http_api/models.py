"""Request and response bodies of the HTTP API (pydantic), so validation and OpenAPI come from one place."""

# No `from __future__ import annotations`: pydantic would evaluate every string annotation again as each model is
# created, which is about 40% of the models' import time (a cold-start cost).

from datetime import timedelta
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from xengage.api_client.catalog import MAX_IDS_PER_CALL, Endpoint
from xengage.timeutil import snowflake_created_at, to_iso, utc_now

# X ids are positive 64-bit integers written without leading zeros.
TWEET_ID_PATTERN = r"^[1-9][0-9]{0,18}$"
USER_ID_PATTERN = TWEET_ID_PATTERN
MAX_X_ID: Final = 2**63 - 1
# A Post id decodes to its creation time: later than now by more than this is no Post X has made.
CLOCK_SKEW: Final = timedelta(minutes=5)
SCREEN_NAME_PATTERN = r"^[A-Za-z0-9_]{1,15}$"
MAX_TRACK_BATCH = MAX_IDS_PER_CALL[Endpoint.TOTALS]
MAX_BULK_TRACK: Final = 10_000  # ids a POST /tweets takes (JSON or CSV): what fits its deadline with room to spare
# A live query: 4 calls' worth on /totals, 10 on the time series (the API answers what fits 29 s, a job the rest).
LIVE_MAX_IDS: dict[Endpoint, int] = {Endpoint.TOTALS: 1000, Endpoint.HOURLY_28HR: 250, Endpoint.HISTORICAL: 250}
# Asked as a job at once (Prefer: respond-async): nothing is fetched within the request, so it may be bigger.
JOB_MAX_IDS: dict[Endpoint, int] = {Endpoint.TOTALS: 10_000, Endpoint.HOURLY_28HR: 1_000, Endpoint.HISTORICAL: 1_000}


def real_user_id(value: str) -> str:
    if int(value) > MAX_X_ID:
        raise ValueError(f"{value} is beyond X's 64-bit ids")
    return value


def real_post_id(value: str) -> str:
    """A snowflake's creation time lies between X's epoch (any positive id) and now: refuse ids from the future."""
    real_user_id(value)
    created = snowflake_created_at(value)
    if created > utc_now() + CLOCK_SKEW:
        raise ValueError(f"{value} is no Post id: it decodes to a creation time of {to_iso(created)}, in the future")
    return value


TweetId = Annotated[
    str,
    StringConstraints(pattern=TWEET_ID_PATTERN),
    AfterValidator(real_post_id),
    Field(examples=["1021817816134156288"], description="a Post's id: its snowflake time is not in the future"),
]
UserId = Annotated[
    str, StringConstraints(pattern=USER_ID_PATTERN), AfterValidator(real_user_id), Field(examples=["6253282"])
]
# What answers carry: ids as stored (checked on the way in), not re-judged against today's clock.
StoredTweetId = Annotated[str, Field(examples=["1021817816134156288"])]
StoredUserId = Annotated[str, Field(examples=["6253282"])]
Timestamp = Annotated[str, Field(description="ISO-8601 UTC, YYYY-MM-DDTHH:MM:SSZ", examples=["2026-11-25T18:00:00Z"])]
AccountStatus = Literal["active", "needs_reauth"]


class _Model(BaseModel):
    # defer_build: a model's validator is built when a request first needs it, not on every cold start.
    model_config = ConfigDict(extra="forbid", defer_build=True)


# --- errors ---------------------------------------------------------------------------------------------------


class ErrorDetail(_Model):
    code: str = Field(description="machine-readable cause", examples=["not_found"])
    message: str = Field(description="what is wrong, naming the field or resource")


class ErrorResponse(_Model):
    error: ErrorDetail


class AccountErrorResponse(ErrorResponse):
    """An account's tokens were refused or are missing: the account to re-authorize is named."""

    account_id: StoredUserId | None = Field(default=None, description="the account that needs re-authorization")


class ValidationIssue(_Model):
    loc: list[str | int] = Field(description="where: body, query, path, then the field and index")
    msg: str
    type: str


class ValidationErrorResponse(ErrorResponse):
    """A request the schema refuses (422 `validation_error`: `error` as everywhere, plus each problem found in
    `detail`), or a body nested deeper than 32 levels (422 `body_too_deep`, without `detail`)."""

    detail: list[ValidationIssue] = Field(default_factory=list)


# --- accounts -------------------------------------------------------------------------------------------------


class AccountTokensIn(_Model):
    """An account's OAuth 1.0a tokens from the developer portal; stored in Secrets Manager only."""

    screen_name: Annotated[str, StringConstraints(pattern=SCREEN_NAME_PATTERN)] | None = Field(
        default=None, description="optional: the @handle X returns for the tokens is stored instead"
    )
    access_token: SecretStr = Field(min_length=1, max_length=512)
    access_token_secret: SecretStr = Field(min_length=1, max_length=512)


class AccountOut(_Model):
    user_id: StoredUserId
    screen_name: str | None
    status: AccountStatus
    last_success_at: Timestamp | None = None
    last_error: str | None = None


class AccountPage(_Model):
    accounts: list[AccountOut]
    next_cursor: str | None = Field(description="pass back as ?cursor= for the next page; null at the end")


# --- OAuth ----------------------------------------------------------------------------------------------------


class OAuthStartOut(_Model):
    authorize_url: str = Field(description="send the account owner here to approve the app")
    expires_at: Timestamp = Field(description="the authorization must complete before this time")


# --- tracked Posts --------------------------------------------------------------------------------------------


class TrackIn(_Model):
    """Ids to track (JSON). Each id is judged on its own: a bad one is rejected with its reason, the others tracked."""

    tweet_ids: list[str] = Field(
        min_length=1,
        max_length=MAX_BULK_TRACK,
        description=f"up to {MAX_BULK_TRACK:,} Post ids, as strings of digits",
        examples=[["1021817816134156288"]],
    )
    account_id: UserId | None = Field(
        default=None, description="owner account whose tokens collect private and time-series metrics"
    )


# Why an id of POST /tweets was not tracked (docs/DESIGN.md, "Bulk tracking").
RejectReason = Literal[
    "not_digits", "leading_zero", "too_long", "out_of_range", "future_id", "duplicate", "tracked_with_other_account"
]


class RejectedIdOut(_Model):
    tweet_id: str = Field(description="as given (at most 40 characters of it)")
    reason: RejectReason
    message: str
    index: int | None = Field(default=None, description="JSON: its position in tweet_ids, from 0")
    line: int | None = Field(default=None, description="CSV: its line in the body, from 1")


class TrackedPostOut(_Model):
    tweet_id: StoredTweetId
    account_id: StoredUserId | None = Field(description="null: collected with the app bearer token only")
    created_at: Timestamp
    tracked_at: Timestamp


class TrackOut(_Model):
    tracked: list[TrackedPostOut] = Field(description="every id of the request tracked now, in the request's order")
    newly_tracked: int = Field(description="how many of tweet_ids were not tracked before (the same as `new`)")
    new: int = Field(description="ids tracked by this request")
    already_tracked: int = Field(description="ids tracked before, under the same account (or the app)")
    rejected: int = Field(description="ids refused, each in rejected_ids with its reason")
    rejected_ids: list[RejectedIdOut] = Field(description="in the request's order")


class TrackIncomplete(TrackOut):
    """503: the deadline came before every id was read or written. What is in `tracked` is stored whole; the ids in
    `not_stored` are not tracked (nothing of them is left behind): send the same request again."""

    error: ErrorDetail
    not_stored: list[StoredTweetId] = Field(description="valid ids this request had no time for")
    retry_after_seconds: int = Field(description="the same as the Retry-After header")


class PostPage(_Model):
    posts: list[TrackedPostOut]
    next_cursor: str | None


RefusalName = Literal["over_90_days", "over_1800_days", "refused_by_api", "unknown"]  # catalog.Refusal (a test)


class RefusedMetricOut(_Model):
    """A metric asked for a Post and not served, and why. Never shown as a zero anywhere."""

    metric: str
    reason: RefusalName = Field(
        description="over_90_days: /totals impressions and engagements of a Post older than 90 days; "
        "over_1800_days: video views of a Post older than 1,800 days; refused_by_api: the API refused the engagement "
        "type (not offered to these credentials, or retired); unknown: stored by a version that kept no reasons"
    )
    message: str = Field(description="the API's own words when it gave some, else the documented limit")


class EndpointStatusOut(_Model):
    endpoint: Endpoint
    status: str = Field(description="ok or a reason code", examples=["ok", "unavailable"])
    reason_code: str | None = None
    message: str | None = None
    first_seen_at: Timestamp | None = None
    last_seen_at: Timestamp | None = None
    last_ok_at: Timestamp | None = None
    next_attempt_at: Timestamp | None = Field(
        default=None, description="rate_limited / deferred: when the handed-on collection is tried again"
    )
    unsupported_metrics: list[str] = Field(
        default_factory=list, description="metrics asked for but refused by the API or not served for this Post"
    )
    refused: list[RefusedMetricOut] | None = Field(
        default=None,
        description="each of unsupported_metrics, with why; null in GET /statuses listings (read from an index "
        "without the reasons: GET /tweets/{id} has them)",
    )


# The outcomes a Post can have (STATUS_OK and every catalog.Reason; a test keeps them equal).
StatusName = Literal[
    "ok",
    "unavailable",
    "protected",
    "not_owned",
    "unsupported_metric",
    "auth_failed",
    "app_auth_failed",
    "rate_limited",
    "deferred",
    "failed",
    "usage_capped",
]


class StatusEntryOut(EndpointStatusOut):
    tweet_id: StoredTweetId


class StatusPage(_Model):
    status: str
    posts: list[StatusEntryOut] = Field(description="newest last_seen_at first")
    next_cursor: str | None


class CollectionOut(_Model):
    endpoint: Endpoint
    next_due_at: Timestamp | None = None
    last_collected_at: Timestamp | None = None


class MetricFallOut(_Model):
    from_: int = Field(alias="from", serialization_alias="from")
    to: int


class TotalsDecreaseOut(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    metrics: dict[str, MetricFallOut] = Field(description="each metric that fell, from and to")
    at: Timestamp = Field(description="the snapshot that was lower")
    previous_at: Timestamp = Field(description="the snapshot before it")


class MetricDriftOut(_Model):
    metric: str
    totals: int = Field(description="the /totals value")
    hours_sum: int = Field(description="the sum of the /historical hour buckets")
    difference: int = Field(description="totals - hours_sum")


class DriftOut(_Model):
    status: Literal["ok", "drift", "not_comparable"]
    reason: str | None = Field(default=None, description="why the two could not be compared")
    totals_at: Timestamp | None = Field(default=None, description="the /totals snapshot compared")
    hours_from: Timestamp | None = None
    hours_through: Timestamp | None = Field(default=None, description="end (exclusive) of the hours summed")
    metrics: list[MetricDriftOut] = Field(default_factory=list)


class DataChecksOut(_Model):
    totals_decrease: TotalsDecreaseOut | None = Field(
        description="the last /totals snapshot lower than the one before (unlikes and deletions lower counts too)"
    )
    historical_drift: DriftOut = Field(
        description="/totals against the sum of the /historical hours: drift past max(5, 5% of /totals)"
    )


class PostDetailOut(TrackedPostOut):
    latest_totals: dict[str, int] = Field(default_factory=dict)
    latest_totals_at: Timestamp | None = None
    availability: list[EndpointStatusOut] = Field(description="last known status per endpoint, with the reason")
    collection: list[CollectionOut]
    checks: DataChecksOut


class UntrackOut(_Model):
    tweet_id: StoredTweetId
    untracked: bool
    purged_points: int = Field(description="metric points deleted (only with ?purge=true)")


# --- metrics --------------------------------------------------------------------------------------------------


class MetricPoint(_Model):
    at: Timestamp = Field(description="/totals: collection time of the snapshot; time series: hour start")
    metrics: dict[str, int]


class MetricsPage(_Model):
    tweet_id: StoredTweetId
    endpoint: Endpoint
    points: list[MetricPoint]
    next_cursor: str | None


class AccountMetricsOut(_Model):
    account_id: StoredUserId
    endpoint: Endpoint
    granularity: Literal["hour", "day"]
    from_: Timestamp = Field(alias="from", serialization_alias="from")
    to: Timestamp
    points: list[MetricPoint] = Field(description="per hour (at = hour start) or per UTC day (at = 00:00)")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class TopPost(_Model):
    tweet_id: StoredTweetId
    value: int
    at: Timestamp | None = Field(default=None, description="time of the latest totals used (latest_totals only)")


class TopOut(_Model):
    account_id: StoredUserId
    metric: str
    source: Literal["latest_totals", "hourly_sum"] = Field(
        description="latest_totals: each Post's newest /totals snapshot; hourly_sum: sum of stored hour buckets"
    )
    from_: Timestamp | None = Field(default=None, alias="from", serialization_alias="from")
    to: Timestamp | None = None
    posts: list[TopPost]

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


# --- live queries ---------------------------------------------------------------------------------------------


class LiveQueryIn(_Model):
    tweet_ids: list[TweetId] = Field(
        min_length=1,
        max_length=JOB_MAX_IDS[Endpoint.TOTALS],
        description="at most 1,000 on /totals and 250 otherwise; with Prefer: respond-async 10,000 and 1,000",
    )
    engagement_types: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=32
    )
    account_id: UserId | None = Field(default=None, description="whose tokens sign the call (needed off /totals)")
    start: str | None = Field(default=None, max_length=40, description="/historical only: ISO-8601 UTC start")
    end: str | None = Field(default=None, max_length=40, description="/historical only: ISO-8601 UTC end")


class LivePostResult(_Model):
    status: str = Field(description="ok or a reason code", examples=["ok", "not_owned", "rate_limited"])
    reason: str | None = None
    metrics: dict[str, int] | None = None
    points: list[MetricPoint] | None = None
    next_attempt_at: Timestamp | None = Field(
        default=None, description="rate_limited / deferred: when the Engagement API will take the Post again"
    )
    refused: list[RefusedMetricOut] | None = Field(
        default=None, description="metrics asked and not served for this Post, with why (absent from metrics, never 0)"
    )
    more_points: str | None = Field(
        default=None,
        description="jobs: the Post has more points than one page holds; this stored-metrics URL pages the rest",
    )


class LiveQueryOut(_Model):
    endpoint: Endpoint
    results: dict[str, LivePostResult]
    calls: int = Field(description="HTTP requests made to the Engagement API, retries included")


class JobProgress(_Model):
    total: int = Field(description="Posts asked (distinct ids)")
    settled: int = Field(description="Posts with their final outcome for this job (ok or a reason code)")
    queued: int = Field(description="Posts no collector has taken yet")
    pending: int = Field(description="Posts a continuation carries (rate_limited or deferred), with next_attempt_at")
    by_status: dict[str, int] = Field(description="Posts by status, queued included")


class JobOut(_Model):
    """A live query that did not fit API Gateway's 29 s: its progress and, page by page, its results."""

    job_id: str = Field(examples=["5f0c6c1e9a1b4d2f8e7a6b5c4d3e2f10"])
    endpoint: Endpoint
    status: Literal["running", "done"] = Field(description="done: every Post is settled")
    created_at: Timestamp
    account_id: StoredUserId | None = None
    start: Timestamp | None = None
    end: Timestamp | None = None
    progress: JobProgress
    results: dict[str, LivePostResult] = Field(
        description="this page of the job's Posts (id order), in the live query's result shape; queued Posts say so"
    )
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page of results")


class AppCredentialsOut(_Model):
    status: Literal["ok", "needs_credentials"] = Field(
        description="needs_credentials: X refused the app's credentials; collection is paused until the app secret "
        "changes"
    )
    error: str | None = Field(default=None, description="what X answered")
    since: Timestamp | None = None


class AppStatusOut(_Model):
    credentials: AppCredentialsOut
    refused_metrics: dict[str, dict[str, str]] = Field(
        description="per endpoint, engagement types the API refused (no longer asked), with its words"
    )
    rate_limits: dict[str, int] = Field(description="per endpoint, the per-minute limit the API last reported")


# --- usage (the @handle billing guard) ------------------------------------------------------------------------


class CallCounts(_Model):
    """Engagement API calls by endpoint (every call, bearer-signed ones too)."""

    totals: int = 0
    hourly_28hr: int = Field(default=0, alias="28hr", serialization_alias="28hr")
    historical: int = 0

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class UsageAccountOut(_Model):
    account_id: StoredUserId
    handle: str | None = Field(description="the account's screen name when it was first counted this month")
    first_call_at: Timestamp = Field(description="its first user-context call this month")


class UsageDayOut(_Model):
    day: str = Field(description="YYYY-MM-DD (UTC)", examples=["2026-12-01"])
    new_handles: int = Field(description="@handles counted for the first time this month on that day")
    calls: CallCounts


class UsageOut(_Model):
    month: str = Field(description="YYYY-MM (UTC)", examples=["2026-12"])
    unique_handles: int = Field(description="unique @handles whose tokens signed a call this month: what X bills")
    cap: int | None = Field(description="the MonthlyHandleCap parameter; null: no cap")
    capped: bool = Field(description="the cap is reached: Posts of @handles not counted yet are deferred")
    accounts: list[UsageAccountOut] = Field(description="the month's @handles, first counted first")
    days: list[UsageDayOut] = Field(description="every day of the month so far")
    calls: CallCounts = Field(description="the month's calls by endpoint")


# --- collection health ----------------------------------------------------------------------------------------


class StatusCountOut(_Model):
    status: StatusName = Field(description="ok, or the reason code of the last outcome")
    count: int = Field(description="entries (a Post on one endpoint) whose last outcome is this status")
    at_least: bool = Field(description="true: counting stopped at count_limit, there are at least `count`")


class ReauthAccountOut(_Model):
    user_id: StoredUserId
    screen_name: str | None
    last_error: str | None


class AccountsNeedingReauthOut(_Model):
    accounts: list[ReauthAccountOut]
    at_least: bool = Field(description="true: only the first count_limit registered accounts were looked at")


class OverdueOut(_Model):
    endpoint: Endpoint
    tweet_id: StoredTweetId
    account_id: StoredUserId | None = Field(description="null: collected with the app's bearer token")
    next_due_at: Timestamp
    overdue_seconds: int = Field(description="how long ago it fell due (0: due now)")


class CollectionHealthOut(_Model):
    checked_at: Timestamp
    count_limit: int = Field(description="each count stops here (Select=COUNT still reads every item it counts)")
    statuses: list[StatusCountOut] = Field(description="every status, ok first, then the reasons")
    accounts_needing_reauth: AccountsNeedingReauthOut
    oldest_overdue: list[OverdueOut] = Field(
        description="per endpoint with a Post past its due time (not leased by a tick), the one due longest ago"
    )
