"""Live queries past one batch and jobs: 202, the collector finishing the job through the queue, GET /jobs/{id}."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from local.emulator import BRAND_USER_ID, EmulatorServer, FaultConfig, PostState
from tests.api.conftest import ApiCaller
from tests.api.events import sqs_event
from tests.aws_fixtures import AwsResources
from tests.conftest import FakeLambdaContext
from tests.stack_dal import status_dal
from xengage.timeutil import floor_hour, snowflake_created_at, to_iso

pytestmark = pytest.mark.integration

ASYNC = {"Prefer": "respond-async"}


def brand_posts(emulator: EmulatorServer, state: PostState = PostState.PUBLIC) -> list[str]:
    return emulator.world.tweet_ids(emulator.world.posts_of(BRAND_USER_ID, state=state))


def register_brand(api: ApiCaller, emulator: EmulatorServer) -> None:
    user = emulator.world.users[BRAND_USER_ID]
    api.put_account(BRAND_USER_ID, user.screen_name, token=user.access_token, secret=user.access_token_secret)


def unknown_ids(count: int) -> list[str]:
    """Ids no Post of the emulator's world has: X lists them unavailable."""
    return [str(1_500_000_000_000_000_000 + n) for n in range(count)]


def queued_bodies(aws: AwsResources) -> list[dict[str, Any]]:
    """Every message visible on the collect queue (taken off it)."""
    sqs = boto3.client("sqs")
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=aws.collect_queue_url, MaxNumberOfMessages=10).get("Messages"):
        bodies += [json.loads(message["Body"]) for message in messages]
        sqs.delete_message_batch(
            QueueUrl=aws.collect_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    return bodies


def run_collector(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    from functions.collector.collector import lambda_handler

    return lambda_handler(sqs_event([json.dumps(body) for body in bodies]), FakeLambdaContext())


def drain(aws: AwsResources, *, rounds: int = 10) -> int:
    """Run the collector on what the queue holds until it holds nothing (continuations included); answers the
    messages collected."""
    collected = 0
    for _ in range(rounds):
        bodies = queued_bodies(aws)
        if not bodies:
            return collected
        assert run_collector(bodies)["batchItemFailures"] == []
        collected += len(bodies)
    raise AssertionError("the queue never emptied")


def all_results(api: ApiCaller, job_id: str, limit: int = 1000) -> dict[str, Any]:
    """Every page of a job's results."""
    results: dict[str, Any] = {}
    cursor = ""
    while True:
        reply = api("GET", f"/jobs/{job_id}?limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        assert reply.status == 200, reply.text
        page = reply.json()
        results.update(page["results"])
        if not page["next_cursor"]:
            return results
        cursor = page["next_cursor"]


def test_a_thousand_ids_on_totals_answer_at_once_when_they_fit(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    # Given 1,000 ids: the brand's public Posts and ids X does not know
    public = brand_posts(emulator)
    ids = public + unknown_ids(1000 - len(public))
    emulator.clear_log()

    # When /totals is queried live
    reply = live_api("POST", "/engagement/totals", body={"tweet_ids": ids})

    # Then all 1,000 answer at once in 4 calls of 250: the public Posts ok, the others unavailable
    assert reply.status == 200, reply.text[:300]
    body = reply.json()
    assert len(body["results"]) == 1000 and body["calls"] == 4 == len(emulator.log)
    assert {body["results"][i]["status"] for i in public} == {"ok"}
    assert {body["results"][i]["status"] for i in ids[len(public) :]} == {"unavailable"}


def test_prefer_respond_async_makes_a_job_the_collector_finishes_through_the_queue(
    live_api: ApiCaller, emulator: EmulatorServer, aws: AwsResources
) -> None:
    # Given 1,000 /totals ids, asked with Prefer: respond-async
    public = brand_posts(emulator)
    ids = public + unknown_ids(1000 - len(public))
    emulator.clear_log()

    # When the query is sent
    reply = live_api("POST", "/engagement/totals", body={"tweet_ids": ids}, headers=ASYNC)

    # Then it answers 202 with a running job, every Post queued, X not called, and 4 messages of 250 on the queue
    assert reply.status == 202, reply.text[:300]
    job = reply.json()
    assert reply.headers["Location"] == f"jobs/{job['job_id']}"
    assert job["status"] == "running" and job["progress"]["queued"] == 1000 == job["progress"]["total"]
    assert emulator.log == []
    bodies = queued_bodies(aws)
    assert sorted(len(b["tweet_ids"]) for b in bodies) == [250] * 4
    assert {b["job_id"] for b in bodies} == {job["job_id"]}

    # When the collector takes the messages
    assert run_collector(bodies)["batchItemFailures"] == []

    # Then the job is done, in 4 calls, with the live query's result shape for every Post
    done = live_api("GET", f"/jobs/{job['job_id']}").json()
    assert done["status"] == "done" and done["progress"]["settled"] == 1000
    assert done["progress"]["by_status"] == {"ok": len(public), "unavailable": 1000 - len(public)}
    assert len(emulator.log) == 4
    results = all_results(live_api, job["job_id"], limit=300)
    assert len(results) == 1000
    assert all(results[i]["status"] == "ok" and "favorites" in results[i]["metrics"] for i in public)
    # And the values are the ones stored, as a live query would have returned them
    stored = live_api("GET", f"/tweets/{public[0]}/metrics").json()["points"]
    assert stored[-1]["metrics"] == results[public[0]]["metrics"]

    # When the same messages are delivered again
    emulator.clear_log()
    assert run_collector(bodies)["batchItemFailures"] == []

    # Then nothing is fetched again
    assert emulator.log == []


def test_a_live_query_out_of_allowance_hands_the_rest_to_a_job_without_losing_anything(
    live_api: ApiCaller, emulator: EmulatorServer, aws: AwsResources
) -> None:
    # Given tracked public Posts and an API out of allowance for the minute
    public = brand_posts(emulator)[:2]
    live_api("POST", "/tweets", body={"tweet_ids": public})
    emulator.script_faults(["429"] * 4)
    live_api.remaining_millis = 9_000

    # When /totals is queried live
    reply = live_api("POST", "/engagement/totals", body={"tweet_ids": public})

    # Then it answers 202 in time: a job whose Posts wait for the minute to renew, each with its next attempt
    assert reply.status == 202, reply.text
    job = reply.json()
    assert job["progress"]["pending"] == 2 and job["status"] == "running"
    for tweet_id in public:
        result = job["results"][tweet_id]
        assert result["status"] == "rate_limited" and result["next_attempt_at"] is not None
    # And the Posts' stored statuses say so, and the queue holds the rest, delayed until the API takes it
    status = status_dal().get_statuses(public[0])[0]
    assert status.status == "rate_limited" and status.next_attempt_at is not None
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=aws.collect_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_live_query_out_of_time_answers_what_it_got_and_its_job_finishes_the_rest(
    live_api: ApiCaller, emulator: EmulatorServer, aws: AwsResources
) -> None:
    # Given 26 ids for /28hr (two calls: 25 and 1), an API taking 2.5 s to answer, and 10 s of the function left
    # (4 s for the query itself: time for one call, not two)
    register_brand(live_api, emulator)
    owned = brand_posts(emulator)
    ids = owned + unknown_ids(26 - len(owned))
    emulator.set_faults(FaultConfig(latency_ms=2_500))
    live_api.remaining_millis = 10_000
    emulator.clear_log()

    # When /28hr is queried live
    reply = live_api("POST", "/engagement/28hr", body={"tweet_ids": ids, "account_id": BRAND_USER_ID})

    # Then it answers 202 with a job: the first call's 25 Posts settled (their points in the results), the last one
    # deferred to the job
    assert reply.status == 202, reply.text[:300]
    job = reply.json()
    assert len(emulator.log) == 1 and job["progress"]["pending"] == 1 and job["progress"]["settled"] == 25
    first = emulator.log[0].tweet_ids
    deferred = next(tweet_id for tweet_id in ids if tweet_id not in first)
    assert job["results"][deferred]["status"] == "deferred"

    # When the API answers promptly again and the collector takes the job's message
    emulator.reset_faults()
    emulator.clear_log()
    assert drain(aws) == 1

    # Then only the deferred Post was asked, and the job is done with each owned Post's hour points, the same ones the
    # metrics route reads
    assert [entry.tweet_ids for entry in emulator.log] == [(deferred,)]
    done = live_api("GET", f"/jobs/{job['job_id']}").json()
    assert done["status"] == "done" and done["progress"]["by_status"]["ok"] == len(owned)
    results = all_results(live_api, job["job_id"], limit=10)
    assert len(results) == 26
    points = results[owned[0]]["points"]
    assert points and all(point["metrics"] for point in points)
    stored = live_api("GET", f"/tweets/{owned[0]}/metrics?endpoint=28hr&limit=1000").json()["points"]
    assert [point["at"] for point in stored] == [point["at"] for point in points]


def test_a_year_of_historical_is_one_job_fetched_window_by_window_once(
    live_api: ApiCaller, emulator: EmulatorServer, aws: AwsResources
) -> None:
    # Given three owned Posts older than a year, and a range of 364 days ending at the last full hour (13 windows of
    # 4 weeks)
    register_brand(live_api, emulator)
    end = floor_hour(datetime.now(UTC))
    start = end - timedelta(days=364)
    owned = [tweet_id for tweet_id in brand_posts(emulator) if snowflake_created_at(tweet_id) < start][:3]
    assert len(owned) == 3
    query = {"tweet_ids": owned, "account_id": BRAND_USER_ID, "start": to_iso(start), "end": to_iso(end)}
    emulator.clear_log()

    # When it is asked as a job and the collector runs it
    reply = live_api("POST", "/engagement/historical", body=query, headers=ASYNC)
    assert reply.status == 202, reply.text
    job_id = reply.json()["job_id"]
    drain(aws)

    # Then every window was asked exactly once, for the three Posts together
    windows = [entry.window for entry in emulator.log if entry.endpoint == "historical"]
    assert len(windows) == 13 and len(set(windows)) == 13
    assert all(entry.id_count == 3 for entry in emulator.log)
    # And the job is done: each Post has a page of points and the stored-metrics route pages the rest
    done = live_api("GET", f"/jobs/{job_id}").json()
    assert done["status"] == "done"
    result = all_results(live_api, job_id, limit=10)[owned[0]]
    assert len(result["points"]) == 500 and result["more_points"].startswith(f"tweets/{owned[0]}/metrics?")
    rest = live_api("GET", "/" + result["more_points"])
    assert rest.status == 200, rest.text[:200]
    assert rest.json()["points"][0]["at"] > result["points"][-1]["at"]


def test_jobs_that_do_not_exist_are_404_and_bad_ids_422(live_api: ApiCaller) -> None:
    missing = live_api("GET", f"/jobs/{'0' * 32}")
    assert (missing.status, missing.error_code) == (404, "job_not_found")
    assert live_api("GET", "/jobs/not-a-job").status == 422


@pytest.mark.parametrize(
    ("endpoint", "count", "status", "words", "headers"),
    [
        ("totals", 1001, 400, "at most 1000 ids live", {}),
        ("28hr", 251, 400, "at most 250 ids live", {}),
        ("28hr", 1001, 400, "at most 1000 ids as a job", ASYNC),
        ("historical", 251, 400, "at most 250", {}),
    ],
)
def test_queries_past_the_live_limits_are_refused_before_any_call(
    live_api: ApiCaller,
    emulator: EmulatorServer,
    endpoint: str,
    count: int,
    status: int,
    words: str,
    headers: dict[str, str],
) -> None:
    # Given a query past the live limits of its endpoint
    emulator.clear_log()

    # When it is sent
    body = {"tweet_ids": unknown_ids(count), "account_id": "12"}
    reply = live_api("POST", f"/engagement/{endpoint}", body=body, headers=headers)

    # Then it is refused naming the limit, and X is never called
    assert reply.status == status and words in reply.json()["error"]["message"], reply.text[:300]
    assert emulator.log == []


def test_an_answer_too_big_for_one_response_is_stored_and_given_as_a_finished_job(
    live_api: ApiCaller, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a bound of 100 hour points in one answer, and 3 owned Posts asked for 2 days of /historical (144 points)
    from xengage.http_api import engagement

    monkeypatch.setattr(engagement, "MAX_LIVE_POINTS", 100)
    register_brand(live_api, emulator)
    end = floor_hour(datetime.now(UTC))
    owned = [i for i in brand_posts(emulator) if snowflake_created_at(i) < end - timedelta(days=3)][:3]
    query = {
        "tweet_ids": owned,
        "account_id": BRAND_USER_ID,
        "start": to_iso(end - timedelta(days=2)),
        "end": to_iso(end),
    }
    emulator.clear_log()

    # When it is queried live
    reply = live_api("POST", "/engagement/historical", body=query)

    # Then it answers 202 with a job already done, in one call: every Post ok, its 48 points in the results
    assert reply.status == 202, reply.text[:300]
    job = reply.json()
    assert job["status"] == "done" and job["progress"]["by_status"] == {"ok": 3} and len(emulator.log) == 1
    assert all(len(job["results"][tweet_id]["points"]) == 48 for tweet_id in owned)
