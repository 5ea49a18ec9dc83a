"""Collector logic: metrics, statuses, due markers, auth failures and idempotent reruns (moto + fake client)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.stack_dal import planner_deps
from tests.unit.fakes import (
    TICK,
    FakeEngagementClient,
    drain_queue,
    fake_deps,
    post_ids,
    register_account,
    stored_points,
)
from xengage.api_client.catalog import Endpoint
from xengage.api_client.errors import UserAuthError
from xengage.observability import logger, metrics
from xengage.pipeline.collector import InvalidPayload, collect, collect_direct, parse_message
from xengage.pipeline.events import ConsoleCollect, parse_event
from xengage.pipeline.planner import plan
from xengage.timeutil import to_iso

NOW = to_iso(TICK)
HOUR = TICK.replace(minute=0)
ACCOUNT_TOKEN = "account-access-token-value"


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[None]:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the Powertools logger writes, formatted as in Lambda (JSON)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield buffer
    logger.removeHandler(handler)


def _message(endpoint: Endpoint, ids: list[str], account_id: str | None = None, **extra: str):
    return parse_message(
        {"endpoint": endpoint.value, "tweet_ids": ids, "account_id": account_id, "scheduled_time": NOW, **extra}
    )


def _emitted() -> dict[str, float]:
    return {name: sum(values["Value"]) for name, values in metrics.metric_set.items()}


def test_totals_writes_one_item_per_post_at_the_tick(aws):
    # Given three app Posts tracked 3 hours after creation
    client = FakeEngagementClient()
    deps = fake_deps(client)
    ids = post_ids(3)
    deps.registry.track_posts(ids, None, now=NOW)

    # When their /totals message is collected
    summary = collect(_message(Endpoint.TOTALS, ids), deps)

    # Then each Post has one item keyed by the tick, its latest totals, an ok status and a marker due next tick
    assert stored_points(aws.metrics_table) == sorted((f"{i}#totals", NOW) for i in ids)
    assert client.calls[0].user is None
    for tweet_id in ids:
        post = deps.registry.get_post(tweet_id)
        assert post is not None and post.latest_totals == {"favorites": int(tweet_id) % 97, "retweets": 2}
        assert [s.status for s in deps.statuses.get_statuses(tweet_id)] == ["ok"]
        marker = deps.registry.get_due_marker(tweet_id, Endpoint.TOTALS)
        assert marker is not None and marker.next_due_at == to_iso(TICK + timedelta(minutes=1))
    assert summary.counts == {"ok": 3} and summary.items_written == 3 and summary.batch_write_calls == 1
    assert _emitted()["PostsCollected"] == 3


def test_owned_posts_are_signed_with_the_accounts_tokens(aws):
    # Given an account with stored tokens and two of its Posts
    client = FakeEngagementClient()
    deps = fake_deps(client)
    register_account(deps, "42")
    ids = post_ids(2)
    deps.registry.track_posts(ids, "42", now=NOW)

    # When /28hr is collected
    collect(_message(Endpoint.HOURLY_28HR, ids, "42"), deps)

    # Then the client got the account's tokens, each hour is one item, and the account records its success
    assert client.calls[0].user is not None and client.calls[0].user.access_token == ACCOUNT_TOKEN
    hours = [to_iso(HOUR - timedelta(hours=n)) for n in (3, 2, 1)]
    assert stored_points(aws.metrics_table) == sorted((f"{i}#28hr", h) for i in ids for h in hours)
    account = deps.registry.get_account("42")
    assert account is not None and account.last_success_at == NOW
    marker = deps.registry.get_due_marker(ids[0], Endpoint.HOURLY_28HR)
    assert marker is not None and marker.last_hour_collected == hours[-1]
    assert marker.next_due_at == to_iso(TICK + timedelta(hours=1))


def test_hours_before_the_post_existed_are_not_stored(aws):
    # Given a Post created 2 hours ago (16:15) and a /28hr answer with zeros for the 5 hours before the tick
    client = FakeEngagementClient(series_hours=5)
    deps = fake_deps(client)
    register_account(deps, "42")
    ids = post_ids(1, age=timedelta(hours=2))
    deps.registry.track_posts(ids, "42", now=NOW)

    # When it is collected
    summary = collect(_message(Endpoint.HOURLY_28HR, ids, "42"), deps)

    # Then only its creation hour and the ones after it are stored
    assert stored_points(aws.metrics_table) == [(f"{ids[0]}#28hr", to_iso(HOUR - timedelta(hours=n))) for n in (2, 1)]
    assert summary.items_written == 2 and summary.counts == {"ok": 1}


def test_historical_window_end_becomes_the_next_start(aws):
    # Given an owned Post and a /historical message for the last 5 hours
    client = FakeEngagementClient(series_hours=24)
    deps = fake_deps(client)
    register_account(deps, "42")
    ids = post_ids(1, age=timedelta(days=2))
    deps.registry.track_posts(ids, "42", now=NOW)
    start, end = HOUR - timedelta(hours=5), HOUR

    # When it is collected
    collect(_message(Endpoint.HISTORICAL, ids, "42", start=to_iso(start), end=to_iso(end)), deps)

    # Then five hourly items exist and the marker resumes at the window end tomorrow
    assert len(stored_points(aws.metrics_table)) == 5
    assert (client.calls[0].start, client.calls[0].end) == (start, end)
    marker = deps.registry.get_due_marker(ids[0], Endpoint.HISTORICAL)
    assert marker is not None and marker.last_hour_collected == to_iso(end)
    assert marker.next_due_at == to_iso(TICK + timedelta(days=1))


def test_historical_start_beyond_the_look_back_at_collection_time_is_clamped(aws):
    # Given a Post a year old, planned at the tick from the oldest hour the look-back allowed then
    client = FakeEngagementClient(series_hours=24 * 400)
    ids = post_ids(1, age=timedelta(days=366))
    start = HOUR - timedelta(days=365)
    collected_at = TICK + timedelta(minutes=45)  # the message waited in the queue
    deps = fake_deps(client, now=collected_at)
    register_account(deps, "42")
    deps.registry.track_posts(ids, "42", now=NOW)

    # When it is collected 45 minutes later, when that hour has fallen out of the 365 days
    summary = collect(_message(Endpoint.HISTORICAL, ids, "42", start=to_iso(start), end=to_iso(HOUR)), deps)

    # Then the window starts at the first hour still served, and the Post is stored, not failed
    assert client.calls[0].start == start + timedelta(hours=1)
    assert client.calls[0].start >= collected_at - timedelta(days=365)
    assert summary.counts == {"ok": 1}
    assert summary.items_written == 365 * 24 - 1


def test_every_post_ends_stored_or_with_a_reason(aws):
    # Given four Posts: ok, unavailable, protected, not_owned
    ids = post_ids(4)
    client = FakeEngagementClient(outcomes={ids[1]: "unavailable", ids[2]: "protected", ids[3]: "not_owned"})
    deps = fake_deps(client)
    deps.registry.track_posts(ids, None, now=NOW)

    # When they are collected
    summary = collect(_message(Endpoint.TOTALS, ids), deps)

    # Then only the ok Post has metrics; the others carry their reason and message; none is retried next tick
    assert stored_points(aws.metrics_table) == [(f"{ids[0]}#totals", NOW)]
    statuses = {i: deps.statuses.get_statuses(i)[0] for i in ids}
    assert [statuses[i].status for i in ids] == ["ok", "unavailable", "protected", "not_owned"]
    assert statuses[ids[2]].message == "fake answer: protected"
    assert summary.counts == {"ok": 1, "unavailable": 1, "protected": 1, "not_owned": 1}
    assert all(deps.registry.get_due_marker(i, Endpoint.TOTALS).next_due_at > NOW for i in ids)  # type: ignore[union-attr]
    assert _emitted()["Posts_protected"] == 1


def test_a_permanent_failure_is_recorded_and_not_asked_again_before_a_day(aws):
    # Given two Posts of which one meets a permanent error (a 400 the API will repeat)
    ids = post_ids(2)
    deps = fake_deps(FakeEngagementClient(outcomes={ids[1]: "failed"}))
    deps.registry.track_posts(ids, None, now=NOW)

    # When collected (nothing raises: redelivery could not help)
    summary = collect(_message(Endpoint.TOTALS, ids), deps)

    # Then the ok Post is stored and due next tick; the failed one has its status and is due again in a day
    assert stored_points(aws.metrics_table) == [(f"{ids[0]}#totals", NOW)]
    assert deps.statuses.get_statuses(ids[1])[0].status == "failed"
    assert deps.registry.get_due_marker(ids[1], Endpoint.TOTALS).next_due_at == to_iso(TICK + timedelta(days=1))  # type: ignore[union-attr]
    assert deps.registry.get_due_marker(ids[0], Endpoint.TOTALS).next_due_at == to_iso(TICK + timedelta(minutes=1))  # type: ignore[union-attr]
    assert summary.continuations == 0


def test_needs_reauth_account_is_skipped_without_calling(aws, captured_logs):
    # Given an account flagged needs_reauth and two of its Posts
    client = FakeEngagementClient()
    deps = fake_deps(client)
    register_account(deps, "42")
    deps.registry.set_account_status("42", "needs_reauth", now=NOW, last_error="401")
    ids = post_ids(2)
    deps.registry.track_posts(ids, "42", now=NOW)

    # When its message is collected
    summary = collect(_message(Endpoint.TOTALS, ids, "42"), deps)

    # Then no call is made, every Post says why, a metric and a log line record it
    assert client.calls == []
    for tweet_id in ids:
        (status,) = deps.statuses.get_statuses(tweet_id)
        assert (status.status, status.message) == ("auth_failed", "account needs re-authorization")
    assert summary.skipped == "account needs re-authorization"
    assert _emitted()["Posts_auth_failed"] == 2
    assert "account needs re-authorization" in captured_logs.getvalue()
    assert stored_points(aws.metrics_table) == []


def test_auth_error_marks_the_account_and_is_not_retried(aws, captured_logs):
    # Given an account whose tokens were revoked
    client = FakeEngagementClient(error=UserAuthError("Unauthorized", account="42", status_code=401))
    deps = fake_deps(client)
    register_account(deps, "42")
    ids = post_ids(3)
    deps.registry.track_posts(ids, "42", now=NOW)

    # When its Posts are collected (no exception escapes: retrying cannot help)
    summary = collect(_message(Endpoint.HOURLY_28HR, ids, "42"), deps)

    # Then the account needs re-authorization, with the error, and every Post is auth_failed
    account = deps.registry.get_account("42")
    assert account is not None and account.status == "needs_reauth"
    assert account.last_error == "account 42: Unauthorized (HTTP 401)"
    assert summary.counts == {"auth_failed": 3}
    assert {deps.statuses.get_statuses(i)[0].status for i in ids} == {"auth_failed"}
    assert _emitted()["AccountsNeedingReauth"] == 1
    # And no secret value reached the logs
    logs = captured_logs.getvalue()
    assert "account 42" in logs
    for secret in (ACCOUNT_TOKEN, f"{ACCOUNT_TOKEN}-secret", "test-consumer-secret", "test-bearer"):
        assert secret not in logs


def test_missing_tokens_mark_the_account(aws):
    # Given a registered account whose secret was never stored
    client = FakeEngagementClient()
    deps = fake_deps(client)
    deps.registry.put_account("77", "nosecret", now=NOW)
    ids = post_ids(1)
    deps.registry.track_posts(ids, "77", now=NOW)

    # When its Post is collected
    summary = collect(_message(Endpoint.TOTALS, ids, "77"), deps)

    # Then nothing is called and the account is flagged with an error naming the secret (not a value)
    assert client.calls == [] and summary.counts == {"auth_failed": 1}
    account = deps.registry.get_account("77")
    assert account is not None and account.needs_reauth
    assert account.last_error == "secret xengage-test/accounts/77 does not exist"


def test_redelivered_message_does_not_duplicate_or_fetch_again(aws):
    # Given owned Posts collected once on /28hr
    client = FakeEngagementClient()
    deps = fake_deps(client)
    register_account(deps, "42")
    ids = post_ids(5)
    deps.registry.track_posts(ids, "42", now=NOW)
    message = _message(Endpoint.HOURLY_28HR, ids, "42")
    collect(message, deps)
    first = stored_points(aws.metrics_table)

    # When SQS delivers the same message again
    again = collect(message, deps)

    # Then the same 15 items exist, no more, and the API was not asked a second time
    assert stored_points(aws.metrics_table) == first
    assert len(first) == 15
    assert len(client.calls) == 1 and again.already_done == 5 and again.calls == 0


@pytest.mark.parametrize("endpoint", [Endpoint.TOTALS, Endpoint.HOURLY_28HR, Endpoint.HISTORICAL])
def test_same_schedule_tick_run_twice_leaves_one_runs_items(aws, endpoint):
    # Given 300 app Posts and 30 Posts of account 42, all created two days ago
    deps = fake_deps(FakeEngagementClient())
    register_account(deps, "42")
    app_ids = post_ids(300, age=timedelta(days=2))
    owned_ids = post_ids(30, age=timedelta(days=2), first=5000)
    deps.registry.track_posts(app_ids, None, now=NOW)
    deps.registry.track_posts(owned_ids, "42", now=NOW)

    # When the tick is planned and collected once
    plan(endpoint, TICK, deps=planner_deps())
    first_bodies = drain_queue(aws.collect_queue_url, deps)
    after_one_run = stored_points(aws.metrics_table)

    # And the scheduler retries the same tick: planned again, and the first run's messages are redelivered
    plan(endpoint, TICK, deps=planner_deps())
    for body in first_bodies:
        collect(parse_message(body), deps)
    drain_queue(aws.collect_queue_url, deps)

    # Then the items are exactly those of one run
    assert stored_points(aws.metrics_table) == after_one_run
    expected_posts = (app_ids + owned_ids) if endpoint is Endpoint.TOTALS else owned_ids
    assert {pk.split("#")[0] for pk, _ in after_one_run} == set(expected_posts)
    if endpoint is Endpoint.TOTALS:
        assert len(after_one_run) == 330 and {sk for _, sk in after_one_run} == {NOW}


def test_collect_direct_summarizes_by_status(aws):
    # Given 300 Posts (more than one /totals call) of which two are unavailable; only some are tracked
    ids = post_ids(300)
    client = FakeEngagementClient(outcomes={ids[0]: "unavailable", ids[299]: "unavailable"})
    deps = fake_deps(client)
    deps.registry.track_posts(ids[:10], None, now=NOW)

    # When the console invokes the collector directly (with a duplicate id)
    request = ConsoleCollect.model_validate({"endpoint": "totals", "tweet_ids": [*ids, ids[5]]})
    result = collect_direct(request, deps)

    # Then the ids were split 250 + 50 and the summary counts each status; markers were left alone
    assert [len(call.tweet_ids) for call in client.calls] == [250, 50]
    assert result["requested"] == 300
    assert result["counts"] == {"ok": 298, "unavailable": 2}
    assert result["items_written"] == 298
    assert deps.registry.get_due_marker(ids[1], Endpoint.TOTALS).next_due_at == NOW  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (["totals"], "must be a JSON object"),
        ({"endpoint": "weekly", "tweet_ids": ["1"]}, "endpoint must be one of totals, 28hr, historical"),
        ({"endpoint": "totals", "tweet_ids": []}, "tweet_ids must be a non-empty list"),
        ({"endpoint": "totals", "tweet_ids": ["12x"]}, "tweet ids must be strings of digits"),
        ({"endpoint": "28hr", "tweet_ids": ["1"]}, "28hr needs an account_id"),
        ({"endpoint": "totals", "tweet_ids": ["1"], "start": "2026-01-01"}, "only accepted for historical"),
        ({"endpoint": "historical", "tweet_ids": ["1"], "account_id": "4", "start": "soon"}, "start"),
        ({"endpoint": "totals", "tweet_ids": ["1"], "ids": ["2"]}, "unknown field(s): ids"),
    ],
)
def test_collect_direct_names_the_problem(aws, payload, problem):
    # Given a malformed console payload, When it is parsed and collected, Then InvalidPayload names the problem
    with pytest.raises(InvalidPayload, match=problem.replace("(", r"\(").replace(")", r"\)")):
        collect_direct(parse_event(ConsoleCollect, payload, InvalidPayload), fake_deps(FakeEngagementClient()))
