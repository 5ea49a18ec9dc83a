"""Daily figures: granularity=day on GET /tweets/{id}/metrics, and GET /accounts/{id}/metrics from the rollups."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from tests.api.conftest import ApiCaller
from tests.api.test_metrics import OTHER, POST, START, hourly
from tests.stack_dal import metrics_dal
from xengage.api_client.catalog import Endpoint
from xengage.timeutil import to_iso

ACCOUNT = "800"
FROM, TO = to_iso(START), to_iso(START + timedelta(hours=47))


def impressions(h: int) -> dict[str, int]:
    return {"impressions": 10 + h, "url_clicks": h % 3}


@pytest.fixture
def two_posts(api: ApiCaller) -> ApiCaller:
    """Account 800 tracks POST and OTHER: 48 /28hr hours each over two UTC days (OTHER's impressions 100 more)."""
    api.put_account(ACCOUNT, "seeded")
    api("POST", "/tweets", body={"tweet_ids": [POST, OTHER], "account_id": ACCOUNT})
    metrics_dal().put_points(
        hourly(POST, Endpoint.HOURLY_28HR, 48, impressions)
        + hourly(OTHER, Endpoint.HOURLY_28HR, 48, lambda h: {"impressions": 110 + h})
    )
    return api


def test_a_posts_day_figures_sum_its_hour_buckets_per_utc_day(two_posts: ApiCaller) -> None:
    # Given 48 hours of POST over 2026-11-20 and 21
    # When its daily figures are read, whole and one day a page
    page = two_posts("GET", f"/tweets/{POST}/metrics", query={"endpoint": "28hr", "granularity": "day"}).json()
    first = two_posts("GET", f"/tweets/{POST}/metrics", query={"endpoint": "28hr", "granularity": "day", "limit": "1"})
    second = two_posts(
        "GET",
        f"/tweets/{POST}/metrics",
        query={"endpoint": "28hr", "granularity": "day", "limit": "1", "cursor": first.json()["next_cursor"]},
    ).json()

    # Then each day is the sum of its 24 hours, at its 00:00, and the pages hold one day each
    day_one = {"impressions": sum(10 + h for h in range(24)), "url_clicks": sum(h % 3 for h in range(24))}
    day_two = {"impressions": sum(10 + h for h in range(24, 48)), "url_clicks": sum(h % 3 for h in range(24, 48))}
    assert page["points"] == [
        {"at": "2026-11-20T00:00:00Z", "metrics": day_one},
        {"at": "2026-11-21T00:00:00Z", "metrics": day_two},
    ]
    assert first.json()["points"] == page["points"][:1] and second["points"] == page["points"][1:]
    assert second["next_cursor"] is None


def test_day_figures_as_csv_with_a_metric_filter(two_posts: ApiCaller) -> None:
    # When the daily impressions are asked as CSV from a time inside the second day
    query = {
        "endpoint": "28hr",
        "granularity": "day",
        "format": "csv",
        "metrics": "impressions",
        "from": to_iso(START + timedelta(hours=30)),
    }
    reply = two_posts("GET", f"/tweets/{POST}/metrics", query=query)

    # Then the whole second day comes, one row
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert reply.headers["Content-Type"].startswith("text/csv")
    assert rows == [["at", "impressions"], ["2026-11-21T00:00:00Z", str(sum(10 + h for h in range(24, 48)))]]


def test_account_figures_per_hour_and_per_day_sum_its_posts(two_posts: ApiCaller) -> None:
    # Given two Posts of the account with 48 hours each
    # When the account's hours and days are read over the two days
    hours = two_posts("GET", f"/accounts/{ACCOUNT}/metrics", query={"endpoint": "28hr", "from": FROM, "to": TO}).json()
    days = two_posts(
        "GET",
        f"/accounts/{ACCOUNT}/metrics",
        query={"endpoint": "28hr", "granularity": "day", "from": FROM, "to": TO, "metrics": "impressions"},
    ).json()

    # Then each hour is the sum of both Posts' buckets, and each day the sum of its hours
    assert hours["account_id"] == ACCOUNT and hours["granularity"] == "hour" and len(hours["points"]) == 48
    assert hours["points"][5] == {
        "at": to_iso(START + timedelta(hours=5)),
        "metrics": {"impressions": (10 + 5) + (110 + 5), "url_clicks": 2},
    }
    expected = [sum(20 + 100 + 2 * h for h in range(day * 24, day * 24 + 24)) for day in (0, 1)]
    assert [p["metrics"]["impressions"] for p in days["points"]] == expected
    assert [p["at"] for p in days["points"]] == ["2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"]
    assert days["from"] == FROM and days["to"] == TO


def test_account_figures_follow_a_rewritten_hour_and_a_purge(two_posts: ApiCaller) -> None:
    # Given the account's figures; when one hour of POST is collected again with a new value, then OTHER is purged
    query = {"endpoint": "28hr", "granularity": "day", "from": FROM, "to": TO, "format": "csv"}
    metrics_dal().put_points(hourly(POST, Endpoint.HOURLY_28HR, 1, lambda h: {"impressions": 1000, "url_clicks": 0}))
    rewritten = list(csv.reader(io.StringIO(two_posts("GET", f"/accounts/{ACCOUNT}/metrics", query=query).text)))
    assert two_posts("DELETE", f"/tweets/{OTHER}", query={"purge": "true"}).status == 200
    purged = list(csv.reader(io.StringIO(two_posts("GET", f"/accounts/{ACCOUNT}/metrics", query=query).text)))

    # Then the first day gained exactly 1000 - 10 impressions, and after the purge only POST's hours remain
    both = sum(20 + 100 + 2 * h for h in range(24))
    assert rewritten[0] == ["at", "impressions", "url_clicks"]
    assert rewritten[1] == ["2026-11-20T00:00:00Z", str(both + 990), str(sum(h % 3 for h in range(1, 24)))]
    assert purged[1][1] == str(sum(10 + h for h in range(24)) + 990)


@pytest.mark.parametrize(
    ("path", "query", "status", "code"),
    [
        (f"/accounts/{ACCOUNT}/metrics", {"endpoint": "28hr", "granularity": "week"}, 422, "validation_error"),
        (f"/accounts/{ACCOUNT}/metrics", {"endpoint": "totals"}, 400, "unsupported_endpoint"),
        (f"/accounts/{ACCOUNT}/metrics", {"endpoint": "28hr", "from": TO, "to": FROM}, 400, "invalid_range"),
        (
            f"/accounts/{ACCOUNT}/metrics",
            {"endpoint": "28hr", "from": "2026-01-01T00:00:00Z", "to": TO},
            400,
            "range_too_long",
        ),
        (
            f"/accounts/{ACCOUNT}/metrics",
            {"endpoint": "28hr", "granularity": "day", "from": "2025-01-01T00:00:00Z", "to": TO},
            400,
            "range_too_long",
        ),
        (f"/accounts/{ACCOUNT}/metrics", {"endpoint": "28hr", "metrics": "nope"}, 400, "unknown_metric"),
        ("/accounts/801/metrics", {"endpoint": "28hr"}, 404, "account_not_found"),
        (f"/tweets/{POST}/metrics", {"endpoint": "totals", "granularity": "day"}, 400, "unsupported_granularity"),
        (f"/tweets/{POST}/metrics", {"endpoint": "28hr", "granularity": "hours"}, 422, "validation_error"),
    ],
)
def test_bad_granularity_endpoint_or_range_is_refused(
    two_posts: ApiCaller, path: str, query: dict[str, str], status: int, code: str
) -> None:
    # When a bad granularity, endpoint or range is asked
    reply = two_posts("GET", path, query=query)
    # Then the answer says which
    assert (reply.status, reply.error_code) == (status, code), reply.text
