"""Helpers for the integration tests."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from local.stack.stack import LocalStack


def recorded(stack: LocalStack, kind: str) -> dict[str, Any]:
    """Items the fixture handlers recorded under `kind`, by sort key, payload decoded."""
    table = stack.ids.ref("ItemsTable")
    items = stack.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="pk = :kind",
        ExpressionAttributeValues={":kind": {"S": kind}},
    )["Items"]
    return {item["sk"]["S"]: json.loads(item["payload"]["S"]) for item in items}


def receive_matching(sqs: Any, queue_url: str, matches: Callable[[Any], bool], timeout: float = 20.0) -> list[Any]:
    """The messages of `queue_url` whose JSON body `matches`, as soon as one arrives: SQS long polls wait for them
    (no sleep between looks). Fails the test on timeout; messages that do not match stay hidden for 30 s."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        found = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=max(1, min(20, int(left))), VisibilityTimeout=30
        ).get("Messages", [])
        matching = [message for message in found if matches(json.loads(message["Body"]))]
        if matching:
            return matching
    pytest.fail(f"no matching message in {queue_url} within {timeout} s")


@contextmanager
def make_run_in_background(
    state_dir: Path, *, env: Mapping[str, str] | None = None, start_timeout: float = 420.0
) -> Iterator[str]:
    """`make run` (schedules off after the first collection) on ephemeral ports in a thread; yields the API's URL.

    Waits until main signals that the stack serves (the first collection ran); raises RuntimeError with what it
    printed if it stops or takes longer than `start_timeout`.
    """
    from local.run import RunSignals, main

    run_env = {
        "API_PORT": "0",
        "MOTO_PORT": "0",
        "EMULATOR_PORT": "0",
        "DYNAMODB_PORT": "0",
        "LOCAL_SCHEDULES": "0",
        "LOCAL_STATE_DIR": str(state_dir),
        "LOCAL_FIRST_COLLECTION_TIMEOUT": "360",
        **(env or {}),
    }
    out, stop = io.StringIO(), threading.Event()
    # Set when the stack serves after its first collection, or when main returned (then `returned` says so).
    woken, returned = threading.Event(), threading.Event()

    def run() -> None:
        try:
            main(run_env, out, stop, RunSignals(serving=woken))
        finally:
            returned.set()
            woken.set()

    thread = threading.Thread(target=run, name="make-run", daemon=True)
    thread.start()
    try:
        if not woken.wait(start_timeout) or returned.is_set():
            raise RuntimeError(f"make run did not come up; it printed:\n{out.getvalue()}")
        yield str(json.loads((state_dir / "stack.json").read_text(encoding="utf-8"))["api_url"])
    finally:
        stop.set()
        thread.join(timeout=60)
