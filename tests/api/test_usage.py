"""GET /usage and the @handle cap on live queries (moto, and the emulator over real HTTP for live queries)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from local.emulator import BRAND_USER_ID, UNRELATED_USER_ID, EmulatorServer, PostState
from tests.api.conftest import ApiCaller
from tests.conftest import cold_starts
from tests.stack_dal import usage_dal
from tests.unit.fakes import FakeEngagementClient, fake_deps, post_ids
from xengage.api_client.catalog import Endpoint
from xengage.dal.usage import UsageDal
from xengage.pipeline.collector import collect, parse_message
from xengage.pipeline.usage import UsageGuard
from xengage.timeutil import to_iso, utc_now

pytestmark = pytest.mark.integration


def register(api: ApiCaller, emulator: EmulatorServer, user_id: str) -> str:
    user = emulator.world.users[user_id]
    reply = api.put_account(user_id, user.screen_name, token=user.access_token, secret=user.access_token_secret)
    assert reply.status == 200, reply.text
    return user.screen_name


def owned(emulator: EmulatorServer, user_id: str) -> list[str]:
    return emulator.world.tweet_ids(emulator.world.posts_of(user_id, state=PostState.PUBLIC))[:2]


def set_cap(monkeypatch: pytest.MonkeyPatch, cap: int) -> None:
    monkeypatch.setenv("MONTHLY_HANDLE_CAP", str(cap))
    cold_starts()  # a new deployment: settings read again (a new Deps), new processes


def test_usage_counts_user_context_queries_by_account_and_day_and_every_call_by_endpoint(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given the brand account registered, a live /28hr query with its tokens and a /totals one with the app's
    handle = register(live_api, emulator, BRAND_USER_ID)
    posts = owned(emulator, BRAND_USER_ID)
    signed = live_api("POST", "/engagement/28hr", body={"tweet_ids": posts, "account_id": BRAND_USER_ID})
    bearer = live_api("POST", "/engagement/totals", body={"tweet_ids": posts})
    assert signed.status == bearer.status == 200, signed.text + bearer.text

    # When this month's usage is read
    reply = live_api("GET", "/usage")

    # Then one @handle is counted (the bearer query counts none), today, and both queries' calls by endpoint
    assert reply.status == 200, reply.text
    usage = reply.json()
    today = utc_now().date()
    assert usage["month"] == today.strftime("%Y-%m") and usage["unique_handles"] == 1
    assert usage["cap"] is None and usage["capped"] is False
    (account,) = usage["accounts"]
    assert (account["account_id"], account["handle"]) == (BRAND_USER_ID, handle)
    assert account["first_call_at"][:10] == today.isoformat()
    expected_calls = {"totals": bearer.json()["calls"], "28hr": signed.json()["calls"], "historical": 0}
    assert usage["calls"] == expected_calls
    assert [day["day"] for day in usage["days"]] == [
        (today.replace(day=1) + timedelta(days=n)).isoformat() for n in range(today.day)
    ]
    assert usage["days"][-1] == {"day": today.isoformat(), "new_handles": 1, "calls": expected_calls}


def test_a_live_query_past_the_cap_is_refused_for_a_new_handle_only(
    live_api: ApiCaller, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cap of one @handle, taken by the brand account's live query
    set_cap(monkeypatch, 1)
    register(live_api, emulator, BRAND_USER_ID)
    other_handle = register(live_api, emulator, UNRELATED_USER_ID)
    brand_body = {"tweet_ids": owned(emulator, BRAND_USER_ID), "account_id": BRAND_USER_ID}
    assert live_api("POST", "/engagement/totals", body=brand_body).status == 200

    # When another account queries (refused before any call, so whose Posts they are does not matter), then the brand
    calls_before = len(emulator.log)
    refused = live_api(
        "POST", "/engagement/28hr", body={"tweet_ids": brand_body["tweet_ids"], "account_id": UNRELATED_USER_ID}
    )
    calls_after_refusal = len(emulator.log)
    again = live_api("POST", "/engagement/28hr", body=brand_body)

    # Then the new handle is refused with 429 usage_capped naming the cap and the account, before any call
    assert refused.status == 429 and refused.error_code == "usage_capped"
    message = refused.json()["error"]["message"]
    assert "monthly cap of 1 unique @handles" in message and f"@{other_handle}" in message
    assert set(refused.json()) == {"error"} and calls_after_refusal == calls_before
    # And the counted handle keeps working; the ledger says the month is capped
    assert again.status == 200, again.text
    usage = live_api("GET", "/usage").json()
    assert (usage["unique_handles"], usage["cap"], usage["capped"]) == (1, 1, True)
    assert [account["account_id"] for account in usage["accounts"]] == [BRAND_USER_ID]


def test_the_previous_month_stays_readable_after_the_turn(api: ApiCaller) -> None:
    # Given one process counting a handle in the last minute of last month and again in the first of this one
    this_month = utc_now().date().replace(day=1)
    first_minute = datetime.combine(this_month, datetime.min.time(), tzinfo=UTC)
    last_minute = first_minute - timedelta(minutes=1)
    guard = UsageGuard(UsageDal(usage_dal().table_name), None)
    assert guard.admit("42", "someone", now=last_minute) and guard.admit("42", "someone", now=first_minute)
    guard.record_calls(Endpoint.HOURLY_28HR, 3, now=last_minute)
    guard.flush()

    # When both months are read
    previous = api("GET", "/usage", query={"month": last_minute.strftime("%Y-%m")}).json()
    current = api("GET", "/usage").json()

    # Then each month has its own set, with its own first call, and last month has every one of its days
    assert previous["unique_handles"] == current["unique_handles"] == 1
    assert previous["accounts"][0]["first_call_at"] == to_iso(last_minute)
    assert current["accounts"][0]["first_call_at"] == to_iso(first_minute)
    assert len(previous["days"]) == last_minute.day and previous["days"][-1]["new_handles"] == 1
    assert previous["calls"] == {"totals": 0, "28hr": 3, "historical": 0}
    assert current["calls"] == {"totals": 0, "28hr": 0, "historical": 0}


@pytest.mark.parametrize("month", ["2026-13", "26-12", "2026-1", "december", "2026-12-01", "9999-01"])
def test_a_month_that_is_not_yyyy_mm_or_still_to_come_is_refused(api: ApiCaller, month: str) -> None:
    # Given a month that is malformed, impossible or in the future
    # When usage is asked for it
    reply = api("GET", "/usage", query={"month": month})

    # Then the answer is 400 invalid_month naming the value
    assert reply.status == 400 and reply.error_code == "invalid_month"
    assert repr(month) in reply.json()["error"]["message"]


def test_a_past_month_without_usage_answers_zeros_for_each_day(api: ApiCaller) -> None:
    # Given nothing recorded in February 2025
    # When it is read
    usage = api("GET", "/usage", query={"month": "2025-02"}).json()

    # Then it has its 28 days, no handle and no call
    assert usage["unique_handles"] == 0 and usage["accounts"] == [] and usage["capped"] is False
    assert [day["day"] for day in usage["days"]][::27] == ["2025-02-01", "2025-02-28"]
    assert all(day["new_handles"] == 0 and set(day["calls"].values()) == {0} for day in usage["days"])


def test_posts_the_cap_deferred_are_visible_on_the_post_and_by_status(
    api: ApiCaller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cap of one, taken by another account, and two tracked Posts of account 43
    set_cap(monkeypatch, 1)
    now = utc_now().replace(second=0, microsecond=0) + timedelta(minutes=1)  # the next tick: the Posts are due
    assert usage_dal().count_handle(now.strftime("%Y-%m"), "42", "first", at=to_iso(now), cap=1).counted
    api.put_account("43", "second")
    ids = post_ids(2, now=now)
    assert api("POST", "/tweets", body={"tweet_ids": ids, "account_id": "43"}).status == 200

    # When the collector takes their /totals message
    client = FakeEngagementClient()
    body = {"endpoint": "totals", "tweet_ids": ids, "account_id": "43", "scheduled_time": to_iso(now)}
    collect(parse_message(body), fake_deps(client, now=now))

    # Then nothing was called, and the Post and the status listing say usage_capped with the next attempt
    assert client.calls == []
    detail = api("GET", f"/tweets/{ids[0]}").json()
    (totals,) = [entry for entry in detail["availability"] if entry["endpoint"] == "totals"]
    assert totals["status"] == "usage_capped" and totals["next_attempt_at"] is not None
    assert "monthly cap of 1" in totals["message"]
    listed = api("GET", "/statuses/usage_capped").json()
    assert sorted(entry["tweet_id"] for entry in listed["posts"]) == sorted(ids)
    assert date.fromisoformat(totals["next_attempt_at"][:10]) >= now.date()
