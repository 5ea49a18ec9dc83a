"""POST /engagement/{endpoint}: a live Engagement API query now, stored like the collector's, then returned."""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from xengage.api_client.catalog import DEFAULT_BASE_URL, STATUS_OK, Endpoint
from xengage.api_client.client import EngagementClient
from xengage.api_client.credentials import UserTokens
from xengage.api_client.errors import AuthError
from xengage.api_client.models import EngagementResult, PostMetrics
from xengage.dal import secrets
from xengage.dal.registry import ACCOUNT_NEEDS_REAUTH, NotFound
from xengage.dal.secrets import SecretNotFoundError
from xengage.http_api import context
from xengage.http_api.accounts import require_account
from xengage.http_api.errors import ApiError, bad_request, documented_errors
from xengage.http_api.models import LivePostResult, LiveQueryIn, LiveQueryOut, MetricPoint
from xengage.http_api.params import check_historical_window, metric_names, parse_range
from xengage.observability import logger
from xengage.pipeline.collector import metric_points, post_hours
from xengage.timeutil import floor_minute, to_iso, utc_now

router = Router()


def account_tokens(account_id: str) -> UserTokens:
    require_account(account_id)
    try:
        return secrets.load_account_tokens(context.settings().secret_prefix, account_id)
    except SecretNotFoundError:
        raise ApiError(
            HTTPStatus.CONFLICT,
            "account_needs_reauth",
            f"account {account_id} has no stored tokens; register them again",
        ) from None


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
    collected_at = to_iso(now)
    snapshot_at = to_iso(floor_minute(now))
    points = [
        point
        for post in result.posts.values()
        if post.ok
        for point in metric_points(
            result.endpoint, post, snapshot_at=snapshot_at, collected_at=collected_at, account_id=account_id
        )
    ]
    context.metrics_store().put_points(points)
    statuses = context.status_store()
    for post in result.posts.values():
        statuses.record(post.tweet_id, result.endpoint, post.status, at=collected_at, message=post.reason)
    if result.endpoint is Endpoint.TOTALS:
        registry = context.registry()
        for post in result.posts.values():
            if post.ok and post.totals:
                registry.update_latest_totals(post.tweet_id, post.totals, at=snapshot_at)


def result_out(post: PostMetrics, endpoint: Endpoint) -> LivePostResult:
    if not post.ok:
        return LivePostResult(status=post.status, reason=post.reason)
    if endpoint is Endpoint.TOTALS:
        return LivePostResult(status=STATUS_OK, metrics=dict(post.totals))
    points = [MetricPoint(at=to_iso(hour), metrics=dict(values)) for hour, values in post_hours(post)]
    return LivePostResult(status=STATUS_OK, metrics=dict(post.totals) or None, points=points)


def mark_needs_reauth(account_id: str, error: AuthError, *, now: datetime) -> None:
    try:
        context.registry().set_account_status(
            account_id, ACCOUNT_NEEDS_REAUTH, now=to_iso(now), last_error=error.api_message[:500]
        )
    except NotFound:
        logger.warning("auth failed for an account deleted meanwhile", extra={"account_id": account_id})


def live_query(endpoint: Endpoint, body: LiveQueryIn) -> LiveQueryOut:
    now = utc_now()
    start, end = validate(endpoint, body, now=now)
    user = account_tokens(body.account_id) if body.account_id else None
    settings = context.settings()
    app_credentials = secrets.load_app_credentials(settings.app_secret_arn)
    tweet_ids = list(dict.fromkeys(body.tweet_ids))
    with EngagementClient(app_credentials, base_url=settings.engagement_api_url or DEFAULT_BASE_URL) as client:
        try:
            result = client.fetch(
                endpoint, tweet_ids, engagement_types=body.engagement_types, user=user, start=start, end=end
            )
        except AuthError as exc:
            if body.account_id:
                mark_needs_reauth(body.account_id, exc, now=now)
            raise
    store(result, body.account_id or "", now=now)
    if body.account_id:
        context.registry().mark_account_success(body.account_id, now=to_iso(now))
    logger.info(
        "live query", extra={"endpoint": endpoint.value, "counts": result.counts_by_status(), "calls": result.calls}
    )
    return LiveQueryOut(
        endpoint=endpoint,
        results={tweet_id: result_out(post, endpoint) for tweet_id, post in result.posts.items()},
        calls=result.calls,
    )


@router.post(
    "/engagement/<endpoint>",
    summary="Query the Engagement API now; results are stored and returned",
    description="App credentials sign /totals public metrics; `account_id` selects the owner tokens needed for "
    "private metrics, /28hr and /historical. At most 250 ids for /totals, 25 for the time series; "
    "/historical windows at most 4 weeks within the last 365 days.",
    tags=["engagement"],
    responses=documented_errors(
        {
            400: "bad ids, metrics or window; user context required",
            404: "unknown account",
            409: "the account's tokens were rejected: it is marked needs_reauth",
            502: "the Engagement API failed or rejected the app credentials",
        }
    ),
)
def post_engagement(endpoint: Annotated[Endpoint, Path()], body: LiveQueryIn) -> LiveQueryOut:
    return live_query(endpoint, body)
