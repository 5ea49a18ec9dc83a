"""POST /engagement/{endpoint}: a live Engagement API query now, stored like the collector's, then returned.

Up to 1,000 ids on /totals and 250 on the time series, /historical ranges up to the 365-day look-back (the client
batches ids and splits windows). What fits API Gateway's 29 s (and the shared per-minute budget) answers 200 at once;
otherwise what was fetched is stored, and the rest becomes a job (http_api/jobs.py): 202 with the job, which the
collector finishes through the queue. `Prefer: respond-async` asks for the job without the live attempt.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Final

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from xengage.api_client.catalog import DEFAULT_BASE_URL, HISTORICAL_MAX_WINDOW, Endpoint
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.deadline import Deadline
from xengage.api_client.errors import AppAuthError, UserAuthError
from xengage.dal.registry import ACCOUNT_NEEDS_REAUTH, NotFound
from xengage.dal.secrets import SecretNotFoundError
from xengage.dal.series_state import TotalsSnapshot
from xengage.dal.status import StatusChange
from xengage.http_api import context
from xengage.http_api.accounts import require_account
from xengage.http_api.errors import ApiError, answers, bad_request
from xengage.http_api.jobs import Handover, seconds_left, start_job
from xengage.http_api.models import (
    JOB_MAX_IDS,
    LIVE_MAX_IDS,
    AccountErrorResponse,
    JobOut,
    LivePostResult,
    LiveQueryIn,
    LiveQueryOut,
    MetricPoint,
    RefusedMetricOut,
)
from xengage.http_api.params import check_historical_window, metric_names, parse_range
from xengage.observability import count, logger
from xengage.timeutil import floor_minute, to_iso, utc_now

# Kept back from API Gateway's 29 s for storing the results, recording a job for the rest, and answering.
ANSWER_RESERVE_SECONDS: Final = 5.0
# ... and more for bigger answers: writes grow with the Posts (statuses, /totals snapshots) and, on the time series,
# with their days (one MetricsTable item a Post and day). Generous for DynamoDB; measured on dynalite (bench.live_jobs).
RESERVE_PER_POST_SECONDS: Final = 0.005
RESERVE_PER_POST_DAY_SECONDS: Final = 0.002
# A 200 carries at most this many hour points (~400 bytes each with every metric: Lambda answers at most 6 MB); a
# bigger answer is stored all the same and given as a finished job, whose results come in pages.
MAX_LIVE_POINTS: Final = 10_000
# RFC 7240: the client takes a job (202) at once, without the live attempt.
RESPOND_ASYNC: Final = "respond-async"
APP_CREDENTIALS_REFUSED = "app_credentials_refused"

router = Router()

if TYPE_CHECKING:
    from xengage.api_client.models import EngagementResult, PostMetrics
    from xengage.dal.jobs import Job
    from xengage.pipeline.usage import UsageGuard

USAGE_CAPPED: Final = "usage_capped"


def account_tokens(account_id: str) -> UserTokens:
    account = require_account(account_id)
    try:
        tokens = context.deps().secrets.load_tokens(account_id)
    except SecretNotFoundError:
        raise ApiError(
            HTTPStatus.CONFLICT,
            "account_needs_reauth",
            f"account {account_id} has no stored tokens; register them again",
            account_id=account_id,
        ) from None
    # The registry's screen name is the current one: the @handle the usage ledger shows.
    return dataclasses.replace(tokens, screen_name=account.screen_name or tokens.screen_name)


def validate(
    endpoint: Endpoint, body: LiveQueryIn, *, now: datetime, respond_async: bool = False
) -> tuple[datetime | None, datetime | None]:
    """Every documented limit, checked before any call or write."""
    most = (JOB_MAX_IDS if respond_async else LIVE_MAX_IDS)[endpoint]
    if len(body.tweet_ids) > most:
        how = " as a job (Prefer: respond-async)" if respond_async else " live (up to 10x more as a job)"
        raise bad_request(
            "too_many_ids",
            f"tweet_ids: /{endpoint.value} takes at most {most} ids{how}, got {len(body.tweet_ids)}",
        )
    if body.engagement_types is not None:
        metric_names(endpoint, body.engagement_types, field="engagement_types")
    if endpoint is not Endpoint.HISTORICAL and (body.start or body.end):
        raise bad_request("invalid_query", f"start/end: apply to /historical only, not /{endpoint.value}")
    start, end = parse_range("start", body.start, "end", body.end)
    if endpoint is Endpoint.HISTORICAL:
        check_historical_window(start, end, now=now)
    return start, end


def store(result: EngagementResult, account_id: str, *, now: datetime) -> None:
    """Store what was fetched (Posts handed back included: nothing fetched is thrown away) and every outcome."""
    # Imported here, as the client is: the collector's helpers serve live queries only, not every cold start.
    from xengage.pipeline.collector import metric_points

    collected_at = to_iso(now)
    snapshot_at = to_iso(floor_minute(now))
    points = [
        point
        for post in result.posts.values()
        if post.ok or post.pending
        for point in metric_points(
            result.endpoint, post, snapshot_at=snapshot_at, collected_at=collected_at, account_id=account_id
        )
    ]
    context.deps().metrics.put_points(points)
    registry = context.deps().registry
    # Statuses are kept for tracked Posts only: one read of their markers saves a refused write for each other Post
    # (a query of 1,000 ids is mostly Posts nobody tracks).
    tracked = registry.get_due_markers(list(result.posts), result.endpoint)
    for post in result.posts.values():
        if post.tweet_id not in tracked:
            continue
        # One write a Post: its status, and on /totals its latest snapshot
        latest = post.totals if result.endpoint is Endpoint.TOTALS and post.ok and post.totals else None
        change = StatusChange.of(post, at=collected_at)
        part = TotalsSnapshot(latest, snapshot_at) if latest else None
        registry.settle(post.tweet_id, result.endpoint, status=change, part=part)


def refused_out(post: PostMetrics) -> list[RefusedMetricOut] | None:
    """The metrics asked and not served for this Post, with why (None when all were)."""
    refused = [
        RefusedMetricOut(metric=metric, reason=why.reason.value, message=why.message)
        for metric, why in sorted(post.refusals.items())
    ]
    return refused or None


def result_out(post: PostMetrics, endpoint: Endpoint) -> LivePostResult:
    from xengage.pipeline.collector import post_hours

    if not (post.ok or post.pending):
        return LivePostResult(status=post.status, reason=post.reason, refused=refused_out(post))
    pending = (
        {"reason": post.reason, "next_attempt_at": to_iso(post.retry_at)} if post.pending and post.retry_at else {}
    )
    refused = refused_out(post)
    if endpoint is Endpoint.TOTALS:
        return LivePostResult(status=post.status, metrics=dict(post.totals) or None, refused=refused, **pending)
    points = [MetricPoint(at=to_iso(hour), metrics=dict(values)) for hour, values in post_hours(post)]
    return LivePostResult(
        status=post.status, metrics=dict(post.totals) or None, points=points or None, refused=refused, **pending
    )


def answer_reserve(
    endpoint: Endpoint, posts: int, start: datetime | None, end: datetime | None, now: datetime
) -> float:
    """The seconds kept back to store `posts` Posts' answers, record a job for the rest and answer."""
    reserve = ANSWER_RESERVE_SECONDS + posts * RESERVE_PER_POST_SECONDS
    if endpoint is Endpoint.HOURLY_28HR:
        reserve += posts * 2 * RESERVE_PER_POST_DAY_SECONDS
    elif endpoint is Endpoint.HISTORICAL:
        span = (end or now) - (start or (end or now) - HISTORICAL_MAX_WINDOW)
        reserve += posts * (span.days + 2) * RESERVE_PER_POST_DAY_SECONDS
    return reserve


def live_deadline(reserve: float) -> Deadline:
    """API Gateway's 29 s (or the function's own remaining time, if shorter) less the time to store and answer."""
    return Deadline.after(seconds_left() - reserve)


def app_credentials() -> AppCredentials:
    """The app's credentials, refused with a 503 while X refuses them and the app secret has not changed."""
    deps = context.deps()
    state = deps.app_state.get()
    if state.needs_credentials and state.paused_for(deps.secrets.app_version()):
        raise ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            APP_CREDENTIALS_REFUSED,
            f"X refused the app's credentials ({state.credentials_error}); replace the app secret to resume",
        )
    return deps.secrets.load_app(fresh=state.needs_credentials)


def flag_app(error: AppAuthError, *, used: AppCredentials, now: datetime) -> None:
    """Pause on refused app credentials, unless the secret already holds others (then only this query failed)."""
    from xengage.pipeline.collector import record_app_refusal

    deps = context.deps()
    if deps.secrets.load_app(fresh=True) != used:
        return
    version = deps.secrets.app_version()
    record_app_refusal(deps.app_state, error.api_message, secret_version=version, now=to_iso(now))


def mark_needs_reauth(account_id: str, error: UserAuthError, *, now: datetime) -> None:
    try:
        context.deps().registry.set_account_status(
            account_id, ACCOUNT_NEEDS_REAUTH, now=to_iso(now), last_error=error.api_message[:500]
        )
    except NotFound:
        logger.warning("auth failed for an account deleted meanwhile", extra={"account_id": account_id})
        return
    count("AccountsNeedingReauth")


def metered(endpoint: Endpoint, body: LiveQueryIn, user: UserTokens | None, *, now: datetime) -> UsageGuard:
    """The @handle billing guard (pipeline/usage.py): a user-context query counts its account's handle this month;
    past the monthly cap a handle not counted yet is refused with 429 `usage_capped`, before any call."""
    from xengage.pipeline.usage import user_context

    guard = context.deps().usage
    assert guard is not None  # the API's Deps always have one
    if not (body.account_id and user is not None and user_context(endpoint, body.engagement_types, user)):
        return guard
    if not guard.admit(body.account_id, user.screen_name, now=now):
        count("LiveQueriesUsageCapped")
        message = guard.capped_message(body.account_id, user.screen_name, now=now)
        raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, USAGE_CAPPED, message)
    return guard


def fetch_live(
    endpoint: Endpoint, body: LiveQueryIn, *, start: datetime | None, end: datetime | None, now: datetime
) -> EngagementResult:
    user = account_tokens(body.account_id) if body.account_id else None
    guard = metered(endpoint, body, user, now=now)
    settings = context.deps().settings
    # Imported here: requests and oauthlib are for live queries only, not for every cold start of the API.
    from xengage.api_client.client import EngagementClient

    client = EngagementClient(
        app_credentials(),
        base_url=settings.engagement_api_url or DEFAULT_BASE_URL,
        oauth_base_url=settings.x_api_url,
        rate_window_seconds=settings.rate_window_seconds,
        rate_gate=context.deps().rate_budget,
    )
    with client:
        try:
            result = client.fetch(
                endpoint,
                list(dict.fromkeys(body.tweet_ids)),
                engagement_types=body.engagement_types,
                user=user,
                start=start,
                end=end,
                deadline=live_deadline(answer_reserve(endpoint, len(body.tweet_ids), start, end, now)),
            )
            guard.record_calls(endpoint, result.calls, now=now)
            guard.flush()
            return result
        except UserAuthError as exc:
            if body.account_id:
                mark_needs_reauth(body.account_id, exc, now=now)
            raise
        except AppAuthError as exc:
            flag_app(exc, used=client.app, now=now)
            raise


def live_query(endpoint: Endpoint, body: LiveQueryIn, *, respond_async: bool) -> Response[LiveQueryOut | JobOut]:
    now = utc_now()
    start, end = validate(endpoint, body, now=now, respond_async=respond_async)
    tweet_ids = list(dict.fromkeys(body.tweet_ids))
    if respond_async:
        if body.account_id:
            require_account(body.account_id)
        job = job_for(endpoint, body, tweet_ids, start=start, end=end, now=now)
        start_job(job, [], [Handover(tweet_id, start=start) for tweet_id in tweet_ids], now=now)
        return accepted(job)
    result = fetch_live(endpoint, body, start=start, end=end, now=now)
    # Live queries spend the same per-minute limit as the collector: the 429 share alarm counts both.
    count("EngagementCalls", result.calls)
    count("Throttled", result.throttled)
    store(result, body.account_id or "", now=now)
    if body.account_id and any(post.ok for post in result.posts.values()):
        context.deps().registry.mark_account_success(body.account_id, now=to_iso(now))
    logger.info(
        "live query", extra={"endpoint": endpoint.value, "counts": result.counts_by_status(), "calls": result.calls}
    )
    if result.pending_ids() or sum(len(post.hourly) for post in result.posts.values()) > MAX_LIVE_POINTS:
        return hand_over(result, body, tweet_ids, start=start, end=end, now=now)
    results = {tweet_id: result_out(post, endpoint) for tweet_id, post in result.posts.items()}
    out = LiveQueryOut(endpoint=endpoint, results=results, calls=result.calls)
    return Response(HTTPStatus.OK, content_type="application/json", body=out)


def job_for(
    endpoint: Endpoint,
    body: LiveQueryIn,
    tweet_ids: list[str],
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> Job:
    from xengage.pipeline.jobs import new_job

    return new_job(
        endpoint,
        tweet_ids,
        account_id=body.account_id,
        engagement_types=body.engagement_types,
        start=start,
        end=end,
        now=now,
    )


def hand_over(
    result: EngagementResult,
    body: LiveQueryIn,
    tweet_ids: list[str],
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> Response[LiveQueryOut | JobOut]:
    """What the live part settled goes into a job as it is; the Posts it did not finish are queued, each from the
    first /historical window it has not stored (so no window is fetched twice). An answer too big for one response
    becomes a job that is done already."""
    from xengage.pipeline.jobs import job_post

    job = job_for(result.endpoint, body, tweet_ids, start=start, end=end, now=now)
    outcomes, handovers = [], []
    for tweet_id, post in result.posts.items():
        if not post.pending:
            outcomes.append(job_post(post, result.endpoint, now=now))
            continue
        resume = result.resume_at.get(tweet_id, result.resume_from or start)
        handovers.append(Handover(tweet_id, start=resume, retry_at=post.retry_at))
        outcomes.append(job_post(post, result.endpoint, now=now, through=to_iso(resume) if resume else None))
    count("LiveQueriesHandedToJobs")
    start_job(job, outcomes, handovers, now=now)
    return accepted(job)


def accepted(job: Job) -> Response[LiveQueryOut | JobOut]:
    """202 with the job as GET /jobs/{id} shows it, and where to follow it."""
    from xengage.http_api.jobs import job_out

    out = job_out(job, limit=100 if job.endpoint is Endpoint.TOTALS else 10, cursor=None)
    headers = {"Location": f"jobs/{job.job_id}"}
    return Response(HTTPStatus.ACCEPTED, content_type="application/json", body=out, headers=headers)


@router.post(
    "/engagement/<endpoint>",
    summary="Query the Engagement API now; results are stored and returned, or finished by a job",
    description="App credentials sign /totals public metrics; `account_id` selects the owner tokens needed for "
    "private metrics, /28hr and /historical. At most 1,000 ids on /totals and 250 on the time series (10,000 and "
    "1,000 with `Prefer: respond-async`); /historical "
    "ranges anywhere in the last 365 days, split into the API's 4-week windows. What fits API Gateway's 29 s and the "
    "shared per-minute budget answers 200 (up to 10,000 hour points; a bigger answer is stored and given as a "
    "finished job, paged). Otherwise what was fetched is stored and the query answers 202 with a job "
    "(`Location: jobs/{id}`; GET /jobs/{id} follows it to the same results shape) that the collector finishes through "
    "the queue, sharing the rate budget. `Prefer: respond-async` asks for the job at once, without the live attempt. "
    "A query signed with the account's tokens counts its @handle this month (`GET /usage`); past the "
    "`MonthlyHandleCap` a handle not counted yet is refused (429 `usage_capped`; in a job, its Posts end "
    "`usage_capped`).",
    tags=["engagement"],
    responses=answers(
        {
            400: "bad ids, metrics or window; user context required",
            404: "unknown account",
            429: "the monthly @handle cap is reached and the account's handle is not counted this month "
            "(usage_capped): nothing was called",
            502: "the Engagement API failed or answered what cannot be read",
            503: "the app's credentials are refused or missing",
        },
        with_body=True,
        custom={
            200: {
                "description": "every Post asked, with its outcome",
                "content": {"application/json": {"model": LiveQueryOut}},
            },
            202: {
                "description": "not all fetched within the 29 s (or Prefer: respond-async): what was fetched is "
                "stored, the rest is a job; the body is its first page (GET /jobs/{id})",
                "content": {"application/json": {"model": JobOut}},
            },
            409: {
                "description": "the account's tokens were rejected or are missing: it needs re-authorization",
                "content": {"application/json": {"model": AccountErrorResponse}},
            },
        },
    ),
)
def post_engagement(endpoint: Annotated[Endpoint, Path()], body: LiveQueryIn) -> Response[LiveQueryOut | JobOut]:
    prefer = router.current_event.headers.get("Prefer") or router.current_event.headers.get("prefer") or ""
    respond_async = RESPOND_ASYNC in [token.strip().lower() for token in prefer.split(",")]
    return live_query(endpoint, body, respond_async=respond_async)
