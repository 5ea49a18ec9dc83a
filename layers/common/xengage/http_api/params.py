"""Checks of query values the schema alone cannot express: timestamps, metric names, windows."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from xengage.api_client.catalog import HISTORICAL_LOOKBACK, METRICS_BY_ENDPOINT, Endpoint
from xengage.http_api.errors import bad_request
from xengage.http_api.models import TWEET_ID_PATTERN, USER_ID_PATTERN, TweetId, UserId
from xengage.timeutil import parse_iso

TweetIdPath = Annotated[TweetId, Path(pattern=TWEET_ID_PATTERN, description="the Post's numeric id")]
UserIdPath = Annotated[UserId, Path(pattern=USER_ID_PATTERN, description="the account's numeric X user id")]
# `2026-11-25T18:00:00.000000+00:00` is 32 characters; longer is no timestamp.
TIMESTAMP_MAX = 40
# Cursors are a few hundred characters; anything far longer never came from this API.
CursorQuery = Annotated[str | None, Query(max_length=2048, description="next_cursor of the previous page")]

ALL_METRICS = tuple(dict.fromkeys(name for names in METRICS_BY_ENDPOINT.values() for name in names))


def parse_time(field: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise bad_request(
            "invalid_timestamp", f"{field}: {value[:40]!r} is not an ISO-8601 UTC timestamp (YYYY-MM-DDTHH:MM:SSZ)"
        ) from None


def parse_range(start_field: str, start: str | None, end_field: str, end: str | None) -> tuple[datetime | None, ...]:
    first, last = parse_time(start_field, start), parse_time(end_field, end)
    if first and last and first > last:
        raise bad_request("invalid_range", f"{start_field} is after {end_field}")
    return first, last


def metric_names(endpoint: Endpoint, names: Iterable[str], *, field: str) -> list[str]:
    """The names, de-duplicated, each one the endpoint serves; 400 naming the unknown ones otherwise."""
    wanted = [name.strip() for name in names if name.strip()]
    unknown = [name for name in wanted if name not in METRICS_BY_ENDPOINT[endpoint]]
    if unknown:
        raise bad_request(
            "unknown_metric",
            f"{field}: /{endpoint.value} has no metric {', '.join(sorted(set(unknown)))} "
            f"(known: {', '.join(METRICS_BY_ENDPOINT[endpoint])})",
        )
    return list(dict.fromkeys(wanted))


def check_historical_window(start: datetime | None, end: datetime | None, *, now: datetime) -> None:
    """The documented /historical look-back: not before 365 days ago, not in the future. Any range within it is
    split into the API's windows of at most 4 weeks."""
    if start and start < now - HISTORICAL_LOOKBACK:
        raise bad_request("window_too_old", f"start: /historical reaches back {HISTORICAL_LOOKBACK.days} days only")
    if end and end > now:
        raise bad_request("window_in_future", "end: must not be in the future")
