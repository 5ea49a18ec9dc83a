"""Request shaping before any call: ids, metrics, batches, /historical windows and bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from xengage.api_client import Endpoint, RequestValidationError
from xengage.api_client.batching import (
    CLOCK_SKEW_ALLOWANCE,
    batches,
    build_body,
    historical_windows,
    normalize_tweet_ids,
    resolve_metrics,
)
from xengage.api_client.catalog import PUBLIC_TOTALS_METRICS, TIME_SERIES_METRICS, TOTALS_METRICS

NOW = datetime(2026, 11, 25, 18, 20, 30, tzinfo=UTC)


def test_ids_become_strings_deduplicated_in_first_seen_order() -> None:
    # Given ids as strings and ints with duplicates and stray whitespace
    ids = normalize_tweet_ids(["30", 10, " 20 ", "10", 30, "1021817816134156288"])
    # Then they are unique strings in the order first seen
    assert ids == ["30", "10", "20", "1021817816134156288"]


@pytest.mark.parametrize("bad", ["12a", "", "12345678901234567890", "-5", True, 1.5, None])
def test_invalid_ids_are_refused_by_name(bad: object) -> None:
    with pytest.raises(RequestValidationError, match="invalid Tweet id"):
        normalize_tweet_ids(["1", bad])  # type: ignore[list-item]


def test_empty_or_single_string_id_lists_are_refused() -> None:
    with pytest.raises(RequestValidationError, match="empty"):
        normalize_tweet_ids([])
    with pytest.raises(RequestValidationError, match="not a single string"):
        normalize_tweet_ids("123")


def test_default_metrics_follow_endpoint_and_user_context() -> None:
    assert resolve_metrics(Endpoint.TOTALS, None, has_user=False) == list(PUBLIC_TOTALS_METRICS)
    assert resolve_metrics(Endpoint.TOTALS, None, has_user=True) == list(TOTALS_METRICS)
    assert resolve_metrics(Endpoint.HISTORICAL, None, has_user=True) == list(TIME_SERIES_METRICS)


def test_metrics_an_endpoint_does_not_serve_are_refused_by_name() -> None:
    with pytest.raises(RequestValidationError, match="'url_clicks'"):
        resolve_metrics(Endpoint.TOTALS, ["favorites", "url_clicks"], has_user=True)
    with pytest.raises(RequestValidationError, match="'quote_tweets'"):
        resolve_metrics(Endpoint.HOURLY_28HR, ["quote_tweets"], has_user=True)
    assert resolve_metrics(Endpoint.TOTALS, ["replies", "replies"], has_user=False) == ["replies"]


def test_batches_are_consecutive_and_bounded() -> None:
    ids = [str(i) for i in range(1, 552)]
    chunks = batches(ids, 250)
    assert [len(c) for c in chunks] == [250, 250, 51]
    assert [i for c in chunks for i in c] == ids


def test_body_has_string_ids_metrics_and_the_per_tweet_grouping() -> None:
    totals = build_body(Endpoint.TOTALS, ["1", "2"], ["favorites"])
    assert totals == {
        "tweet_ids": ["1", "2"],
        "engagement_types": ["favorites"],
        "groupings": {"per_tweet": {"group_by": ["tweet.id", "engagement.type"]}},
    }
    window = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC))
    historical = build_body(Endpoint.HISTORICAL, ["1"], ["impressions"], window)
    assert historical["groupings"]["per_tweet"]["group_by"] == [
        "tweet.id",
        "engagement.type",
        "engagement.day",
        "engagement.hour",
    ]
    assert (historical["start"], historical["end"]) == ("2026-11-01T00:00:00Z", "2026-11-02T05:00:00Z")
    with pytest.raises(RequestValidationError, match="at most 25"):
        build_body(Endpoint.HOURLY_28HR, [str(i) for i in range(1, 27)], ["impressions"])


def test_no_range_means_the_previous_four_weeks() -> None:
    windows = historical_windows(None, None, now=NOW)
    assert windows == [(datetime(2026, 10, 28, 18, tzinfo=UTC), datetime(2026, 11, 25, 18, tzinfo=UTC))]


def test_ranges_are_hour_aligned_and_split_in_windows_of_at_most_four_weeks() -> None:
    # Given 70 days and a bit, with minutes on both ends
    start = datetime(2026, 9, 1, 12, 24, tzinfo=UTC)
    end = datetime(2026, 11, 10, 8, 37, tzinfo=UTC)
    # When windowed
    windows = historical_windows(start, end, now=NOW)
    # Then start is floored, end ceiled, windows are contiguous and none is longer than 28 days
    assert windows[0][0] == datetime(2026, 9, 1, 12, tzinfo=UTC)
    assert windows[-1][1] == datetime(2026, 11, 10, 9, tzinfo=UTC)
    assert all(b - a <= timedelta(weeks=4) for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(len(windows) - 1))
    assert len(windows) == 3


def test_other_time_zones_are_converted_to_utc_before_rounding() -> None:
    plus_half = timezone(timedelta(hours=5, minutes=30))
    windows = historical_windows(
        datetime(2026, 11, 20, 10, 0, tzinfo=plus_half), datetime(2026, 11, 21, tzinfo=UTC), now=NOW
    )
    assert windows[0][0] == datetime(2026, 11, 20, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (NOW - timedelta(days=366), NOW - timedelta(days=360), "older than 365 days"),
        (NOW - timedelta(days=1), NOW + timedelta(hours=2), "in the future"),
        (NOW - timedelta(days=1), NOW - timedelta(days=2), "before end"),
        (datetime(2026, 11, 1), None, "timezone-aware"),
    ],
)
def test_out_of_range_windows_are_refused_with_a_clear_message(
    start: datetime, end: datetime | None, message: str
) -> None:
    with pytest.raises(RequestValidationError, match=message):
        historical_windows(start, end, now=NOW)


def test_an_end_in_the_current_hour_is_sent_as_now_never_as_a_future_hour() -> None:
    # Given a range ending a few minutes ago, inside the current hour
    windows = historical_windows(NOW - timedelta(days=2), NOW - timedelta(minutes=5), now=NOW)
    # Then the last window ends just before now (whole seconds), not at the next full hour
    assert windows[-1][1] == NOW - CLOCK_SKEW_ALLOWANCE
    assert windows[0][0] == datetime(2026, 11, 23, 18, tzinfo=UTC)


def test_a_start_whose_hour_floor_crosses_the_365_day_limit_is_refused() -> None:
    with pytest.raises(RequestValidationError, match="older than 365 days"):
        historical_windows(NOW - timedelta(days=365) + timedelta(minutes=10), None, now=NOW)
