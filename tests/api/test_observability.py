"""One log stream and the tracer's subsegments: the collector handler on an SQS record, against the emulator (moto)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.emulator import BRAND_USER_ID, EmulatorServer, PostState
from tests.api.conftest import ApiCaller
from tests.aws_fixtures import AwsResources
from tests.conftest import FakeLambdaContext
from xengage.dal.registry import RegistryDal
from xengage.observability import TracingOff, client_logger, logger, tracer
from xengage.timeutil import to_iso

REPO = Path(__file__).resolve().parents[2]
SQS_SAMPLE = json.loads((REPO / "events" / "sqs_collect_batch.json").read_text())["Records"][0]


class RecordingProvider(TracingOff):
    """Records the subsegments opened, each as the path of names from the outermost (nothing goes to X-Ray)."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, ...]] = []
        self._open: list[str] = []

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[Any]:
        self._open.append(name or "")
        self.opened.append(tuple(self._open))
        try:
            with super().in_subsegment(name, **kwargs) as segment:
                yield segment
        finally:
            self._open.pop()


@pytest.fixture
def tracked(live_api: ApiCaller, emulator: EmulatorServer, aws: AwsResources) -> list[str]:
    """The collector pointed at the emulator (live_api's environment); five of the brand's public Posts due now."""
    ids = emulator.world.tweet_ids(emulator.world.posts_of(BRAND_USER_ID, state=PostState.PUBLIC))[:5]
    RegistryDal(aws.registry_table).track_posts(ids, None, now=to_iso(datetime.now(UTC) - timedelta(minutes=1)))
    return ids


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every line the Powertools logger's handler formats (as in Lambda: JSON), at INFO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.addHandler(handler)
    logger.setLevel("INFO")
    yield stream
    logger.setLevel(level)
    logger.removeHandler(handler)


def collect_one_record(tweet_ids: list[str]) -> dict[str, Any]:
    """The collector handler on one SQS record (the events/ sample's, carrying a /totals message of `tweet_ids`)."""
    from functions.collector.collector import lambda_handler

    body = {
        "endpoint": "totals",
        "tweet_ids": tweet_ids,
        "account_id": None,
        "scheduled_time": to_iso(datetime.now(UTC)),
    }
    record = {**SQS_SAMPLE, "body": json.dumps(body)}
    response: dict[str, Any] = lambda_handler({"Records": [record]}, FakeLambdaContext())
    return response


def test_a_collection_logs_in_one_stream_and_traces_its_api_call_and_writes(
    tracked: list[str], log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tracer that records the subsegments it is asked for
    recording = RecordingProvider()
    monkeypatch.setattr(tracer, "provider", recording)

    # When the collector handles one SQS record, the client calling the emulator
    assert collect_one_record(tracked) == {"batchItemFailures": []}

    # Then the client's own line is a JSON line of the same stream as the collector's
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (fetch,) = [line for line in lines if line["message"].startswith("fetch /totals: 5 ids")]
    (collected,) = [line for line in lines if line["message"] == "collected"]
    # With the record's message id as correlation id, the function's service and the Lambda context's fields
    assert fetch["correlation_id"] == SQS_SAMPLE["messageId"]
    assert fetch["service"] == logger.service == collected["service"]
    assert fetch["function_name"] == FakeLambdaContext.function_name and "cold_start" in fetch
    assert fetch["level"] == "INFO" and fetch["location"].startswith("fetch:")
    # And every field the collector's own line has, but the collector's structured extras
    extras = {"endpoint", "tweet_ids", "account_id", "scheduled_time", "summary", "posts", "attempt", "job_id"}
    assert set(collected) - extras <= set(fetch)

    # And the trace shows the Engagement API call as a subsegment of the fetch, itself within the handler's
    handler = "## lambda_handler"
    fetch_segment = "## xengage.api_client.client.EngagementClient.fetch"
    call = "## xengage.api_client.client.EngagementClient._post"
    assert recording.opened[0] == (handler,)
    assert (handler, fetch_segment, call) in recording.opened
    # And the metric points' write, and each Post's status and marker write
    assert (handler, "## xengage.dal.metrics.MetricsDal.put_points") in recording.opened
    settled = [path for path in recording.opened if path == (handler, "## xengage.dal.registry.RegistryDal.settle")]
    assert len(settled) == len(tracked)


def test_the_client_logger_is_quieted_alone_and_follows_the_service_loggers_level(log_lines: io.StringIO) -> None:
    # Given the client's logger at ERROR (as the benchmarks set it)
    client_logger.setLevel(logging.ERROR)
    try:
        # When the client and the service log a warning
        client_logger.warning("retry in 1.00s")
        logger.warning("the service's line")
    finally:
        client_logger.setLevel(logging.NOTSET)
    # Then only the service's line is written
    assert [json.loads(line)["message"] for line in log_lines.getvalue().splitlines()] == ["the service's line"]
    # And, without a level of its own, the client's logger follows the service logger's (POWERTOOLS_LOG_LEVEL)
    logger.setLevel("WARNING")
    assert not client_logger.isEnabledFor(logging.INFO) and client_logger.isEnabledFor(logging.WARNING)


def test_with_tracing_off_the_traced_methods_run_without_loading_the_xray_sdk() -> None:
    # Given a fresh interpreter with the template's default (Tracing=PassThrough: POWERTOOLS_TRACE_DISABLED=true)
    script = (
        "import sys\n"
        "from xengage.api_client.client import EngagementClient\n"
        "from xengage.dal.queue import CollectQueue\n"
        "from xengage.observability import tracer\n"
        "stats = CollectQueue('unused').send_batch([])\n"  # a traced method run (nothing to send: no AWS call)
        "print(type(tracer.provider).__name__, stats.calls, 'aws_xray_sdk.core' in sys.modules)\n"
    )
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("POWERTOOLS_")},
        "PYTHONPATH": f"{REPO / 'layers/common'}{os.pathsep}{REPO}",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    # When the client and the DAL are imported and a traced method runs
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    # Then the provider is the one that records nothing, and the X-Ray SDK never loaded
    assert done.stdout.split() == ["TracingOff", "0", "False"]
