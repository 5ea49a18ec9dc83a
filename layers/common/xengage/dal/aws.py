"""Lazily created, cached boto3 objects: the only place the project builds boto3 clients.

Created on first use (not at import) so moto's `mock_aws` and the local stack's `AWS_ENDPOINT_URL` are honoured;
boto3 itself reads `AWS_ENDPOINT_URL`, so nothing here passes endpoints around.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.exceptions import ClientError


@functools.cache
def session() -> boto3.session.Session:
    """One botocore session per process: building one loads service models (~0.3 s), so it is done once."""
    return boto3.session.Session()


@functools.cache
def dynamodb_resource() -> Any:
    return session().resource("dynamodb")


@functools.cache
def dynamodb_table(name: str) -> Any:
    return dynamodb_resource().Table(name)


@functools.cache
def dynamodb_client() -> Any:
    """The low-level client: unlike resources, safe to share between threads (the planner leases in parallel)."""
    return session().client("dynamodb")


@functools.cache
def dynamodb_bulk_client() -> Any:
    """A low-level client for bulk BatchGetItem/BatchWriteItem (`dal/batch.py`) without botocore's parameter
    validation: the DAL builds those requests itself, and validating 25-item writes is a quarter of their CPU time
    (10,000 Posts are 1,600 calls in a 512 MB function). DynamoDB still refuses a malformed request."""
    from botocore.config import Config

    return session().client("dynamodb", config=Config(parameter_validation=False))


@functools.cache
def sqs_client() -> Any:
    return session().client("sqs")


@functools.cache
def secretsmanager_client() -> Any:
    return session().client("secretsmanager")


@functools.cache
def s3_client() -> Any:
    """The analytics export's bucket (only the ExportFunction uses it)."""
    return session().client("s3")


def is_conditional_failure(exc: ClientError) -> bool:
    """A write refused by its ConditionExpression (an expected outcome, not an error)."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def clear_clients() -> None:
    """Drop cached clients (tests open a fresh moto backend per case); the session, with its models, stays."""
    for factory in (
        dynamodb_resource,
        dynamodb_table,
        dynamodb_client,
        dynamodb_bulk_client,
        sqs_client,
        secretsmanager_client,
        s3_client,
    ):
        factory.cache_clear()
