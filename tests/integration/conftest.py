"""A local stack of the fixture template, shared by the tests of a module (servers on ephemeral ports)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from local.stack.dynamodb import dynalite_missing, start_dynalite
from local.stack.stack import LocalStack, StackSettings

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "template.yaml"
DYNALITE_TABLE = "dynalite-table"


@pytest.fixture(scope="module")
def fixture_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = StackSettings(
        template_path=FIXTURE_TEMPLATE,
        schedule_retry_delay_seconds=0,
        log_dir=tmp_path_factory.mktemp("logs"),
    )
    with LocalStack(settings) as stack:
        yield stack


@pytest.fixture
def dynalite_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A table of pk/sk strings in a fresh dynalite (DynamoDB's conditional-write semantics), the DAL pointed at it."""
    missing = dynalite_missing()
    if missing:
        pytest.skip(f"dynalite cannot run here: {missing}")
    server = start_dynalite()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", server.url)  # the DAL's clients follow (dal/aws.py)
        boto3.client("dynamodb", endpoint_url=server.url).create_table(
            TableName=DYNALITE_TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DYNALITE_TABLE
    finally:
        server.stop()
