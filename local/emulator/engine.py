"""What a data call answers, once the caller is known: access rules, age rules and the grouped numbers.

Transport-free, so the HTTP handler stays thin and the rules can be read in one place (reference doc
sections 3-5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from xengage.api_client.catalog import (
    IMPRESSIONS_MAX_AGE,
    PUBLIC_TOTALS_METRICS,
    VIDEO_VIEWS_MAX_AGE,
    Endpoint,
)

from .metrics import cumulative, hourly_series_by_metric, stable_unit
from .query import ApiError, Query, iso_utc
from .world import Post, PostState, User, World

AuthKind = Literal["bearer", "oauth1", "none"]
TWEET_ID, ENGAGEMENT_TYPE, DAY, HOUR_LEVEL = "tweet.id", "engagement.type", "engagement.day", "engagement.hour"
_TIME_LEVELS = (DAY, HOUR_LEVEL)
_AGE_LIMITED_ON_TOTALS = ("impressions", "engagements")


@dataclass(frozen=True, slots=True)
class Caller:
    kind: AuthKind
    user: User | None = None  # the access token's owner for oauth1


@dataclass(slots=True)
class _Series:
    """Every (tweet id, metric, values) the answer groups, and the Posts refused a metric for their age."""

    rows: list[tuple[str, str, list[int]]]
    too_old_for_impressions: list[str]
    too_old_for_video: list[str]


def answer(world: World, query: Query, caller: Caller, now: datetime, bare_number_share: float = 0.0) -> dict[str, Any]:
    """The 200 body for `query`, or ApiError for the whole-request failures (403 / 400)."""
    unavailable, live = _readable_posts(world, query, caller)
    body: dict[str, Any] = {}
    if query.start is not None and query.end is not None:
        body["start"] = iso_utc(query.start)
        body["end"] = iso_utc(query.end)
    series = _series(live, query, now)
    labels = _bucket_labels(query.start, query.end) if query.start is not None else None
    render = _renderer(bare_number_share)
    for name, group_by in query.groupings.items():
        levels = _levels(group_by, labels is not None)
        if bare_number_share == 0 and _one_series_per_leaf(levels):
            body[name] = build_grouping(levels, series.rows, labels, text_leaves=True)  # skips a second pass
        else:
            body[name] = render(build_grouping(levels, series.rows, labels), name)
    if unavailable:
        body["unavailable_tweet_ids"] = unavailable
    _add_unsupported(body, series, now)
    return body


def _readable_posts(world: World, query: Query, caller: Caller) -> tuple[list[str], list[Post]]:
    """(ids unavailable, Posts to answer for), or the 403 / 400 that refuses the whole request."""
    if caller.kind == "bearer":
        private = [m for m in query.engagement_types if m not in PUBLIC_TOTALS_METRICS]
        if private:
            raise ApiError(403, f"Forbidden to access metrics: {', '.join(private)}")
    posts = [world.posts.get(tweet_id) for tweet_id in query.tweet_ids]
    unavailable = [tid for tid, post in zip(query.tweet_ids, posts, strict=True) if _is_gone(post)]
    live = [post for post in posts if post is not None and not _is_gone(post)]
    if caller.kind == "oauth1" and caller.user is not None:
        foreign = [post.tweet_id for post in live if post.owner_id != caller.user.user_id]
        if foreign:
            raise ApiError(403, f"Forbidden to access tweets: {', '.join(foreign)}")
    if any(post.state is PostState.PROTECTED for post in live):
        raise ApiError(400, "Tweet ID(s) are unavailable")  # deliberately names no id: the client must bisect
    return unavailable, live


def _series(live: list[Post], query: Query, now: datetime) -> _Series:
    series = _Series(rows=[], too_old_for_impressions=[], too_old_for_video=[])
    for post in live:
        age = now - post.created_at
        metrics = list(query.engagement_types)
        limited = [m for m in metrics if m in _AGE_LIMITED_ON_TOTALS]
        if query.endpoint is Endpoint.TOTALS and age > IMPRESSIONS_MAX_AGE and limited:
            series.too_old_for_impressions.append(post.tweet_id)
            metrics = [m for m in metrics if m not in _AGE_LIMITED_ON_TOTALS]
        video_too_old = age > VIDEO_VIEWS_MAX_AGE and "video_views" in metrics
        if video_too_old:
            series.too_old_for_video.append(post.tweet_id)
        values = _values(post, metrics, query, now)
        if video_too_old:
            # Listed as unsupported but still present as "0", exactly like the documented example.
            values["video_views"] = [0] * len(values["video_views"])
        series.rows.extend((post.tweet_id, metric, values[metric]) for metric in metrics)
    return series


def _add_unsupported(body: dict[str, Any], series: _Series, now: datetime) -> None:
    if series.too_old_for_video:
        body["unsupported_for_video_views_tweet_ids"] = series.too_old_for_video
    if series.too_old_for_impressions:
        cutoff = iso_utc(now - IMPRESSIONS_MAX_AGE)
        body["errors"] = [
            f"Impressions & engagements for tweets older than 90 days (created before {cutoff}) are not supported"
        ]
        body["unsupported_for_impressions_engagements_tweet_ids"] = series.too_old_for_impressions


def _is_gone(post: Post | None) -> bool:
    return post is None or post.state is PostState.DELETED


def _hours(start: datetime | None, end: datetime | None) -> int:
    assert start is not None and end is not None
    return int((end - start) / timedelta(hours=1))


def _values(post: Post, metrics: list[str], query: Query, now: datetime) -> dict[str, list[int]]:
    """Per metric: [total] for /totals, else one count per hour bucket of the window."""
    if query.start is None:
        return {metric: [cumulative(post, metric, now)] for metric in metrics}
    return hourly_series_by_metric(post, metrics, query.start, _hours(query.start, query.end), now)


def _bucket_labels(start: datetime, end: datetime | None) -> list[tuple[str, str]]:
    moments = [start + timedelta(hours=k) for k in range(_hours(start, end))]
    return [(moment.strftime("%Y-%m-%d"), f"{moment.hour:02d}") for moment in moments]


def _levels(group_by: Sequence[str], time_series: bool) -> tuple[str, ...]:
    """Nesting levels of a grouping; an hour level always sits under a day level (doc trap 12)."""
    levels = [g for g in group_by if time_series or g not in _TIME_LEVELS]
    if HOUR_LEVEL in levels and DAY not in levels:
        levels.insert(levels.index(HOUR_LEVEL), DAY)
    return tuple(levels)


Tree = dict[str, Any]


def _time_suffix(levels: tuple[str, ...]) -> tuple[str, ...] | None:
    """The time levels when they all come after tweet.id / engagement.type, else None."""
    time_levels = tuple(level for level in levels if level in _TIME_LEVELS)
    return time_levels if levels[len(levels) - len(time_levels) :] == time_levels else None


def _one_series_per_leaf(levels: tuple[str, ...]) -> bool:
    """True when no two (Post, metric) series meet in one leaf, so leaves can be rendered as they are built."""
    return TWEET_ID in levels and ENGAGEMENT_TYPE in levels and _time_suffix(levels) is not None


def build_grouping(
    levels: tuple[str, ...],
    series: list[tuple[str, str, list[int]]],
    labels: list[tuple[str, str]] | None,
    *,
    text_leaves: bool = False,
) -> Tree | int:
    """Nest the numbers by `levels`; whatever a level leaves out is summed.

    `text_leaves` renders leaves as integer strings right away; only valid when `_one_series_per_leaf`.
    """
    time_levels = _time_suffix(levels)
    if time_levels is not None:
        prefix = levels[: len(levels) - len(time_levels)]
        return _build_with_time_suffix(prefix, time_levels, series, labels, text_leaves)
    return _build_generic(levels, series, labels)


def _build_with_time_suffix(
    prefix: tuple[str, ...],
    time_levels: tuple[str, ...],
    series: list[tuple[str, str, list[int]]],
    labels: list[tuple[str, str]] | None,
    text_leaves: bool,
) -> Tree | int:
    """Fast path: id/type levels first, then the time levels (every documented shape)."""
    root: Tree = {}
    total = 0
    for tweet_id, metric, values in series:
        subtree = _time_subtree(time_levels, values, labels, text_leaves)
        keys = [tweet_id if level == TWEET_ID else metric for level in prefix]
        if not keys:
            if isinstance(subtree, int):
                total += subtree
            else:
                _merge(root, subtree)
            continue
        node = root
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        last = keys[-1]
        if last not in node:
            node[last] = subtree
        elif isinstance(subtree, int):
            node[last] += subtree
        else:
            _merge(node[last], subtree)
    return total if not prefix and not time_levels else root


def _time_subtree(
    time_levels: tuple[str, ...], values: list[int], labels: list[tuple[str, str]] | None, text_leaves: bool
) -> Any:
    if not time_levels or labels is None:
        return str(sum(values)) if text_leaves else sum(values)
    if time_levels == (DAY,):
        by_day: dict[str, int] = {}
        for (day, _hour), value in zip(labels, values, strict=True):
            by_day[day] = by_day.get(day, 0) + value
        return _as_text(by_day) if text_leaves else by_day
    # Day and hour: every (day, hour) pair is one bucket, so leaves are plain assignments.
    tree: Tree = {}
    outer, inner = (0, 1) if time_levels == (DAY, HOUR_LEVEL) else (1, 0)
    leaf = str if text_leaves else int
    for label, value in zip(labels, values, strict=True):
        tree.setdefault(label[outer], {})[label[inner]] = leaf(value)
    return tree


def _as_text(node: Tree | int) -> Any:
    if isinstance(node, int):
        return str(node)
    return {key: _as_text(child) for key, child in node.items()}


def _merge(into: Tree, other: Tree) -> None:
    for key, value in other.items():
        if key not in into:
            into[key] = value
        elif isinstance(value, dict):
            _merge(into[key], value)
        else:
            into[key] += value


def _build_generic(
    levels: tuple[str, ...], series: list[tuple[str, str, list[int]]], labels: list[tuple[str, str]] | None
) -> Tree:
    """Any other order (a time level above tweet.id / engagement.type): one insertion per bucket."""
    root: Tree = {}
    assert labels is not None
    for tweet_id, metric, values in series:
        for (day, hour), value in zip(labels, values, strict=True):
            parts = {TWEET_ID: tweet_id, ENGAGEMENT_TYPE: metric, DAY: day, HOUR_LEVEL: hour}
            node = root
            for level in levels[:-1]:
                node = node.setdefault(parts[level], {})
            leaf = parts[levels[-1]]
            node[leaf] = node.get(leaf, 0) + value
    return root


def _renderer(bare_number_share: float) -> Callable[[Tree | int, str], Any]:
    """Values go out as integer strings; a share of them as bare numbers (doc trap 3), chosen by a stable hash."""

    def as_string(node: Tree | int, path: str) -> Any:
        if isinstance(node, int):
            return str(node)
        return {key: as_string(child, path) for key, child in node.items()}

    def mixed(node: Tree | int, path: str) -> Any:
        if isinstance(node, int):
            return node if stable_unit(path, "bare") < bare_number_share else str(node)
        return {key: mixed(child, f"{path}/{key}") for key, child in node.items()}

    return mixed if bare_number_share > 0 else as_string
