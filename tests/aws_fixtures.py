"""Build moto resources from template.yaml, so test schemas never drift from what is deployed.

Other suites reuse these helpers: `load_template()`, `table_kwargs()`, `create_resources()`.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from local.stack.resources import table_request
from local.stack.template import parse_template_text

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "template.yaml"
TABLES = {
    "RegistryTable": "REGISTRY_TABLE",
    "MetricsTable": "METRICS_TABLE",
    "JobsTable": "JOBS_TABLE",
    "RollupsTable": "ROLLUPS_TABLE",
}
STACK_NAME = "xengage-test"
# Obviously fake app credentials (the emulator's demo values are not needed by unit tests).
FAKE_APP_SECRET = {
    "consumer_key": "test-consumer-key",
    "consumer_secret": "test-consumer-secret",
    "bearer_token": "test-bearer",
}


@functools.cache
def copy_tables_once_per_transaction() -> None:
    """moto's TransactWriteItems deep-copies an action's whole table for each of its actions before applying any
    (its rollback): 100 actions on one table copy it 100 times, minutes for a year of /historical day items. The
    copies of one call are identical, so the first is reused: the same rollback, one copy per table and call."""
    from moto.dynamodb import models

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        copies: dict[int, Any] = {}

        def deepcopy_once(value: Any, memo: Any = None) -> Any:
            if not isinstance(value, models.Table):  # items and the like: copied as moto does
                return copy.deepcopy(value, memo)
            if id(value) not in copies:  # the tables live through the call: their ids stay theirs
                copies[id(value)] = copy.deepcopy(value, memo)
            return copies[id(value)]

        models.copy = _CopyOnce(deepcopy_once)  # type: ignore[assignment]
        try:
            original(backend, transact_items)
        finally:
            models.copy = copy

    setattr(models.DynamoDBBackend, "transact_write_items", transact_write_items)  # noqa: B010 - a patch


@dataclass(frozen=True)
class _CopyOnce:
    """Stands in for the `copy` module inside moto's DynamoDB models during one transaction."""

    deepcopy: Any


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The parsed template (a fresh copy each call: callers may edit it)."""
    return copy.deepcopy(_parsed_template(path))


@functools.cache
def _parsed_template(path: Path) -> dict[str, Any]:
    return parse_template_text(path.read_text(encoding="utf-8"))


def table_kwargs(properties: dict[str, Any], table_name: str) -> dict[str, Any]:
    """The create_table arguments equivalent to an AWS::DynamoDB::Table's Properties (the local stack's builder)."""
    return table_request(properties, table_name)


@dataclass(frozen=True)
class AwsResources:
    """Names of what create_resources made, and the environment the functions would see."""

    registry_table: str
    metrics_table: str
    rollups_table: str
    collect_queue_url: str
    app_secret_arn: str
    secret_prefix: str
    jobs_table: str
    export_bucket: str = ""  # the analytics export's bucket and continuation queue
    export_queue_url: str = ""

    def environment(self) -> dict[str, str]:
        return {
            "REGISTRY_TABLE": self.registry_table,
            "METRICS_TABLE": self.metrics_table,
            "ROLLUPS_TABLE": self.rollups_table,
            "COLLECT_QUEUE_URL": self.collect_queue_url,
            "APP_SECRET_ARN": self.app_secret_arn,
            "SECRET_PREFIX": self.secret_prefix,
            "JOBS_TABLE": self.jobs_table,
            "EXPORT_BUCKET": self.export_bucket,
            "EXPORT_QUEUE_URL": self.export_queue_url,
        }


def create_resources(
    template: dict[str, Any] | None = None,
    *,
    stack_name: str = STACK_NAME,
    session: boto3.session.Session | None = None,
) -> AwsResources:
    """Create the stack's tables, collect queue, app secret, export bucket and export queue (inside an active moto
    mock or against moto server).

    Reuses the DAL's boto3 session by default: building a session costs ~0.3 s, a client ~20 ms.
    """
    from xengage.dal.aws import session as dal_session

    session = session or dal_session()
    copy_tables_once_per_transaction()
    template = template if template is not None else load_template()
    resources = template["Resources"]
    dynamodb = session.client("dynamodb")
    names = {}
    for logical_id in TABLES:
        names[logical_id] = f"{stack_name}-{logical_id}"
        dynamodb.create_table(**table_kwargs(resources[logical_id]["Properties"], names[logical_id]))

    queue_properties = resources["CollectQueue"]["Properties"]
    queue_url = session.client("sqs").create_queue(
        QueueName=f"{stack_name}-CollectQueue",
        Attributes={"VisibilityTimeout": str(queue_properties.get("VisibilityTimeout", 30))},
    )["QueueUrl"]

    secret_name = resources["AppSecret"]["Properties"]["Name"]["Fn::Sub"].replace("${AWS::StackName}", stack_name)
    secret_arn = session.client("secretsmanager").create_secret(
        Name=secret_name, SecretString=json.dumps(FAKE_APP_SECRET)
    )["ARN"]
    export_bucket = f"{stack_name}-exportbucket".lower()
    session.client("s3").create_bucket(Bucket=export_bucket)
    export_queue_url = session.client("sqs").create_queue(QueueName=f"{stack_name}-ExportQueue")["QueueUrl"]
    return AwsResources(
        registry_table=names["RegistryTable"],
        metrics_table=names["MetricsTable"],
        rollups_table=names["RollupsTable"],
        collect_queue_url=queue_url,
        app_secret_arn=secret_arn,
        secret_prefix=f"{stack_name}/",
        jobs_table=names["JobsTable"],
        export_bucket=export_bucket,
        export_queue_url=export_queue_url,
    )
