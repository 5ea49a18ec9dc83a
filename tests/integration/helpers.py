"""Helpers for the integration tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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
