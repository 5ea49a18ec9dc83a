"""Moto server plus the template's tables, queues and secrets, created from the template itself.

Nothing here repeats a schema: key schemas, GSIs, queue attributes and redrive policies are read from
`template.yaml`, resolved, and handed to moto. The resulting `PhysicalIds` answer `Ref`/`Fn::GetAtt` for every
resource, including the ones the local stack only names (functions, layers, APIs, roles).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import requests
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

from local.stack.template import (
    SERVERLESS_API,
    SERVERLESS_FUNCTION,
    SERVERLESS_LAYER,
    IntrinsicResolver,
    PhysicalIds,
    StackTemplate,
    TemplateError,
    UnresolvedResource,
)

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
SECRET = "AWS::SecretsManager::Secret"
BUCKET = "AWS::S3::Bucket"

# Moto accepts any credentials; these make sure nothing ever signs with a developer's real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}

# The template's queue properties that are SQS attributes of the same name.
_QUEUE_ATTRIBUTES = ("MessageRetentionPeriod", "VisibilityTimeout", "SqsManagedSseEnabled")

_INDEX_KEYS = {"IndexName", "KeySchema", "Projection", "ProvisionedThroughput"}
_DEFAULT_THROUGHPUT = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}


@dataclass
class MotoEndpoint:
    """A running moto server on loopback."""

    server: ThreadedMotoServer
    url: str
    port: int

    def stop(self) -> None:
        self.server.stop()


def start_moto_server(port: int = 0) -> MotoEndpoint:
    """Start moto server on 127.0.0.1 (`port=0` picks a free port) and return where it listens."""
    from moto.server import ThreadedMotoServer  # lazily: tests/aws_fixtures.py imports `table_request` from here

    # werkzeug logs one line per request; the stack prints its own summary instead.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    url = f"http://{host}:{bound_port}"
    # Moto keeps its backends per process, shared by every server and mock in it: a stack started after
    # another one in the same process (a test module after another) would find the old tables.
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
    return MotoEndpoint(server=server, url=url, port=bound_port)


def aws_client(service: str, endpoint_url: str, region: str, *, dynamodb_url: str | None = None) -> Any:
    """A boto3 client for moto (DynamoDB: `dynamodb_url` when the tables live apart, in dynalite) with fake
    credentials, whatever the caller's environment holds."""
    if service == "dynamodb" and dynamodb_url:
        endpoint_url = dynamodb_url
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    ).client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]


@dataclass
class _Context:
    template: StackTemplate
    ids: PhysicalIds
    resolver: IntrinsicResolver
    endpoint_url: str
    dynamodb_url: str

    def client(self, service: str) -> Any:
        return aws_client(service, self.endpoint_url, self.template.region, dynamodb_url=self.dynamodb_url)

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.template.region}:{self.template.account_id}:{resource}"

    def default_name(self, logical_id: str) -> str:
        return f"{self.template.stack_name}-{logical_id}"


def create_stack_resources(template: StackTemplate, endpoint_url: str, dynamodb_url: str | None = None) -> PhysicalIds:
    """Create every table, queue and secret of `template` in moto (tables at `dynamodb_url` when given: dynalite)
    and name everything else.

    Resources are created in dependency order: one whose properties refer to a resource not created yet
    (a queue whose RedrivePolicy names its DLQ) waits for the next pass.
    """
    ids = PhysicalIds()
    ctx = _Context(template, ids, template.resolver(ids), endpoint_url, dynamodb_url or endpoint_url)
    for logical_id, resource in template.resources.items():
        if resource.get("Type") not in _CREATORS:
            _name_passive_resource(ctx, logical_id, resource)
    pending = [lid for lid, res in template.resources.items() if res.get("Type") in _CREATORS]
    while pending:
        created = []
        for logical_id in pending:
            try:
                properties = ctx.resolver.resolve(template.properties(logical_id))
            except UnresolvedResource:
                continue
            _CREATORS[template.resources[logical_id]["Type"]](ctx, logical_id, properties)
            created.append(logical_id)
        if not created:
            raise TemplateError(f"cannot order the creation of {pending}: they refer to each other")
        pending = [lid for lid in pending if lid not in created]
    return ids


def table_request(properties: Mapping[str, Any], table_name: str) -> dict[str, Any]:
    """The CreateTable arguments of an `AWS::DynamoDB::Table`'s Properties: keys, GSIs, billing.

    The one table builder: the local stack and the tests' moto tables (`tests/aws_fixtures.py`) both use it.
    """
    billing = properties.get("BillingMode", "PROVISIONED")
    request: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = properties.get("ProvisionedThroughput", _DEFAULT_THROUGHPUT)
    # CloudFormation-only keys (ContributorInsightsSpecification...) are not part of CreateTable, and an
    # on-demand table's indexes take no throughput.
    index_keys = _INDEX_KEYS if billing == "PROVISIONED" else _INDEX_KEYS - {"ProvisionedThroughput"}
    if properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [
            {key: value for key, value in index.items() if key in index_keys}
            for index in properties["GlobalSecondaryIndexes"]
        ]
    return request


def _create_table(ctx: _Context, logical_id: str, properties: Mapping[str, Any]) -> None:
    name = properties.get("TableName") or ctx.default_name(logical_id)
    request = table_request(properties, name)
    dynamodb = ctx.client("dynamodb")
    description = dynamodb.create_table(**request)["TableDescription"]
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and str(ttl.get("Enabled")).lower() == "true":
        try:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )
        except ClientError as exc:  # dynalite has no TTL; nothing expires locally either way
            logging.getLogger("local.stack").warning("%s: TTL setting not applied locally (%s)", logical_id, exc)
    ctx.ids.add(logical_id, name, Arn=description["TableArn"])


def _create_queue(ctx: _Context, logical_id: str, properties: Mapping[str, Any]) -> None:
    name = properties.get("QueueName") or ctx.default_name(logical_id)
    attributes = {key: _attribute_text(properties[key]) for key in _QUEUE_ATTRIBUTES if key in properties}
    if "RedrivePolicy" in properties:
        attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
    sqs = ctx.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    ctx.ids.add(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)


def _create_secret(ctx: _Context, logical_id: str, properties: Mapping[str, Any]) -> None:
    name = properties.get("Name") or ctx.default_name(logical_id)
    # template.yaml's secrets hold a SecretString placeholder (make run writes the app credentials over it).
    request = {"Name": name, "SecretString": properties["SecretString"]}
    if properties.get("Description"):
        request["Description"] = properties["Description"]
    arn = ctx.client("secretsmanager").create_secret(**request)["ARN"]
    # Ref on a secret is its ARN.
    ctx.ids.add(logical_id, arn, Id=arn, Name=name)


def _create_bucket(ctx: _Context, logical_id: str, properties: Mapping[str, Any]) -> None:
    """A moto bucket (the analytics export's): its name, or the stack's default name in the lower case S3 wants.
    Encryption, public access block and lifecycle are not applied: moto stores objects either way."""
    name = str(properties.get("BucketName") or ctx.default_name(logical_id)).lower()
    ctx.client("s3").create_bucket(Bucket=name)
    ctx.ids.add(
        logical_id,
        name,
        Arn=f"arn:aws:s3:::{name}",
        DomainName=f"{name}.s3.amazonaws.com",
        RegionalDomainName=f"{name}.s3.{ctx.template.region}.amazonaws.com",
    )


def _name_passive_resource(ctx: _Context, logical_id: str, resource: Mapping[str, Any]) -> None:
    """Give resources the local stack does not create in moto the ids a template may refer to."""
    resource_type = resource.get("Type", "")
    properties = resource.get("Properties") or {}

    def named(key: str) -> str:
        try:
            value = ctx.resolver.resolve(properties.get(key))
        except UnresolvedResource:
            value = None
        return str(value) if value else ctx.default_name(logical_id)

    if resource_type == SERVERLESS_FUNCTION:
        name = named("FunctionName")
        ctx.ids.add(logical_id, name, Arn=ctx.arn("lambda", f"function:{name}"))
    elif resource_type == SERVERLESS_LAYER:
        ctx.ids.add(logical_id, ctx.arn("lambda", f"layer:{ctx.default_name(logical_id)}:1"))
    elif resource_type == SERVERLESS_API:
        ctx.ids.add(logical_id, "local" + logical_id.lower()[:5], RootResourceId="root")
    else:
        service = resource_type.split("::")[1].lower() if resource_type.count("::") >= 2 else "local"
        name = ctx.default_name(logical_id)
        ctx.ids.add(logical_id, name, Arn=ctx.arn(service, name), Name=name)


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_CREATORS: dict[str, Callable[[_Context, str, Mapping[str, Any]], None]] = {
    TABLE: _create_table,
    QUEUE: _create_queue,
    SECRET: _create_secret,
    BUCKET: _create_bucket,
}


def put_secret_json(endpoint_url: str, region: str, secret_id: str, value: Mapping[str, Any]) -> None:
    """Store `value` as JSON in an existing secret."""
    client = aws_client("secretsmanager", endpoint_url, region)
    client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(dict(value)))


def upsert_secret_json(endpoint_url: str, region: str, name: str, value: Mapping[str, Any]) -> str:
    """Create or overwrite the secret `name` with `value` as JSON; return its ARN."""
    client = aws_client("secretsmanager", endpoint_url, region)
    text = json.dumps(dict(value))
    try:
        return str(client.create_secret(Name=name, SecretString=text)["ARN"])
    except client.exceptions.ResourceExistsException:
        return str(client.put_secret_value(SecretId=name, SecretString=text)["ARN"])
