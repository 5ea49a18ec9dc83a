"""Routes of /tweets: track Posts (idempotently), list them, read one with its availability, stop tracking."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from xengage.api_client.catalog import Endpoint
from xengage.dal.registry import DueMarker, TrackedPost
from xengage.dal.series_state import SeriesState
from xengage.dal.status import PostStatus
from xengage.http_api import context, cursors
from xengage.http_api.accounts import require_account
from xengage.http_api.errors import ApiError, answers, not_found
from xengage.http_api.models import (
    USER_ID_PATTERN,
    CollectionOut,
    DataChecksOut,
    DriftOut,
    EndpointStatusOut,
    MetricDriftOut,
    PostDetailOut,
    PostPage,
    RefusedMetricOut,
    StatusEntryOut,
    StatusName,
    StatusPage,
    TotalsDecreaseOut,
    TrackedPostOut,
    TrackIn,
    TrackOut,
    UntrackOut,
    UserId,
)
from xengage.http_api.params import CursorQuery, TweetIdPath
from xengage.observability import logger
from xengage.timeutil import snowflake_created_at, to_iso, utc_now

router = Router()

NOT_TRACKED = answers({404: "Post not tracked (post_not_found)"})
BAD_CURSOR = "a cursor this API did not issue for this listing (invalid_cursor)"


def tracked_out(post: TrackedPost) -> TrackedPostOut:
    return TrackedPostOut(
        tweet_id=post.tweet_id,
        account_id=post.account_id or None,
        created_at=post.created_at,
        tracked_at=post.tracked_at,
    )


def require_post(tweet_id: str) -> TrackedPost:
    post = context.registry().get_post(tweet_id)
    if post is None:
        raise not_found("post", tweet_id)
    return post


def track(tweet_ids: list[str], account_id: str | None) -> TrackOut:
    """Check everything first (account, ownership conflicts), then write: no half-tracked batch on a bad input."""
    if account_id:
        require_account(account_id)
    registry = context.registry()
    unique_ids = list(dict.fromkeys(tweet_ids))
    existing = registry.get_posts(unique_ids)
    conflicts = [tweet_id for tweet_id, post in existing.items() if post.account_id != (account_id or "")]
    if conflicts:
        raise ApiError(
            HTTPStatus.CONFLICT,
            "tracked_with_other_account",
            "tweet_ids already tracked under another account (untrack them first): "
            + ", ".join(sorted(conflicts)[:10]),
        )
    now = to_iso(utc_now())
    # Already read above: write only the absent ones (track_posts would read them all again).
    new_ids = [tweet_id for tweet_id in unique_ids if tweet_id not in existing]
    registry.write_new_posts(new_ids, account_id, now=now)
    tracked = [
        existing.get(tweet_id)
        or TrackedPost(
            tweet_id=tweet_id,
            account_id=account_id or "",
            created_at=to_iso(snowflake_created_at(tweet_id)),
            tracked_at=now,
        )
        for tweet_id in unique_ids
    ]
    logger.info("posts tracked", extra={"count": len(tracked), "new": len(new_ids), "account_id": account_id})
    return TrackOut(tracked=[tracked_out(post) for post in tracked], newly_tracked=len(new_ids))


def status_out(status: PostStatus) -> EndpointStatusOut:
    return EndpointStatusOut(
        endpoint=status.endpoint,
        status=status.status,
        reason_code=status.reason_code,
        message=status.message,
        first_seen_at=status.first_seen_at,
        last_seen_at=status.last_seen_at,
        last_ok_at=status.last_ok_at,
        next_attempt_at=status.next_attempt_at,
        unsupported_metrics=list(status.unsupported_metrics),
        refused=None
        if status.refusals is None
        else [
            RefusedMetricOut(metric=metric, reason=reason, message=message)
            for metric, (reason, message) in status.refusals
        ],
    )


def post_detail(tweet_id: str) -> PostDetailOut:
    post = require_post(tweet_id)
    registry = context.registry()
    statuses = context.status_store().get_statuses(tweet_id)
    markers = {
        endpoint: marker for endpoint in Endpoint if (marker := registry.get_due_marker(tweet_id, endpoint)) is not None
    }
    collection = [
        CollectionOut(
            endpoint=marker.endpoint, next_due_at=marker.next_due_at, last_collected_at=marker.last_collected_at
        )
        for marker in markers.values()
    ]
    return PostDetailOut(
        **tracked_out(post).model_dump(),
        latest_totals=post.latest_totals,
        latest_totals_at=post.latest_totals_at,
        availability=[status_out(status) for status in statuses],
        collection=collection,
        checks=data_checks(tweet_id, markers),
    )


def data_checks(tweet_id: str, markers: Mapping[Endpoint, DueMarker]) -> DataChecksOut:
    """What the data checks found: the last /totals decrease its marker keeps, and the drift of /totals from the
    /historical hour sums (one small Query of the /totals series)."""
    from xengage.pipeline.checks import drift_of  # this route alone: kept off the API's cold start

    totals, historical = markers.get(Endpoint.TOTALS), markers.get(Endpoint.HISTORICAL)
    decrease = totals.series.totals_decrease if totals is not None else None
    drift = drift_of(tweet_id, historical.series if historical else SeriesState(), context.metrics_store())
    return DataChecksOut(
        totals_decrease=TotalsDecreaseOut.model_validate(decrease) if decrease else None,
        historical_drift=DriftOut(
            status=drift.status,
            reason=drift.reason,
            totals_at=drift.totals_at,
            hours_from=drift.hours_from,
            hours_through=drift.hours_through,
            metrics=[
                MetricDriftOut(metric=m.metric, totals=m.totals, hours_sum=m.hours_sum, difference=m.difference)
                for m in drift.metrics
            ],
        ),
    )


def untrack(tweet_id: str, *, purge: bool) -> UntrackOut:
    require_post(tweet_id)
    context.registry().untrack_post(tweet_id)
    purged = 0
    if purge:
        purged = context.metrics_store().purge_points(tweet_id)  # its statuses went with its markers
    logger.info("post untracked", extra={"tweet_id": tweet_id, "purged_points": purged})
    return UntrackOut(tweet_id=tweet_id, untracked=True, purged_points=purged)


@router.post(
    "/tweets",
    summary="Track Posts (idempotent)",
    tags=["tweets"],
    responses=answers(
        {404: "unknown account (account_not_found)", 409: "a Post is tracked under another account"}, with_body=True
    ),
)
def post_tweets(body: TrackIn) -> TrackOut:
    return track(body.tweet_ids, body.account_id)


@router.get(
    "/tweets",
    summary="List tracked Posts of an account (or of the app)",
    tags=["tweets"],
    responses=answers({400: BAD_CURSOR, 404: "unknown account (account_not_found)"}),
)
def list_tweets(
    account_id: Annotated[
        UserId | None,
        Query(pattern=USER_ID_PATTERN, description="omit for Posts collected with the app token only"),
    ] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=250)] = 50,
    order: Annotated[
        Literal["oldest", "newest"], Query(description="by creation time (the snowflake id); keep it across pages")
    ] = "oldest",
) -> PostPage:
    if account_id:
        require_account(account_id)
    scope = cursors.listing("tweets", account_id, order)
    page = context.registry().list_posts(
        account_id, limit=limit, cursor=cursors.unseal(scope, cursor), newest_first=order == "newest"
    )
    return PostPage(posts=[tracked_out(post) for post in page.items], next_cursor=cursors.seal(scope, page.cursor))


@router.get(
    "/tweets/<tweet_id>",
    summary="A tracked Post: latest totals and availability",
    tags=["tweets"],
    responses=NOT_TRACKED,
)
def get_tweet(tweet_id: TweetIdPath) -> PostDetailOut:
    return post_detail(tweet_id)


@router.delete(
    "/tweets/<tweet_id>",
    summary="Stop tracking a Post (data kept unless purge=true)",
    tags=["tweets"],
    responses=NOT_TRACKED,
)
def delete_tweet(
    tweet_id: TweetIdPath,
    purge: Annotated[bool, Query(description="also delete its stored metrics and statuses")] = False,
) -> UntrackOut:
    return untrack(tweet_id, purge=purge)


@router.get(
    "/statuses/<status>",
    summary="Posts whose last collection ended with this status (e.g. protected), newest first",
    description="One entry per Post and endpoint, from the StatusIndex: what needs attention after a run "
    "(`unavailable`, `protected`, `not_owned`, `unsupported_metric`, `auth_failed`, `failed`), or `ok`.",
    tags=["tweets"],
    responses=answers({400: BAD_CURSOR}),
)
def list_statuses(
    status: Annotated[StatusName, Path(description="ok or a reason code")],
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=250)] = 50,
) -> StatusPage:
    scope = cursors.listing("statuses", status)
    page = context.status_store().query_by_status(status, limit=limit, cursor=cursors.unseal(scope, cursor))
    return StatusPage(
        status=status,
        posts=[StatusEntryOut(tweet_id=entry.tweet_id, **status_out(entry).model_dump()) for entry in page.items],
        next_cursor=cursors.seal(scope, page.cursor),
    )
