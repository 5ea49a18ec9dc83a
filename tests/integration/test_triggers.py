"""Schedules, the SQS event source mapping and the API Gateway proxy, against the fixture template."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from local.stack.schedules import (
    DailyCronSchedule,
    RateSchedule,
    ScheduleExpressionError,
    parse_schedule_expression,
    render_schedule_input,
)
from local.stack.sqs_poller import failed_message_ids
from local.stack.stack import LocalStack

from .helpers import receive_matching, recorded

pytestmark = pytest.mark.integration

NOON = datetime(2026, 11, 25, 12, 7, 30, tzinfo=UTC)  # a Wednesday


def test_rate_and_daily_cron_expressions_give_the_next_fire_time():
    # The template's forms: rate(...) for the collections, a daily cron for the export
    assert parse_schedule_expression("rate(15 minutes)") == RateSchedule(interval=timedelta(minutes=15))
    assert parse_schedule_expression("rate(1 hour)").next_after(NOON) == NOON + timedelta(hours=1)
    export = parse_schedule_expression("cron(30 1 * * ? *)")
    assert export == DailyCronSchedule(minutes=(30,), hours=(1,))
    # Already past today's 01:30: tomorrow's; a fire time exactly at the moment is not "after" it
    assert export.next_after(NOON) == datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
    assert export.next_after(datetime(2026, 11, 26, 1, 30, tzinfo=UTC)) == datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
    # Lists of minutes, every hour, and day-of-week `?` or day-of-month `?`
    quarter = parse_schedule_expression("cron(0,15,30,45 * ? * * *)")
    assert quarter.next_after(NOON) == datetime(2026, 11, 25, 12, 15, tzinfo=UTC)
    assert parse_schedule_expression("cron(5 23,3 * * ? *)").next_after(NOON) == datetime(
        2026, 11, 25, 23, 5, tzinfo=UTC
    )
    # Anything else the template does not use is refused with the expression quoted
    for bad in ("rate(0 minutes)", "cron(0 0 * * * *)", "cron(5 3 ? * MON *)", "cron(0 24 * * ? *)", "every 5 min"):
        with pytest.raises(ScheduleExpressionError, match=re.escape(bad)):
            parse_schedule_expression(bad)


def test_schedule_input_placeholders_are_substituted():
    event = render_schedule_input(
        '{"t":"<aws.scheduler.scheduled-time>","a":"<aws.scheduler.schedule-arn>",'
        '"e":"<aws.scheduler.execution-id>","n":"<aws.scheduler.attempt-number>"}',
        scheduled_time="2026-11-25T12:00:00Z",
        schedule_arn="arn:s",
        execution_id="e1",
        attempt=2,
    )
    assert event == {"t": "2026-11-25T12:00:00Z", "a": "arn:s", "e": "e1", "n": "2"}


def test_fired_schedule_delivers_its_input_to_the_function(fixture_stack: LocalStack):
    # Given the fixture's enabled rate schedule (the DISABLED cron one is not fired)
    assert fixture_stack.schedules is not None
    enabled = [t for t in fixture_stack.schedules.targets if t.enabled]
    assert [t.event_name for t in enabled] == ["EveryMinute"]
    # When every schedule is fired once for a given tick time
    (outcome,) = fixture_stack.schedules.fire_all_once(NOON)
    # Then the function received the Input with the placeholders filled, on its first attempt
    assert outcome.invocation.ok and outcome.attempts == 1 and not outcome.dead_lettered
    event = recorded(fixture_stack, "tick")[f"{outcome.execution_id}#1"]
    assert event == {
        "job": "tick",
        "scheduled_time": "2026-11-25T12:07:30Z",
        "schedule_arn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/TickFunctionEveryMinute",
        "execution_id": outcome.execution_id,
        "attempt": "1",
    }
    assert uuid.UUID(outcome.execution_id)


def test_failing_tick_is_retried_per_retry_policy_then_dead_lettered(fixture_stack: LocalStack):
    assert fixture_stack.schedules is not None
    # Given the schedule (MaximumRetryAttempts: 1) with an input that makes the function fail
    target = next(t for t in fixture_stack.schedules.targets if t.event_name == "EveryMinute")
    failing = dataclasses.replace(target, input_text=target.input_text.replace('"job":"tick"', '"job":"fail"'))
    # When it fires
    outcome = fixture_stack.schedules.fire(failing, NOON)
    # Then it was attempted twice, with attempt numbers 1 and 2...
    assert outcome.attempts == 2 and not outcome.invocation.ok and outcome.dead_lettered
    ticks = recorded(fixture_stack, "tick")
    assert {f"{outcome.execution_id}#1", f"{outcome.execution_id}#2"} <= set(ticks)
    # ...and its input landed in the DeadLetterConfig queue with Scheduler's error attributes
    messages = fixture_stack.client("sqs").receive_message(
        QueueUrl=fixture_stack.ids.ref("ScheduleDeadLetterQueue"), MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    body = json.loads(messages[0]["Body"])
    assert body["job"] == "fail" and body["execution_id"] == outcome.execution_id
    attributes = messages[0]["MessageAttributes"]
    assert attributes["ERROR_MESSAGE"]["StringValue"] == "tick asked to fail"
    assert attributes["RETRY_ATTEMPTS"]["StringValue"] == "1"


def test_partial_batch_failure_redelivers_only_the_failed_message_then_dead_letters_it(fixture_stack: LocalStack):
    sqs = fixture_stack.client("sqs")
    run = uuid.uuid4().hex[:8]
    # Given three messages, one of which the function reports as a batch item failure
    for name, fail in (("ok1", False), ("ok2", False), ("bad", True)):
        sqs.send_message(
            QueueUrl=fixture_stack.ids.ref("WorkQueue"), MessageBody=json.dumps({"id": f"{run}-{name}", "fail": fail})
        )
    # When the poller has worked through them (VisibilityTimeout 1 s, maxReceiveCount 2)
    dlq = fixture_stack.ids.ref("WorkDeadLetterQueue")
    in_dlq = receive_matching(sqs, dlq, lambda body: body["id"].startswith(run))
    # Then the good messages were delivered exactly once, the failed one maxReceiveCount times, then dead-lettered
    deliveries = sorted(key for key in recorded(fixture_stack, "work") if key.startswith(run))
    assert deliveries == [f"{run}-bad#1", f"{run}-bad#2", f"{run}-ok1#1", f"{run}-ok2#1"]
    assert [json.loads(m["Body"])["id"] for m in in_dlq] == [f"{run}-bad"]
    assert fixture_stack.wait_until_drained(timeout=5)


def test_function_error_leaves_the_whole_batch_for_redelivery(fixture_stack: LocalStack):
    sqs = fixture_stack.client("sqs")
    poller = fixture_stack.pollers[0]
    errors_before = poller.stats.function_errors
    run = uuid.uuid4().hex[:8]
    # Given a message that makes the function raise
    sqs.send_message(QueueUrl=fixture_stack.ids.ref("WorkQueue"), MessageBody=json.dumps({"id": run, "crash": True}))
    dlq = fixture_stack.ids.ref("WorkDeadLetterQueue")
    # Then nothing was deleted: it came back until maxReceiveCount and then went to the DLQ
    assert receive_matching(sqs, dlq, lambda body: body["id"] == run)
    assert poller.stats.function_errors - errors_before == 2


def test_batch_item_failure_ids_follow_lambda_rules():
    batch = {"m1", "m2"}
    assert failed_message_ids({"batchItemFailures": []}, batch) == set()
    assert failed_message_ids(None, batch) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, batch) == {"m2"}
    # An id outside the batch, or an empty one, fails the whole batch
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, batch) is None
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, batch) is None


def test_api_request_becomes_a_rest_proxy_event(fixture_stack: LocalStack):
    assert fixture_stack.api is not None
    # When a GET hits the literal-prefix route with repeated query parameters
    response = requests.get(f"{fixture_stack.api.url}/items/42?x=1&x=2&y=3", headers={"X-Trace": "t"}, timeout=10)
    # Then the function got API Gateway's proxy event and its response headers come back
    assert response.status_code == 200
    assert response.headers["X-Who"] == "echo"
    event = response.json()["event"]
    assert event["resource"] == "/items/{item_id}"
    assert event["path"] == "/items/42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"item_id": "42"}
    assert event["queryStringParameters"] == {"x": "2", "y": "3"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
    assert event["headers"]["X-Trace"] == "t"
    # And, as API Gateway does, the X-Forwarded-* headers say how the caller came in (plain http locally)
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["headers"]["X-Forwarded-Port"] == str(fixture_stack.api.port)
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["requestContext"]["stage"] == "v1"
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert event["body"] is None and event["isBase64Encoded"] is False


def test_api_greedy_proxy_body_binary_and_errors(fixture_stack: LocalStack):
    assert fixture_stack.api is not None
    url = fixture_stack.api.url
    # A POST on a deep path goes to /{proxy+} with its body
    posted = requests.post(f"{url}/a/b/c", json={"k": "v"}, timeout=10).json()["event"]
    assert posted["resource"] == "/{proxy+}"
    assert posted["pathParameters"] == {"proxy": "a/b/c"}
    assert json.loads(posted["body"]) == {"k": "v"}
    # A base64 response body is decoded; multi-value headers are all written
    assert requests.get(f"{url}/binary", timeout=10).content == b"\x00\x01binary"
    cookies = requests.get(f"{url}/cookies", timeout=10)
    assert cookies.status_code == 201
    assert cookies.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    # A function error is API Gateway's 502; a path without a resource is its 403
    boom = requests.get(f"{url}/boom", timeout=10)
    assert (boom.status_code, boom.json()) == (502, {"message": "Internal server error"})
    assert requests.get(f"{url}/", timeout=10).status_code == 403
    # Binary request bodies arrive base64-encoded
    raw = requests.put(f"{url}/upload", data=b"\xff\xfe", timeout=10).json()["event"]
    assert raw["isBase64Encoded"] is True and base64.b64decode(raw["body"]) == b"\xff\xfe"
