"""Routes of /tweets: track Posts (idempotently), list them, read one with its availability, stop tracking."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from xengage.api_client.catalog import Endpoint
from xengage.dal.registry import DueMarker, TrackedPost
from xengage.dal.series_state import SeriesState
from xengage.dal.status import PostStatus
from xengage.http_api import bulk, context, cursors
from xengage.http_api.accounts import require_account
from xengage.http_api.errors import answers, not_found
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
    TrackIncomplete,
    TrackOut,
    UntrackOut,
    UserId,
)
from xengage.http_api.params import CursorQuery, TweetIdPath
from xengage.observability import logger

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
    post = context.deps().registry.get_post(tweet_id)
    if post is None:
        raise not_found("post", tweet_id)
    return post


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
    registry = context.deps().registry
    statuses = context.deps().statuses.get_statuses(tweet_id)
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
    drift = drift_of(tweet_id, historical.series if historical else SeriesState(), context.deps().metrics)
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
    context.deps().registry.untrack_post(tweet_id)
    purged = 0
    if purge:
        purged = context.deps().metrics.purge_points(tweet_id)  # its statuses went with its markers
    logger.info("post untracked", extra={"tweet_id": tweet_id, "purged_points": purged})
    return UntrackOut(tweet_id=tweet_id, untracked=True, purged_points=purged)


@router.post(
    "/tweets",
    summary="Track Posts in bulk (idempotent): up to 10,000 ids as JSON or CSV",
    description='JSON `{"tweet_ids": [...], "account_id"}`, or `text/csv` with one id a line (a first line '
    "`tweet_id`, blank lines and CRLF are fine) and the account as `?account_id=`. Each id is judged on its own: "
    "the answer counts `new`, `already_tracked` and `rejected` ids and gives each rejected one with its reason "
    "(`not_digits`, `leading_zero`, `too_long`, `out_of_range`, `future_id`, `duplicate`, "
    "`tracked_with_other_account`). The same request again tracks nothing more. An unknown account refuses the "
    "whole request; so does the deadline, partly: 503 `track_incomplete` names the ids not stored.",
    tags=["tweets"],
    responses=answers(
        {
            400: "the body is not UTF-8 (invalid_body) or not JSON (invalid_json); account_id in both the body and "
            "the query, and different (conflicting_account_id)",
            404: "unknown account (account_not_found)",
            413: "the body is larger than 1 MiB (body_too_large)",
            415: "not application/json or text/csv in UTF-8, or a Content-Encoding (unsupported_media_type, "
            "unsupported_charset, unsupported_content_encoding)",
        },
        custom={
            503: {
                "description": "the deadline came first: `tracked` is stored, `not_stored` is not; send it again "
                "(track_incomplete, Retry-After)",
                "content": {"application/json": {"model": TrackIncomplete}},
            }
        },
    ),
)
def post_tweets(
    account_id: Annotated[
        UserId | None,
        Query(pattern=USER_ID_PATTERN, description="CSV bodies: the owner account (JSON: the body's account_id)"),
    ] = None,
) -> TrackOut:
    # The body is read here rather than by Powertools, which parses JSON only: CSV is the same request.
    event = router.current_event
    media_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    request = bulk.read_request(media_type, event.decoded_body or "", account_id)
    return bulk.track_bulk(request, until=bulk.deadline(getattr(router, "lambda_context", None)))


@router.exception_handler(bulk.TrackNotFinished)
def _track_not_finished(exc: bulk.TrackNotFinished) -> Response:
    return Response(
        status_code=HTTPStatus.SERVICE_UNAVAILABLE,
        content_type=content_types.APPLICATION_JSON,
        body=exc.body.model_dump(mode="json"),
        headers={"Retry-After": str(exc.body.retry_after_seconds)},
    )


def document_track_body(document: dict[str, Any]) -> None:
    """OpenAPI: POST /tweets reads its body itself (JSON or CSV), so its requestBody is written here."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["TrackIn"] = TrackIn.model_json_schema(ref_template="#/components/schemas/{model}")
    csv_example = "tweet_id\r\n1021817816134156288\r\n1021817816134156289\r\n"
    document["paths"]["/tweets"]["post"]["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TrackIn"}},
            "text/csv": {
                "schema": {"type": "string", "description": "one Post id a line; optional first line tweet_id"},
                "example": csv_example,
            },
        },
    }


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
    page = context.deps().registry.list_posts(
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
    page = context.deps().statuses.query_by_status(status, limit=limit, cursor=cursors.unseal(scope, cursor))
    return StatusPage(
        status=status,
        posts=[StatusEntryOut(tweet_id=entry.tweet_id, **status_out(entry).model_dump()) for entry in page.items],
        next_cursor=cursors.seal(scope, page.cursor),
    )
