"""POST /engagement/{endpoint} against the emulator over real HTTP: results returned and stored, errors mapped."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from local.emulator import BRAND_USER_ID, UNRELATED_USER_ID, EmulatorServer, FaultConfig, PostState
from tests.api.conftest import ApiCaller
from tests.stack_dal import registry_dal, status_dal
from xengage.dal.rate_budget import SharedRateBudget
from xengage.timeutil import to_iso

pytestmark = pytest.mark.integration


def brand_posts(emulator: EmulatorServer, state: PostState = PostState.PUBLIC) -> list[str]:
    return emulator.world.tweet_ids(emulator.world.posts_of(BRAND_USER_ID, state=state))


def register_brand(api: ApiCaller, emulator: EmulatorServer) -> None:
    user = emulator.world.users[BRAND_USER_ID]
    api.put_account(BRAND_USER_ID, user.screen_name, token=user.access_token, secret=user.access_token_secret)


def test_totals_with_the_app_token_returns_and_stores_public_metrics(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given two public Posts and a deleted one, tracked without an account
    public = brand_posts(emulator)[:2]
    deleted = brand_posts(emulator, PostState.DELETED)[:1]
    live_api("POST", "/tweets", body={"tweet_ids": public + deleted})

    # When /totals is queried live
    reply = live_api("POST", "/engagement/totals", body={"tweet_ids": public + deleted})

    # Then the public ones are ok with public metrics, the deleted one says unavailable
    assert reply.status == 200, reply.text
    body = reply.json()
    assert body["endpoint"] == "totals" and body["calls"] >= 1
    for tweet_id in public:
        assert body["results"][tweet_id]["status"] == "ok"
        assert set(body["results"][tweet_id]["metrics"]) <= {
            "favorites",
            "retweets",
            "quote_tweets",
            "replies",
            "video_views",
        }
        assert "favorites" in body["results"][tweet_id]["metrics"]
    assert body["results"][deleted[0]]["status"] == "unavailable"
    # And the answer is stored: a /totals snapshot readable from the metrics route, latest totals, statuses
    stored = live_api("GET", f"/tweets/{public[0]}/metrics").json()["points"]
    assert stored[-1]["metrics"] == body["results"][public[0]]["metrics"]
    tracked = registry_dal().get_post(public[0])
    assert tracked is not None and tracked.latest_totals == body["results"][public[0]]["metrics"]
    assert status_dal().get_statuses(deleted[0])[0].status == "unavailable"


def test_a_live_query_keeps_statuses_of_tracked_posts_only(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    # Given a tracked public Post and an untracked one
    tracked, untracked = brand_posts(emulator)[:2]
    live_api("POST", "/tweets", body={"tweet_ids": [tracked]})

    # When both are queried live
    reply = live_api("POST", "/engagement/totals", body={"tweet_ids": [tracked, untracked]})

    # Then both answer ok, and the outcome is kept on the tracked Post's marker only (nothing is created for the other)
    assert {result["status"] for result in reply.json()["results"].values()} == {"ok"}
    assert [status.status for status in status_dal().get_statuses(tracked)] == ["ok"]
    assert status_dal().get_statuses(untracked) == [] and registry_dal().get_post(untracked) is None


def test_28hr_with_the_owner_tokens_returns_hour_points_and_stores_them(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given the brand account registered with its tokens, and its Post from an hour ago
    register_brand(live_api, emulator)
    tweet_id = brand_posts(emulator)[0]

    # When /28hr is queried live for two metrics
    body = {"tweet_ids": [tweet_id], "account_id": BRAND_USER_ID, "engagement_types": ["impressions", "url_clicks"]}
    reply = live_api("POST", "/engagement/28hr", body=body)

    # Then hour points come back (hour starts), and the same points are stored
    assert reply.status == 200, reply.text
    result = reply.json()["results"][tweet_id]
    assert result["status"] == "ok"
    assert result["points"], "an hour-old Post has at least one hour bucket"
    assert all(point["at"].endswith(":00:00Z") for point in result["points"])
    assert set().union(*(point["metrics"] for point in result["points"])) <= {"impressions", "url_clicks"}
    stored = live_api("GET", f"/tweets/{tweet_id}/metrics", query={"endpoint": "28hr"}).json()["points"]
    assert stored == result["points"]
    # And the account records the success
    assert live_api("GET", f"/accounts/{BRAND_USER_ID}").json()["last_success_at"] is not None


def test_posts_the_tokens_do_not_own_come_back_not_owned(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    # Given the brand's tokens and a Post of an unrelated user
    register_brand(live_api, emulator)
    foreign = emulator.world.tweet_ids(emulator.world.posts_of(UNRELATED_USER_ID))[0]
    own = brand_posts(emulator)[0]

    # When /28hr is asked for both
    reply = live_api("POST", "/engagement/28hr", body={"tweet_ids": [own, foreign], "account_id": BRAND_USER_ID})

    # Then the foreign one carries the reason code, the own one is ok
    assert reply.status == 200, reply.text
    assert reply.json()["results"][foreign]["status"] == "not_owned"
    assert reply.json()["results"][foreign]["reason"]
    assert reply.json()["results"][own]["status"] == "ok"


def test_rejected_tokens_are_409_and_mark_the_account_needs_reauth(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given an account registered with its tokens, which the account then revoked at X
    register_brand(live_api, emulator)
    emulator.revoke_user_tokens(BRAND_USER_ID)

    # When a live /28hr query uses them
    reply = live_api(
        "POST", "/engagement/28hr", body={"tweet_ids": brand_posts(emulator)[:1], "account_id": BRAND_USER_ID}
    )

    # Then 409 names the account, and the account is flagged with the error
    assert reply.status == 409, reply.text
    assert reply.error_code == "account_needs_reauth"
    assert reply.json()["account_id"] == BRAND_USER_ID
    account = live_api("GET", f"/accounts/{BRAND_USER_ID}").json()
    assert account["status"] == "needs_reauth"
    assert account["last_error"]
    assert "demoBrandAccessToken" not in reply.text


def test_a_live_query_spends_the_allowance_the_collectors_share_and_waits_its_turn(
    live_api: ApiCaller, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a collector of the deployment that spent this window's allowance (a window of ~11 days, so the test
    # cannot straddle two), and public Posts
    window = 1_000_000
    monkeypatch.setenv("RATE_WINDOW_SECONDS", str(window))
    collector = SharedRateBudget(live_api.resources.registry_table, window_seconds=window)
    assert collector.delay_before_call("totals") == 0.0
    collector.record_response("totals", {"x-per-minute-limit": "1", "x-per-minute-remaining": "0"})
    public = brand_posts(emulator)[:2]
    emulator.clear_log()

    # When /totals is queried live
    reply = live_api("POST", "/engagement/totals", body={"tweet_ids": public})

    # Then X is not called at all: the query answers 202 with a job whose Posts wait for the window to renew
    assert emulator.log == []
    assert reply.status == 202, reply.text
    body = reply.json()
    assert body["progress"]["pending"] == 2 and set(body["results"]) == set(public)
    assert {result["status"] for result in body["results"].values()} == {"rate_limited"}


def test_a_live_query_the_api_cannot_answer_in_time_answers_202_before_the_gateway_gives_up(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given an API taking 5 s to answer, and 8 s of the function left (the answer must leave by then, so the query
    # itself has 3 s)
    register_brand(live_api, emulator)
    owned = brand_posts(emulator)[:2]
    live_api("POST", "/tweets", body={"tweet_ids": owned, "account_id": BRAND_USER_ID})
    emulator.set_faults(FaultConfig(latency_ms=5_000))
    live_api.remaining_millis = 8_000

    # When /28hr is queried live
    started = time.monotonic()
    reply = live_api("POST", "/engagement/28hr", body={"tweet_ids": owned, "account_id": BRAND_USER_ID})

    # Then it answers 202 within the 8 s with a job holding both Posts; their statuses say deferred
    assert time.monotonic() - started < 8
    assert reply.status == 202, reply.text
    body = reply.json()
    assert {result["status"] for result in body["results"].values()} == {"deferred"} and len(body["results"]) == 2
    assert status_dal().get_statuses(owned[0])[0].status == "deferred"


def test_app_credentials_refused_answer_503_and_pause_without_blaming_the_account(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given a registered account and an app bearer token X no longer accepts
    register_brand(live_api, emulator)
    emulator.rotate_bearer_token()
    public = brand_posts(emulator)[:1]
    try:
        # When /totals is queried live with the app token, and again
        first = live_api("POST", "/engagement/totals", body={"tweet_ids": public})
        emulator.clear_log()
        second = live_api("POST", "/engagement/totals", body={"tweet_ids": public})
    finally:
        emulator.restore_credentials()

    # Then both answer 503 naming the app's credentials, the second without calling X, and no account is flagged
    assert (first.status, first.error_code) == (503, "app_credentials_refused"), first.text
    assert (second.status, second.error_code) == (503, "app_credentials_refused") and emulator.log == []
    assert live_api("GET", f"/accounts/{BRAND_USER_ID}").json()["status"] == "active"
    app = live_api("GET", "/app/status").json()
    assert app["credentials"]["status"] == "needs_credentials" and "bearer token" in app["credentials"]["error"]


def test_unknown_account_is_404_before_any_call(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    emulator.clear_log()
    reply = live_api("POST", "/engagement/28hr", body={"tweet_ids": brand_posts(emulator)[:1], "account_id": "123"})
    assert reply.status == 404 and reply.error_code == "account_not_found"
    assert emulator.log == []


def _days_ago(days: float) -> str:
    return to_iso(datetime.now(UTC) - timedelta(days=days))


@pytest.mark.parametrize(
    ("endpoint", "body", "status", "code", "field"),
    [
        ("28hr", {"tweet_ids": [str(10**15 + n) for n in range(251)]}, 400, "too_many_ids", "tweet_ids"),
        ("totals", {"tweet_ids": [str(10**15 + n) for n in range(10_001)]}, 422, "validation_error", "tweet_ids"),
        ("totals", {"tweet_ids": ["1", "x1"]}, 422, "validation_error", "body.tweet_ids[1]"),
        ("totals", {"tweet_ids": ["1"], "engagement_types": ["url_clicks"]}, 400, "unknown_metric", "engagement_types"),
        ("28hr", {"tweet_ids": ["1"], "engagement_types": ["quote_tweets"]}, 400, "unknown_metric", "quote_tweets"),
        ("weekly", {"tweet_ids": ["1"]}, 422, "validation_error", "path.endpoint"),
        ("totals", {"tweet_ids": ["1"], "start": "2026-11-01T00:00:00Z"}, 400, "invalid_query", "start/end"),
        ("historical", {"tweet_ids": ["1"], "start": "not-a-date"}, 400, "invalid_timestamp", "start"),
        (
            "historical",
            {
                "tweet_ids": ["1"],
                "start": _days_ago(400),
                "end": _days_ago(390),
            },
            400,
            "window_too_old",
            "365",
        ),
        (
            "historical",
            {
                "tweet_ids": ["1"],
                "start": _days_ago(2),
                "end": _days_ago(-2),
            },
            400,
            "window_in_future",
            "end",
        ),
        ("28hr", {"tweet_ids": ["1"]}, 400, "account_required", "account_id"),
        ("totals", {"tweet_ids": ["1"], "engagement_types": ["impressions"]}, 400, "account_required", "account_id"),
    ],
)
def test_bad_live_queries_are_refused_before_any_call(
    live_api: ApiCaller, emulator: EmulatorServer, endpoint: str, body: dict, status: int, code: str, field: str
) -> None:
    # Given a query that breaks a documented limit
    emulator.clear_log()

    # When it is sent
    reply = live_api("POST", f"/engagement/{endpoint}", body=body)

    # Then the status and code name the problem, and X was never called
    assert reply.status == status, reply.text
    assert reply.error_code == code
    assert field in reply.json()["error"]["message"]
    assert emulator.log == []
