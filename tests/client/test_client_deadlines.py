"""Deadlines and the error taxonomy in the client: nothing waits past the deadline, what does not fit is handed on
with the time of its next attempt, and each refusal is told apart (metric, account, app)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.client.conftest import FakeClock
from tests.client.scripted import OAUTH_BASE, per_tweet, scripted_client
from xengage.api_client import (
    AppAuthError,
    AppCredentials,
    Deadline,
    ErrorKind,
    Reason,
    RetryPolicy,
    UserAuthError,
    UserTokens,
)

RATE_LIMITED = (429, {"errors": ["Rate limit exceeded"]}, {"x-per-minute-limit": "6", "x-per-minute-remaining": "0"})


def _deadline(clock: FakeClock, seconds: float) -> Deadline:
    return Deadline.after(seconds, clock=lambda: clock.moment.timestamp())


def _totals_answer(ids: list[str], remaining: int = 5) -> tuple[int, Any, dict[str, str]]:
    headers = {"x-per-minute-limit": "6", "x-per-minute-remaining": str(remaining)}
    return 200, per_tweet({i: {"favorites": "1"} for i in ids}), headers


def test_a_429_whose_minute_renews_after_the_deadline_hands_every_post_on_without_waiting(
    app: AppCredentials, clock: FakeClock
) -> None:
    # Given 10 s left and the API out of allowance at hh:mm:10 (the minute renews in 50 s)
    client, adapter = scripted_client(app, clock, [RATE_LIMITED])
    # When /totals is asked for two Posts
    result = client.totals(["1", "2"], engagement_types=["favorites"], deadline=_deadline(clock, 10))
    # Then one call was made, nothing slept, and both Posts are rate_limited until the next minute
    renewal = clock.moment.replace(second=0) + timedelta(minutes=1, seconds=0.25)
    assert len(adapter.sent) == 1 and clock.sleeps == []
    assert result.counts_by_status() == {"rate_limited": 2}
    assert {post.retry_at for post in result.posts.values()} == {renewal}
    assert "per-minute limit" in (result.posts["1"].reason or "") and result.throttled == 1


def test_a_429_that_renews_in_time_is_waited_out(app: AppCredentials, clock: FakeClock) -> None:
    # Given 120 s left: the 50 s until the next minute fit
    client, adapter = scripted_client(app, clock, [RATE_LIMITED, _totals_answer(["1"])])
    result = client.totals(["1"], engagement_types=["favorites"], deadline=_deadline(clock, 120))
    assert result.counts_by_status() == {"ok": 1} and len(adapter.sent) == 2
    assert clock.sleeps == [pytest.approx(50.25)]


def test_an_allowance_spent_by_earlier_batches_defers_the_rest_without_a_call(
    app: AppCredentials, clock: FakeClock
) -> None:
    # Given 300 ids (two /totals batches) and an answer saying no call is left this minute
    ids = [str(n) for n in range(1, 301)]
    client, adapter = scripted_client(app, clock, [_totals_answer(ids[:250], remaining=0)])
    # When fetched with 20 s left
    result = client.totals(ids, engagement_types=["favorites"], deadline=_deadline(clock, 20))
    # Then the first batch is stored and the second is rate_limited without being sent
    assert len(adapter.sent) == 1
    assert result.counts_by_status() == {"ok": 250, "rate_limited": 50}
    assert all(result.posts[i].pending for i in ids[250:])


def test_batches_that_would_run_past_the_deadline_are_deferred_not_sent(app: AppCredentials, clock: FakeClock) -> None:
    # Given an API that takes 4 s per call and 9 s left for three /28hr batches
    ids = [str(n) for n in range(1, 76)]
    hours = {"2026-11-25": {"17": "1"}}
    answers: list[Any] = [(200, per_tweet({i: {"impressions": hours} for i in ids[k : k + 25]})) for k in (0, 25)]
    client, adapter = scripted_client(app, clock, answers, latency=4.0)
    started = clock.moment
    result = client.hourly_28hr(
        ids, user=UserTokens("t", "s", user_id="1"), engagement_types=["impressions"], deadline=_deadline(clock, 9)
    )
    # Then two calls ran, the third batch is deferred to now, and the clock never passed the deadline
    assert len(adapter.sent) == 2 and clock.moment - started <= timedelta(seconds=9)
    assert result.counts_by_status() == {"ok": 50, "deferred": 25}
    assert "out of time" in (result.posts[ids[-1]].reason or "")
    # And every request's timeout was cut to what was left
    assert all(max(timeout) <= 9 for timeout in adapter.timeouts)


def test_server_errors_stop_retrying_when_the_backoff_would_cross_the_deadline(
    app: AppCredentials, clock: FakeClock
) -> None:
    # Given 5xx answers, a policy that would wait up to 16 s, and 3 s left
    client, adapter = scripted_client(app, clock, [(503, {"errors": ["Service Unavailable"]})] * 4)
    policy = RetryPolicy(base_delay=16.0, max_delay=16.0)
    client.retry = policy
    result = client.totals(["1"], engagement_types=["favorites"], deadline=_deadline(clock, 3))
    # Then the Post is deferred with the reason, and the waits spent stayed within the 3 s
    assert result.posts["1"].status == Reason.DEFERRED.value and "HTTP 503" in (result.posts["1"].reason or "")
    assert sum(clock.sleeps) <= 3 and len(adapter.sent) >= 1
    assert result.posts["1"].retry_at is not None and result.posts["1"].retry_at > clock.moment


def test_a_historical_range_stopped_in_its_second_window_says_where_to_resume(
    app: AppCredentials, owner: UserTokens
) -> None:
    # Given a 6-week range (two windows), the first answered, the second refused for the minute with 1 s left
    clock = FakeClock(datetime(2026, 11, 25, 18, 0, 10, tzinfo=UTC))
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 12, tzinfo=UTC)
    first = (200, per_tweet({"7": {"impressions": {"2026-10-01": {"05": "3"}}}}))
    client, _ = scripted_client(app, clock, [first, RATE_LIMITED])
    result = client.historical(["7"], user=owner, start=start, end=end, deadline=_deadline(clock, 5))
    # Then the Post is rate_limited, keeps the hour the first window gave, and the second window is where to resume
    post = result.posts["7"]
    assert post.status == Reason.RATE_LIMITED.value and post.hourly
    assert result.resume_from == start + timedelta(weeks=4)


def test_a_retired_engagement_type_is_dropped_and_reported_and_the_others_collected(
    app: AppCredentials, owner: UserTokens, clock: FakeClock
) -> None:
    # Given an API that no longer offers media_views
    refusal = (400, {"errors": ["Unsupported engagement types for /28hr: media_views"]})
    hours = {"2026-11-25": {"17": "4"}}
    client, adapter = scripted_client(app, clock, [refusal, (200, per_tweet({"7": {"impressions": hours}}))])
    result = client.hourly_28hr(["7"], user=owner, engagement_types=["impressions", "media_views"])
    # Then it asked again without it, the Post is ok, and the refusal is reported with the API's words
    assert json.loads(adapter.sent[1].body or b"")["engagement_types"] == ["impressions"]
    assert result.posts["7"].ok and result.posts["7"].unsupported_metrics == {"media_views"}
    assert result.refused_metrics == {"media_views": "Unsupported engagement types for /28hr: media_views"}


def test_another_400_is_permanent_and_sent_once(app: AppCredentials, owner: UserTokens, clock: FakeClock) -> None:
    client, adapter = scripted_client(app, clock, [(400, {"errors": ["Invalid groupings"]})])
    result = client.hourly_28hr(["7"], user=owner, engagement_types=["impressions"])
    assert result.posts["7"].status == Reason.FAILED.value and len(adapter.sent) == 1
    assert Reason(result.posts["7"].status).kind is ErrorKind.PERMANENT


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Your account could not be authenticated. Reason: Unknown consumer key", AppAuthError),
        ("Your account could not be authenticated. Reason: Access token not found", UserAuthError),
    ],
)
def test_a_401_that_names_the_credentials_is_blamed_on_them_without_asking_x(
    app: AppCredentials, owner: UserTokens, clock: FakeClock, message: str, error: type[Exception]
) -> None:
    client, adapter = scripted_client(app, clock, [(401, {"errors": [message]})], oauth_base_url=OAUTH_BASE)
    with pytest.raises(error):
        client.hourly_28hr(["7"], user=owner)
    assert len(adapter.sent) == 1


@pytest.mark.parametrize(
    ("token_answer", "error"),
    [
        ((403, {"errors": [{"code": 99, "message": "Unable to verify your credentials"}]}), AppAuthError),
        ((200, {"token_type": "bearer", "access_token": "AAAA-test"}), UserAuthError),
    ],
)
def test_an_ambiguous_401_asks_x_whether_the_app_credentials_still_hold(
    app: AppCredentials, owner: UserTokens, clock: FakeClock, token_answer: tuple[int, Any], error: type[Exception]
) -> None:
    # Given a 401 that could be the consumer secret or the token secret (both only break the signature)
    ambiguous = (401, {"errors": ["Your account could not be authenticated. Reason: Invalid signature"]})
    client, adapter = scripted_client(app, clock, [ambiguous, token_answer], oauth_base_url=OAUTH_BASE)
    # When it happens, the client asks X's app-only token endpoint with the consumer key and secret
    with pytest.raises(error) as caught:
        client.hourly_28hr(["7"], user=owner)
    assert str(adapter.sent[1].url) == f"{OAUTH_BASE}/oauth2/token"
    assert adapter.sent[1].headers["Authorization"].startswith("Basic ")
    # And only an account-level failure names the account
    assert (caught.value.account == "1001") == (error is UserAuthError)  # type: ignore[attr-defined]
