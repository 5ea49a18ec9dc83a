"""Request-body validation of the three data endpoints, over real HTTP (reference doc section 2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from local.emulator import snowflake_for
from tests.emulator.support import BRAND_USER_ID, NOW, PER_TWEET, Api

HOURLY = {"hourly": {"group_by": ["tweet.id", "engagement.type", "engagement.day", "engagement.hour"]}}


def _error(response: Any) -> str:
    body = response.json()
    assert set(body) == {"errors"}
    assert all(isinstance(message, str) for message in body["errors"])
    return " ".join(body["errors"])


@pytest.mark.parametrize(
    ("raw_body", "expected"),
    [
        ("{not json", "Invalid JSON"),
        ("", "JSON object"),
        ('["a list"]', "JSON object"),
    ],
)
def test_unparseable_or_non_object_bodies_are_400(api: Api, raw_body: str, expected: str) -> None:
    # Given a body that is not a JSON object / When posted with valid OAuth / Then 400 naming the problem
    response = api.post("totals", raw_body, auth=api.oauth(BRAND_USER_ID), headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert expected in _error(response)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"engagement_types": ["favorites"], "groupings": PER_TWEET}, "tweet_ids is required"),
        ({"tweet_ids": [], "engagement_types": ["favorites"], "groupings": PER_TWEET}, "tweet_ids is required"),
        ({"tweet_ids": ["1"], "groupings": PER_TWEET}, "engagement_types is required"),
        ({"tweet_ids": ["1"], "engagement_types": ["favorites"]}, "groupings is required"),
        ({"tweet_ids": [1021817816134156288], "engagement_types": ["favorites"], "groupings": PER_TWEET}, "strings"),
        ({"tweet_ids": ["12a4"], "engagement_types": ["favorites"], "groupings": PER_TWEET}, "'12a4'"),
    ],
)
def test_missing_or_mistyped_fields_are_400(api: Api, body: dict[str, Any], expected: str) -> None:
    # Given a body missing a field or with ids that are not digit strings (doc trap 2: integer ids)
    # When posted / Then 400 with a message naming the field
    response = api.post("totals", body, auth=api.oauth(BRAND_USER_ID))
    assert response.status_code == 400
    assert expected in _error(response)


@pytest.mark.parametrize(("endpoint", "limit"), [("totals", 250), ("28hr", 25), ("historical", 25)])
def test_id_count_limit_per_endpoint(api: Api, endpoint: str, limit: int) -> None:
    # Given ids that belong to nobody (so they only come back as unavailable)
    ids = [snowflake_for(NOW - timedelta(days=1), sequence=100 + i) for i in range(limit + 1)]
    auth = api.oauth(BRAND_USER_ID)
    metrics = ["favorites"]
    # When exactly the limit is sent / Then it is accepted
    accepted = api.query(endpoint, ids[:limit], metrics, auth=auth)
    assert accepted.status_code == 200
    assert len(accepted.json()["unavailable_tweet_ids"]) == limit
    # When one more is sent / Then 400 naming the count and the maximum
    rejected = api.query(endpoint, ids, metrics, auth=auth)
    assert rejected.status_code == 400
    assert f"{limit + 1} (max {limit})" in _error(rejected)


@pytest.mark.parametrize(
    ("endpoint", "metric"),
    [("totals", "url_clicks"), ("totals", "media_views"), ("28hr", "quote_tweets"), ("historical", "bogus")],
)
def test_engagement_types_must_be_known_for_the_endpoint(api: Api, endpoint: str, metric: str) -> None:
    # Given a metric that endpoint does not serve / When requested / Then 400 naming it
    tweet_id = api.ids(BRAND_USER_ID)[0]
    response = api.query(endpoint, [tweet_id], ["impressions", metric], auth=api.oauth(BRAND_USER_ID))
    assert response.status_code == 400
    assert metric in _error(response)


@pytest.mark.parametrize(
    ("endpoint", "groupings", "expected"),
    [
        ("totals", {"g": {"group_by": ["tweet.id", "engagement.hour"]}}, "engagement.hour"),
        ("totals", {"g": {"group_by": ["Tweet.id", "engagement.type"]}}, "Tweet.id"),
        ("28hr", {"g": {"group_by": []}}, "non-empty group_by"),
        ("28hr", {"g": {"by": ["tweet.id"]}}, "non-empty group_by"),
        ("28hr", {"g": {"group_by": ["tweet.id", "tweet.id"]}}, "repeats"),
        ("28hr", {f"g{i}": {"group_by": ["tweet.id"]} for i in range(4)}, "Too many groupings: 4 (max 3)"),
        (
            "28hr",
            {"g": {"group_by": ["engagement.day", "engagement.hour", "tweet.id", "engagement.type"]}},
            "4-item group_by",
        ),
        (
            "historical",
            {
                "a": {"group_by": ["tweet.id", "engagement.type", "engagement.day", "engagement.hour"]},
                "b": {"group_by": ["engagement.type", "tweet.id", "engagement.day", "engagement.hour"]},
            },
            "Only one grouping with 4 group_by items",
        ),
    ],
)
def test_grouping_rules(api: Api, endpoint: str, groupings: dict[str, Any], expected: str) -> None:
    # Given a grouping that breaks a documented rule / When requested / Then 400 naming the rule
    tweet_id = api.ids(BRAND_USER_ID)[0]
    response = api.query(endpoint, [tweet_id], ["impressions"], groupings, auth=api.oauth(BRAND_USER_ID))
    assert response.status_code == 400
    assert expected in _error(response)


@pytest.mark.parametrize(
    "group_by",
    [
        ["tweet.id", "engagement.type", "engagement.day", "engagement.hour"],
        ["engagement.type", "tweet.id", "engagement.day", "engagement.hour"],
    ],
)
def test_both_allowed_four_item_orders_are_accepted(api: Api, group_by: list[str]) -> None:
    # Given one of the two documented 4-item orders plus two smaller groupings (3 in all)
    groupings = {
        "four": {"group_by": group_by},
        "ids": {"group_by": ["tweet.id"]},
        "t": {"group_by": ["engagement.type"]},
    }
    tweet_id = api.ids(BRAND_USER_ID)[0]
    # When requested / Then 200 with all three groupings present
    response = api.query("28hr", [tweet_id], ["impressions"], groupings, auth=api.oauth(BRAND_USER_ID))
    assert response.status_code == 200
    assert {"four", "ids", "t"} <= set(response.json())


def _historical(api: Api, **window: Any) -> Any:
    body = {"tweet_ids": api.ids(BRAND_USER_ID)[:1], "engagement_types": ["impressions"], "groupings": HOURLY, **window}
    return api.post("historical", body, auth=api.oauth(BRAND_USER_ID))


def test_historical_rounds_to_the_inclusive_hour(api: Api) -> None:
    # Given the documented example's minute offsets (start 12:24, end 08:37)
    start = (NOW - timedelta(days=9)).replace(hour=12, minute=24)
    end = (NOW - timedelta(days=1)).replace(hour=8, minute=37)
    # When requested / Then start is floored and end ceiled, exactly like the doc's example
    body = _historical(api, start=start.strftime("%Y-%m-%dT%H:%M:%SZ"), end=end.strftime("%Y-%m-%dT%H:%M:%SZ")).json()
    assert body["start"] == start.replace(minute=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["end"] == end.replace(hour=9, minute=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_historical_accepts_date_only_values(api: Api) -> None:
    # Given date-only start/end like the doc's example request
    start, end = (NOW - timedelta(days=20)).date(), (NOW - timedelta(days=6)).date()
    # When requested / Then the response echoes midnight UTC for both, and buckets cover the window
    body = _historical(api, start=start.isoformat(), end=end.isoformat()).json()
    assert body["start"] == f"{start.isoformat()}T00:00:00Z"
    assert body["end"] == f"{end.isoformat()}T00:00:00Z"
    buckets = next(iter(body["hourly"].values()))["impressions"]
    assert sum(len(hours) for hours in buckets.values()) == 14 * 24


def test_historical_defaults_to_the_previous_four_weeks(api: Api) -> None:
    # Given no start or end / When requested / Then the window is the 4 weeks up to now's hour (ceiled)
    body = _historical(api).json()
    end = NOW.replace(minute=0) + timedelta(hours=1)
    assert body["end"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["start"] == (end - timedelta(weeks=4)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"end": (NOW + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")}, "in the future"),
        (
            {
                "start": (NOW - timedelta(days=370)).strftime("%Y-%m-%d"),
                "end": (NOW - timedelta(days=360)).strftime("%Y-%m-%d"),
            },
            "365 days",
        ),
        (
            {
                "start": (NOW - timedelta(days=40)).strftime("%Y-%m-%d"),
                "end": (NOW - timedelta(days=5)).strftime("%Y-%m-%d"),
            },
            "longer than 4 weeks",
        ),
        ({"start": "2026-06-10", "end": "2026-06-01"}, "must be before end"),
        ({"start": "yesterday"}, "is not YYYY-MM-DD"),
        ({"start": 20260601}, "must be a string"),
    ],
)
def test_historical_window_rules(api: Api, window: dict[str, Any], expected: str) -> None:
    # Given a window the API refuses / When requested / Then 400 naming the rule
    response = _historical(api, **window)
    assert response.status_code == 400
    assert expected in _error(response)


def test_historical_start_in_the_hour_of_the_365_day_mark_is_accepted(api: Api) -> None:
    # Given a start 365 days back with minutes, whose floored hour reaches a little past the mark
    start = NOW - timedelta(days=365) + timedelta(minutes=1)
    end = start + timedelta(days=7)
    # When requested / Then it is served from the floored hour
    response = _historical(api, start=start.strftime("%Y-%m-%dT%H:%M:%SZ"), end=end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert response.status_code == 200
    assert response.json()["start"] == start.replace(minute=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_28hr_window_is_hour_aligned_with_29_buckets(api: Api) -> None:
    # Given the emulator clock at 12:30 / When /28hr is requested
    tweet_id = api.ids(BRAND_USER_ID)[0]
    body = api.query("28hr", [tweet_id], ["impressions"], HOURLY, auth=api.oauth(BRAND_USER_ID)).json()
    # Then start is 28 hours before 12:00 and end is 13:00: 29 hourly buckets, like the doc's example
    assert body["start"] == (NOW.replace(minute=0) - timedelta(hours=28)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["end"] == (NOW.replace(minute=0) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    buckets = body["hourly"][tweet_id]["impressions"]
    assert sum(len(hours) for hours in buckets.values()) == 29
