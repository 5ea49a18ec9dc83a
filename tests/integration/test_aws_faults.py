"""AWS faults injected into the function workers' botocore while the stack runs (local/stack/aws_faults.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack.stack import LocalStack, StackSettings
from tests.integration.helpers import recorded

pytestmark = pytest.mark.integration

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "template.yaml"

PUT_ITEM_THROTTLED = ("dynamodb.PutItem", "throttle")


@pytest.fixture(scope="module")
def faulty_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The fixture template's functions with the fault layer installed (no faults until a test sets some)."""
    directory = tmp_path_factory.mktemp("faults")
    settings = StackSettings(
        template_path=FIXTURE_TEMPLATE,
        api_port=None,
        start_pollers=False,
        log_dir=directory / "logs",
        aws_faults_file=directory / "faults.json",
    )
    with LocalStack(settings) as stack:
        yield stack


def _tick(stack: LocalStack, execution_id: str) -> None:
    """Invoke the tick function, which records its event in DynamoDB with one PutItem."""
    result = stack.invoke("TickFunction", {"job": "ok", "execution_id": execution_id, "attempt": "1"})
    assert result.ok, result.payload


def test_throttled_writes_are_retried_by_botocore_and_faults_stop_when_cleared(faulty_stack: LocalStack):
    # Given half of the workers' PutItem attempts throttled (seeded: the first attempt is throttled)
    faulty_stack.set_aws_faults({"dynamodb.PutItem": {"throttle": 0.5, "seed": 11}})
    # When the tick function records four events
    for index in range(4):
        _tick(faulty_stack, f"faulty-{index}")
    # Then every item is in the table (botocore retried the throttled writes) and the faults really happened
    assert {f"faulty-{index}#1" for index in range(4)} <= set(recorded(faulty_stack, "tick"))
    throttled = faulty_stack.aws_fault_counts()[PUT_ITEM_THROTTLED]
    assert throttled > 0
    assert set(faulty_stack.aws_fault_counts()) == {PUT_ITEM_THROTTLED}

    # When the faults are cleared while the workers keep running, and the function records again
    faulty_stack.set_aws_faults(None)
    for index in range(3):
        _tick(faulty_stack, f"clear-{index}")
    # Then the items are written and no new fault is logged
    assert {f"clear-{index}#1" for index in range(3)} <= set(recorded(faulty_stack, "tick"))
    assert faulty_stack.aws_fault_counts()[PUT_ITEM_THROTTLED] == throttled


def test_a_rule_for_another_operation_leaves_the_writes_alone(faulty_stack: LocalStack):
    # Given every BatchWriteItem answered as unprocessed, but nothing said about PutItem
    faulty_stack.set_aws_faults({"dynamodb.BatchWriteItem": {"unprocessed": 1.0}})
    before = faulty_stack.aws_fault_counts()
    # When the tick function records with PutItem
    _tick(faulty_stack, "other-op")
    # Then the write goes through untouched
    assert "other-op#1" in recorded(faulty_stack, "tick")
    assert faulty_stack.aws_fault_counts() == before
    faulty_stack.set_aws_faults(None)


def test_fault_methods_need_a_faults_file():
    # Given a stack configured without a faults file
    stack = LocalStack(StackSettings(template_path=FIXTURE_TEMPLATE))
    # When faults are set, Then it says which setting is missing
    with pytest.raises(ValueError, match="aws_faults_file"):
        stack.set_aws_faults({"dynamodb.PutItem": {"throttle": 1.0}})
