"""POST /engagement/{endpoint}: a live Engagement API query now, stored like the collector's, then returned.

It runs within API Gateway's 29 s: what is not fetched in time (or within the per-minute limit) is stored as far as
it got and answered 429 (rate limited) or 503 (out of time, transient errors) with `Retry-After`, naming the Posts
not fetched.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Final

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from xengage.api_client.catalog import DEFAULT_BASE_URL, Endpoint, Reason
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.deadline import API_GATEWAY_TIMEOUT_SECONDS, Deadline
from xengage.api_client.errors import AppAuthError, UserAuthError
from xengage.dal import secrets
from xengage.dal.registry import ACCOUNT_NEEDS_REAUTH, NotFound
from xengage.dal.secrets import SecretNotFoundError
from xengage.dal.series_state import TotalsSnapshot
from xengage.dal.status import StatusChange
from xengage.http_api import context
from xengage.http_api.accounts import require_account
from xengage.http_api.errors import ApiError, Incomplete, answers, bad_request
from xengage.http_api.models import (
    AccountErrorResponse,
    ErrorResponse,
    LivePostResult,
    LiveQueryIn,
    LiveQueryIncomplete,
    LiveQueryOut,
    MetricPoint,
    RefusedMetricOut,
)
from xengage.http_api.params import check_historical_window, metric_names, parse_range
from xengage.observability import count, logger
from xengage.timeutil import floor_minute, to_iso, utc_now

# Kept back from API Gateway's 29 s for storing the results and answering.
ANSWER_RESERVE_SECONDS: Final = 5.0
APP_CREDENTIALS_REFUSED = "app_credentials_refused"

router = Router()

if TYPE_CHECKING:
    from xengage.api_client.models import EngagementResult, PostMetrics
    from xengage.pipeline.usage import UsageGuard

USAGE_CAPPED: Final = "usage_capped"


def account_tokens(account_id: str) -> UserTokens:
    account = require_account(account_id)
    try:
        tokens = secrets.load_account_tokens(context.settings().secret_prefix, account_id)
    except SecretNotFoundError:
        raise ApiError(
            HTTPStatus.CONFLICT,
            "account_needs_reauth",
            f"account {account_id} has no stored tokens; register them again",
            account_id=account_id,
        ) from None
    # The registry's screen name is the current one: the @handle the usage ledger shows.
    return dataclasses.replace(tokens, screen_name=account.screen_name or tokens.screen_name)


def validate(endpoint: Endpoint, body: LiveQueryIn, *, now: datetime) -> tuple[datetime | None, datetime | None]:
    """Every documented limit, checked before any call or write."""
    if len(body.tweet_ids) > endpoint.max_ids:
        raise bad_request(
            "too_many_ids",
            f"tweet_ids: /{endpoint.value} takes at most {endpoint.max_ids} ids, got {len(body.tweet_ids)}",
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
    context.metrics_store().put_points(points)
    registry = context.registry()
    for post in result.posts.values():
        # One write a Post: its status, and on /totals its latest snapshot (kept only where tracked)
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


def live_deadline() -> Deadline:
    """API Gateway's 29 s (or the function's own remaining time, if shorter) less the time to store and answer."""
    remaining = API_GATEWAY_TIMEOUT_SECONDS
    lambda_context = getattr(router, "lambda_context", None)
    if lambda_context is not None and hasattr(lambda_context, "get_remaining_time_in_millis"):
        remaining = min(remaining, lambda_context.get_remaining_time_in_millis() / 1000)
    return Deadline.after(remaining - ANSWER_RESERVE_SECONDS)


def app_credentials() -> AppCredentials:
    """The app's credentials, refused with a 503 while X refuses them and the app secret has not changed."""
    settings = context.settings()
    state = context.app_state().get()
    if state.needs_credentials and state.paused_for(secrets.app_secret_version(settings.app_secret_arn)):
        raise ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            APP_CREDENTIALS_REFUSED,
            f"X refused the app's credentials ({state.credentials_error}); replace the app secret to resume",
        )
    return secrets.load_app_credentials(settings.app_secret_arn, fresh=state.needs_credentials)


def flag_app(error: AppAuthError, *, used: AppCredentials, now: datetime) -> None:
    """Pause on refused app credentials, unless the secret already holds others (then only this query failed)."""
    from xengage.pipeline.collector import record_app_refusal

    settings = context.settings()
    if secrets.load_app_credentials(settings.app_secret_arn, fresh=True) != used:
        return
    version = secrets.app_secret_version(settings.app_secret_arn)
    record_app_refusal(context.app_state(), error.api_message, secret_version=version, now=to_iso(now))


def mark_needs_reauth(account_id: str, error: UserAuthError, *, now: datetime) -> None:
    try:
        context.registry().set_account_status(
            account_id, ACCOUNT_NEEDS_REAUTH, now=to_iso(now), last_error=error.api_message[:500]
        )
    except NotFound:
        logger.warning("auth failed for an account deleted meanwhile", extra={"account_id": account_id})
        return
    count("AccountsNeedingReauth")


def metered(endpoint: Endpoint, body: LiveQueryIn, user: UserTokens | None, *, now: datetime) -> UsageGuard:
    """The @handle billing guard (pipeline/usage.py): a user-context query counts its account's handle this month;
    past the monthly cap a handle not counted yet is refused with 429 `usage_capped`, before any call."""
    from xengage.pipeline.usage import usage_guard, user_context

    guard = usage_guard(context.usage(), context.settings().handle_cap)
    if not (body.account_id and user is not None and user_context(endpoint, body.engagement_types, user)):
        return guard
    if not guard.admit(body.account_id, user.screen_name, now=now):
        count("LiveQueriesUsageCapped")
        message = guard.capped_message(body.account_id, user.screen_name, now=now)
        raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, USAGE_CAPPED, message)
    return guard


def fetch_live(endpoint: Endpoint, body: LiveQueryIn, *, now: datetime) -> EngagementResult:
    start, end = validate(endpoint, body, now=now)
    user = account_tokens(body.account_id) if body.account_id else None
    guard = metered(endpoint, body, user, now=now)
    settings = context.settings()
    # Imported here: requests and oauthlib are for live queries only, not for every cold start of the API.
    from xengage.api_client.client import EngagementClient

    client = EngagementClient(
        app_credentials(),
        base_url=settings.engagement_api_url or DEFAULT_BASE_URL,
        oauth_base_url=settings.x_api_url,
        rate_window_seconds=settings.rate_window_seconds,
        rate_gate=context.rate_budget(settings.rate_window_seconds),
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
                deadline=live_deadline(),
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


def live_query(endpoint: Endpoint, body: LiveQueryIn) -> LiveQueryOut:
    now = utc_now()
    result = fetch_live(endpoint, body, now=now)
    # Live queries spend the same per-minute limit as the collector: the 429 share alarm counts both.
    count("EngagementCalls", result.calls)
    count("Throttled", result.throttled)
    store(result, body.account_id or "", now=now)
    if body.account_id and any(post.ok for post in result.posts.values()):
        context.registry().mark_account_success(body.account_id, now=to_iso(now))
    logger.info(
        "live query", extra={"endpoint": endpoint.value, "counts": result.counts_by_status(), "calls": result.calls}
    )
    results = {tweet_id: result_out(post, endpoint) for tweet_id, post in result.posts.items()}
    not_fetched = result.pending_ids()
    if not_fetched:
        raise incomplete(result, results, not_fetched, now=now)
    return LiveQueryOut(endpoint=endpoint, results=results, calls=result.calls)


def incomplete(
    result: EngagementResult, results: dict[str, LivePostResult], not_fetched: list[str], *, now: datetime
) -> Incomplete:
    """429 when the per-minute limit stopped it, else 503; Retry-After is when the API takes the rest."""
    posts = [result.posts[tweet_id] for tweet_id in not_fetched]
    rate_limited = any(post.status == Reason.RATE_LIMITED.value for post in posts)
    latest = max((post.retry_at for post in posts if post.retry_at is not None), default=now)
    retry_after = max(1, math.ceil((latest - now).total_seconds()))
    status, code = (
        (HTTPStatus.TOO_MANY_REQUESTS, "rate_limited") if rate_limited else (HTTPStatus.SERVICE_UNAVAILABLE, "deferred")
    )
    why = "the contract's per-minute limit is spent" if rate_limited else "the Engagement API did not answer in time"
    fetched = len(result.posts) - len(not_fetched)
    body = LiveQueryIncomplete.model_validate(
        {
            "error": {
                "code": code,
                "message": f"{why}: {len(not_fetched)} of {len(result.posts)} Posts not fetched ({fetched} stored); "
                f"ask for not_fetched again after {retry_after} s",
            },
            "not_fetched": not_fetched,
            "retry_after_seconds": retry_after,
            "resume_from": to_iso(result.resume_from) if result.resume_from else None,
            "results": results,
            "calls": result.calls,
        }
    )
    count("LiveQueriesIncomplete")
    return Incomplete(status, body)


@router.post(
    "/engagement/<endpoint>",
    summary="Query the Engagement API now; results are stored and returned",
    description="App credentials sign /totals public metrics; `account_id` selects the owner tokens needed for "
    "private metrics, /28hr and /historical. At most 250 ids for /totals, 25 for the time series; "
    "/historical windows at most 4 weeks within the last 365 days. A query signed with the account's tokens counts its "
    "@handle this month (`GET /usage`); past the `MonthlyHandleCap` a handle not counted yet is refused (429 "
    "`usage_capped`). A query the contract's per-minute limit or API "
    "Gateway's 29 s cannot finish stores what it got and answers 429 or 503 with Retry-After, naming the Posts "
    "not fetched.",
    tags=["engagement"],
    responses=answers(
        {
            400: "bad ids, metrics or window; user context required",
            404: "unknown account",
            502: "the Engagement API failed or answered what cannot be read",
        },
        with_body=True,
        custom={
            409: {
                "description": "the account's tokens were rejected or are missing: it needs re-authorization",
                "content": {"application/json": {"model": AccountErrorResponse}},
            },
            429: {
                "description": "the per-minute limit is spent: what was fetched is stored; see Retry-After "
                "(LiveQueryIncomplete); or the monthly @handle cap is reached and the account's handle is not counted "
                "this month (ErrorResponse, code usage_capped): nothing was called",
                "content": {"application/json": {"model": LiveQueryIncomplete | ErrorResponse}},
            },
            503: {
                "description": "out of time or transient API errors (what was fetched is stored; see Retry-After: "
                "LiveQueryIncomplete), or the app's credentials are refused or missing (ErrorResponse)",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/LiveQueryIncomplete"},
                                {"$ref": "#/components/schemas/ErrorResponse"},
                            ]
                        }
                    }
                },
            },
        },
    ),
)
def post_engagement(endpoint: Annotated[Endpoint, Path()], body: LiveQueryIn) -> LiveQueryOut:
    return live_query(endpoint, body)
