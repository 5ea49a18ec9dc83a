"""Request shaping done before any HTTP call: id and metric validation, batches, /historical windows, bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from xengage.api_client.catalog import (
    HISTORICAL_LOOKBACK,
    HISTORICAL_MAX_WINDOW,
    PUBLIC_TOTALS_METRICS,
    Endpoint,
    metrics_for,
)
from xengage.api_client.errors import RequestValidationError
from xengage.timeutil import ceil_hour, floor_hour

# The one grouping the client asks for; its name comes back as the top-level key of the answer.
GROUPING_NAME: Final = "per_tweet"
TOTALS_GROUP_BY: Final = ("tweet.id", "engagement.type")
TIME_SERIES_GROUP_BY: Final = ("tweet.id", "engagement.type", "engagement.day", "engagement.hour")

_TWEET_ID = re.compile(r"^[0-9]{1,19}$")
CLOCK_SKEW_ALLOWANCE: Final = timedelta(seconds=30)


def normalize_tweet_ids(tweet_ids: Iterable[str | int]) -> list[str]:
    """Ids as strings, validated against ^[0-9]{1,19}$, duplicates dropped, first-seen order kept."""
    if isinstance(tweet_ids, str | bytes):
        raise RequestValidationError("tweet_ids must be a list of ids, not a single string")
    seen: dict[str, None] = {}
    bad: list[str] = []
    for raw in tweet_ids:
        text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else None
        if text is None or not _TWEET_ID.match(text):
            bad.append(repr(raw))
            continue
        seen.setdefault(text, None)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise RequestValidationError(f"invalid Tweet id(s) {shown}: each must be 1 to 19 digits")
    if not seen:
        raise RequestValidationError("tweet_ids is empty: give at least one Tweet id")
    return list(seen)


def resolve_metrics(endpoint: Endpoint, engagement_types: Sequence[str] | None, *, has_user: bool) -> list[str]:
    """The metrics to ask for: the catalog default when none are given, else the validated, deduplicated list.
    Engagement types added by configuration (`catalog.extra_metrics`) are in the default of user-context calls."""
    if engagement_types is None:
        if endpoint is Endpoint.TOTALS and not has_user:
            return list(PUBLIC_TOTALS_METRICS)
        return list(metrics_for(endpoint))
    if isinstance(engagement_types, str):
        raise RequestValidationError("engagement_types must be a list of metric names, not a single string")
    metrics = list(dict.fromkeys(engagement_types))
    if not metrics:
        raise RequestValidationError("engagement_types is empty: give at least one metric or None for the default")
    allowed = metrics_for(endpoint)
    unknown = [metric for metric in metrics if metric not in allowed]
    if unknown:
        raise RequestValidationError(
            f"/{endpoint.value} does not serve {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )
    return metrics


def batches(tweet_ids: Sequence[str], size: int) -> list[list[str]]:
    """Consecutive slices of at most `size` ids (250 for /totals, 25 for the time series)."""
    if size < 1:
        raise ValueError("batch size must be positive")
    return [list(tweet_ids[i : i + size]) for i in range(0, len(tweet_ids), size)]


def historical_windows(
    start: datetime | None, end: datetime | None, *, now: datetime
) -> list[tuple[datetime, datetime]]:
    """Hour-aligned [start, end) windows of at most 4 weeks covering the asked range.

    Start is floored and end ceiled to the hour, as the API itself rounds "to the nearest inclusive hour"
    (except that an end in the current hour becomes `now` less a clock-skew allowance, never a future hour).
    No range at all means the previous 4 weeks (the API's own default, made explicit so every window is
    known). A start older than 365 days or an end in the future is refused before any call.
    """
    for name, value in (("start", start), ("end", end), ("now", now)):
        if value is not None and value.tzinfo is None:
            raise RequestValidationError(f"{name} must be timezone-aware (UTC), got naive {value.isoformat()}")
    now = now.astimezone(UTC)
    start = start.astimezone(UTC) if start is not None else None
    end = end.astimezone(UTC) if end is not None else None
    if end is not None and end > now:
        raise RequestValidationError(f"end {_iso(end)} is in the future (now {_iso(now)}); the API does not serve it")
    if end is None:
        end = floor_hour(now) if start is None else now
    if start is None:
        start = end - HISTORICAL_MAX_WINDOW
    oldest = now - HISTORICAL_LOOKBACK
    window_start = floor_hour(start)
    if window_start < oldest:
        raise RequestValidationError(
            f"start {_iso(start)} (from {_iso(window_start)} on the hour) is older than 365 days "
            f"(earliest {_iso(oldest)}); the API keeps one year"
        )
    # The current hour is not over: its window ends a little before now (the API rounds that up to the hour
    # itself), so no end is in the future even for an API clock slightly behind ours.
    final_end = min(ceil_hour(end), (now - CLOCK_SKEW_ALLOWANCE).replace(microsecond=0))
    if window_start >= final_end:
        raise RequestValidationError(f"start {_iso(start)} must be before end {_iso(end)}")
    windows: list[tuple[datetime, datetime]] = []
    while window_start < final_end:
        window_end = min(window_start + HISTORICAL_MAX_WINDOW, final_end)
        windows.append((window_start, window_end))
        window_start = window_end
    return windows


def group_by_for(endpoint: Endpoint) -> dict[str, list[str]]:
    levels = TIME_SERIES_GROUP_BY if endpoint.is_time_series else TOTALS_GROUP_BY
    return {GROUPING_NAME: list(levels)}


def build_body(
    endpoint: Endpoint,
    tweet_ids: Sequence[str],
    metrics: Sequence[str],
    window: tuple[datetime, datetime] | None = None,
) -> dict[str, Any]:
    """The JSON body of one call: ids as strings, metrics, one grouping, and start/end for /historical."""
    if len(tweet_ids) > endpoint.max_ids:
        raise RequestValidationError(f"/{endpoint.value} takes at most {endpoint.max_ids} ids, got {len(tweet_ids)}")
    body: dict[str, Any] = {
        "tweet_ids": [str(tweet_id) for tweet_id in tweet_ids],
        "engagement_types": list(metrics),
        "groupings": {name: {"group_by": levels} for name, levels in group_by_for(endpoint).items()},
    }
    if window is not None:
        body["start"], body["end"] = _iso(window[0]), _iso(window[1])
    return body


def _iso(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
