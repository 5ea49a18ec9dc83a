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


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.2) -> Any:
    """Poll `condition` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


@contextmanager
def make_run_in_background(
    state_dir: Path, *, env: Mapping[str, str] | None = None, start_timeout: float = 420.0
) -> Iterator[str]:
    """`make run` (schedules off after the first collection) on ephemeral ports in a thread; yields the API's URL.

    Waits for its "Ctrl-C to stop" line, the sign that the stack is up and the first collection ran; raises
    RuntimeError with what it printed if it stops or takes longer than `start_timeout`.
    """
    from local.run import main

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
    thread = threading.Thread(target=main, args=(run_env, out, stop), name="make-run", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    try:
        # The one place a test waits on a thread's progress: main() reports it only through what it prints.
        while "Ctrl-C to stop" not in out.getvalue():
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"make run did not come up; it printed:\n{out.getvalue()}")
            time.sleep(0.5)
        yield str(json.loads((state_dir / "stack.json").read_text(encoding="utf-8"))["api_url"])
    finally:
        stop.set()
        thread.join(timeout=60)
