"""GET /tweets/{id}/metrics (JSON, CSV, filters, pages) and GET /accounts/{id}/top from stored data."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import ApiCaller
from tests.stack_dal import metrics_dal, registry_dal
from xengage.api_client.catalog import Endpoint
from xengage.dal.metrics import MetricPoint
from xengage.timeutil import to_iso

POST = "1861234567890123456"
OTHER = "1861234567890123457"
THIRD = "1861234567890123458"
START = datetime(2026, 11, 20, 0, tzinfo=UTC)


def hourly(tweet_id: str, endpoint: Endpoint, hours: int, value_of, start: datetime = START) -> list[MetricPoint]:
    return [
        MetricPoint(
            tweet_id,
            endpoint,
            to_iso(start + timedelta(hours=h)),
            value_of(h),
            to_iso(start + timedelta(hours=h + 1)),
            "800",
        )
        for h in range(hours)
    ]


@pytest.fixture
def seeded(api: ApiCaller) -> ApiCaller:
    """Account 800 tracks POST (48 hourly /28hr points, 3 /totals snapshots) and OTHER."""
    api.put_account("800", "seeded")
    api("POST", "/tweets", body={"tweet_ids": [POST, OTHER], "account_id": "800"})
    metrics_dal().put_points(
        hourly(POST, Endpoint.HOURLY_28HR, 48, lambda h: {"impressions": 10 + h, "url_clicks": h % 3})
        + [
            MetricPoint(POST, Endpoint.TOTALS, f"2026-11-2{d}T12:00:00Z", {"favorites": 5 * d, "retweets": d}, "x")
            for d in (1, 2, 3)
        ]
    )
    return api


def test_time_series_points_come_oldest_first_with_hour_starts(seeded: ApiCaller) -> None:
    # Given 48 stored /28hr hours
    # When the first 5 are read
    page = seeded("GET", f"/tweets/{POST}/metrics", query={"endpoint": "28hr", "limit": "5"}).json()

    # Then each point is an hour start with its metrics, and a cursor leads on
    assert page["tweet_id"] == POST and page["endpoint"] == "28hr"
    assert [p["at"] for p in page["points"]] == [to_iso(START + timedelta(hours=h)) for h in range(5)]
    assert page["points"][2]["metrics"] == {"impressions": 12, "url_clicks": 2}
    assert page["next_cursor"]


def test_paging_through_all_points_returns_each_once(seeded: ApiCaller) -> None:
    # Given 48 stored hours
    seen: list[str] = []
    cursor = None
    # When read 20 at a time following next_cursor
    while True:
        query = {"endpoint": "28hr", "limit": "20", **({"cursor": cursor} if cursor else {})}
        page = seeded("GET", f"/tweets/{POST}/metrics", query=query).json()
        seen += [p["at"] for p in page["points"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # Then all 48 come once, in order
    assert seen == [to_iso(START + timedelta(hours=h)) for h in range(48)]


def test_from_to_filter_on_at_inclusive_and_metrics_filter_names(seeded: ApiCaller) -> None:
    # Given 48 stored hours
    # When hours 10..12 are asked for impressions only
    query = {"endpoint": "28hr", "from": "2026-11-20T10:00:00Z", "to": "2026-11-20T12:00:00Z", "metrics": "impressions"}
    page = seeded("GET", f"/tweets/{POST}/metrics", query=query).json()

    # Then exactly those hours come, with impressions only
    assert page["points"] == [
        {"at": "2026-11-20T10:00:00Z", "metrics": {"impressions": 20}},
        {"at": "2026-11-20T11:00:00Z", "metrics": {"impressions": 21}},
        {"at": "2026-11-20T12:00:00Z", "metrics": {"impressions": 22}},
    ]
    assert page["next_cursor"] is None


def test_totals_points_are_snapshots_and_the_default_endpoint(seeded: ApiCaller) -> None:
    page = seeded("GET", f"/tweets/{POST}/metrics").json()
    assert page["endpoint"] == "totals"
    assert [p["at"] for p in page["points"]] == ["2026-11-21T12:00:00Z", "2026-11-22T12:00:00Z", "2026-11-23T12:00:00Z"]
    assert page["points"][-1]["metrics"] == {"favorites": 15, "retweets": 3}


def test_csv_by_accept_header_and_by_format_parameter(seeded: ApiCaller) -> None:
    # Given stored hours
    query = {"endpoint": "28hr", "limit": "3"}

    # When CSV is asked for by header, and by ?format=csv with a metric filter
    by_header = seeded("GET", f"/tweets/{POST}/metrics", query=query, headers={"Accept": "text/csv"})
    by_param = seeded("GET", f"/tweets/{POST}/metrics", query={**query, "format": "csv", "metrics": "url_clicks"})

    # Then both are text/csv with an `at` column and one row per point; the cursor is in a header
    assert by_header.status == 200 and by_header.headers["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(by_header.text)))
    assert rows[0] == ["at", "impressions", "url_clicks"]
    assert rows[1] == ["2026-11-20T00:00:00Z", "10", "0"]
    assert len(rows) == 4
    assert by_header.headers["X-Next-Cursor"]
    assert by_param.text.splitlines() == [
        "at,url_clicks",
        "2026-11-20T00:00:00Z,0",
        "2026-11-20T01:00:00Z,1",
        "2026-11-20T02:00:00Z,2",
    ]


@pytest.mark.parametrize(
    ("query", "status", "code", "field"),
    [
        ({"metrics": "impressions,bogus"}, 400, "unknown_metric", "metrics"),
        ({"endpoint": "totals", "metrics": "url_clicks"}, 400, "unknown_metric", "metrics"),
        ({"from": "yesterday"}, 400, "invalid_timestamp", "from"),
        ({"to": "2026-13-01T00:00:00Z"}, 400, "invalid_timestamp", "to"),
        ({"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"}, 400, "invalid_range", "from"),
        ({"endpoint": "hourly"}, 422, "validation_error", "query.endpoint"),
        ({"limit": "0"}, 422, "validation_error", "query.limit"),
        ({"format": "xml"}, 422, "validation_error", "query.format"),
        ({"cursor": "garbage!"}, 400, "invalid_cursor", "cursor"),
    ],
)
def test_bad_query_values_are_refused_naming_the_field(
    api: ApiCaller, query: dict[str, str], status: int, code: str, field: str
) -> None:
    # Given any Post id (values are checked before anything is read)
    # When a bad value is sent
    reply = api("GET", f"/tweets/{POST}/metrics", query={"endpoint": "28hr", **query})
    # Then status and code say what is wrong, and the message names the field
    assert reply.status == status
    assert reply.error_code == code
    assert field in reply.json()["error"]["message"]


def test_metrics_of_an_unknown_post_is_404_and_of_a_tracked_post_without_data_is_empty(seeded: ApiCaller) -> None:
    unknown = seeded("GET", f"/tweets/{THIRD}/metrics")
    empty = seeded("GET", f"/tweets/{OTHER}/metrics")
    assert unknown.status == 404 and unknown.error_code == "post_not_found"
    assert empty.status == 200 and empty.json()["points"] == []


def test_top_by_latest_totals_ranks_posts_with_a_snapshot(seeded: ApiCaller) -> None:
    # Given latest totals on both Posts
    registry_dal().update_latest_totals(POST, {"favorites": 15}, at="2026-11-23T12:00:00Z")
    registry_dal().update_latest_totals(OTHER, {"favorites": 40}, at="2026-11-23T12:00:00Z")

    # When the account's top Posts by favorites are asked
    top = seeded("GET", "/accounts/800/top", query={"metric": "favorites"}).json()

    # Then they rank by latest totals and say so
    assert top["source"] == "latest_totals"
    assert [(p["tweet_id"], p["value"]) for p in top["posts"]] == [(OTHER, 40), (POST, 15)]
    assert top["posts"][0]["at"] == "2026-11-23T12:00:00Z"


def test_top_by_hourly_sum_counts_an_hour_once_preferring_historical(seeded: ApiCaller) -> None:
    # Given OTHER has /historical hours 0..9 (impressions 100 each) overlapping /28hr-less hours,
    # and POST has /28hr hours 0..47 plus a /historical copy of hours 0..1 with different values
    metrics_dal().put_points(
        hourly(OTHER, Endpoint.HISTORICAL, 10, lambda h: {"impressions": 100})
        + hourly(POST, Endpoint.HISTORICAL, 2, lambda h: {"impressions": 1000})
    )

    # When the top Posts by impressions over hours 0..9 are asked
    query = {"metric": "impressions", "from": "2026-11-20T00:00:00Z", "to": "2026-11-20T09:00:00Z", "limit": "1"}
    top = seeded("GET", "/accounts/800/top", query=query).json()

    # Then POST sums 1000+1000 (historical wins hours 0,1) + 12..19 = 2124 and beats OTHER's 1000
    assert top["source"] == "hourly_sum"
    assert top["from"] == "2026-11-20T00:00:00Z" and top["to"] == "2026-11-20T09:00:00Z"
    assert top["posts"] == [{"tweet_id": POST, "value": 2000 + sum(range(12, 20)), "at": None}]


def test_top_of_a_time_series_only_metric_uses_hourly_sum(seeded: ApiCaller) -> None:
    top = seeded("GET", "/accounts/800/top", query={"metric": "url_clicks"}).json()
    assert top["source"] == "hourly_sum"
    assert top["posts"][0] == {"tweet_id": POST, "value": sum(h % 3 for h in range(48)), "at": None}


def test_top_rejects_unknown_metric_and_unknown_account(seeded: ApiCaller) -> None:
    bad_metric = seeded("GET", "/accounts/800/top", query={"metric": "likes"})
    unknown = seeded("GET", "/accounts/801/top", query={"metric": "favorites"})
    missing = seeded("GET", "/accounts/800/top")
    assert bad_metric.status == 400 and bad_metric.error_code == "unknown_metric"
    assert unknown.status == 404
    assert missing.status == 422 and "query.metric" in missing.json()["error"]["message"]


@pytest.mark.parametrize("next_cursor", [None, "eyJwayI6IjEifQ"])
def test_a_stored_page_is_written_exactly_as_its_documented_model_would_be(next_cursor) -> None:
    # Given a page of points as the route builds it (without a pydantic model per point)
    from xengage.http_api.metrics import StoredPage
    from xengage.http_api.models import MetricPoint as PointOut
    from xengage.http_api.models import MetricsPage

    points = [("2026-11-25T16:00:00Z", {"impressions": 9, "url_clicks": 0}), ("2026-11-25T17:00:00Z", {})]
    page = StoredPage(tweet_id=POST, endpoint=Endpoint.HISTORICAL, points=points, next_cursor=next_cursor)

    # When it is written, and the documented model validates the same page
    documented = MetricsPage(
        tweet_id=POST,
        endpoint=Endpoint.HISTORICAL,
        points=[PointOut(at=at, metrics=metrics) for at, metrics in points],
        next_cursor=next_cursor,
    )

    # Then the bytes are the model's: the OpenAPI document describes what is sent
    assert page.to_json() == documented.model_dump_json()
