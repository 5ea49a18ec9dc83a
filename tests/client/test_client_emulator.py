"""EngagementClient against the emulator over real HTTP: auth choice, batching, per-Post fates, retries."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, timedelta

import pytest
import requests

from local.emulator import BRAND_USER_ID, CLIENT_USER_ID, EmulatorServer, FaultConfig, PostState
from xengage.api_client import (
    AppAuthError,
    AuthError,
    Endpoint,
    EngagementClient,
    Reason,
    RetryPolicy,
    UserContextRequired,
    UserTokens,
)
from xengage.api_client.catalog import PUBLIC_TOTALS_METRICS, Refusal

pytestmark = pytest.mark.integration

MakeClient = Callable[..., EngagementClient]


def _ids(emu: EmulatorServer, owner: str, state: PostState = PostState.PUBLIC) -> list[str]:
    return [post.tweet_id for post in emu.world.posts_of(owner, state=state)]


def _young_public(emu: EmulatorServer, owner: str, max_age: timedelta) -> list[str]:
    now = emu.clock.now()
    return [p.tweet_id for p in emu.world.posts_of(owner, state=PostState.PUBLIC) if now - p.created_at < max_age]


# --- auth choice -------------------------------------------------------------------------------------


def test_totals_public_metrics_use_the_bearer_token_in_one_call(emu: EmulatorServer, make_client: MakeClient) -> None:
    # Given public Posts of two accounts and no user tokens
    ids = _ids(emu, BRAND_USER_ID)[:5] + _ids(emu, CLIENT_USER_ID)[:5]
    # When /totals is fetched
    result = make_client().totals(ids)
    # Then one bearer call served every Post its public metrics
    assert [(e.auth_kind, e.id_count) for e in emu.log] == [("bearer", 10)]
    assert result.counts_by_status() == {"ok": 10}
    assert all(set(result.posts[i].totals) <= set(PUBLIC_TOTALS_METRICS) and result.posts[i].totals for i in ids)
    assert result.calls == 1 and result.retries == 0


def test_private_metrics_are_signed_with_the_owner_tokens(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    # Given the brand's young Posts and its tokens
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))
    # When /totals is fetched with the default (user) metrics
    result = make_client().totals(ids, user=brand)
    # Then the call was OAuth 1.0a as the brand and impressions came back
    assert [(e.auth_kind, e.user_id) for e in emu.log] == [("oauth1", BRAND_USER_ID)]
    assert all("impressions" in result.posts[i].totals for i in ids)


def test_time_series_without_tokens_is_refused_before_any_request(emu: EmulatorServer, make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(UserContextRequired):
        client.hourly_28hr(_ids(emu, BRAND_USER_ID)[:2], user=None)
    with pytest.raises(UserContextRequired):
        client.totals(_ids(emu, BRAND_USER_ID)[:2], engagement_types=["impressions"])
    assert emu.log == []


def test_unknown_user_tokens_raise_auth_error_naming_the_account_without_retry(
    emu: EmulatorServer, make_client: MakeClient
) -> None:
    # Given tokens the emulator never issued
    stranger = UserTokens("999-unknown-token", "unknown-secret", user_id="999", screen_name="stranger")
    # When /28hr is asked with them
    with pytest.raises(AuthError, match="account 999") as caught:
        make_client().hourly_28hr(_ids(emu, BRAND_USER_ID)[:3], user=stranger)
    # Then it failed once with 401, and nothing secret is in the message
    assert caught.value.status_code == 401
    assert len(emu.log) == 1
    assert "unknown-secret" not in str(caught.value)


def test_a_wrong_bearer_token_raises_an_app_auth_error(emu: EmulatorServer, make_client: MakeClient) -> None:
    client = make_client()
    client.app = type(client.app)(client.app.consumer_key, client.app.consumer_secret, "not-the-bearer")
    with pytest.raises(AppAuthError, match=r"app credentials: .*bearer token") as caught:
        client.totals(_ids(emu, BRAND_USER_ID)[:2])
    assert len(emu.log) == 1 and caught.value.account is None


# --- batching ----------------------------------------------------------------------------------------


def test_totals_and_time_series_are_batched_250_and_25(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    # Given 300 Posts of one account (the module world grows by these; they are public and young)
    owner = emu.world.add_user("1000000050", "batching_user", "1000000050-batch-token", "batch-secret")
    now = emu.clock.now()
    ids = [emu.world.add_post(owner.user_id, now - timedelta(hours=2 + k % 500)).tweet_id for k in range(300)]
    tokens = UserTokens(owner.access_token, owner.access_token_secret, user_id=owner.user_id)
    client = make_client()
    # When /totals and /28hr are fetched
    totals = client.totals(ids + ids[:10])  # duplicates are sent once
    emu_totals = [e.id_count for e in emu.log]
    emu.clear_log()
    hourly = client.hourly_28hr(ids[:60], user=tokens, engagement_types=["impressions"])
    # Then /totals took ceil(300/250) calls and /28hr ceil(60/25), each within its limit
    assert emu_totals == [250, 50]
    assert [e.id_count for e in emu.log] == [25, 25, 10]
    assert totals.counts_by_status() == {"ok": 300} and hourly.counts_by_status() == {"ok": 60}
    # And hourly keys are aware UTC hour starts
    some_hours = next(iter(hourly.posts.values())).hourly
    assert some_hours and all(h.tzinfo is UTC and h.minute == 0 for h in some_hours)


def test_historical_range_longer_than_four_weeks_is_split_in_windows(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens, shared_time
) -> None:
    # Given a 40-day range ending an hour ago
    end = shared_time.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:3]
    # When /historical is fetched for it
    result = make_client().historical(
        ids, user=brand, start=end - timedelta(days=40), end=end, engagement_types=["impressions"]
    )
    # Then two windows were asked and the result spans the whole range
    assert len(emu.log) == 2
    assert result.start == end - timedelta(days=40) and result.end == end
    assert result.counts_by_status() == {"ok": 3}


# --- per-Post fates ----------------------------------------------------------------------------------


def test_deleted_and_unknown_posts_are_unavailable_and_the_rest_kept(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    # Given live Posts, a deleted one and an id the API never had
    live = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:3]
    deleted = _ids(emu, BRAND_USER_ID, PostState.DELETED)
    # When fetched
    result = make_client().hourly_28hr([*live, *deleted, "1234567"], user=brand)
    # Then one call sufficed; the gone ones are unavailable and the live ones ok
    assert len(emu.log) == 1
    assert {i: result.posts[i].status for i in [*deleted, "1234567"]} == dict.fromkeys(
        [*deleted, "1234567"], "unavailable"
    )
    assert all(result.posts[i].ok and result.posts[i].hourly for i in live)


def test_posts_of_another_account_are_not_owned_and_the_rest_retried(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    # Given the brand's tokens and a batch mixing its Posts with the agency client's
    mine = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:4]
    theirs = _young_public(emu, CLIENT_USER_ID, timedelta(days=80))[:2]
    # When /28hr is fetched
    result = make_client().hourly_28hr([mine[0], theirs[0], *mine[1:], theirs[1]], user=brand)
    # Then the foreign Posts are not_owned, the brand's came back on the second call
    assert {result.posts[i].status for i in theirs} == {Reason.NOT_OWNED.value}
    assert all(result.posts[i].ok for i in mine)
    assert [(e.status, e.id_count) for e in emu.log] == [(403, 6), (200, 4)]


@pytest.fixture(scope="module")
def bisect_world(emulator: EmulatorServer) -> tuple[UserTokens, list[str], str]:
    """An account with 24 public Posts and 1 protected one."""
    owner = emulator.world.add_user("1000000060", "bisect_user", "1000000060-bisect-token", "bisect-secret")
    now = emulator.clock.now()
    public = [emulator.world.add_post(owner.user_id, now - timedelta(hours=3 + k)).tweet_id for k in range(24)]
    protected = emulator.world.add_post(owner.user_id, now - timedelta(days=2), state=PostState.PROTECTED).tweet_id
    return UserTokens(owner.access_token, owner.access_token_secret, user_id=owner.user_id), public, protected


@pytest.mark.parametrize("position", [0, 7, 12, 13, 24])
def test_one_protected_post_in_25_is_isolated_within_log2_plus_one_extra_calls(
    emu: EmulatorServer, make_client: MakeClient, bisect_world: tuple[UserTokens, list[str], str], position: int
) -> None:
    # Given 25 ids of which one, at `position`, is protected (the API's 400 names no id)
    tokens, public, protected = bisect_world
    ids = [*public[:position], protected, *public[position:]]
    # When /28hr is fetched
    result = make_client().hourly_28hr(ids, user=tokens, engagement_types=["impressions"])
    # Then the protected Post alone is `protected`, all others are ok
    assert result.posts[protected].status == Reason.PROTECTED.value
    assert all(result.posts[i].ok and result.posts[i].hourly for i in public)
    # And isolating it cost at most ceil(log2 25) + 1 = 6 calls beyond the first
    assert len(emu.log) == result.calls
    assert result.calls - 1 <= math.ceil(math.log2(25)) + 1


def test_unsupported_metrics_are_flagged_and_post_only_unsupported_when_nothing_came(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    # Given an 1,810-day-old video Post and a 95-day-old Post of the brand
    now = emu.clock.now()
    posts = emu.world.posts_of(BRAND_USER_ID, state=PostState.PUBLIC)
    video_too_old = next(p.tweet_id for p in posts if p.has_video and now - p.created_at > timedelta(days=1800))
    past_90 = next(p.tweet_id for p in posts if timedelta(days=90) < now - p.created_at < timedelta(days=100))
    client = make_client()
    # When video views and favorites are asked on /totals
    mixed = client.totals([video_too_old], engagement_types=["favorites", "video_views"])
    # Then the Post stays ok with video_views unsupported (and its placeholder "0" dropped)
    post = mixed.posts[video_too_old]
    assert post.ok and post.unsupported_metrics == {"video_views"}
    assert post.refusals["video_views"].reason is Refusal.OVER_1800_DAYS
    assert "favorites" in post.totals and "video_views" not in post.totals
    # When only impressions are asked for a Post past 90 days
    only = client.totals([past_90], engagement_types=["impressions"], user=brand)
    # Then nothing it asked could be served: unsupported_metric
    assert only.posts[past_90].status == Reason.UNSUPPORTED_METRIC.value
    assert only.posts[past_90].unsupported_metrics == {"impressions"}
    assert only.posts[past_90].refusals["impressions"].reason is Refusal.OVER_90_DAYS


# --- transient failures --------------------------------------------------------------------------------


def test_429_waits_for_the_next_minute_and_retries(
    emu: EmulatorServer, make_client: MakeClient, shared_time, brand: UserTokens
) -> None:
    # Given the next answer is a 429
    emu.script_faults(["429"])
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:2]
    started = shared_time.now()
    # When fetched
    result = make_client().hourly_28hr(ids, user=brand, engagement_types=["impressions"])
    # Then the client waited until past the minute boundary, retried once and got the data
    assert result.throttled == 1 and result.retries == 1 and result.calls == 2
    assert shared_time.now().minute != started.minute
    assert [e.status for e in emu.log] == [429, 200]
    assert result.counts_by_status() == {"ok": 2}


def test_server_errors_are_retried_with_bounded_full_jitter_backoff(
    emu: EmulatorServer, make_client: MakeClient, shared_time, brand: UserTokens
) -> None:
    emu.script_faults(["500", "502", "503"])
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:2]
    result = make_client().hourly_28hr(ids, user=brand, engagement_types=["impressions"])
    assert [e.status for e in emu.log] == [500, 502, 503, 200]
    assert result.retries == 3 and result.counts_by_status() == {"ok": 2}
    # Each wait lies under its exponential ceiling (base 0.2 s doubling)
    assert [s <= 0.2 * 2**k for k, s in enumerate(shared_time.sleeps)] == [True, True, True]


def test_persistent_server_errors_defer_the_batch_with_the_reason(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    emu.script_faults(["503"] * 3)
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:3]
    result = make_client(retry=RetryPolicy(max_attempts=3, base_delay=0.01)).hourly_28hr(ids, user=brand)
    assert len(emu.log) == 3
    # Then the Posts are handed on (transient), each with the reason and when to try again
    assert result.counts_by_status() == {"deferred": 3}
    assert "HTTP 503" in (result.posts[ids[0]].reason or "")
    assert all(result.posts[i].retry_at is not None for i in ids)


def test_timeouts_and_connection_resets_are_retried(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    # Given a hang longer than the client's read timeout, then a reset connection
    emu.set_faults(FaultConfig(hang_seconds=3.0))
    emu.script_faults(["timeout", "reset"])
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:2]
    # When fetched with a 0.3 s read timeout
    result = make_client(timeout=(1.0, 0.3)).hourly_28hr(ids, user=brand, engagement_types=["impressions"])
    # Then both were retried and the third attempt succeeded
    assert [e.fault for e in emu.log] == ["timeout", "reset", None]
    assert result.retries == 2 and result.counts_by_status() == {"ok": 2}


def test_malformed_json_is_retried_then_defers_the_batch_with_the_reason(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:2]
    emu.script_faults(["malformed"])
    recovered = make_client().hourly_28hr(ids, user=brand, engagement_types=["impressions"])
    assert recovered.retries == 1 and recovered.counts_by_status() == {"ok": 2}
    emu.script_faults(["malformed"] * 2)
    broken = make_client(retry=RetryPolicy(max_attempts=2, base_delay=0.01)).hourly_28hr(ids, user=brand)
    assert broken.counts_by_status() == {"deferred": 2}
    assert "malformed" in (broken.posts[ids[0]].reason or "")


def test_every_attempt_is_signed_again_with_a_fresh_nonce(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens
) -> None:
    # Given a session that records the nonce of every request it sends, and a 503 before success
    seen: list[str] = []
    encodings: list[str | None] = []

    def record(response: requests.Response, *args: object, **kwargs: object) -> None:
        nonce = re.search(r'oauth_nonce="([^"]+)"', str(response.request.headers["Authorization"]))
        seen.append(nonce.group(1) if nonce else "")
        encodings.append(response.headers.get("Content-Encoding"))

    session = requests.Session()
    session.hooks["response"].append(record)
    emu.script_faults(["503"])
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:2]
    # When fetched
    result = make_client(session=session).hourly_28hr(ids, user=brand, engagement_types=["impressions"])
    # Then two attempts went out with two different nonces, and the second was accepted
    assert len(seen) == 2 and seen[0] != seen[1] and all(seen)
    assert result.counts_by_status() == {"ok": 2}
    # And the answer came gzip-compressed because the client asked for it
    assert encodings[-1] == "gzip"
    session.close()


def test_resending_a_prepared_oauth_request_is_rejected_by_nonce_replay(emu: EmulatorServer, brand: UserTokens) -> None:
    # Given one OAuth-signed request, prepared once (what urllib3 Retry or session.send(prepared) would resend)
    from xengage.api_client.auth import oauth1_signer

    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:1]
    body = {
        "tweet_ids": ids,
        "engagement_types": ["impressions"],
        "groupings": {"g": {"group_by": ["tweet.id", "engagement.type"]}},
    }
    prepared = requests.Request(
        "POST", f"{emu.url}{Endpoint.HOURLY_28HR.path}", json=body, auth=oauth1_signer(emu.world.app, brand)
    ).prepare()
    with requests.Session() as session:
        first = session.send(prepared)
        again = session.send(prepared)
    # Then the replay is refused: why the client re-signs every attempt
    assert first.status_code == 200
    assert again.status_code == 401 and "Nonce already used" in again.text


def test_pacing_on_the_per_minute_headers_avoids_429s(
    emu: EmulatorServer, make_client: MakeClient, shared_time, brand: UserTokens
) -> None:
    # Given a limit of 3 calls a minute and 5 batches to send
    emu.set_per_minute_limit(3)
    owner = emu.world.add_user("1000000070", "paced_user", "1000000070-paced-token", "paced-secret")
    now = emu.clock.now()
    ids = [emu.world.add_post(owner.user_id, now - timedelta(hours=2 + k)).tweet_id for k in range(110)]
    tokens = UserTokens(owner.access_token, owner.access_token_secret, user_id=owner.user_id)
    # When /28hr is fetched
    result = make_client().hourly_28hr(ids, user=tokens, engagement_types=["impressions"])
    # Then no call was refused: the client spread them and waited for the next minute
    assert result.throttled == 0 and [e.status for e in emu.log] == [200] * 5
    assert len({e.at.replace(second=0, microsecond=0) for e in emu.log}) == 2
    assert result.counts_by_status() == {"ok": 110}


def test_historical_without_a_range_asks_for_the_previous_four_weeks(
    emu: EmulatorServer, make_client: MakeClient, brand: UserTokens, shared_time
) -> None:
    # Given no start or end
    ids = _young_public(emu, BRAND_USER_ID, timedelta(days=80))[:2]
    # When /historical is fetched
    result = make_client().historical(ids, user=brand, engagement_types=["engagements"])
    # Then one call covered the four weeks before the current hour, hour by hour
    hour = shared_time.now().replace(minute=0, second=0, microsecond=0)
    assert len(emu.log) == 1
    assert (result.start, result.end) == (hour - timedelta(weeks=4), hour)
    assert all(result.posts[i].ok and max(result.posts[i].hourly) < hour for i in ids)
