"""Checks of query values the schema alone cannot express: timestamps, metric names, windows."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from xengage.api_client.catalog import (
    HISTORICAL_LOOKBACK,
    METRIC_NAME_PATTERN,
    Endpoint,
    metrics_for,
)
from xengage.http_api.errors import bad_request
from xengage.http_api.models import TWEET_ID_PATTERN, USER_ID_PATTERN, TweetId, UserId
from xengage.timeutil import parse_iso

TweetIdPath = Annotated[TweetId, Path(pattern=TWEET_ID_PATTERN, description="the Post's numeric id")]
UserIdPath = Annotated[UserId, Path(pattern=USER_ID_PATTERN, description="the account's numeric X user id")]
# `2026-11-25T18:00:00.000000+00:00` is 32 characters; longer is no timestamp.
TIMESTAMP_MAX = 40
# Cursors are a few hundred characters; anything far longer never came from this API.
CursorQuery = Annotated[str | None, Query(max_length=2048, description="next_cursor of the previous page")]

_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)


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


def metric_names(
    endpoint: Endpoint, names: Iterable[str], *, field: str, stored: Iterable[str] | None = None
) -> list[str]:
    """The names, de-duplicated, each one the endpoint takes (the catalog and its configured extras); 400 naming
    the unknown ones otherwise. Reads pass `stored`, the names their data holds: a name stored by another version
    (retired since, or added by configuration there) is readable too."""
    wanted = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    unknown = unknown_metrics(endpoint, wanted, stored)
    if unknown:
        also = ", or one its stored data holds" if stored is not None else ""
        raise bad_request(
            "unknown_metric",
            f"{field}: /{endpoint.value} has no metric {', '.join(sorted(set(unknown)))} "
            f"(known: {', '.join(metrics_for(endpoint))}{also})",
        )
    return wanted


def unknown_metrics(endpoint: Endpoint, names: Iterable[str], stored: Iterable[str] | None = None) -> list[str]:
    """The names neither the endpoint's catalog nor `stored` holds (malformed ones always)."""
    known = set(metrics_for(endpoint)) | set(stored or ())
    return [name for name in names if name not in known or not _METRIC_NAME.match(name)]


def well_formed_metrics(names: Iterable[str], *, field: str) -> list[str]:
    """Names that could be an engagement type (checked against the data later); 400 naming the malformed ones."""
    wanted = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    bad = [name for name in wanted if not _METRIC_NAME.match(name)]
    if bad:
        shown = ", ".join(repr(name[:64]) for name in bad[:5])
        raise bad_request("unknown_metric", f"{field}: {shown} is no engagement type name (lowercase, digits, _)")
    return wanted


def check_historical_window(start: datetime | None, end: datetime | None, *, now: datetime) -> None:
    """The documented /historical look-back: not before 365 days ago, not in the future. Any range within it is
    split into the API's windows of at most 4 weeks."""
    if start and start < now - HISTORICAL_LOOKBACK:
        raise bad_request("window_too_old", f"start: /historical reaches back {HISTORICAL_LOOKBACK.days} days only")
    if end and end > now:
        raise bad_request("window_in_future", "end: must not be in the future")
