"""`make invoke` (local.stack.invoke) against a running local stack, with every sample event in events/.

The stack is started once per module the way local/run.py starts it (emulator, moto with the template's
resources, warm workers, pollers and REST API on ephemeral ports, the demo seed, the state file) but without the
first collection, which the `make run` test covers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.emulator import EmulatorServer
from local.run import SEED_FUNCTION, app_secret_value, demo_seed_plan
from local.stack.invoke import main as invoke_main
from local.stack.schedules import iso_utc
from local.stack.seed import seed_stack
from local.stack.stack import LocalStack, StackSettings
from xengage.pipeline.export_job import job_from_event

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS = REPO_ROOT / "events"
FUNCTIONS = ["ApiFunction", "CollectorFunction", "ExportFunction", "PlannerFunction"]

# Every sample event and the function it is for; test_every_sample_event_is_exercised keeps this complete.
SAMPLES = {
    "schedule_totals.json": "PlannerFunction",
    "schedule_28hr.json": "PlannerFunction",
    "schedule_historical.json": "PlannerFunction",
    "sqs_collect_batch.json": "CollectorFunction",
    "collector_console_totals.json": "CollectorFunction",
    "collector_console_28hr.json": "CollectorFunction",
    "collector_console_historical.json": "CollectorFunction",
    "api_post_tweets.json": "ApiFunction",
    "api_get_tweet_metrics.json": "ApiFunction",
    "export_daily.json": "ExportFunction",
    "export_backfill.json": "ExportFunction",
}


@dataclass
class Running:
    stack: LocalStack
    state_dir: Path

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A local stack started as local/run.py starts it, its state in a temporary LOCAL_STATE_DIR."""
    state_dir = tmp_path_factory.mktemp("local-state")
    with EmulatorServer(port=0) as emulator:
        settings = StackSettings(
            template_path=REPO_ROOT / "template.yaml",
            moto_port=0,
            api_port=0,
            environment_overrides={"ENGAGEMENT_API_URL": emulator.url, "X_API_URL": emulator.url},
            app_secret_value=app_secret_value({}, emulator.world.app),
            log_dir=state_dir / "logs",
        )
        with LocalStack(settings) as stack:
            now = iso_utc(datetime.now(UTC).replace(second=0))
            seed_stack(stack.specs[SEED_FUNCTION], demo_seed_plan(emulator.world, now))
            extra = {"pid": os.getpid(), "emulator_url": emulator.url, "engagement_api_url": emulator.url}
            stack.write_state(state_dir / "stack.json", extra)
            yield Running(stack, state_dir)


@dataclass
class Invoked:
    status: int
    stdout: str
    stderr: str

    @property
    def payload(self) -> Any:
        return json.loads(self.stdout)


def invoke(capfd: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None) -> Invoked:
    """`python -m local.stack.invoke <argv>` in-process; stdout and stderr as the terminal would see them."""
    capfd.readouterr()
    status = invoke_main(list(argv), env=env or {})
    captured = capfd.readouterr()
    return Invoked(status, captured.out, captured.err)


def _event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_every_sample_event_is_exercised() -> None:
    # Given the sample events shipped in events/
    shipped = sorted(path.name for path in EVENTS.glob("*.json"))
    # Then each is invoked by a test of this module
    assert shipped == sorted(SAMPLES)


@pytest.mark.parametrize("name", ["schedule_totals.json", "schedule_28hr.json", "schedule_historical.json"])
def test_planner_returns_the_plan_summary_of_its_endpoint(
    running: Running, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    # Given a schedule event and the warm planner's invocation count
    event = _event(name)
    warm = running.stack.workers["PlannerFunction"]
    before = warm.invocations
    # When it is invoked through `make invoke` (state file found through LOCAL_STATE_DIR)
    result = invoke(
        capfd,
        "--function",
        "PlannerFunction",
        "--event",
        str(EVENTS / name),
        env={"LOCAL_STATE_DIR": str(running.state_dir)},
    )
    # Then it succeeded and stdout is exactly the plan summary of the event's endpoint and tick
    assert result.status == 0, result.stderr
    plan = result.payload
    assert plan["endpoint"] == event["endpoint"]
    assert plan["scheduled_time"] == event["scheduled_time"]
    assert all(isinstance(plan[key], int) for key in ("due", "planned", "skipped", "messages", "send_calls"))
    assert plan["planned"] <= plan["due"]
    # And it ran in a fresh process (a cold start), not in the stack's warm worker; its logs went to stderr
    assert warm.invocations == before
    assert '"cold_start":true' in result.stderr
    assert "REPORT RequestId:" in result.stderr and "Init Duration:" in result.stderr


def test_sqs_batch_returns_batch_item_failures(running: Running, capfd: pytest.CaptureFixture[str]) -> None:
    # Given the SQS batch sample (a /totals and a /28hr message)
    event = _event("sqs_collect_batch.json")
    # When the collector is invoked with it
    result = invoke(
        capfd,
        "-f",
        "CollectorFunction",
        "-e",
        str(EVENTS / "sqs_collect_batch.json"),
        "--state-file",
        str(running.state_file),
    )
    # Then it answers in the partial batch response format, and no message failed: Posts the API does not know
    # are a final `unavailable`, not a failure to retry
    assert result.status == 0, result.stderr
    assert result.payload == {"batchItemFailures": []}
    assert len(event["Records"]) == 2
    assert '"message":"collected"' in result.stderr


@pytest.mark.parametrize(
    "name", ["collector_console_totals.json", "collector_console_28hr.json", "collector_console_historical.json"]
)
def test_console_payload_returns_counts_by_status(
    running: Running, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    # Given a console payload
    event = _event(name)
    # When the collector is invoked with it
    result = invoke(capfd, "-f", "CollectorFunction", "-e", str(EVENTS / name), "--state-file", str(running.state_file))
    # Then it returns counts by status covering every requested Post, for the payload's endpoint and account
    assert result.status == 0, result.stderr
    summary = result.payload
    assert summary["endpoint"] == event["endpoint"]
    assert summary["account_id"] == event.get("account_id")
    assert summary["requested"] == len(set(event["tweet_ids"]))
    assert sum(summary["counts"].values()) == summary["requested"]
    assert "error" not in summary


def test_api_events_return_a_status_code_and_a_json_body(running: Running, capfd: pytest.CaptureFixture[str]) -> None:
    # Given the API samples: tracking three Posts of the seeded account, then reading one's stored metrics
    tracked = _event("api_post_tweets.json")
    wanted = json.loads(tracked["body"])["tweet_ids"]
    state = ("--state-file", str(running.state_file))
    # When both are invoked, in that order
    posted = invoke(capfd, "-f", "ApiFunction", "-e", str(EVENTS / "api_post_tweets.json"), *state)
    read = invoke(capfd, "-f", "ApiFunction", "-e", str(EVENTS / "api_get_tweet_metrics.json"), *state)
    # Then each is an API Gateway proxy result with a status code and a JSON body
    assert posted.status == read.status == 0, posted.stderr + read.stderr
    assert posted.payload["statusCode"] == 200
    assert [post["tweet_id"] for post in json.loads(posted.payload["body"])["tracked"]] == wanted
    assert read.payload["statusCode"] == 200
    body = json.loads(read.payload["body"])
    assert body["tweet_id"] == "2125635624760246273" and body["endpoint"] == "totals"
    assert isinstance(body["points"], list)


@pytest.mark.parametrize("name", ["export_daily.json", "export_backfill.json"])
def test_export_events_export_their_days_into_the_stack_bucket(
    running: Running, capfd: pytest.CaptureFixture[str], name: str
) -> None:
    # Given the daily schedule's input and a backfill's
    job = job_from_event(_event(name))
    days = [str(job.day + timedelta(days=n)) for n in range((job.last_day - job.day).days + 1)]
    # When each is invoked through `make invoke`
    result = invoke(capfd, "-f", "ExportFunction", "-e", str(EVENTS / name), "--state-file", str(running.state_file))
    # Then every day of its range was exported in that invocation, and the files it counts are in the stack's bucket
    assert result.status == 0, result.stderr
    assert result.payload["days"] == days and result.payload["continued"] is None
    s3 = running.stack.client("s3")
    listed = s3.list_objects_v2(Bucket=running.stack.ids.ref("ExportBucket")).get("Contents", [])
    assert len([obj for obj in listed if obj["Key"].split("/dt=")[1][:10] in days]) == result.payload["files"]


def test_function_error_prints_the_error_payload_and_exits_1(
    running: Running, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given an event the planner rejects
    event_file = tmp_path / "bad_schedule.json"
    event_file.write_text(json.dumps({"endpoint": "weekly"}))
    # When it is invoked
    result = invoke(capfd, "-f", "PlannerFunction", "-e", str(event_file), "--state-file", str(running.state_file))
    # Then the exit status is 1, stdout is Lambda's error payload and stderr says the function failed
    assert result.status == 1
    assert result.payload["errorType"] == "InvalidScheduleEvent"
    assert "weekly" in result.payload["errorMessage"]
    assert "PlannerFunction failed (InvalidScheduleEvent)" in result.stderr


def test_make_invoke_command_line_runs_as_a_module(running: Running) -> None:
    # Given the command `make invoke` runs, with the state directory in LOCAL_STATE_DIR
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{REPO_ROOT / 'layers' / 'common'}:{REPO_ROOT}",
        "LOCAL_STATE_DIR": str(running.state_dir),
    }
    # When it is run as a process from the repository root
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "local.stack.invoke",
            "--function",
            "PlannerFunction",
            "--event",
            "events/schedule_totals.json",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it exits 0 with one line of JSON on stdout, the logs on stderr
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("\n") == 1
    assert json.loads(completed.stdout)["endpoint"] == "totals"
    assert "START RequestId:" in completed.stderr


# --- usage errors (exit 2) --------------------------------------------------------------------------


def test_no_running_stack_says_to_start_it(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Given a state directory without a state file
    # When a function is invoked
    result = invoke(
        capfd,
        "-f",
        "PlannerFunction",
        "-e",
        str(EVENTS / "schedule_totals.json"),
        env={"LOCAL_STATE_DIR": str(tmp_path)},
    )
    # Then usage error: nothing ran, and the message says how to start the stack
    assert result.status == 2 and result.stdout == ""
    assert "no running local stack" in result.stderr and "make run" in result.stderr


def test_stale_state_file_says_to_start_the_stack(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Given a state file left behind by a stack that is gone (nothing listens on its moto port)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "stack.json").write_text(json.dumps({"moto_url": f"http://127.0.0.1:{port}", "functions": {}}))
    # When a function is invoked
    result = invoke(
        capfd,
        "-f",
        "PlannerFunction",
        "-e",
        str(EVENTS / "schedule_totals.json"),
        env={"LOCAL_STATE_DIR": str(tmp_path)},
    )
    # Then usage error naming the dead stack
    assert result.status == 2 and result.stdout == ""
    assert "is not running" in result.stderr and "make run" in result.stderr


def test_unknown_function_lists_the_template_functions(running: Running, capfd: pytest.CaptureFixture[str]) -> None:
    # When a function the template does not have is invoked
    result = invoke(
        capfd, "-f", "Planner", "-e", str(EVENTS / "schedule_totals.json"), "--state-file", str(running.state_file)
    )
    # Then usage error listing the template's functions, with the likely one suggested
    assert result.status == 2 and result.stdout == ""
    assert f"the template's functions: {', '.join(FUNCTIONS)}" in result.stderr
    assert "Did you mean PlannerFunction?" in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "does not exist"), ('{"endpoint": ', "is not valid JSON: Expecting value at line 1")],
    ids=["missing", "invalid-json"],
)
def test_unusable_event_file_is_named(
    running: Running, capfd: pytest.CaptureFixture[str], tmp_path: Path, content: str | None, expected: str
) -> None:
    # Given an event file that is missing, or not JSON
    event_file = tmp_path / "event.json"
    if content is not None:
        event_file.write_text(content)
    # When it is used
    result = invoke(capfd, "-f", "PlannerFunction", "-e", str(event_file), "--state-file", str(running.state_file))
    # Then usage error naming the file and what is wrong with it
    assert result.status == 2 and result.stdout == ""
    assert f"event file {event_file} {expected}" in result.stderr


def test_empty_function_and_event_print_usage(running: Running, capfd: pytest.CaptureFixture[str]) -> None:
    # Given `make invoke` without FUNCTION and EVENT (the Makefile passes empty strings)
    # When it runs
    result = invoke(capfd, "--function", "", "--event", "", env={"LOCAL_STATE_DIR": str(running.state_dir)})
    # Then usage error: how to call it, the running stack's functions and the sample events for each
    assert result.status == 2 and result.stdout == ""
    assert "FUNCTION and EVENT are required" in result.stderr
    assert "make invoke FUNCTION=<LogicalId> EVENT=<event.json>" in result.stderr
    assert f"functions of the running stack: {', '.join(FUNCTIONS)}" in result.stderr
    for name in SAMPLES:
        assert name in result.stderr


def test_empty_event_suggests_the_samples_for_the_function(running: Running, capfd: pytest.CaptureFixture[str]) -> None:
    # When only FUNCTION is given
    result = invoke(capfd, "--function", "CollectorFunction", "--event", "", "--state-file", str(running.state_file))
    # Then usage error suggesting the collector's samples only
    assert result.status == 2 and result.stdout == ""
    assert "EVENT is required" in result.stderr
    suggested = {name for name, function_id in SAMPLES.items() if function_id == "CollectorFunction"}
    assert all(name in result.stderr for name in suggested)
    assert "schedule_totals.json" not in result.stderr
