"""Deterministic engagement numbers: one cumulative curve per (Post, metric).

C(t) = floor(A * (1 - exp(-t / tau)) + B * t) for t hours since creation (0 before). It never decreases,
so /totals (C(now)) grows across calls, and hourly buckets (C(h + 1h) - C(h), clamped at now) always sum
to the totals. A, tau and B come from a stable hash of the tweet id and metric, so every run and every
process agrees on the numbers.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from datetime import datetime, timedelta
from functools import lru_cache

from .world import Post

# Share of the Post's impressions each metric reaches (impressions >> engagements >> clicks).
_RATIO: dict[str, float] = {
    "impressions": 1.0,
    "engagements": 0.03,
    "favorites": 0.012,
    "retweets": 0.003,
    "replies": 0.0015,
    "quote_tweets": 0.0006,
    "url_clicks": 0.004,
    "hashtag_clicks": 0.001,
    "detail_expands": 0.008,
    "permalink_clicks": 0.0008,
    "app_install_attempts": 0.00005,
    "app_opens": 0.0001,
    "email_tweet": 0.00005,
    "user_follows": 0.0003,
    "user_profile_clicks": 0.002,
}
_VIDEO_RATIO: dict[str, tuple[float, float]] = {  # (with video, without video)
    "video_views": (0.35, 0.0),
    "media_views": (0.4, 0.0),
    "media_engagements": (0.01, 0.0),
}
_TAIL_PER_HOUR = 2e-5  # slow linear growth after the burst, relative to the saturation level


def stable_unit(*parts: str) -> float:
    """A stable pseudo-random number in [0, 1) for the given key."""
    digest = hashlib.blake2b("|".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@lru_cache(maxsize=65536)
def curve_parameters(tweet_id: str, metric: str, has_video: bool) -> tuple[float, float, float]:
    """(A saturation level, tau hours, B per-hour tail) for one Post and metric."""
    reach = 2_000.0 * 200.0 ** stable_unit(tweet_id, "reach")  # log-uniform 2k .. 400k impressions
    ratio = _VIDEO_RATIO[metric][0 if has_video else 1] if metric in _VIDEO_RATIO else _RATIO.get(metric, 0.001)
    level = reach * ratio * (0.6 + 0.8 * stable_unit(tweet_id, metric, "jitter"))
    return level, post_tau(tweet_id), level * _TAIL_PER_HOUR


@lru_cache(maxsize=65536)
def post_tau(tweet_id: str) -> float:
    """Hours until a Post's burst is ~63% done; shared by its metrics so a series needs one exp per hour."""
    return 2.0 + 34.0 * stable_unit(tweet_id, "tau")


_MICROS_PER_HOUR = 3_600_000_000
_MICRO = timedelta(microseconds=1)


def cumulative(post: Post, metric: str, at: datetime) -> int:
    """C(at): the metric's count from creation up to `at`."""
    level, tau, tail = curve_parameters(post.tweet_id, metric, post.has_video)
    hours = ((at - post.created_at) // _MICRO) / _MICROS_PER_HOUR
    return math.floor(level * (1.0 - math.exp(-hours / tau)) + tail * hours) if hours > 0 else 0


def hourly_series(post: Post, metric: str, start: datetime, hours: int, now: datetime) -> list[int]:
    """Counts for the hour buckets [start + k h, start + (k+1) h), k < hours; nothing counts after `now`."""
    return hourly_series_by_metric(post, (metric,), start, hours, now)[metric]


def hourly_series_by_metric(
    post: Post, metrics: tuple[str, ...] | list[str], start: datetime, hours: int, now: datetime
) -> dict[str, list[int]]:
    """`hourly_series` for several metrics of one Post, sharing the time grid and the decay term.

    Boundaries use the same integer-microsecond arithmetic and the same float operations as `cumulative`,
    so a window's buckets sum to exactly C(end) - C(start).
    """
    offset = (start - post.created_at) // _MICRO
    limit = (now - post.created_at) // _MICRO
    tau = post_tau(post.tweet_id)
    exp, floor = math.exp, math.floor
    times = [max(0, min(offset + k * _MICROS_PER_HOUR, limit)) / _MICROS_PER_HOUR for k in range(hours + 1)]
    growth = [1.0 - exp(-t / tau) for t in times]
    series: dict[str, list[int]] = {}
    for metric in metrics:
        level, _tau, tail = curve_parameters(post.tweet_id, metric, post.has_video)
        counts = [floor(level * g + tail * t) for g, t in zip(growth, times, strict=True)]
        series[metric] = [after - before for before, after in itertools.pairwise(counts)]
    return series
