"""POST/GET/DELETE /tweets: idempotent tracking, listing with cursors, detail with availability, purge."""

from __future__ import annotations

from tests.api.conftest import ApiCaller
from tests.stack_dal import metrics_dal, registry_dal, status_dal
from xengage.api_client.catalog import Endpoint
from xengage.dal.metrics import MetricPoint
from xengage.dal.series_state import HourSums, TotalsSnapshot
from xengage.timeutil import floor_hour, snowflake_created_at, to_iso

POST_A = "1021817816134156288"
POST_B = "1021817816134156289"


def test_tracking_is_idempotent_and_reports_what_was_new(api: ApiCaller) -> None:
    # Given an account and one of its Posts already tracked
    api.put_account("500")
    first = api("POST", "/tweets", body={"tweet_ids": [POST_A], "account_id": "500"})

    # When the same Post and a new one (twice) are tracked
    second = api("POST", "/tweets", body={"tweet_ids": [POST_A, POST_B, POST_B], "account_id": "500"})

    # Then only the new one counts as new, and both are tracked once under the account
    assert first.status == 200 and first.json()["newly_tracked"] == 1
    assert second.status == 200 and second.json()["newly_tracked"] == 1
    assert [p["tweet_id"] for p in second.json()["tracked"]] == [POST_A, POST_B]
    assert {p["account_id"] for p in second.json()["tracked"]} == {"500"}
    # And tracked_at of the first Post did not move
    assert second.json()["tracked"][0]["tracked_at"] == first.json()["tracked"][0]["tracked_at"]
    listed = api("GET", "/tweets", query={"account_id": "500"}).json()
    assert [p["tweet_id"] for p in listed["posts"]] == [POST_A, POST_B]


def test_tracking_for_an_unknown_account_is_404_and_tracks_nothing(api: ApiCaller) -> None:
    # Given no account 501
    # When Posts are tracked for it
    reply = api("POST", "/tweets", body={"tweet_ids": [POST_A], "account_id": "501"})

    # Then 404, and the Post is not tracked
    assert reply.status == 404
    assert reply.error_code == "account_not_found"
    assert api("GET", f"/tweets/{POST_A}").status == 404


def test_tracking_without_account_uses_the_app_list(api: ApiCaller) -> None:
    # Given nothing tracked
    # When a Post is tracked without an account
    reply = api("POST", "/tweets", body={"tweet_ids": [POST_A]})

    # Then it is listed with the app's Posts, collected on /totals only
    assert reply.status == 200
    assert reply.json()["tracked"][0]["account_id"] is None
    assert [p["tweet_id"] for p in api("GET", "/tweets").json()["posts"]] == [POST_A]
    detail = api("GET", f"/tweets/{POST_A}").json()
    assert [c["endpoint"] for c in detail["collection"]] == ["totals"]


def test_tracking_refuses_an_empty_list_and_more_than_10000_ids(api: ApiCaller) -> None:
    # Given an empty list, and 10,001 ids (bad ids in a list of good size: tests/api/test_bulk_tracking.py)
    empty = api("POST", "/tweets", body={"tweet_ids": []})
    too_many = api("POST", "/tweets", body={"tweet_ids": [str(10**15 + n) for n in range(10_001)]})

    # Then each is a 422 naming tweet_ids, and nothing got tracked
    assert empty.status == 422 and "tweet_ids" in empty.json()["error"]["message"]
    assert too_many.status == 422 and "tweet_ids" in too_many.json()["error"]["message"]
    assert api("GET", "/tweets").json()["posts"] == []


def test_a_batch_of_250_is_accepted(api: ApiCaller) -> None:
    # Given 250 ids (the /totals batch limit)
    ids = [str(10**15 + n) for n in range(250)]

    # When they are tracked
    reply = api("POST", "/tweets", body={"tweet_ids": ids})

    # Then all are tracked, and the list pages through them
    assert reply.status == 200 and reply.json()["newly_tracked"] == 250
    first = api("GET", "/tweets", query={"limit": "200"}).json()
    second = api("GET", "/tweets", query={"limit": "200", "cursor": first["next_cursor"]}).json()
    assert len(first["posts"]) == 200 and len(second["posts"]) == 50
    assert second["next_cursor"] is None


def test_listing_posts_of_an_unknown_account_is_404(api: ApiCaller) -> None:
    reply = api("GET", "/tweets", query={"account_id": "404404"})
    assert reply.status == 404


def test_post_detail_shows_latest_totals_and_availability_with_reason(api: ApiCaller) -> None:
    # Given a tracked Post with a /totals snapshot and a failed /28hr collection
    api.put_account("700")
    api("POST", "/tweets", body={"tweet_ids": [POST_A], "account_id": "700"})
    registry_dal().update_latest_totals(POST_A, {"favorites": 12, "retweets": 3}, at="2026-11-25T18:00:00Z")
    status_dal().record(POST_A, Endpoint.TOTALS, "ok", at="2026-11-25T18:00:00Z")
    status_dal().record(
        POST_A, Endpoint.HOURLY_28HR, "not_owned", at="2026-11-25T18:05:00Z", message="Forbidden to access tweets"
    )

    # When it is read
    detail = api("GET", f"/tweets/{POST_A}").json()

    # Then the latest totals and each endpoint's status with its reason are there
    assert detail["latest_totals"] == {"favorites": 12, "retweets": 3}
    assert detail["latest_totals_at"] == "2026-11-25T18:00:00Z"
    by_endpoint = {s["endpoint"]: s for s in detail["availability"]}
    assert by_endpoint["totals"]["status"] == "ok"
    assert by_endpoint["28hr"]["status"] == "not_owned"
    assert by_endpoint["28hr"]["message"] == "Forbidden to access tweets"
    assert {c["endpoint"] for c in detail["collection"]} == {"totals", "28hr", "historical"}


def test_post_detail_shows_what_the_data_checks_found(api: ApiCaller) -> None:
    # Given a tracked Post whose last /totals snapshot fell, and whose /historical hours sum far below /totals
    api.put_account("701")
    api("POST", "/tweets", body={"tweet_ids": [POST_A], "account_id": "701"})
    created = to_iso(floor_hour(snowflake_created_at(POST_A)))
    through, at = "2026-11-25T18:00:00Z", "2026-11-25T18:15:00Z"
    fell = {"metrics": {"favorites": {"from": 12, "to": 9}}, "at": at, "previous_at": "2026-11-25T18:00:00Z"}
    registry_dal().settle(POST_A, Endpoint.TOTALS, part=TotalsSnapshot({"favorites": 9, "engagements": 80}, at, fell))
    registry_dal().settle(POST_A, Endpoint.HISTORICAL, part=HourSums({"engagements": 50}, created, through, None))
    point = MetricPoint(POST_A, Endpoint.TOTALS, at, {"favorites": 9, "engagements": 80}, collected_at=at)
    metrics_dal().put_points([point])

    # When it is read
    checks = api("GET", f"/tweets/{POST_A}").json()["checks"]

    # Then the decrease and the drift are there, with what was compared
    assert checks["totals_decrease"] == fell
    assert checks["historical_drift"] == {
        "status": "drift",
        "reason": None,
        "totals_at": at,
        "hours_from": created,
        "hours_through": through,
        "metrics": [{"metric": "engagements", "totals": 80, "hours_sum": 50, "difference": 30}],
    }


def test_post_detail_says_why_drift_could_not_be_judged(api: ApiCaller) -> None:
    # Given a tracked Post without /historical hours
    api.put_account("702")
    api("POST", "/tweets", body={"tweet_ids": [POST_A], "account_id": "702"})
    # When it is read, Then no decrease is flagged and drift is not comparable, with the reason
    checks = api("GET", f"/tweets/{POST_A}").json()["checks"]
    assert checks["totals_decrease"] is None
    assert checks["historical_drift"]["status"] == "not_comparable"
    assert checks["historical_drift"]["reason"] == "no /historical hours collected yet"


def test_get_post_rejects_malformed_id_and_unknown_post(api: ApiCaller) -> None:
    malformed = api("GET", "/tweets/abc")
    unknown = api("GET", f"/tweets/{POST_B}")
    assert malformed.status == 422 and "path.tweet_id" in malformed.json()["error"]["message"]
    assert unknown.status == 404 and unknown.error_code == "post_not_found"


def _seed_points(tweet_id: str) -> None:
    metrics_dal().put_points(
        [
            MetricPoint(tweet_id, Endpoint.TOTALS, "2026-11-25T17:00:00Z", {"favorites": 1}, "2026-11-25T17:00:03Z"),
            MetricPoint(
                tweet_id, Endpoint.HOURLY_28HR, "2026-11-25T16:00:00Z", {"impressions": 9}, "2026-11-25T17:00:03Z"
            ),
        ]
    )
    status_dal().record(tweet_id, Endpoint.TOTALS, "ok", at="2026-11-25T17:00:03Z")


def test_untrack_keeps_data_unless_purge(api: ApiCaller) -> None:
    # Given two tracked Posts with stored points
    api("POST", "/tweets", body={"tweet_ids": [POST_A, POST_B]})
    _seed_points(POST_A)
    _seed_points(POST_B)

    # When POST_A is untracked plainly and POST_B with purge=true
    kept = api("DELETE", f"/tweets/{POST_A}")
    purged = api("DELETE", f"/tweets/{POST_B}", query={"purge": "true"})

    # Then both stop being tracked; POST_A's points remain readable, POST_B's are gone
    assert kept.status == 200 and kept.json() == {"tweet_id": POST_A, "untracked": True, "purged_points": 0}
    assert purged.status == 200 and purged.json()["purged_points"] == 2
    assert api("GET", f"/tweets/{POST_A}").status == 404
    assert len(api("GET", f"/tweets/{POST_A}/metrics").json()["points"]) == 1
    assert api("GET", f"/tweets/{POST_B}/metrics").status == 404
    assert status_dal().get_statuses(POST_B) == []
    assert api("GET", "/tweets").json()["posts"] == []


def test_untrack_unknown_post_is_404(api: ApiCaller) -> None:
    reply = api("DELETE", f"/tweets/{POST_A}")
    assert reply.status == 404


def test_statuses_lists_posts_with_that_outcome_newest_first_across_pages(api: ApiCaller) -> None:
    # Given three protected outcomes at different times and one ok outcome, of tracked Posts
    api.put_account("700")
    api("POST", "/tweets", body={"tweet_ids": [POST_A, POST_B], "account_id": "700"})
    api("POST", "/tweets", body={"tweet_ids": ["1021817816134156290"]})
    statuses = status_dal()
    statuses.record(
        POST_A, Endpoint.TOTALS, "protected", at="2026-11-25T18:00:00Z", message="Tweet ID(s) are unavailable"
    )
    statuses.record(
        POST_B, Endpoint.TOTALS, "protected", at="2026-11-25T19:00:00Z", message="Tweet ID(s) are unavailable"
    )
    statuses.record(POST_B, Endpoint.HOURLY_28HR, "protected", at="2026-11-25T20:00:00Z")
    statuses.record("1021817816134156290", Endpoint.TOTALS, "ok", at="2026-11-25T21:00:00Z")

    # When the protected ones are listed two at a time
    first = api("GET", "/statuses/protected", query={"limit": "2"}).json()
    second = api("GET", "/statuses/protected", query={"limit": "2", "cursor": first["next_cursor"]}).json()

    # Then they come newest first with their endpoint and reason, and the ok one is not among them
    entries = first["posts"] + second["posts"]
    assert [(e["tweet_id"], e["endpoint"], e["last_seen_at"]) for e in entries] == [
        (POST_B, "28hr", "2026-11-25T20:00:00Z"),
        (POST_B, "totals", "2026-11-25T19:00:00Z"),
        (POST_A, "totals", "2026-11-25T18:00:00Z"),
    ]
    assert entries[-1]["reason_code"] == "protected" and entries[-1]["message"] == "Tweet ID(s) are unavailable"
    assert second["next_cursor"] is None


def test_statuses_refuses_an_unknown_status_and_knows_every_reason(api: ApiCaller) -> None:
    # Given the outcomes the collector records (ok and every Reason)
    from typing import get_args

    from xengage.dal.status import KNOWN_STATUSES
    from xengage.http_api.models import StatusName

    # When an unknown one is asked for
    reply = api("GET", "/statuses/lost")

    # Then 422 names the path field, and the route accepts exactly the recorded outcomes
    assert reply.status == 422 and "status" in reply.json()["error"]["message"]
    assert set(get_args(StatusName)) == KNOWN_STATUSES


def test_listing_newest_first_pages_in_creation_order(api: ApiCaller) -> None:
    # Given three app Posts created one after another (snowflake ids grow with time)
    ids = ["1021817816134156288", "1121817816134156288", "1221817816134156288"]
    api("POST", "/tweets", body={"tweet_ids": ids})

    # When they are listed newest first, two per page
    first = api("GET", "/tweets", query={"order": "newest", "limit": "2"}).json()
    second = api("GET", "/tweets", query={"order": "newest", "limit": "2", "cursor": first["next_cursor"]}).json()

    # Then the newest comes first and the cursor continues in the same order; a bad order is refused
    assert [p["tweet_id"] for p in first["posts"] + second["posts"]] == ids[::-1]
    assert api("GET", "/tweets", query={"order": "random"}).status == 422
