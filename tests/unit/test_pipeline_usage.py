"""The @handle billing guard in the collector: a per-month set of handles, idempotent, capped (moto + fake client)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.stack_dal import usage_dal
from tests.unit.fakes import FakeEngagementClient, fake_deps, post_ids, register_account
from xengage.api_client.catalog import Endpoint
from xengage.dal.usage import UsageDal
from xengage.observability import metrics
from xengage.pipeline.collector import CollectorDeps, CollectSummary, collect, flush_usage, parse_message
from xengage.pipeline.usage import UsageGuard, capped_retry_at, next_month_start
from xengage.timeutil import to_iso

LAST_MINUTE = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
NEW_YEAR = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
MID_MONTH = datetime(2026, 12, 14, 10, 0, tzinfo=UTC)


@pytest.fixture
def with_cap(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Set MonthlyHandleCap as the template would (0 = none) for the deps built afterwards."""

    def set_cap(cap: int) -> None:
        monkeypatch.setenv("MONTHLY_HANDLE_CAP", str(cap))

    return set_cap


def _emitted() -> dict[str, list[float]]:
    """Metrics added so far in this test (the suite-wide fixture clears them after each test)."""
    return {name: list(values["Value"]) for name, values in metrics.metric_set.items()}


def _message(endpoint: Endpoint, ids: list[str], account_id: str | None, at: datetime) -> Any:
    body = {"endpoint": endpoint.value, "tweet_ids": ids, "account_id": account_id, "scheduled_time": to_iso(at)}
    return parse_message(body)


def _invoke(message: Any, deps: CollectorDeps) -> CollectSummary:
    """One collector invocation of one record: collect, then write the calls it counted (as the handler does)."""
    try:
        return collect(message, deps)
    finally:
        flush_usage(deps)


def _deps_at(client: FakeEngagementClient, now: datetime) -> CollectorDeps:
    return fake_deps(client, now=now)


def _new_process(deps: CollectorDeps, cap: int | None) -> CollectorDeps:
    """Another collector instance: its own guard, nothing known counted."""
    return deps.replace(usage=UsageGuard(UsageDal(usage_dal().table_name), cap))


def _tracked(deps: CollectorDeps, account_id: str, now: datetime, *, first: int = 0) -> list[str]:
    ids = post_ids(2, now=now, first=first)
    deps.registry.track_posts(ids, account_id, now=to_iso(now))
    return ids


def _account_42(client: FakeEngagementClient, now: datetime) -> tuple[CollectorDeps, list[str]]:
    """A process at `now` and account 42 with two tracked Posts."""
    deps = _deps_at(client, now)
    register_account(deps, "42")
    return deps, _tracked(deps, "42", now)


def test_a_handle_is_counted_once_per_month_and_a_new_month_starts_a_new_set(aws):
    # Given an account whose Posts are collected on /totals (user context) at 23:59 on Dec 31
    client = FakeEngagementClient()
    deps, ids = _account_42(client, LAST_MINUTE)
    _invoke(_message(Endpoint.TOTALS, ids, "42", LAST_MINUTE), deps)

    # When the clock turns to Jan 1 00:00 UTC and the same process collects them again
    january = deps.replace(now=lambda: NEW_YEAR)
    _invoke(_message(Endpoint.TOTALS, ids, "42", NEW_YEAR), january)

    # Then each month holds the handle once, with the first call of that month, and December stays readable
    december, new_year = usage_dal().month("2026-12"), usage_dal().month("2027-01")
    assert [(a.account_id, a.handle, a.first_call_at) for a in december.accounts] == [
        ("42", "user42", "2026-12-31T23:59:00Z")
    ]
    assert [(a.account_id, a.first_call_at) for a in new_year.accounts] == [("42", "2027-01-01T00:00:00Z")]
    assert december.calls_by_day == {"2026-12-31": {"totals": 1}}
    assert new_year.calls_by_day == {"2027-01-01": {"totals": 1}}
    # And the month's count was emitted each time the handle was new to a month
    assert _emitted()["UniqueHandlesThisMonth"] == [1.0, 1.0]


def test_redelivery_retries_and_other_processes_never_count_a_handle_twice(aws):
    # Given an account's /28hr message collected once
    client = FakeEngagementClient()
    deps, ids = _account_42(client, MID_MONTH)
    message = _message(Endpoint.HOURLY_28HR, ids, "42", MID_MONTH)
    _invoke(message, deps)

    # When SQS delivers it again, to this process and to another one, and a later message comes for the account
    _invoke(message, deps)
    _invoke(message, _new_process(deps, None))
    later = MID_MONTH + timedelta(hours=1)
    _invoke(_message(Endpoint.HOURLY_28HR, ids, "42", later), _new_process(deps, None))

    # Then the month counts one handle (the gauge said 1 once), and calls only for what was fetched
    usage = usage_dal().month("2026-12")
    assert usage.unique_handles == 1
    assert _emitted()["UniqueHandlesThisMonth"] == [1.0]
    assert len(client.calls) == 2 and usage.calls_by_day == {"2026-12-14": {"28hr": 2}}


def test_a_handle_this_process_counted_costs_no_request_and_calls_are_written_once_an_invocation(aws):
    # Given a process that collected an account's Posts once this month
    client = FakeEngagementClient()
    deps, ids = _account_42(client, MID_MONTH)
    _invoke(_message(Endpoint.TOTALS, ids, "42", MID_MONTH), deps)
    assert deps.usage is not None
    writes: list[str] = []
    dal = deps.usage.dal
    original_count, original_add = dal.count_handle, dal.add_calls
    dal.count_handle = lambda *a, **k: writes.append("count_handle") or original_count(*a, **k)  # type: ignore[method-assign]
    dal.add_calls = lambda *a, **k: writes.append("add_calls") or original_add(*a, **k)  # type: ignore[method-assign]

    # When one invocation collects the account's next message and a bearer-only message of app Posts
    later = MID_MONTH + timedelta(minutes=15)
    timely = deps.replace(now=lambda: later)
    collect(_message(Endpoint.TOTALS, ids, "42", later), timely)
    app_ids = _tracked(deps, "", later, first=10)
    collect(_message(Endpoint.TOTALS, app_ids, None, later), timely)
    during = list(writes)
    flush_usage(timely)

    # Then the ledger cost nothing while collecting, and one write at the end counted every call (the bearer one too)
    assert during == [] and writes == ["add_calls"]
    assert usage_dal().month("2026-12").calls_by_day == {"2026-12-14": {"totals": 3}}
    assert [a.account_id for a in usage_dal().month("2026-12").accounts] == ["42"]


def _cap_of_one_taken_by_42(client: FakeEngagementClient) -> tuple[CollectorDeps, list[str], list[str]]:
    """Accounts 42 and 43 with two Posts each; 42's were collected this month, so it holds the only slot."""
    deps = _deps_at(client, MID_MONTH)
    for account in ("42", "43"):
        register_account(deps, account)
    ids_42 = _tracked(deps, "42", MID_MONTH)
    ids_43 = _tracked(deps, "43", MID_MONTH, first=10)
    _invoke(_message(Endpoint.TOTALS, ids_42, "42", MID_MONTH), deps)
    return deps, ids_42, ids_43


def test_past_the_cap_a_new_handle_is_deferred_and_a_counted_one_keeps_collecting(aws, with_cap):
    # Given a cap of one handle, taken by account 42 this month
    with_cap(1)
    client = FakeEngagementClient()
    deps, ids_42, ids_43 = _cap_of_one_taken_by_42(client)

    # When account 43's Posts come up, and then 42's again in another process
    capped = _invoke(_message(Endpoint.HOURLY_28HR, ids_43, "43", MID_MONTH), deps)
    later = MID_MONTH + timedelta(minutes=15)
    again = _invoke(_message(Endpoint.TOTALS, ids_42, "42", later), _new_process(deps, 1).replace(now=lambda: later))

    # Then 43 was not called: its Posts say usage_capped with the cap and when they are tried again
    assert [call.user.user_id for call in client.calls if call.user] == ["42", "42"]
    assert capped.counts == {"usage_capped": 2} and again.counts == {"ok": 2}
    retry = to_iso(MID_MONTH + timedelta(hours=1))
    for tweet_id in ids_43:
        (status,) = deps.statuses.get_statuses(tweet_id)
        assert status.status == "usage_capped" and status.next_attempt_at == retry
        assert "monthly cap of 1 unique @handles" in (status.message or "") and "user43" in (status.message or "")
        marker = deps.registry.get_due_marker(tweet_id, Endpoint.HOURLY_28HR)
        assert marker is not None and marker.next_due_at == retry and marker.lease is None  # rescheduled, not lost
    listed = deps.statuses.query_by_status("usage_capped")
    assert sorted(entry.tweet_id for entry in listed.items) == sorted(ids_43)
    # And the deferral is a metric; the ledger holds only 42
    assert _emitted()["UsageCapDeferredPosts"] == [2.0]
    assert [a.account_id for a in usage_dal().month("2026-12").accounts] == ["42"]


def test_deferred_posts_collect_once_the_cap_is_raised(aws, with_cap):
    # Given account 43 deferred by a cap of one
    with_cap(1)
    deps, _, ids_43 = _cap_of_one_taken_by_42(FakeEngagementClient())
    _invoke(_message(Endpoint.TOTALS, ids_43, "43", MID_MONTH), deps)

    # When the cap is raised to two (a new deployment: new processes) and the Posts come up at their next attempt
    retry_at = capped_retry_at(MID_MONTH)
    raised = _new_process(deps, 2).replace(now=lambda: retry_at)
    summary = _invoke(_message(Endpoint.TOTALS, ids_43, "43", retry_at), raised)

    # Then they are collected and 43 is the month's second handle
    assert summary.counts == {"ok": 2}
    assert [a.account_id for a in usage_dal().month("2026-12").accounts] == ["42", "43"]


def test_two_collectors_racing_for_the_last_slot_do_not_both_get_it(aws):
    # Given a cap of two with one handle counted, and two collector processes that know nothing yet
    dal = usage_dal()
    assert dal.count_handle("2026-12", "1", "one", at=to_iso(MID_MONTH), cap=2).new
    first, second = UsageGuard(UsageDal(dal.table_name), 2), UsageGuard(UsageDal(dal.table_name), 2)

    # When each counts a different new handle for the last free slot
    outcomes = [first.admit("2", "two", now=MID_MONTH), second.admit("3", "three", now=MID_MONTH)]

    # Then exactly one got it (the conditional write on the month's set), and a handle counted stays admitted
    assert outcomes == [True, False]
    assert dal.month("2026-12").unique_handles == 2
    assert second.admit("2", "two", now=MID_MONTH) and not second.admit("3", "three", now=MID_MONTH)


def test_capped_posts_are_retried_hourly_and_at_the_month_turn():
    # Given the times a cap deferral can happen
    # When the next attempt is computed
    # Then it is an hour later, unless the month turns sooner
    assert capped_retry_at(MID_MONTH) == MID_MONTH + timedelta(hours=1)
    assert capped_retry_at(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == NEW_YEAR
    assert next_month_start(LAST_MINUTE) == NEW_YEAR
    assert next_month_start(datetime(2027, 2, 10, tzinfo=UTC)) == datetime(2027, 3, 1, tzinfo=UTC)
