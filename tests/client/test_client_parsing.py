"""parse_response: the documented answers, any grouping order/name, both value forms, trap 12."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from xengage.api_client import MalformedResponse, parse_response
from xengage.api_client.parsing import ALL_TYPES_METRIC

TS_GROUP_BY = ["tweet.id", "engagement.type", "engagement.day", "engagement.hour"]


def test_totals_public_metrics_example_is_read_per_post_and_metric() -> None:
    # Given the documented /totals public-metrics answer (values as integer strings)
    body = {
        "perTweetMetricsUnowned": {
            "1021817816134156288": {"favorites": "530", "quote_tweets": "79", "replies": "147", "retweets": "323"},
            "1067094924124872705": {"favorites": "1360", "video_views": "5754512"},
        }
    }
    # When it is parsed with the grouping the request used
    parsed = parse_response(body, {"perTweetMetricsUnowned": ["tweet.id", "engagement.type"]})
    # Then every Post holds its totals as ints and nothing is hourly
    assert parsed.posts["1021817816134156288"].totals == {
        "favorites": 530,
        "quote_tweets": 79,
        "replies": 147,
        "retweets": 323,
    }
    assert parsed.posts["1067094924124872705"].totals["video_views"] == 5754512
    assert all(not post.hourly for post in parsed.posts.values())


def test_28hr_example_becomes_aware_utc_hour_starts_with_start_end_carried() -> None:
    # Given a /28hr answer spanning two days, as in the docs' example
    body = {
        "start": "2015-09-14T17:00:00Z",
        "end": "2015-09-15T22:00:00Z",
        "hourly-time-series": {
            "123456789": {
                "impressions": {"2015-09-14": {"17": "551", "23": "6"}, "2015-09-15": {"00": "5", "21": "0"}},
                "engagements": {"2015-09-14": {"17": "0"}},
            }
        },
    }
    # When parsed
    parsed = parse_response(body, {"hourly-time-series": TS_GROUP_BY})
    # Then hour keys are aware datetimes of the hour start and start/end are aware instants
    post = parsed.posts["123456789"]
    assert post.hourly[datetime(2015, 9, 14, 17, tzinfo=UTC)] == {"impressions": 551, "engagements": 0}
    assert post.hourly[datetime(2015, 9, 15, 0, tzinfo=UTC)] == {"impressions": 5}
    assert len(post.hourly) == 4
    assert parsed.start == datetime(2015, 9, 14, 17, tzinfo=UTC)
    assert parsed.end == datetime(2015, 9, 15, 22, tzinfo=UTC)


def test_day_level_above_hour_when_only_hour_was_asked_trap_12() -> None:
    # Given the groupings-guide answer to ["tweet.id","engagement.type","engagement.hour"] that still nests days
    body = {
        "Tweets_MetricType_TimeSeries": {
            "697506383516729344": {
                "impressions": {"2016-02-10": {"17": "551", "18": "412"}},
                "engagements": {"2016-02-10": {"17": "8"}},
            }
        }
    }
    # When parsed with the three-level group_by the request sent
    parsed = parse_response(body, {"Tweets_MetricType_TimeSeries": ["tweet.id", "engagement.type", "engagement.hour"]})
    # Then the day level is recognised and hours land on the right day
    hourly = parsed.posts["697506383516729344"].hourly
    assert hourly[datetime(2016, 2, 10, 17, tzinfo=UTC)] == {"impressions": 551, "engagements": 8}
    assert hourly[datetime(2016, 2, 10, 18, tzinfo=UTC)] == {"impressions": 412}


def test_unavailable_example_with_bare_number_and_lists_are_carried() -> None:
    # Given the /28hr "Unavailable Tweet IDs" example, whose retweets is a bare number (trap 3)
    body = {
        "start": "2015-11-17T22:00:00Z",
        "end": "2015-11-19T02:27:50Z",
        "unavailable_tweet_ids": ["323456789"],
        "unsupported_for_video_views_tweet_ids": ["479311209565413376"],
        "unsupported_for_impressions_engagements_tweet_ids": [477139122520219648],
        "errors": ["1 Tweet ID(s) are unavailable"],
        "group1": {"423456789": {"favorites": "67", "replies": "8", "retweets": 26}},
    }
    # When parsed without knowing the grouping
    parsed = parse_response(body)
    # Then values of both forms are ints and every list is carried as strings
    assert parsed.posts["423456789"].totals == {"favorites": 67, "replies": 8, "retweets": 26}
    assert parsed.unavailable_tweet_ids == ["323456789"]
    assert parsed.unsupported_for_video_views_tweet_ids == ["479311209565413376"]
    assert parsed.unsupported_for_impressions_engagements_tweet_ids == ["477139122520219648"]
    assert parsed.errors == ["1 Tweet ID(s) are unavailable"]
    assert parsed.end == datetime(2015, 11, 19, 2, 27, 50, tzinfo=UTC)


def test_grouping_without_tweet_id_goes_to_aggregates() -> None:
    # Given the "Grand Totals" answer grouped by engagement.type only, next to a per-Post grouping
    body = {
        "Grand Totals": {"favorites": "12", "replies": "2"},
        "by type and day": {"favorites": {"2016-02-10": "5"}},
        "per": {"1": {"favorites": "12"}},
    }
    # When parsed
    parsed = parse_response(body, {"Grand Totals": ["engagement.type"]})
    # Then id-less groupings are flattened into aggregates and the other into posts
    assert parsed.aggregates == {
        "Grand Totals": {"favorites": 12, "replies": 2},
        "by type and day": {"favorites/2016-02-10": 5},
    }
    assert parsed.posts["1"].totals == {"favorites": 12}


def test_type_first_order_and_unknown_metric_names_are_kept() -> None:
    # Given the second allowed 4-item order, with a metric the catalog does not know
    body = {
        "g": {"brand_new_metric": {"20": {"2026-11-24": {"23": "4"}}}, "impressions": {"20": {"2026-11-24": {"23": 7}}}}
    }
    # When parsed without the request's group_by
    parsed = parse_response(body)
    # Then the id level is told from the hour level by position (below a metric, above the day)
    assert parsed.posts["20"].hourly == {
        datetime(2026, 11, 24, 23, tzinfo=UTC): {"brand_new_metric": 4, "impressions": 7}
    }


def test_short_numeric_id_under_known_group_by_is_an_id_not_an_hour() -> None:
    # Given a Post whose id is two digits, grouped id first
    parsed = parse_response(
        {"g": {"12": {"2026-11-24": {"impressions": {"05": "3"}}}}},
        {"g": ["tweet.id", "engagement.day", "engagement.type", "engagement.hour"]},
    )
    # Then "12" is the Post and "05" is the hour
    assert parsed.posts["12"].hourly == {datetime(2026, 11, 24, 5, tzinfo=UTC): {"impressions": 3}}


def test_day_without_hour_goes_to_daily_and_id_without_type_to_total() -> None:
    parsed = parse_response({"d": {"9": {"favorites": {"2026-11-24": "3"}}}, "t": {"8": "41"}})
    assert parsed.posts["9"].daily == {"2026-11-24": {"favorites": 3}}
    assert parsed.posts["8"].totals == {ALL_TYPES_METRIC: 41}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"g": "not an object"},
        {"g": {"1": {"favorites": "many"}}},
        {"g": {"1": {"favorites": True}}},
        {"g": {"1": {"favorites": 1.5}}},
        {"g": {"1": {"favorites": ["1"]}}},
        {"start": "yesterday"},
        {"unavailable_tweet_ids": "1"},
        {"g": {"1": {"impressions": {"2026-02-30": {"01": "1"}}}}},
    ],
)
def test_bodies_that_are_not_the_documented_form_raise_malformed(body: object) -> None:
    with pytest.raises(MalformedResponse):
        parse_response(body)


def test_error_strings_and_date_only_start_are_normalized() -> None:
    parsed = parse_response({"start": "2015-08-01", "errors": "internal server error"})
    assert parsed.start == datetime(2015, 8, 1, tzinfo=UTC)
    assert parsed.errors == ["internal server error"]
    assert parsed.posts == {}
