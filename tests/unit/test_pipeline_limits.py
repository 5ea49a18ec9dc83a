"""The collector at the limits: continuations, leases, checkpoints, and the error taxonomy (moto + fake client)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from tests.stack_dal import app_state_dal
from tests.unit.fakes import (
    PENDING_RETRY,
    TICK,
    FakeEngagementClient,
    fake_deps,
    post_ids,
    register_account,
    stored_points,
)
from xengage.api_client.catalog import Endpoint
from xengage.api_client.errors import AppAuthError
from xengage.pipeline.collector import collect, parse_message
from xengage.pipeline.continuations import LEASE, MAX_TRANSIENT_ATTEMPTS, transient_delay_seconds
from xengage.timeutil import to_iso

NOW = to_iso(TICK)
HOUR = TICK.replace(minute=0)


def _message(endpoint: Endpoint, ids: list[str], account_id: str | None = None, **extra: Any):
    body = {"endpoint": endpoint.value, "tweet_ids": ids, "account_id": account_id, "scheduled_time": NOW, **extra}
    return parse_message(body)


def _lease(deps: Any, ids: list[str], endpoint: Endpoint) -> None:
    """What the planner does before it queues Posts: lease their due markers for the tick."""
    for marker in deps.registry.get_due_markers(ids, endpoint).values():
        assert deps.registry.lease_due(marker, lease=NOW, until=to_iso(TICK + LEASE))


@pytest.fixture
def sent_delays(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], int]]:
    """(body, DelaySeconds) of every continuation sent, as the collector asked SQS to hold them."""
    sent: list[tuple[dict[str, Any], int]] = []
    from xengage.dal.queue import CollectQueue

    original = CollectQueue.send_batch

    def recording(self: CollectQueue, bodies: Any, stats: Any = None, *, delays: Any = None) -> Any:
        sent.extend(zip([dict(b) for b in bodies], delays or [0] * len(bodies), strict=True))
        return original(self, bodies, stats, delays=delays)

    monkeypatch.setattr(CollectQueue, "send_batch", recording)
    return sent


def test_rate_limited_posts_are_handed_on_delayed_to_their_next_attempt(aws, sent_delays):
    # Given three Posts of which the API serves one before its per-minute limit is spent
    ids = post_ids(3)
    client = FakeEngagementClient(outcomes={ids[1]: "rate_limited", ids[2]: "rate_limited"})
    deps = fake_deps(client)
    deps.registry.track_posts(ids, None, now=NOW)

    # When their /totals message is collected
    summary = collect(_message(Endpoint.TOTALS, ids), deps)

    # Then the served Post is stored; the other two are in one continuation, delayed until the API takes them again,
    # for the same tick (so their snapshot keeps the tick's key)
    assert stored_points(aws.metrics_table) == [(f"{ids[0]}#totals", NOW)]
    ((body, delay),) = sent_delays
    assert body["tweet_ids"] == ids[1:] and body["scheduled_time"] == NOW and body["attempt"] == 0
    assert PENDING_RETRY.total_seconds() <= delay <= PENDING_RETRY.total_seconds() + 2
    assert summary.counts == {"ok": 1, "rate_limited": 2} and summary.continuations == 1
    # And each handed-on Post says so, with its next attempt, and stays leased until then (plus the lease)
    for tweet_id in ids[1:]:
        (status,) = deps.statuses.get_statuses(tweet_id)
        assert (status.status, status.next_attempt_at) == ("rate_limited", to_iso(TICK + PENDING_RETRY))
        marker = deps.registry.get_due_marker(tweet_id, Endpoint.TOTALS)
        assert marker is not None and marker.next_due_at == to_iso(TICK + PENDING_RETRY + LEASE)


def test_the_continuation_collects_what_was_handed_on_and_the_status_clears(aws, sent_delays):
    # Given a Post handed on once
    ids = post_ids(1)
    client = FakeEngagementClient(script=[{"*": "rate_limited"}])
    deps = fake_deps(client)
    deps.registry.track_posts(ids, None, now=NOW)
    _lease(deps, ids, Endpoint.TOTALS)
    collect(_message(Endpoint.TOTALS, ids), deps)

    # When its continuation arrives and the API serves it
    ((body, _),) = sent_delays
    collect(parse_message(body), deps)

    # Then it is stored once, ok with no next attempt, and due at its regular time
    assert stored_points(aws.metrics_table) == [(f"{ids[0]}#totals", NOW)]
    (status,) = deps.statuses.get_statuses(ids[0])
    assert (status.status, status.next_attempt_at) == ("ok", None)
    assert deps.registry.get_due_marker(ids[0], Endpoint.TOTALS).next_due_at == to_iso(TICK + timedelta(minutes=1))  # type: ignore[union-attr]


def test_transient_errors_without_progress_back_off_then_give_up_with_the_reason(aws, sent_delays):
    # Given a Post the API keeps failing transiently
    ids = post_ids(1)
    deps = fake_deps(FakeEngagementClient(outcomes={ids[0]: "deferred"}))
    deps.registry.track_posts(ids, None, now=NOW)
    _lease(deps, ids, Endpoint.TOTALS)

    # When it is collected, then each continuation in turn
    collect(_message(Endpoint.TOTALS, ids), deps)
    for _ in range(MAX_TRANSIENT_ATTEMPTS - 1):
        collect(parse_message(sent_delays[-1][0]), deps)

    # Then each continuation waited longer than the one before, and after the last one the Post failed, saying why
    delays = [delay for _, delay in sent_delays]
    assert [body["attempt"] for body, _ in sent_delays] == list(range(1, MAX_TRANSIENT_ATTEMPTS))
    assert delays == [max(30, transient_delay_seconds(n)) for n in range(MAX_TRANSIENT_ATTEMPTS - 1)]
    (status,) = deps.statuses.get_statuses(ids[0])
    assert status.status == "failed" and f"gave up after {MAX_TRANSIENT_ATTEMPTS} attempts" in (status.message or "")


def test_a_message_no_call_could_start_for_goes_on_as_it_is_without_writes(aws, sent_delays):
    # Given a message reached when the batch's earlier messages used the time (no call could start)
    ids = post_ids(2)
    deps = fake_deps(FakeEngagementClient(outcomes={"*": "deadline"}))
    deps.registry.track_posts(ids, None, now=NOW)
    _lease(deps, ids, Endpoint.TOTALS)
    message = _message(Endpoint.TOTALS, ids, attempt=2)

    # When it is collected
    summary = collect(message, deps)

    # Then it is sent on unchanged, at once (the attempts it made so far are not counted up), and nothing is written
    assert sent_delays == [(message.to_body(), 0)]
    assert summary.continuations == 1 and summary.counts == {}
    assert deps.statuses.get_statuses(ids[0]) == []
    assert deps.registry.get_due_marker(ids[0], Endpoint.TOTALS).lease == NOW  # type: ignore[union-attr]


def test_a_duplicate_delivery_after_the_lease_ended_fetches_nothing(aws, sent_delays):
    # Given Posts leased by the 18:15 tick and collected
    ids = post_ids(2)
    client = FakeEngagementClient()
    deps = fake_deps(client)
    deps.registry.track_posts(ids, None, now=NOW)
    _lease(deps, ids, Endpoint.TOTALS)
    collect(_message(Endpoint.TOTALS, ids), deps)

    # When SQS delivers the message again, and a message of another tick names the same Posts
    again = collect(_message(Endpoint.TOTALS, ids), deps)
    other = collect(_message(Endpoint.TOTALS, ids, scheduled_time=to_iso(TICK - timedelta(minutes=15))), deps)

    # Then neither calls the API or writes anything
    assert len(client.calls) == 1
    assert (again.already_done, again.calls, other.already_done, other.calls) == (2, 0, 2, 0)
    assert stored_points(aws.metrics_table) == sorted((f"{i}#totals", NOW) for i in ids)


def test_each_historical_window_is_stored_and_checkpointed_so_a_redelivery_resumes_after_it(aws, sent_delays):
    # Given an owned Post 40 days old (two 4-week windows): the first window is served, the second rate-limited
    ids = post_ids(1, age=timedelta(days=40))
    client = FakeEngagementClient(series_hours=24 * 45, script=[{}, {"*": "rate_limited"}])
    deps = fake_deps(client)
    register_account(deps, "42")
    deps.registry.track_posts(ids, "42", now=NOW)
    _lease(deps, ids, Endpoint.HISTORICAL)
    start = HOUR - timedelta(days=40)
    message = _message(Endpoint.HISTORICAL, ids, "42", start=to_iso(start), end=to_iso(HOUR))

    # When the message is collected
    summary = collect(message, deps)

    # Then the first window's hours are stored and checkpointed, and the continuation starts at the second window
    second = start + timedelta(weeks=4)
    assert summary.items_written == 28 * 24 and summary.counts == {"rate_limited": 1}
    assert deps.registry.get_due_marker(ids[0], Endpoint.HISTORICAL).last_hour_collected == to_iso(second)  # type: ignore[union-attr]
    ((body, _),) = sent_delays
    assert (body["start"], body["end"]) == (to_iso(second), to_iso(HOUR))

    # And when the original message is delivered again, it starts after the checkpoint: no window is fetched twice
    collect(message, deps)
    assert [call.start for call in client.calls] == [start, second, second]
    assert len(stored_points(aws.metrics_table)) == 40 * 24


def test_app_credentials_refused_pause_collection_without_blaming_the_account(aws, sent_delays):
    # Given an account and its Posts, and an API that refuses the app's consumer key
    client = FakeEngagementClient(error=AppAuthError("Unknown consumer key", status_code=401))
    deps = fake_deps(client)
    register_account(deps, "42")
    ids = post_ids(2)
    deps.registry.track_posts(ids, "42", now=NOW)

    # When its message is collected, then another one
    first = collect(_message(Endpoint.HOURLY_28HR, ids, "42"), deps)
    second = collect(_message(Endpoint.HOURLY_28HR, ids, "42"), deps)

    # Then the account is untouched, the app is flagged with the secret version, and the second message made no call
    assert deps.registry.get_account("42").status == "active"  # type: ignore[union-attr]
    state = app_state_dal().get()
    assert state.needs_credentials and state.secret_version == deps.secret_version()
    assert "Unknown consumer key" in (state.credentials_error or "")
    assert len(client.calls) == 1 and second.calls == 0
    assert first.counts == second.counts == {"app_auth_failed": 2}
    # And the Posts are released (due again), waiting for the planner to resume
    assert deps.registry.get_due_marker(ids[0], Endpoint.HOURLY_28HR).lease is None  # type: ignore[union-attr]
    assert sent_delays == []

    # When the operator stores new app credentials (a new secret version), collection is attempted again
    client.error = None
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.app_secret_arn,
        SecretString=json.dumps({"consumer_key": "k2", "consumer_secret": "s2", "bearer_token": "b2"}),
    )
    deps.registry.reschedule_due(ids[0], Endpoint.HOURLY_28HR, next_due_at=NOW, keep_lease=False)
    third = collect(_message(Endpoint.HOURLY_28HR, ids, "42"), deps)
    assert third.counts == {"ok": 2} and len(client.calls) == 2


def test_the_templates_placeholder_app_secret_is_refused_before_any_call(aws):
    # Given the app secret as the stack creates it
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.app_secret_arn,
        SecretString=json.dumps(
            {"consumer_key": "REPLACE_ME", "consumer_secret": "REPLACE_ME", "bearer_token": "REPLACE_ME"}
        ),
    )
    client = FakeEngagementClient()
    deps = fake_deps(client)
    ids = post_ids(1)
    deps.registry.track_posts(ids, None, now=NOW)

    # When a message is collected
    summary = collect(_message(Endpoint.TOTALS, ids), deps)

    # Then nothing is sent to X, the Post says why, and the app is flagged
    assert client.calls == [] and summary.counts == {"app_auth_failed": 1}
    assert "placeholder" in (deps.statuses.get_statuses(ids[0])[0].message or "")
    assert app_state_dal().get().needs_credentials


def test_a_metric_the_api_refuses_is_recorded_and_not_asked_again(aws):
    # Given an API that no longer offers media_views on /28hr
    refusal = "Unsupported engagement types for /28hr: media_views"
    client = FakeEngagementClient(refuse={"media_views": refusal})
    deps = fake_deps(client)
    register_account(deps, "42")
    ids = post_ids(1)
    deps.registry.track_posts(ids, "42", now=NOW)

    # When a message is collected, then the next tick's
    collect(_message(Endpoint.HOURLY_28HR, ids, "42"), deps)
    collect(_message(Endpoint.HOURLY_28HR, ids, "42", scheduled_time=to_iso(TICK + timedelta(hours=1))), deps)

    # Then the refusal is kept for the endpoint, the Post's status names the metric, and it is not asked again
    assert app_state_dal().get().refused_metrics == {Endpoint.HOURLY_28HR: {"media_views": refusal}}
    assert deps.statuses.get_statuses(ids[0])[0].unsupported_metrics == ("media_views",)
    assert deps.statuses.get_statuses(ids[0])[0].refusals == (("media_views", ("refused_by_api", refusal)),)
    assert client.calls[0].engagement_types is None
    assert client.calls[1].engagement_types is not None and "media_views" not in client.calls[1].engagement_types
    assert "impressions" in client.calls[1].engagement_types
