"""Metrics asked for a Post and refused are said out loud, with why, and never shown as a zero (issue 11, item 2).

End to end against the emulator's world: Posts older than 90 days (/totals impressions and engagements), older than
1,800 days (video views), and an engagement type X retired. Live results, GET /tweets/{id}, the stored status, the
metrics route (JSON and CSV) and the top route are read back.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from local.emulator import BRAND_USER_ID, EmulatorServer, FaultConfig
from tests.api.conftest import ApiCaller
from tests.api.test_live import register_brand
from tests.stack_dal import status_dal
from xengage.api_client.catalog import Endpoint
from xengage.timeutil import to_iso, utc_now

pytestmark = pytest.mark.integration


def brand_post_aged(emulator: EmulatorServer, *, older_than_days: int, has_video: bool | None = None) -> str:
    """The youngest public brand Post older than `older_than_days` (with or without video, when given)."""
    now = utc_now()
    posts = [
        post
        for post in emulator.world.posts_of(BRAND_USER_ID)
        if now - post.created_at > timedelta(days=older_than_days)
        and (has_video is None or post.has_video is has_video)
    ]
    return min(posts, key=lambda post: now - post.created_at).tweet_id


def test_totals_says_impressions_were_refused_for_a_post_over_90_days(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given the brand's tokens, a tracked Post older than 90 days and a young one
    register_brand(live_api, emulator)
    old = brand_post_aged(emulator, older_than_days=90)
    young = brand_post_aged(emulator, older_than_days=1)
    live_api("POST", "/tweets", body={"tweet_ids": [old, young], "account_id": BRAND_USER_ID})

    # When /totals is asked for impressions and retweets of both
    body = {"tweet_ids": [old, young], "account_id": BRAND_USER_ID, "engagement_types": ["impressions", "retweets"]}
    reply = live_api("POST", "/engagement/totals", body=body)

    # Then the old one is ok with retweets only, and says impressions were refused for its age, in the API's words
    assert reply.status == 200, reply.text
    results = reply.json()["results"]
    assert results[old]["status"] == "ok"
    assert set(results[old]["metrics"]) == {"retweets"}
    (refused,) = results[old]["refused"]
    assert (refused["metric"], refused["reason"]) == ("impressions", "over_90_days")
    assert "older than 90 days" in refused["message"]
    # And the young one got both, with nothing refused
    assert set(results[young]["metrics"]) == {"impressions", "retweets"} and results[young]["refused"] is None

    # And GET /tweets/{id} and the stored status say the same
    availability = {entry["endpoint"]: entry for entry in live_api("GET", f"/tweets/{old}").json()["availability"]}
    assert availability["totals"]["unsupported_metrics"] == ["impressions"]
    assert availability["totals"]["refused"] == [refused]
    (stored,) = status_dal().get_statuses(old)
    assert stored.refusals == (("impressions", ("over_90_days", refused["message"])),)

    # And the stored snapshot has no impressions: absent in JSON, an empty cell in CSV, never a 0
    points = live_api("GET", f"/tweets/{old}/metrics").json()["points"]
    assert points and all("impressions" not in point["metrics"] for point in points)
    query = {"format": "csv", "metrics": "impressions,retweets"}
    rows = list(csv.reader(io.StringIO(live_api("GET", f"/tweets/{old}/metrics", query=query).text)))
    assert rows[0] == ["at", "impressions", "retweets"]
    assert [row[1] for row in rows[1:]] == [""] * (len(rows) - 1) and all(row[2] for row in rows[1:])
    assert live_api("GET", f"/tweets/{young}").json()["availability"][0]["refused"] == []


def test_video_views_of_a_post_over_1800_days_are_refused_not_zero(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given a video Post older than 1,800 days (the API lists it and still sends "0" for its video views)
    register_brand(live_api, emulator)
    ancient = brand_post_aged(emulator, older_than_days=1800, has_video=True)

    # When /totals (app token) and /28hr (the owner's tokens) are asked for video views and favorites
    wanted = ["video_views", "favorites"]
    totals = live_api("POST", "/engagement/totals", body={"tweet_ids": [ancient], "engagement_types": wanted})
    hourly = live_api(
        "POST",
        "/engagement/28hr",
        body={"tweet_ids": [ancient], "account_id": BRAND_USER_ID, "engagement_types": wanted},
    )

    # Then both say video_views was refused for its age, and neither shows it, as a 0 or otherwise
    assert totals.status == 200 and hourly.status == 200, (totals.text, hourly.text)
    for result in (totals.json()["results"][ancient], hourly.json()["results"][ancient]):
        assert result["status"] == "ok"
        assert [(r["metric"], r["reason"]) for r in result["refused"]] == [("video_views", "over_1800_days")]
        assert "1,800 days" in result["refused"][0]["message"]
    assert set(totals.json()["results"][ancient]["metrics"]) == {"favorites"}
    points = hourly.json()["results"][ancient]["points"]
    assert points and all(set(point["metrics"]) == {"favorites"} for point in points)
    stored = live_api("GET", f"/tweets/{ancient}/metrics", query={"endpoint": "28hr"}).json()["points"]
    assert stored == points


def test_an_engagement_type_the_api_refuses_is_reported_with_its_words(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given X retired url_clicks
    register_brand(live_api, emulator)
    tweet_id = brand_post_aged(emulator, older_than_days=1)
    emulator.set_faults(FaultConfig(retired_metrics=("url_clicks",)))

    # When /28hr is asked for impressions and url_clicks
    body = {"tweet_ids": [tweet_id], "account_id": BRAND_USER_ID, "engagement_types": ["impressions", "url_clicks"]}
    reply = live_api("POST", "/engagement/28hr", body=body)

    # Then the Post is ok with impressions, and url_clicks is refused by the API in its own words
    assert reply.status == 200, reply.text
    result = reply.json()["results"][tweet_id]
    assert result["status"] == "ok" and result["points"]
    assert all("url_clicks" not in point["metrics"] for point in result["points"])
    (refused,) = result["refused"]
    assert (refused["metric"], refused["reason"]) == ("url_clicks", "refused_by_api")
    assert "Unsupported engagement types" in refused["message"] and "url_clicks" in refused["message"]


def test_a_post_refused_everything_it_asked_says_why_per_metric(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    # Given a Post older than 90 days
    register_brand(live_api, emulator)
    old = brand_post_aged(emulator, older_than_days=90)

    # When /totals is asked for impressions and engagements only
    body = {"tweet_ids": [old], "account_id": BRAND_USER_ID, "engagement_types": ["impressions", "engagements"]}
    result = live_api("POST", "/engagement/totals", body=body).json()["results"][old]

    # Then it is unsupported_metric, with no metrics, and each refused metric says why
    assert result["status"] == "unsupported_metric" and result["metrics"] is None
    assert [(r["metric"], r["reason"]) for r in result["refused"]] == [
        ("engagements", "over_90_days"),
        ("impressions", "over_90_days"),
    ]


def test_a_status_stored_before_reasons_were_kept_reads_with_an_unknown_reason(api: ApiCaller) -> None:
    # Given a tracked Post whose /totals status was written by a version that kept only the refused names
    tweet_id = "1861234567890123456"
    api("POST", "/tweets", body={"tweet_ids": [tweet_id]})
    status_dal().record(tweet_id, Endpoint.TOTALS, "ok", at=to_iso(utc_now()), unsupported_metrics=["video_views"])

    # When GET /tweets/{id} reads it
    (entry,) = api("GET", f"/tweets/{tweet_id}").json()["availability"]

    # Then the name is there, its reason unknown
    assert entry["unsupported_metrics"] == ["video_views"]
    assert [(r["metric"], r["reason"]) for r in entry["refused"]] == [("video_views", "unknown")]
    # And the listing by status (an index without the reasons) names the metric and leaves the reasons to the Post
    (listed,) = api("GET", "/statuses/ok").json()["posts"]
    assert listed["unsupported_metrics"] == ["video_views"] and listed["refused"] is None


def test_the_answered_reasons_are_the_catalogs() -> None:
    from typing import get_args

    from xengage.api_client.catalog import Refusal
    from xengage.http_api.models import RefusalName

    assert set(get_args(RefusalName)) == {refusal.value for refusal in Refusal}
