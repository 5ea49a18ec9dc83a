"""The emulator's world (snowflake ids, demo and generated worlds) and its metric curves."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from local.emulator import PostState, World, created_at_of, default_world, snowflake_for
from local.emulator.engine import Caller, answer
from local.emulator.metrics import cumulative, hourly_series
from local.emulator.query import parse_query
from tests.emulator.support import BRAND_USER_ID, CLIENT_USER_ID, NOW, UNRELATED_USER_ID
from xengage.api_client.catalog import TIME_SERIES_METRICS, Endpoint


def test_snowflake_round_trip_matches_documented_example() -> None:
    # Given the reference doc's example id and its documented creation time
    documented = datetime(2018, 7, 24, 18, 2, 6, 480000, tzinfo=UTC)
    # When we read the id's time and mint an id for that time
    read_back = created_at_of("1021817816134156288")
    minted = snowflake_for(documented, sequence=7)
    # Then both directions agree with the formula created_ms = (id >> 22) + 1288834974657
    assert read_back == documented
    assert created_at_of(minted) == documented
    assert int(minted) & ((1 << 22) - 1) == 7


def test_snowflake_rejects_naive_and_pre_epoch_times() -> None:
    # Given times the snowflake scheme cannot represent / When minting / Then a clear ValueError
    with pytest.raises(ValueError, match="timezone-aware"):
        snowflake_for(datetime(2020, 1, 1))
    with pytest.raises(ValueError, match="2010-11-04"):
        snowflake_for(datetime(2009, 1, 1, tzinfo=UTC))


def test_default_world_has_the_documented_mix() -> None:
    # Given the demo world at a fixed now
    world = default_world(NOW)
    # Then it has the app, three users and about 40 Posts with 2 protected, 2 deleted and some video
    assert world.app.consumer_key.startswith("demo-")
    assert set(world.users) == {BRAND_USER_ID, CLIENT_USER_ID, UNRELATED_USER_ID}
    posts = list(world.posts.values())
    assert 35 <= len(posts) <= 45
    assert sum(p.state is PostState.PROTECTED for p in posts) == 2
    assert sum(p.state is PostState.DELETED for p in posts) == 2
    assert any(p.has_video for p in posts)
    ages = [NOW - p.created_at for p in posts]
    # ages straddle every rule: 28 hours, 90 days, 365 days and 1,800 days
    for threshold in (timedelta(hours=28), timedelta(days=90), timedelta(days=365), timedelta(days=1800)):
        assert any(age < threshold for age in ages) and any(age > threshold for age in ages)
    # (offsets count from now floored to the hour, so the youngest is 1 to 2 hours old)
    assert min(ages) < timedelta(hours=2) and max(ages) >= timedelta(days=2000)


def test_default_world_ids_are_stable_within_the_hour_and_unique() -> None:
    # Given two demo worlds built at different minutes of the same hour
    first = default_world(NOW.replace(minute=1))
    second = default_world(NOW.replace(minute=59))
    # Then their ids are identical, and no id repeats
    assert list(first.posts) == list(second.posts)
    assert len(set(first.posts)) == len(first.posts)


def test_generate_builds_a_large_deterministic_world() -> None:
    # Given two generated worlds with the same arguments
    big = World.generate(users=5, posts_per_user=250, now=NOW, seed=3)
    again = World.generate(users=5, posts_per_user=250, now=NOW, seed=3)
    # Then they hold 1,250 Posts with the same ids, all younger than the default 85 days
    assert len(big.posts) == 1250
    assert list(big.posts) == list(again.posts)
    assert all(NOW - p.created_at < timedelta(days=86) for p in big.posts.values())


def test_cumulative_curve_never_decreases_and_starts_at_zero() -> None:
    # Given a young video Post
    world = default_world(NOW)
    post = next(p for p in world.posts.values() if p.has_video and NOW - p.created_at < timedelta(days=5))
    # When we sample its totals over 60 days
    for metric in TIME_SERIES_METRICS:
        samples = [cumulative(post, metric, post.created_at + timedelta(hours=h)) for h in range(0, 1440, 7)]
        # Then each metric starts at 0 and never goes down
        assert samples[0] == 0
        assert all(a <= b for a, b in itertools.pairwise(samples))
    # and the magnitudes are ordered impressions >> engagements >> url_clicks after a day
    later = post.created_at + timedelta(days=3)
    impressions = cumulative(post, "impressions", later)
    engagements = cumulative(post, "engagements", later)
    assert impressions > 10 * engagements > 0
    assert engagements > cumulative(post, "url_clicks", later)


def test_video_metrics_are_zero_without_video() -> None:
    # Given a Post without video
    world = default_world(NOW)
    post = next(p for p in world.posts.values() if not p.has_video)
    # Then its video metrics stay at zero while impressions grow
    assert cumulative(post, "impressions", NOW) > 0
    assert cumulative(post, "video_views", NOW) == 0
    assert cumulative(post, "media_views", NOW) == 0


def test_hourly_buckets_sum_exactly_to_the_cumulative_difference() -> None:
    # Given every Post of the demo world and a 4-week window ending at a mid-hour now
    world = default_world(NOW)
    start = NOW.replace(minute=0) - timedelta(days=28)
    for post in world.posts.values():
        for metric in ("impressions", "favorites", "video_views"):
            # When we take the hourly series (which stops counting at now)
            series = hourly_series(post, metric, start, 28 * 24 + 1, NOW)
            # Then the buckets are non-negative and add up to C(now) - C(start)
            assert min(series) >= 0
            assert sum(series) == cumulative(post, metric, NOW) - cumulative(post, metric, start)


def test_full_time_series_answer_is_computed_fast() -> None:
    # Given the biggest /historical call: 25 Posts, all 17 metrics, 4 weeks of hours, 4-level grouping
    world = World.generate(users=1, posts_per_user=25, now=NOW)
    owner = next(iter(world.users.values()))
    body = {
        "tweet_ids": list(world.posts),
        "engagement_types": list(TIME_SERIES_METRICS),
        "groupings": {"g": {"group_by": ["tweet.id", "engagement.type", "engagement.day", "engagement.hour"]}},
    }
    query = parse_query(Endpoint.HISTORICAL, json.dumps(body).encode(), NOW)
    # When the answer is computed and encoded (CPU time, so a busy machine does not skew it)
    began = time.process_time()
    answer_body = answer(world, query, Caller("oauth1", owner), NOW)
    encoded = json.dumps(answer_body, separators=(",", ":"))
    elapsed = time.process_time() - began
    # Then all 285,600 hourly values are there, and it took well under a second
    grouping = answer_body["g"]
    assert (
        sum(len(hours) for metrics in grouping.values() for days in metrics.values() for hours in days.values())
        == 25 * 17 * 672
    )
    assert len(encoded) > 1_000_000
    assert elapsed < 1.0
