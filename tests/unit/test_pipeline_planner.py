"""Planner: due markers -> SQS messages of 250 (/totals) or 25 ids, grouped by auth context."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from tests.stack_dal import app_state_dal, planner_deps, registry_dal
from tests.unit.fakes import TICK, post_ids
from xengage.api_client.catalog import Endpoint
from xengage.dal import SendFailed
from xengage.dal.aws import sqs_client
from xengage.dal.queue import CollectQueue
from xengage.pipeline.continuations import LEASE
from xengage.pipeline.planner import plan, schedule_interval
from xengage.timeutil import to_iso

NOW = to_iso(TICK)


def _accounts(*user_ids: str) -> None:
    for user_id in user_ids:
        registry_dal().put_account(user_id, f"user{user_id}", now=NOW)


def _received(queue_url: str) -> list[dict[str, Any]]:
    sqs = sqs_client()
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(message["Body"]) for message in messages]
    return bodies


def _count_send_batches() -> list[int]:
    sizes: list[int] = []
    sqs_client().meta.events.register(
        "provide-client-params.sqs.SendMessageBatch", lambda params, **_: sizes.append(len(params["Entries"]))
    )
    return sizes


def test_totals_batches_of_250_per_auth_context(aws):
    # Given 600 app Posts and 30 Posts of account 42, all due
    registry = registry_dal()
    app_ids = post_ids(600)
    owned_ids = post_ids(30, first=1000)
    registry.track_posts(app_ids, None, now=NOW)
    registry.track_posts(owned_ids, "42", now=NOW)
    _accounts("42")
    send_sizes = _count_send_batches()

    # When the /totals tick is planned
    summary = plan(Endpoint.TOTALS, TICK, deps=planner_deps())

    # Then app ids go in 250/250/100 and account ids in one message, never mixed, in one SendMessageBatch
    bodies = _received(aws.collect_queue_url)
    by_account: dict[str | None, list[int]] = {}
    for body in bodies:
        by_account.setdefault(body["account_id"], []).append(len(body["tweet_ids"]))
        assert body["scheduled_time"] == NOW and body["endpoint"] == "totals"
    assert sorted(by_account[None]) == [100, 250, 250]
    assert by_account["42"] == [30]
    assert sorted(i for body in bodies for i in body["tweet_ids"]) == sorted(app_ids + owned_ids)
    assert send_sizes == [4]
    assert (summary.due, summary.planned, summary.messages, summary.send_calls) == (630, 630, 4, 1)
    assert summary.messages_by_account == {"APP": 3, "42": 1}


def test_time_series_batches_of_25_and_send_calls_of_10(aws):
    # Given 260 Posts of account 1 and 20 of account 2 (app Posts have no /28hr markers)
    registry = registry_dal()
    registry.track_posts(post_ids(260), "1", now=NOW)
    registry.track_posts(post_ids(20, first=500), "2", now=NOW)
    registry.track_posts(post_ids(50, first=900), None, now=NOW)
    _accounts("1", "2")
    send_sizes = _count_send_batches()

    # When the /28hr tick is planned
    summary = plan(Endpoint.HOURLY_28HR, TICK, deps=planner_deps())

    # Then 11 messages for account 1 (10 x 25 + 10) and one for account 2, sent 10 per call
    bodies = _received(aws.collect_queue_url)
    sizes = sorted((body["account_id"], len(body["tweet_ids"])) for body in bodies)
    assert sizes == sorted([("1", 25)] * 10 + [("1", 10), ("2", 20)])
    assert send_sizes == [10, 2]
    assert summary.send_calls == 2 and summary.messages == 12 and summary.planned == 280


def test_only_due_posts_are_planned(aws):
    # Given 5 due Posts and 5 due next hour
    registry = registry_dal()
    due = post_ids(5)
    later = post_ids(5, first=50)
    registry.track_posts(due + later, None, now=NOW)
    for tweet_id in later:
        registry.advance_due(tweet_id, Endpoint.TOTALS, next_due_at=to_iso(TICK + timedelta(hours=1)), collected_at=NOW)

    # When the tick is planned
    plan(Endpoint.TOTALS, TICK, deps=planner_deps())

    # Then only the due ones are sent
    (body,) = _received(aws.collect_queue_url)
    assert sorted(body["tweet_ids"]) == sorted(due)


def test_historical_batches_posts_needing_as_many_windows_from_the_earliest_start(aws):
    # Given Posts of one account: 3 never collected (created 3 days ago), 2 collected up to 6 hours ago,
    # and 1 never collected but created 40 days ago (two 4-week windows)
    registry = registry_dal()
    fresh = post_ids(3, age=timedelta(days=3))
    resumed = post_ids(2, age=timedelta(days=3), first=10)
    old = post_ids(1, age=timedelta(days=40), first=20)
    registry.track_posts(fresh + resumed + old, "42", now=NOW)
    _accounts("42")
    for tweet_id in resumed:
        registry.advance_due(
            tweet_id,
            Endpoint.HISTORICAL,
            next_due_at=NOW,
            collected_at=NOW,
            last_hour_collected=to_iso(TICK.replace(minute=0) - timedelta(hours=6)),
        )

    # When the /historical tick is planned
    summary = plan(Endpoint.HISTORICAL, TICK, deps=planner_deps())

    # Then the one-window Posts share one message from the earliest start (one call instead of two), the
    # two-window Post has its own, and all end at the tick's hour
    windows = {
        (body["start"], body["end"], tuple(sorted(body["tweet_ids"]))) for body in _received(aws.collect_queue_url)
    }
    hour = TICK.replace(minute=0)
    assert windows == {
        (to_iso(hour - timedelta(days=3)), to_iso(hour), tuple(sorted(fresh + resumed))),
        (to_iso(hour - timedelta(days=40)), to_iso(hour), tuple(old)),
    }
    assert summary.messages == 2


def test_historical_skips_posts_younger_than_an_hour(aws):
    registry = registry_dal()
    registry.track_posts(post_ids(2, age=timedelta(minutes=5)), "42", now=NOW)
    _accounts("42")
    summary = plan(Endpoint.HISTORICAL, TICK, deps=planner_deps())
    assert (summary.due, summary.skipped, summary.messages) == (2, 2, 0)
    assert _received(aws.collect_queue_url) == []


class _FlakySqs:
    """SendMessageBatch that reports the first `failures` entries Failed (not sender faults) once each."""

    def __init__(self, failures: int, *, sender_fault: bool = False, forever: bool = False) -> None:
        self.failures, self.sender_fault, self.forever = failures, sender_fault, forever
        self.calls: list[list[str]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append([entry["Id"] for entry in Entries])
        failing = Entries[: self.failures] if (self.forever or len(self.calls) == 1) else []
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e not in failing],
            "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": self.sender_fault} for e in failing],
        }


def test_failed_entries_are_resent_then_given_up(monkeypatch):
    # Given SQS failing 3 entries of the first call
    flaky = _FlakySqs(3)
    monkeypatch.setattr("xengage.dal.queue.sqs_client", lambda: flaky)
    bodies = [{"n": n} for n in range(10)]

    # When a batch is sent
    stats = CollectQueue("https://queue").send_batch(bodies)

    # Then only the 3 failed entries are resent, once
    assert flaky.calls == [[str(n) for n in range(10)], ["0", "1", "2"]]
    assert (stats.messages, stats.calls, stats.resent) == (10, 2, 3)

    # And when SQS keeps failing, the resends are bounded and the error is raised
    stubborn = _FlakySqs(2, forever=True)
    monkeypatch.setattr("xengage.dal.queue.sqs_client", lambda: stubborn)
    with pytest.raises(SendFailed, match="still failing after 3"):
        CollectQueue("https://queue").send_batch(bodies)
    assert len(stubborn.calls) == 3

    # And a sender fault is not resent at all
    refused = _FlakySqs(1, sender_fault=True)
    monkeypatch.setattr("xengage.dal.queue.sqs_client", lambda: refused)
    with pytest.raises(SendFailed, match="InternalError"):
        CollectQueue("https://queue").send_batch(bodies)
    assert len(refused.calls) == 1


# --- leases, accounts, capacity, pauses ---------------------------------------------------------------------------


def test_queued_posts_are_leased_so_a_retried_tick_queues_nothing_twice(aws):
    # Given 30 due app Posts
    registry = registry_dal()
    ids = post_ids(30)
    registry.track_posts(ids, None, now=NOW)

    # When the tick is planned, and the scheduler retries the same tick before anything was collected
    first = plan(Endpoint.TOTALS, TICK, deps=planner_deps())
    retried = plan(Endpoint.TOTALS, TICK, deps=planner_deps())

    # Then the Posts went out once, each marker leased by the tick until the lease runs out
    assert (first.planned, retried.due, retried.planned) == (30, 0, 0)
    assert len(_received(aws.collect_queue_url)) == 1
    marker = registry.get_due_marker(ids[0], Endpoint.TOTALS)
    assert marker is not None and marker.lease == NOW and marker.next_due_at == to_iso(TICK + LEASE)


def test_a_lease_is_won_by_one_planner_only(aws):
    # Given a marker read by two planner runs at once
    registry = registry_dal()
    (tweet_id,) = post_ids(1)
    registry.track_posts([tweet_id], None, now=NOW)
    (marker,) = list(registry.iter_due(Endpoint.TOTALS, NOW))
    # When both try to lease it
    won = [registry.lease_due(marker, lease=NOW, until=to_iso(TICK + LEASE)) for _ in range(2)]
    # Then only the first succeeds
    assert won == [True, False]


def test_posts_of_accounts_needing_reauth_or_gone_are_counted_not_planned(aws):
    # Given Posts of an active account, of one needing re-authorization, and of one no longer registered
    registry = registry_dal()
    active, flagged, gone = post_ids(2), post_ids(3, first=10), post_ids(4, first=20)
    registry.track_posts(active, "1", now=NOW)
    registry.track_posts(flagged, "2", now=NOW)
    registry.track_posts(gone, "3", now=NOW)
    _accounts("1", "2")
    registry.set_account_status("2", "needs_reauth", now=NOW, last_error="401")

    # When /28hr is planned
    summary = plan(Endpoint.HOURLY_28HR, TICK, deps=planner_deps())

    # Then only the active account's Posts are queued; the others are counted and stay due
    (body,) = _received(aws.collect_queue_url)
    assert sorted(body["tweet_ids"]) == sorted(active)
    assert (summary.due, summary.planned, summary.needs_reauth) == (9, 2, 7)
    assert registry.get_due_marker(flagged[0], Endpoint.HOURLY_28HR).lease is None  # type: ignore[union-attr]


def test_more_due_than_the_contract_serves_before_the_next_tick_plans_the_oldest_first(aws):
    # Given a learned limit of 2 /totals calls a minute, a tick every minute, and 600 due Posts, the 100 most
    # overdue due an hour ago
    registry = registry_dal()
    oldest, rest = post_ids(100), post_ids(500, first=1000)
    registry.track_posts(oldest, None, now=to_iso(TICK - timedelta(hours=1)))
    registry.track_posts(rest, None, now=NOW)
    app_state_dal().record_rate_limit(Endpoint.TOTALS, 2, now=NOW)

    # When the tick is planned
    summary = plan(Endpoint.TOTALS, TICK, deps=planner_deps(), interval=schedule_interval("rate(1 minute)"))

    # Then two calls' worth (500 Posts) is queued, all 100 oldest among them, and the other 100 are counted as deferred
    queued = [i for body in _received(aws.collect_queue_url) for i in body["tweet_ids"]]
    assert summary.capacity_calls == 2 and len(queued) == 500
    assert set(oldest) <= set(queued)
    assert (summary.planned, summary.deferred) == (500, 100)
    assert summary.oldest_due_at == to_iso(TICK - timedelta(hours=1))


def test_planning_pauses_while_the_refused_app_secret_is_unchanged_and_resumes_when_it_changes(aws):
    # Given due Posts and app credentials X refused, for the secret's current version
    registry = registry_dal()
    registry.track_posts(post_ids(3), None, now=NOW)
    version = planner_deps().secret_version()
    app_state_dal().flag_credentials("Invalid or expired bearer token", secret_version=version, now=NOW)

    # When the tick is planned
    paused = plan(Endpoint.TOTALS, TICK, deps=planner_deps())

    # Then nothing is queued and the summary says why
    assert paused.planned == 0 and "refused" in (paused.paused or "")
    assert _received(aws.collect_queue_url) == []

    # When the operator replaces the app secret, the next tick plans again and the flag is cleared
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.app_secret_arn,
        SecretString=json.dumps({"consumer_key": "k", "consumer_secret": "s", "bearer_token": "b"}),
    )
    resumed = plan(Endpoint.TOTALS, TICK, deps=planner_deps())
    assert resumed.paused is None and resumed.planned == 3
    assert not app_state_dal().get().needs_credentials


def test_the_templates_placeholder_app_secret_pauses_planning(aws):
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.app_secret_arn,
        SecretString=json.dumps(dict.fromkeys(("consumer_key", "consumer_secret", "bearer_token"), "REPLACE_ME")),
    )
    registry_dal().track_posts(post_ids(3), None, now=NOW)
    summary = plan(Endpoint.TOTALS, TICK, deps=planner_deps())
    assert summary.planned == 0 and "placeholder" in (summary.paused or "")
    assert app_state_dal().get().needs_credentials and _received(aws.collect_queue_url) == []


def test_schedule_interval_reads_rate_expressions_only():
    assert schedule_interval("rate(15 minutes)") == timedelta(minutes=15)
    assert schedule_interval("rate(1 day)") == timedelta(days=1)
    assert schedule_interval("cron(0 12 * * ? *)") is None
    assert schedule_interval(None) is None
