"""Turn any Engagement API answer into the normalized `ParsedResponse`, whatever its groupings.

The API nests each grouping's values in the order of its `group_by` list, but the docs show a day level
above the hour level even when only `engagement.hour` was asked (reference trap 12), values come as
integer strings or bare numbers (trap 3), and grouping names are free text. So every nesting level is
classified by the shape of its keys, with the requested `group_by` used only to settle the one real
ambiguity: a short all-digit key can be a Tweet id or a two-digit hour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any, Final

from xengage.api_client.errors import MalformedResponse
from xengage.api_client.models import ParsedResponse, PostMetrics

TWEET_ID: Final = "tweet.id"
ENGAGEMENT_TYPE: Final = "engagement.type"
ENGAGEMENT_DAY: Final = "engagement.day"
ENGAGEMENT_HOUR: Final = "engagement.hour"

# Top-level keys that are not groupings.
RESERVED_KEYS: Final = frozenset(
    {
        "start",
        "end",
        "unavailable_tweet_ids",
        "unsupported_for_video_views_tweet_ids",
        "unsupported_for_impressions_engagements_tweet_ids",
        "errors",
    }
)
# What a Post's value is called when its grouping has no engagement.type level (e.g. group_by ["tweet.id"]).
ALL_TYPES_METRIC: Final = "total"

_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR_KEY = re.compile(r"^(?:[01]\d|2[0-3])$")
_DIGITS_KEY = re.compile(r"^\d{1,19}$")


def parse_response(body: Any, group_by: Mapping[str, Sequence[str]] | None = None) -> ParsedResponse:
    """Normalize one decoded JSON answer.

    `group_by` maps the grouping names sent in the request to their `group_by` lists; groupings it does
    not know are read by key shape alone. Raises MalformedResponse when the body is not the documented form.
    """
    if not isinstance(body, Mapping):
        raise MalformedResponse(f"expected a JSON object, got {type(body).__name__}")
    parsed = ParsedResponse(
        start=_parse_instant(body.get("start"), "start"),
        end=_parse_instant(body.get("end"), "end"),
        unavailable_tweet_ids=_id_list(body, "unavailable_tweet_ids"),
        unsupported_for_video_views_tweet_ids=_id_list(body, "unsupported_for_video_views_tweet_ids"),
        unsupported_for_impressions_engagements_tweet_ids=_id_list(
            body, "unsupported_for_impressions_engagements_tweet_ids"
        ),
        errors=_error_list(body.get("errors")),
    )
    known = group_by or {}
    for name, tree in body.items():
        if name in RESERVED_KEYS:
            continue
        if not isinstance(tree, Mapping):
            raise MalformedResponse(f"grouping {name!r} is a {type(tree).__name__}, not an object")
        levels = list(known.get(name, ()))
        leaves: list[tuple[_Context, int]] = []
        _walk(tree, levels, (None, None, None, None), leaves, path=name)
        _store_grouping(parsed, name, levels, leaves)
    return parsed


def parse_int(value: Any, where: str = "value") -> int:
    """An API count: an integer string ("530"), or a bare number (trap 3), never a bool or a fraction."""
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)  # the common case, kept cheap: answers carry tens of thousands of values
    if isinstance(value, bool):
        raise MalformedResponse(f"{where}: expected a count, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise MalformedResponse(f"{where}: expected a count, got {value!r}")


# A leaf's context: (tweet id, metric, day, hour), None where the grouping has no such level.
_Context = tuple[str | None, ...]  # always 4 slots
_SLOT: Final = {TWEET_ID: 0, ENGAGEMENT_TYPE: 1, ENGAGEMENT_DAY: 2, ENGAGEMENT_HOUR: 3}


def _walk(
    node: Mapping[str, Any],
    remaining: list[str],
    context: _Context,
    leaves: list[tuple[_Context, int]],
    path: str,
) -> None:
    """Depth-first walk; each leaf is recorded with the (id, metric, day, hour) context leading to it."""
    level = _classify_level(list(node.keys()), remaining, context, path)
    rest = [name for name in remaining if name != level]
    slot = _SLOT[level]
    for key, child in node.items():
        here = (*context[:slot], str(key), *context[slot + 1 :])
        if type(child) is str or type(child) is int:  # the common leaf, checked without ABC machinery
            leaves.append((here, parse_int(child, path)))
        elif isinstance(child, Mapping):
            _walk(child, rest, here, leaves, f"{path}/{key}")
        elif isinstance(child, list | tuple):
            raise MalformedResponse(f"{path}/{key}: unexpected array")
        else:
            leaves.append((here, parse_int(child, f"{path}/{key}")))


def _classify_level(keys: list[str], remaining: list[str], context: _Context, path: str) -> str:
    """Which of tweet.id / engagement.type / engagement.day / engagement.hour these keys are."""
    if not keys:
        return remaining[0] if remaining else ENGAGEMENT_TYPE
    if all(isinstance(k, str) and _DATE_KEY.match(k) for k in keys):
        return ENGAGEMENT_DAY  # even when only engagement.hour was asked (trap 12)
    if not all(isinstance(k, str) and _DIGITS_KEY.match(k) for k in keys):
        if context[1] is not None:
            raise MalformedResponse(f"{path}: cannot tell what level keys {keys[:3]} are")
        return ENGAGEMENT_TYPE  # metric names, including ones the catalog does not know
    could_be_hour = context[3] is None and all(_HOUR_KEY.match(k) for k in keys)
    could_be_id = context[0] is None
    if could_be_hour and could_be_id:
        # Both fit: trust the request's order, then the shape (hours live under a day).
        for name in remaining:
            if name in (TWEET_ID, ENGAGEMENT_HOUR):
                return name
        return ENGAGEMENT_HOUR if context[2] is not None else TWEET_ID
    if could_be_id:
        return TWEET_ID
    if could_be_hour:
        return ENGAGEMENT_HOUR
    raise MalformedResponse(f"{path}: all-digit keys {keys[:3]} are neither a Tweet id nor an hour level")


def _store_grouping(parsed: ParsedResponse, name: str, levels: list[str], leaves: list[tuple[_Context, int]]) -> None:
    has_ids = any(ctx[0] is not None for ctx, _ in leaves) or (not leaves and TWEET_ID in levels)
    if not has_ids:
        flat = parsed.aggregates.setdefault(name, {})
        for ctx, value in leaves:
            flat["/".join(part for part in ctx if part is not None)] = value
        return
    posts = parsed.posts
    for (tweet_id, metric, day, hour), value in leaves:
        if tweet_id is None:
            raise MalformedResponse(f"grouping {name!r} mixes levels with and without Tweet ids")
        post = posts.get(tweet_id)
        if post is None:
            post = posts[tweet_id] = PostMetrics(tweet_id=tweet_id)
        metric = metric or ALL_TYPES_METRIC
        if hour is not None:
            if day is None:
                raise MalformedResponse(f"grouping {name!r}: hour {hour} of Post {tweet_id} has no day")
            post.hourly.setdefault(_hour_start(day, hour), {})[metric] = value
        elif day is not None:
            _check_day(day)
            post.daily.setdefault(day, {})[metric] = value
        else:
            post.totals[metric] = value


@lru_cache(maxsize=4096)
def _hour_start(day: str, hour: str) -> datetime:
    return datetime.combine(_check_day(day), time(int(hour)), tzinfo=UTC)


def _check_day(day: str) -> date:
    try:
        return date.fromisoformat(day)
    except ValueError as exc:
        raise MalformedResponse(f"{day!r} is not a calendar day") from exc


def _parse_instant(value: Any, field: str) -> datetime | None:
    """`start`/`end`: "2015-08-01T00:00:00Z" or a date-only "2015-08-01", as aware UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"{field}: expected a timestamp string, got {value!r}")
    text = value.strip()
    try:
        if _DATE_KEY.match(text):
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedResponse(f"{field}: {value!r} is not an ISO-8601 timestamp") from exc
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _id_list(body: Mapping[str, Any], field: str) -> list[str]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise MalformedResponse(f"{field}: expected an array of ids, got {value!r}")
    return [str(item) for item in value]


def _error_list(value: Any) -> list[str]:
    """`errors` is an array of strings; tolerate a lone string or v1.1-style {"message": ...} objects."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    return [str(item.get("message", item)) if isinstance(item, Mapping) else str(item) for item in items]
