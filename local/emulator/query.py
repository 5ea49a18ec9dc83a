"""Request-body validation for the three data endpoints (reference doc section 2)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from xengage.api_client.catalog import (
    FOUR_ITEM_ORDERS,
    GROUP_BY_BY_ENDPOINT,
    HISTORICAL_LOOKBACK,
    HISTORICAL_MAX_WINDOW,
    MAX_GROUPINGS,
    METRICS_BY_ENDPOINT,
    Endpoint,
)

HOUR = timedelta(hours=1)
HOURLY_28HR_SPAN = timedelta(hours=28)


class ApiError(Exception):
    """An answer other than 200: status plus the `errors` strings of the body."""

    def __init__(self, status: int, *messages: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {'; '.join(messages)}")
        self.status = status
        self.messages = list(messages)
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"errors": self.messages, **self.extra}


@dataclass(frozen=True, slots=True)
class Query:
    endpoint: Endpoint
    tweet_ids: tuple[str, ...]
    engagement_types: tuple[str, ...]
    groupings: dict[str, tuple[str, ...]]
    start: datetime | None = None  # time-series window [start, end), hour-aligned
    end: datetime | None = None


def peek_tweet_ids(raw_body: bytes) -> list[str]:
    """Best-effort ids for the request log, even when the body is invalid."""
    ids = _peek(raw_body, "tweet_ids")
    return [str(i) for i in ids] if isinstance(ids, list) else []


def peek_window(raw_body: bytes) -> tuple[str, str] | None:
    """The /historical `start`/`end` as sent (for the request log: was a window asked twice?)."""
    start, end = _peek(raw_body, "start"), _peek(raw_body, "end")
    return (str(start), str(end)) if start is not None or end is not None else None


def _peek(raw_body: bytes, name: str) -> Any:
    try:
        data = json.loads(raw_body)
    except ValueError:
        return None
    return data.get(name) if isinstance(data, dict) else None


def parse_query(
    endpoint: Endpoint,
    raw_body: bytes,
    now: datetime,
    retired_metrics: Collection[str] = frozenset(),
    added_metrics: Collection[str] = (),
) -> Query:
    """Validate a request body and resolve its time window; raises ApiError(400) naming the problem.

    `retired_metrics` are refused exactly like names the endpoint never served: that is how a client
    sees X retire a metric. `added_metrics` are served besides the catalog's: how X adds one.
    """
    try:
        data = json.loads(raw_body) if raw_body.strip() else None
    except ValueError as exc:
        raise ApiError(400, f"Invalid JSON in request body: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object with tweet_ids, engagement_types and groupings")
    tweet_ids = _tweet_ids(endpoint, data.get("tweet_ids"))
    engagement_types = _engagement_types(endpoint, data.get("engagement_types"), retired_metrics, added_metrics)
    groupings = _groupings(endpoint, data.get("groupings"))
    start = end = None
    if endpoint is Endpoint.HOURLY_28HR:
        end = _hour_floor(now) + HOUR  # the current, partial hour is the last bucket: 29 buckets in all
        start = end - HOURLY_28HR_SPAN - HOUR
    elif endpoint is Endpoint.HISTORICAL:
        start, end = _historical_window(data.get("start"), data.get("end"), now)
    return Query(endpoint, tweet_ids, engagement_types, groupings, start, end)


def _tweet_ids(endpoint: Endpoint, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "tweet_ids is required: a non-empty array of Tweet IDs as strings")
    bad = [repr(v) for v in value if not (isinstance(v, str) and v.isascii() and v.isdigit())]
    if bad:
        raise ApiError(400, f"Tweet IDs must be strings of digits: {', '.join(bad[:10])}")
    unique = tuple(dict.fromkeys(value))
    if len(unique) > endpoint.max_ids:
        raise ApiError(400, f"Too many Tweet IDs for /{endpoint.value}: {len(unique)} (max {endpoint.max_ids})")
    return unique


def _engagement_types(
    endpoint: Endpoint, value: Any, retired: Collection[str], added: Collection[str] = ()
) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "engagement_types is required: a non-empty array of metric names")
    allowed = (*METRICS_BY_ENDPOINT[endpoint], *added)
    unknown = [v for v in value if v not in allowed or v in retired]
    if unknown:
        raise ApiError(400, f"Unsupported engagement types for /{endpoint.value}: {', '.join(unknown)}")
    return tuple(dict.fromkeys(value))


def _groupings(endpoint: Endpoint, value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not value:
        raise ApiError(400, 'groupings is required: {"<name>": {"group_by": [...]}}')
    if len(value) > MAX_GROUPINGS:
        raise ApiError(400, f"Too many groupings: {len(value)} (max {MAX_GROUPINGS})")
    allowed = GROUP_BY_BY_ENDPOINT[endpoint]
    parsed: dict[str, tuple[str, ...]] = {}
    four_item = 0
    for name, spec in value.items():
        group_by = spec.get("group_by") if isinstance(spec, dict) else None
        if not isinstance(group_by, list) or not group_by or not all(isinstance(g, str) for g in group_by):
            raise ApiError(400, f"Grouping {name!r} needs a non-empty group_by array of strings")
        unknown = [g for g in group_by if g not in allowed]
        if unknown:
            raise ApiError(
                400,
                f"Invalid group_by for /{endpoint.value} in grouping {name!r}: {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(allowed))})",
            )
        if len(set(group_by)) != len(group_by):
            raise ApiError(400, f"Grouping {name!r} repeats a group_by item")
        if len(group_by) == 4:
            if tuple(group_by) not in FOUR_ITEM_ORDERS:
                raise ApiError(
                    400,
                    f"Grouping {name!r}: 4-item group_by must be tweet.id, engagement.type, engagement.day, "
                    "engagement.hour or engagement.type, tweet.id, engagement.day, engagement.hour",
                )
            four_item += 1
            if four_item > 1:
                raise ApiError(400, "Only one grouping with 4 group_by items is allowed per request")
        parsed[str(name)] = tuple(group_by)
    return parsed


def _historical_window(raw_start: Any, raw_end: Any, now: datetime) -> tuple[datetime, datetime]:
    """Hour-rounded [start, end): start floored, end ceiled; default the previous 4 weeks."""
    start = _parse_instant("start", raw_start)
    end = _parse_instant("end", raw_end)
    if end is not None and end > now:
        raise ApiError(400, f"end {iso_utc(end)} is in the future; end dates in the future are not supported")
    if start is None and end is None:
        end = _hour_ceil(now)
        start = end - HISTORICAL_MAX_WINDOW
    elif start is None:
        assert end is not None
        end = _hour_ceil(end)
        start = end - HISTORICAL_MAX_WINDOW
    else:
        start = _hour_floor(start)
        end = _hour_ceil(end) if end is not None else min(start + HISTORICAL_MAX_WINDOW, _hour_ceil(now))
    if start >= end:
        raise ApiError(400, f"start {iso_utc(start)} must be before end {iso_utc(end)}")
    if start < _hour_floor(now - HISTORICAL_LOOKBACK):  # the hour that holds the 365-day mark is still served
        raise ApiError(400, f"start {iso_utc(start)} is more than 365 days in the past; data is limited to 365 days")
    if end - start > HISTORICAL_MAX_WINDOW:
        raise ApiError(400, f"start {iso_utc(start)} to end {iso_utc(end)} is longer than 4 weeks")
    return start, end


def _parse_instant(field: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{field} must be a string: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ApiError(400, f"{field} {value!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _hour_ceil(moment: datetime) -> datetime:
    floored = _hour_floor(moment)
    return floored if floored == moment else floored + HOUR


def iso_utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
