"""Client decisions on documented error shapes the emulator does not produce, through a scripted
transport (a requests adapter that answers from a list and records what was sent)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from requests.adapters import HTTPAdapter

from tests.client.scripted import BASE, per_tweet, scripted_client
from xengage.api_client import (
    AppCredentials,
    AuthError,
    Endpoint,
    EngagementClient,
    Reason,
    RetryPolicy,
    UserTokens,
)
from xengage.api_client.catalog import Refusal
from xengage.api_client.models import RefusedMetric
from xengage.observability import client_logger

_client = scripted_client
_per_tweet = per_tweet


def test_request_is_a_json_post_with_string_ids_gzip_and_exact_url(app: AppCredentials, clock) -> None:
    # Given a scripted 200
    client, adapter = _client(app, clock, [(200, _per_tweet({"1": {"favorites": "3"}}))])
    # When /totals is fetched with an int id
    result = client.totals([1], engagement_types=["favorites"])
    # Then the request is what the API documents
    sent = adapter.sent[0]
    assert sent.method == "POST" and sent.url == f"{BASE}/insights/engagement/totals"
    assert sent.headers["Accept-Encoding"] == "gzip" and sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Authorization"] == "Bearer AAAA-test"
    assert json.loads(sent.body or b"") == {
        "tweet_ids": ["1"],
        "engagement_types": ["favorites"],
        "groupings": {"per_tweet": {"group_by": ["tweet.id", "engagement.type"]}},
    }
    assert result.posts["1"].totals == {"favorites": 3}


def test_forbidden_for_author_id_strings_mark_not_owned_and_resend_the_rest(
    app: AppCredentials, owner: UserTokens, clock
) -> None:
    # Given the Ruby client's recorded multi-author 403, then a clean answer
    errors = [
        "Forbidden to access tweets for author id 1114564404: 640022366307745792",
        "Forbidden to access tweets for author id 18435372: 640026211712786432, 640026277605339136",
    ]
    client, adapter = _client(
        app, clock, [(403, {"errors": errors}), (200, _per_tweet({"5": {"impressions": {"2026-11-25": {"01": "1"}}}}))]
    )
    ids = ["640022366307745792", "5", "640026211712786432", "640026277605339136"]
    # When fetched
    result = client.hourly_28hr(ids, user=owner, engagement_types=["impressions"])
    # Then the three named ids are not_owned and only "5" was sent again
    assert [result.posts[i].status for i in ids] == ["not_owned", "ok", "not_owned", "not_owned"]
    assert adapter.sent_ids() == [ids, ["5"]]


def test_400_listing_unavailable_ids_retries_the_rest_once(app: AppCredentials, owner: UserTokens, clock) -> None:
    client, adapter = _client(
        app,
        clock,
        [
            (400, {"errors": ["1 Tweet ID(s) are unavailable"], "unavailable_tweet_ids": ["2"]}),
            (200, _per_tweet({"1": {"favorites": "1"}, "3": {"favorites": "2"}})),
        ],
    )
    result = client.totals(["1", "2", "3"], engagement_types=["favorites"])
    assert result.counts_by_status() == {"ok": 2, "unavailable": 1}
    assert adapter.sent_ids() == [["1", "2", "3"], ["1", "3"]]


def test_forbidden_metrics_with_owner_tokens_are_dropped_and_flagged(
    app: AppCredentials, owner: UserTokens, clock
) -> None:
    # Given an account that may not read impressions
    client, adapter = _client(
        app,
        clock,
        [(403, {"errors": ["Forbidden to access metrics: impressions"]}), (200, _per_tweet({"7": {"favorites": "4"}}))],
    )
    # When /totals asks for impressions and favorites with its tokens
    result = client.totals(["7"], engagement_types=["impressions", "favorites"], user=owner)
    # Then the call is repeated without impressions and the Post says impressions were not served
    assert json.loads(adapter.sent[1].body or b"")["engagement_types"] == ["favorites"]
    assert result.posts["7"].ok and result.posts["7"].unsupported_metrics == {"impressions"}
    # And why: the API refused it, in its words
    assert result.posts["7"].refusals == {
        "impressions": RefusedMetric(Refusal.REFUSED_BY_API, "Forbidden to access metrics: impressions")
    }


def test_metrics_refused_to_the_bearer_token_are_reported_not_blamed_on_credentials(app: AppCredentials, clock) -> None:
    client, adapter = _client(app, clock, [(403, {"errors": ["Forbidden to access metrics: retweets"]})])
    result = client.totals(["7"], engagement_types=["retweets"])
    # Then nothing was left to ask: the Post says so, and the result names the refused metric with the API's words
    assert result.posts["7"].status == Reason.UNSUPPORTED_METRIC.value and len(adapter.sent) == 1
    assert result.refused_metrics == {"retweets": "Forbidden to access metrics: retweets"}


def test_a_403_about_the_tokens_is_an_auth_error_naming_the_account(
    app: AppCredentials, owner: UserTokens, clock
) -> None:
    client, adapter = _client(
        app, clock, [(403, {"errors": ["Your account could not be authenticated. Reason: Access token not found"]})]
    )
    with pytest.raises(AuthError, match="account 1001") as caught:
        client.hourly_28hr(["7"], user=owner)
    assert caught.value.status_code == 403 and len(adapter.sent) == 1


def test_ids_missing_from_a_200_fail_and_unsupported_ones_are_flagged(
    app: AppCredentials, owner: UserTokens, clock
) -> None:
    # Given an answer that lists one id as too old for impressions, serves its favorites, and skips another id
    answer = {
        "errors": ["Impressions & engagements for tweets older than 90 days (...) are not supported"],
        "unsupported_for_impressions_engagements_tweet_ids": ["1"],
        "per_tweet": {"1": {"favorites": "9"}, "2": {"impressions": "5", "favorites": "1"}},
    }
    client, _ = _client(app, clock, [(200, answer)])
    result = client.totals(["1", "2", "3"], user=owner, engagement_types=["impressions", "favorites"])
    assert result.posts["1"].ok and result.posts["1"].unsupported_metrics == {"impressions"}
    # And why: over 90 days, in the answer's own words
    assert result.posts["1"].refusals == {"impressions": RefusedMetric(Refusal.OVER_90_DAYS, answer["errors"][0])}
    assert result.posts["2"].totals == {"impressions": 5, "favorites": 1}
    assert result.posts["3"].status == Reason.FAILED.value and "missing" in (result.posts["3"].reason or "")
    assert result.errors == answer["errors"]


def test_unexpected_client_errors_fail_the_batch_without_retry(app: AppCredentials, clock) -> None:
    client, adapter = _client(app, clock, [(404, b"<html>not here</html>")])
    result = client.totals(["1", "2"])
    assert result.counts_by_status() == {"failed": 2} and len(adapter.sent) == 1
    assert "HTTP 404" in (result.posts["1"].reason or "")


def test_the_wait_budget_of_a_fetch_bounds_429_retries(app: AppCredentials, clock) -> None:
    # Given a budget smaller than one wait for the next minute
    client, adapter = _client(
        app, clock, [(429, {"errors": ["Rate limit exceeded"]})], retry=RetryPolicy(total_wait_budget=5)
    )
    clock.moment = clock.moment.replace(second=10)
    # When the API answers 429
    result = client.totals(["1"])
    # Then the Post is handed on at once, rate limited until the next minute, instead of waiting 50 s
    assert result.counts_by_status() == {"rate_limited": 1} and result.throttled == 1 and len(adapter.sent) == 1
    assert result.posts["1"].retry_at == clock.moment.replace(second=0) + timedelta(minutes=1, seconds=0.25)


def test_logs_of_a_retried_oauth_fetch_hold_no_secret(
    app: AppCredentials, owner: UserTokens, clock, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a 503 then an answer
    answer = _per_tweet({"1": {"impressions": {"2026-11-25": {"03": "2"}}}})
    client, _ = _client(app, clock, [(503, {"errors": ["Service Unavailable"]}), (200, answer)])
    # When fetched with debug logging on
    with caplog.at_level(logging.DEBUG, logger=client_logger.name):
        result = client.hourly_28hr(["1"], user=owner, engagement_types=["impressions"])
    # Then the retry is logged, but no token, secret or signature reached the client's log
    assert result.posts["1"].ok and result.retries == 1
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == client_logger.name)
    assert "retry" in text
    for secret in (owner.access_token, owner.access_token_secret, app.consumer_secret, app.bearer_token, "oauth_"):
        assert secret not in text


def test_start_end_outside_historical_are_refused(app: AppCredentials, owner: UserTokens, clock) -> None:
    client, adapter = _client(app, clock, [])
    with pytest.raises(ValueError, match="/historical only"):
        client.fetch(Endpoint.HOURLY_28HR, ["1"], user=owner, start=clock.now())
    assert adapter.sent == []


def test_the_client_session_pools_connections_and_never_retries_in_urllib3(app: AppCredentials) -> None:
    # Given a client that builds its own session
    with EngagementClient(app, pool_size=6) as client:
        adapter = client.session.get_adapter("https://data-api.x.com/insights/engagement/totals")
        # Then its adapter keeps a pool and leaves retries to the client (a resend would reuse a nonce)
        assert isinstance(adapter, HTTPAdapter)
        assert adapter.max_retries.total == 0
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == 6


def test_a_200_naming_forbidden_ids_marks_them_not_owned_and_keeps_the_rest(
    app: AppCredentials, owner: UserTokens, clock
) -> None:
    answer = {"errors": ["Forbidden to access tweets: 2;"], "per_tweet": {"1": {"impressions": "3"}}}
    client, adapter = _client(app, clock, [(200, answer)])
    result = client.totals(["1", "2"], user=owner, engagement_types=["impressions"])
    assert result.posts["1"].totals == {"impressions": 3}
    assert result.posts["2"].status == Reason.NOT_OWNED.value
    assert len(adapter.sent) == 1
