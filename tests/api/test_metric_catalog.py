"""A metric catalog that can grow (issue 11, item 7): engagement types X adds are asked for by configuration
(`EXTRA_ENGAGEMENT_TYPES`, template `ExtraEngagementTypes`), and names stored by another version stay readable through
every route: the metrics route (JSON and CSV), top Posts, GET /tweets/{id} and the dashboard's pickers."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator

import pytest

from local.emulator import BRAND_USER_ID, EmulatorServer, FaultConfig
from tests.api.conftest import ApiCaller
from tests.api.test_live import brand_posts, register_brand
from tests.api.test_metrics import OTHER, POST, hourly
from tests.stack_dal import metrics_dal, registry_dal
from xengage.api_client.catalog import Endpoint
from xengage.dal.metrics import MetricPoint

NEW = "video_completions"  # an engagement type X might add (the v2 insights list has it)
LEGACY = "legacy_clicks"  # a name another version stored that this catalog does not know


@pytest.fixture
def extra_types(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The deployment adds NEW on the time-series endpoints (settings, catalog and dashboard page follow the value)."""
    monkeypatch.setenv("EXTRA_ENGAGEMENT_TYPES", f"series:{NEW}")
    yield
    monkeypatch.delenv("EXTRA_ENGAGEMENT_TYPES")


@pytest.mark.integration
def test_an_added_engagement_type_is_asked_stored_and_served(
    extra_types: None, live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given X serves a new engagement type and the deployment names it
    emulator.set_faults(FaultConfig(added_metrics=(NEW,)))
    register_brand(live_api, emulator)
    tweet_id = brand_posts(emulator)[0]

    # When /28hr is asked for it live
    body = {"tweet_ids": [tweet_id], "account_id": BRAND_USER_ID, "engagement_types": ["impressions", NEW]}
    reply = live_api("POST", "/engagement/28hr", body=body)

    # Then its hours come back and are stored in the day items (as an appended column)
    assert reply.status == 200, reply.text
    points = reply.json()["results"][tweet_id]["points"]
    assert points and all(set(point["metrics"]) == {"impressions", NEW} for point in points)
    stored = live_api("GET", f"/tweets/{tweet_id}/metrics", query={"endpoint": "28hr", "metrics": NEW}).json()
    assert [point["metrics"] for point in stored["points"]] == [{NEW: point["metrics"][NEW]} for point in points]
    day_item = metrics_dal().table.get_item(Key={"pk": f"{tweet_id}#28hr", "sk": points[-1]["at"][:10]})["Item"]
    assert list(day_item["m"])[-1] == NEW
    # And the CSV has its column after the catalog's
    rows = list(csv.reader(io.StringIO(live_api("GET", f"/tweets/{tweet_id}/metrics?endpoint=28hr&format=csv").text)))
    assert rows[0] == ["at", "impressions", NEW]


@pytest.mark.integration
def test_without_the_configuration_the_new_type_is_refused_before_any_call(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given no extra engagement types configured
    register_brand(live_api, emulator)
    tweet_id = brand_posts(emulator)[0]

    # When the new name is asked live
    body = {"tweet_ids": [tweet_id], "account_id": BRAND_USER_ID, "engagement_types": [NEW]}
    reply = live_api("POST", "/engagement/28hr", body=body)

    # Then it is a 400 naming it
    assert reply.status == 400 and reply.error_code == "unknown_metric" and NEW in reply.json()["error"]["message"]


def test_the_dashboard_offers_the_added_types(extra_types: None, api: ApiCaller) -> None:
    # Given the deployment adds NEW to the time series
    # When the page is served
    page = api("GET", "/dashboard").text

    # Then its pickers carry NEW on /28hr and /historical, not on /totals
    encoded = re.search(r'data-metrics="([^"]*)"', page)
    assert encoded is not None
    names = json.loads(html.unescape(encoded.group(1)))
    assert NEW in names["28hr"] and NEW in names["historical"] and NEW not in names["totals"]


@pytest.fixture
def legacy(api: ApiCaller) -> ApiCaller:
    """Account 800 tracks POST and OTHER; POST has hours and a snapshot holding LEGACY, written by another version."""
    api.put_account("800", "seeded")
    api("POST", "/tweets", body={"tweet_ids": [POST, OTHER], "account_id": "800"})
    metrics_dal().put_points(
        hourly(POST, Endpoint.HISTORICAL, 4, lambda h: {"impressions": 10 + h, LEGACY: h + 1})
        + hourly(OTHER, Endpoint.HISTORICAL, 4, lambda h: {"impressions": 1})
        + [MetricPoint(POST, Endpoint.TOTALS, "2026-11-21T12:00:00Z", {"favorites": 5, LEGACY: 7}, "x", "800")]
    )
    registry_dal().update_latest_totals(POST, {"favorites": 5, LEGACY: 7}, at="2026-11-21T12:00:00Z")
    return api


def test_stored_unknown_names_read_through_the_metrics_route(legacy: ApiCaller) -> None:
    # Given hours and a snapshot holding LEGACY, a name this catalog does not know
    # When they are read as JSON, as CSV, and filtered by that name
    series = legacy("GET", f"/tweets/{POST}/metrics", query={"endpoint": "historical"}).json()["points"]
    table = legacy("GET", f"/tweets/{POST}/metrics", query={"endpoint": "historical", "format": "csv"}).text
    only = legacy("GET", f"/tweets/{POST}/metrics", query={"endpoint": "historical", "metrics": LEGACY})
    snapshot = legacy("GET", f"/tweets/{POST}/metrics", query={"metrics": f"favorites,{LEGACY}"})

    # Then the name is in every answer: a JSON key, a CSV column after the catalog's, and a filter the route accepts
    assert [point["metrics"][LEGACY] for point in series] == [1, 2, 3, 4]
    rows = list(csv.reader(io.StringIO(table)))
    assert rows[0] == ["at", "impressions", LEGACY] and rows[1][1:] == ["10", "1"]
    assert only.status == 200 and [p["metrics"] for p in only.json()["points"]] == [{LEGACY: h + 1} for h in range(4)]
    assert snapshot.json()["points"][0]["metrics"] == {"favorites": 5, LEGACY: 7}


def test_a_name_neither_known_nor_stored_is_still_refused(legacy: ApiCaller) -> None:
    typo = legacy("GET", f"/tweets/{POST}/metrics", query={"endpoint": "historical", "metrics": "legacy_clickz"})
    malformed = legacy("GET", f"/tweets/{POST}/metrics", query={"metrics": "Bad-Name"})
    assert typo.status == 400 and typo.error_code == "unknown_metric" and "legacy_clickz" in typo.text
    assert malformed.status == 400 and malformed.error_code == "unknown_metric"


def test_top_ranks_by_a_stored_unknown_name_leaving_out_posts_without_it(legacy: ApiCaller) -> None:
    # Given LEGACY stored for POST only (hours and latest totals)
    # When the account's top Posts are asked by LEGACY, over a range (hour sums) and without one (latest totals)
    window = {"metric": LEGACY, "from": "2026-11-20T00:00:00Z", "to": "2026-11-20T03:00:00Z"}
    by_hours = legacy("GET", "/accounts/800/top", query=window).json()
    by_totals = legacy("GET", "/accounts/800/top", query={"metric": LEGACY}).json()
    unknown = legacy("GET", "/accounts/800/top", query={"metric": "never_stored"})

    # Then POST ranks with its values, OTHER (which has no LEGACY) is left out rather than shown as 0
    assert (by_hours["source"], by_hours["posts"]) == ("hourly_sum", [{"tweet_id": POST, "value": 10, "at": None}])
    assert by_totals["source"] == "latest_totals"
    assert by_totals["posts"] == [{"tweet_id": POST, "value": 7, "at": "2026-11-21T12:00:00Z"}]
    assert unknown.status == 400 and unknown.error_code == "unknown_metric"


def test_post_detail_shows_stored_unknown_names_in_latest_totals(legacy: ApiCaller) -> None:
    detail = legacy("GET", f"/tweets/{POST}").json()
    assert detail["latest_totals"] == {"favorites": 5, LEGACY: 7}
