"""Handler inputs are parsed by models at the edge: a bad payload gets a typed error or a failed record naming the
problem, and loses nothing else of its batch."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.api.events import sqs_event
from tests.conftest import FakeLambdaContext
from xengage.pipeline.events import InvalidScheduleEvent, ScheduleTick, parse_event
from xengage.pipeline.export_job import ExportJob, InvalidExportEvent

VALID = {"endpoint": "totals", "tweet_ids": ["1460323737035677698"], "scheduled_time": "2026-11-25T18:15:00Z"}


def _log_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"level"' in line]


def test_a_malformed_collect_record_fails_alone_and_is_logged_with_its_problem(aws, api_log):
    from functions.collector.collector import lambda_handler

    # Given a batch of a valid message, a body that is not JSON and one on an endpoint that does not exist
    bodies = [json.dumps(VALID), "{not json", json.dumps({**VALID, "endpoint": "weekly"})]
    # When the collector gets it with too little time left to start (the valid message is sent on as it is)
    answer = lambda_handler(sqs_event(bodies), FakeLambdaContext(remaining_millis=4_000))
    # Then only the two malformed records fail, each logged with what is wrong with it
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    failures = [line for line in _log_lines(api_log.getvalue()) if line["message"] == "collect record failed"]
    assert [line["message_id"] for line in failures] == ["m1", "m2"]
    assert "body: Invalid JSON" in failures[0]["problem"]
    assert "endpoint" in failures[1]["problem"] and "weekly" in failures[1]["problem"]
    # And the valid message is back on the queue, unchanged
    sent = boto3.client("sqs").receive_message(QueueUrl=aws.collect_queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(message["Body"])["tweet_ids"] for message in sent] == [VALID["tweet_ids"]]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"endpoint": "totals", "tweet_ids": "1"}, "tweet_ids must be a non-empty list"),
        ({"endpoint": "totals", "tweet_ids": ["1"], "account": "2", "end": "x"}, "unknown field(s): account"),
        ("collect 1", "must be a JSON object, not str"),
    ],
)
def test_a_console_payload_that_does_not_parse_is_answered_with_the_problem(aws, payload, problem):
    from functions.collector.collector import lambda_handler

    # When the collector is invoked by hand with a payload that is not a ConsoleCollect
    answer = lambda_handler(payload, FakeLambdaContext())
    # Then it answers invalid_payload naming each problem, and collects nothing
    assert answer["error"] == "invalid_payload" and problem in answer["message"]


def test_a_schedule_tick_left_unsubstituted_means_now_and_a_bad_one_names_its_field():
    # Given the Input of a manual invoke (the placeholder as written in the template) and a malformed one
    manual = {"endpoint": "28hr", "scheduled_time": "<aws.scheduler.scheduled-time>", "attempt": "1"}
    # Then the first is a tick of no given time (the handler takes now), the second an InvalidScheduleEvent
    assert parse_event(ScheduleTick, manual, InvalidScheduleEvent).scheduled_time is None
    with pytest.raises(InvalidScheduleEvent, match="scheduled_time: not an ISO-8601"):
        parse_event(ScheduleTick, {"endpoint": "totals", "scheduled_time": "soon"}, InvalidScheduleEvent)


def test_export_continuations_are_parsed_from_their_records():
    from functions.exporter.exporter import jobs_of

    # Given the export queue's records: a continuation's job, then a body that is no job
    job = ExportJob.model_validate({"day": "2026-01-02", "last_day": "2026-01-03", "after": "17"})
    event = sqs_event([job.model_dump_json()])
    # Then the job comes back as it was handed on, and the malformed body is refused naming the field
    assert jobs_of(event) == [job]
    with pytest.raises(InvalidExportEvent, match=r"body\.day: Field required"):
        jobs_of(sqs_event([json.dumps({"last_day": "2026-01-03"})]))
