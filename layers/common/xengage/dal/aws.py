"""Lazily created, cached boto3 objects: the only place the project builds boto3 clients.

Created on first use (not at import) so moto's `mock_aws` is honoured. Each client is cached for the environment it
serves (`AWS_ENDPOINT_URL` and the region, which boto3 reads when it builds a client): a process whose environment
points elsewhere (a test against the local stack after one against moto) gets new clients, and nothing needs
clearing. The botocore session, with its service models, stays one per process.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError


@functools.cache
def session() -> boto3.session.Session:
    """One botocore session per process: building one loads service models (~0.3 s), so it is done once."""
    return boto3.session.Session()


# The variables boto3 reads when it builds a client: endpoint overrides (all services, or one) and the region.
_WHERE_VARIABLES: Final = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)
Where = tuple[str | None, ...]


def where() -> Where:
    """The current environment's values of those variables: the key of every cached client."""
    return tuple(map(os.environ.get, _WHERE_VARIABLES))


@functools.cache
def _client(service: str, where: Where, validate: bool = True) -> Any:
    if validate:
        return session().client(service)  # type: ignore[call-overload]  # boto3-stubs type literal names only
    from botocore.config import Config

    return session().client(service, config=Config(parameter_validation=False))  # type: ignore[call-overload]


@functools.cache
def _resource(where: Where) -> Any:
    return session().resource("dynamodb")


@functools.cache
def _table(name: str, where: Where) -> Any:
    return _resource(where).Table(name)


def dynamodb_resource() -> Any:
    return _resource(where())


def dynamodb_table(name: str) -> Any:
    return _table(name, where())


def dynamodb_client() -> Any:
    """The low-level client: unlike resources, safe to share between threads (the planner leases in parallel)."""
    return _client("dynamodb", where())


def dynamodb_bulk_client() -> Any:
    """A low-level client for bulk BatchGetItem/BatchWriteItem (`dal/batch.py`) without botocore's parameter
    validation: the DAL builds those requests itself, and validating 25-item writes is a quarter of their CPU time
    (10,000 Posts are 1,600 calls in a 512 MB function). DynamoDB still refuses a malformed request."""
    return _client("dynamodb", where(), validate=False)


def sqs_client() -> Any:
    return _client("sqs", where())


def secretsmanager_client() -> Any:
    return _client("secretsmanager", where())


def s3_client() -> Any:
    """The analytics export's bucket (only the ExportFunction uses it)."""
    return _client("s3", where())


def is_conditional_failure(exc: ClientError) -> bool:
    """A write refused by its ConditionExpression (an expected outcome, not an error)."""
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
