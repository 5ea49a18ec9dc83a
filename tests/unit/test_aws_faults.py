"""The local stack's botocore fault layer against in-process botocore clients and a loopback stand-in for AWS."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.config import Config
from botocore.exceptions import ClientError

from local.stack.aws_faults import (
    ENV_VAR,
    FaultConfig,
    FaultInjector,
    fault_log_path,
    install_from_environment,
    read_fault_log,
    write_fault_config,
)

# Nothing listens on the discard port: a call that got past the faults would fail to connect.
NOWHERE = "http://127.0.0.1:9"
# What the stand-in answers, by X-Amz-Target (every service here speaks JSON).
SERVER_ANSWERS = {
    "DynamoDB_20120810.PutItem": {},
    "DynamoDB_20120810.BatchWriteItem": {"UnprocessedItems": {}},
    "secretsmanager.GetSecretValue": {"Name": "app", "SecretString": "{}"},
    "AmazonSQS.SendMessageBatch": {
        "Successful": [{"Id": "1", "MessageId": "m", "MD5OfMessageBody": "x"}],
        "Failed": [],
    },
}
BATCH = {
    "items": [
        {"PutRequest": {"Item": {"pk": {"S": "a"}, "sk": {"S": "1"}}}},
        {"DeleteRequest": {"Key": {"pk": {"S": "b"}, "sk": {"S": "2"}}}},
    ]
}


class FakeAws(ThreadingHTTPServer):
    """Answers every JSON-protocol call with success and records its target: the requests that reached "AWS"."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeAwsHandler)
        self.received: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeAwsHandler(BaseHTTPRequestHandler):
    server: FakeAws

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        target = self.headers["X-Amz-Target"]
        self.server.received.append(target)
        body = json.dumps(SERVER_ANSWERS[target]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def aws_server() -> Iterator[FakeAws]:
    server = FakeAws()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def faults_file(tmp_path: Path) -> Path:
    return tmp_path / "faults.json"


def _client(faults_file: Path, server: FakeAws, service: str, *, retries: Any = None) -> Any:
    session = botocore.session.Session()
    FaultInjector(faults_file).register(session)
    return session.create_client(
        service,
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries=retries) if retries else None,
    )


CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "dynamodb": ("put_item", {"TableName": "items", "Item": {"pk": {"S": "a"}, "sk": {"S": "1"}}}),
    "secretsmanager": ("get_secret_value", {"SecretId": "app"}),
    "sqs": (
        "send_message_batch",
        {"QueueUrl": "http://127.0.0.1:9/123456789012/work", "Entries": [{"Id": "1", "MessageBody": "x"}]},
    ),
}


@pytest.mark.parametrize("mode", ["standard", "legacy"])
@pytest.mark.parametrize(
    ("service", "operation", "code", "status"),
    [
        ("dynamodb", "dynamodb.PutItem", "ProvisionedThroughputExceededException", 400),
        ("secretsmanager", "secretsmanager.GetSecretValue", "ThrottlingException", 400),
        ("sqs", "sqs.SendMessageBatch", "RequestThrottled", 403),
    ],
)
def test_a_throttled_call_raises_the_services_throttling_error_after_botocore_retried_it(
    faults_file: Path, aws_server: FakeAws, service: str, operation: str, code: str, status: int, mode: str
):
    # Given every call of the operation throttled, and a client allowed two attempts in either retry mode
    write_fault_config(faults_file, {operation: {"throttle": 1.0}})
    client = _client(faults_file, aws_server, service, retries={"mode": mode, "total_max_attempts": 2})
    method, params = CALLS[service]
    # When the client calls it
    with pytest.raises(ClientError) as raised:
        getattr(client, method)(**params)
    # Then botocore parsed the service's own throttling error, retried it once, and nothing reached the server
    response = raised.value.response
    assert response["Error"]["Code"] == code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert aws_server.received == []
    assert read_fault_log(fault_log_path(faults_file)) == {(operation, "throttle"): 2}


def test_unprocessed_batch_write_returns_every_item_and_writes_nothing(faults_file: Path, aws_server: FakeAws):
    # Given every BatchWriteItem answered as unprocessed
    write_fault_config(faults_file, {"dynamodb.BatchWriteItem": {"unprocessed": 1.0}})
    client = _client(faults_file, aws_server, "dynamodb")
    # When a batch of a put and a delete is written
    response = client.batch_write_item(RequestItems=BATCH)
    # Then the call succeeds with both requests back as unprocessed, and nothing was sent
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["UnprocessedItems"] == BATCH
    assert aws_server.received == []
    assert read_fault_log(fault_log_path(faults_file)) == {("dynamodb.BatchWriteItem", "unprocessed"): 1}


def test_a_share_below_one_is_absorbed_by_botocores_own_retries(faults_file: Path, aws_server: FakeAws):
    # Given half of the PutItem attempts throttled (seeded: the first attempt is throttled) and default retries
    write_fault_config(faults_file, {"dynamodb.PutItem": {"throttle": 0.5, "seed": 11}})
    client = _client(faults_file, aws_server, "dynamodb")
    method, params = CALLS["dynamodb"]
    # When five items are put
    responses = [getattr(client, method)(**params) for _ in range(5)]
    # Then every put succeeds, each after as many retries as faults were injected into it
    faults = read_fault_log(fault_log_path(faults_file))[("dynamodb.PutItem", "throttle")]
    assert faults > 0
    assert sum(response["ResponseMetadata"]["RetryAttempts"] for response in responses) == faults
    assert aws_server.received == ["DynamoDB_20120810.PutItem"] * 5


def test_an_operation_rule_wins_over_its_services_wildcard(faults_file: Path):
    # Given DynamoDB throttled as a whole except GetItem
    write_fault_config(faults_file, {"dynamodb.*": {"throttle": 1.0}, "dynamodb.GetItem": {"throttle": 0.0}})
    injector = FaultInjector(faults_file)
    # When attempts of several operations are decided
    # Then the wildcard covers DynamoDB's other operations, GetItem keeps its rule and other services are untouched
    assert injector.decide("dynamodb.PutItem") == "throttle"
    assert injector.decide("dynamodb.GetItem") is None
    assert injector.decide("sqs.SendMessageBatch") is None


def test_unprocessed_under_the_wildcard_only_touches_batch_writes(faults_file: Path):
    # Given DynamoDB's wildcard rule asking for unprocessed batches only
    write_fault_config(faults_file, {"dynamodb.*": {"unprocessed": 1.0}})
    injector = FaultInjector(faults_file)
    # When attempts of a batch write and of a single put are decided
    # Then only the batch write gets a fault
    assert injector.decide("dynamodb.BatchWriteItem") == "unprocessed"
    assert injector.decide("dynamodb.PutItem") is None


def test_rules_follow_the_file_as_it_is_rewritten(faults_file: Path):
    injector = FaultInjector(faults_file)
    # Given no file yet: no faults
    assert injector.decide("dynamodb.PutItem") is None
    # When the file is rewritten back to back (same size, within one tick of the file system's clock)
    # Then each decision follows the latest rules, and None leaves none
    for throttle, expected in [(1.0, "throttle"), (0.0, None), (1.0, "throttle")]:
        write_fault_config(faults_file, {"dynamodb.PutItem": {"throttle": throttle}})
        assert injector.decide("dynamodb.PutItem") == expected
    write_fault_config(faults_file, None)
    assert injector.decide("dynamodb.PutItem") is None
    # And an empty file means no faults either
    faults_file.write_text("")
    assert injector.decide("dynamodb.PutItem") is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"dynamodb.PutItem": {"throttle": 1.5}}, "dynamodb.PutItem: throttle must be a share"),
        ({"dynamodb.PutItem": {"throttle": "half"}}, "dynamodb.PutItem: throttle must be a share"),
        ({"dynamodb.PutItem": {"unprocessed": 0.5}}, "dynamodb.PutItem: unprocessed applies to"),
        ({"dynamodb.BatchWriteItem": {"throttle": 0.6, "unprocessed": 0.6}}, "dynamodb.BatchWriteItem: throttle +"),
        ({"dynamodb.PutItem": {"throtle": 0.5}}, "dynamodb.PutItem: unknown rule fields"),
        ({"dynamodb.PutItem": {"seed": "x"}}, "dynamodb.PutItem: seed must be an integer"),
        ({"PutItem": {"throttle": 0.5}}, "'PutItem': an operation key"),
    ],
)
def test_invalid_rules_are_refused_naming_their_key(faults_file: Path, config: dict[str, Any], message: str):
    # When a bad rule is written
    # Then it is refused before any worker reads it, naming the rule
    with pytest.raises(ValueError, match=message):
        write_fault_config(faults_file, config)
    assert not faults_file.exists()
    assert FaultConfig.load(faults_file) == FaultConfig()


@pytest.fixture
def installed(faults_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`install_from_environment` in this process, undone afterwards; every client aims at NOWHERE, one attempt."""
    monkeypatch.setattr(botocore.session.Session, "__init__", botocore.session.Session.__init__)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setattr(parameters_base, "DEFAULT_PROVIDERS", {})
    monkeypatch.setenv(ENV_VAR, str(faults_file))
    monkeypatch.setenv("AWS_ENDPOINT_URL", NOWHERE)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert install_from_environment() is not None
    yield faults_file


def test_install_from_environment_reaches_boto3s_default_session_and_powertools(installed: Path):
    # Given DynamoDB and Secrets Manager throttled, and the layer installed from the environment
    write_fault_config(installed, {"dynamodb.*": {"throttle": 1.0}, "secretsmanager.*": {"throttle": 1.0}})
    # When boto3's default session and Powertools' own secrets client (what the DAL uses) call them
    with pytest.raises(ClientError) as raised:
        boto3.client("dynamodb", region_name="us-east-1").put_item(TableName="items", Item={"pk": {"S": "a"}})
    with pytest.raises(GetParameterError, match="ThrottlingException"):
        parameters.get_secret("app", force_fetch=True)
    # Then both were answered by the fault layer
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert read_fault_log(fault_log_path(installed)) == {
        ("dynamodb.PutItem", "throttle"): 1,
        ("secretsmanager.GetSecretValue", "throttle"): 1,
    }


def test_without_the_environment_variable_nothing_is_installed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    original = botocore.session.Session.__init__
    assert install_from_environment() is None
    assert botocore.session.Session.__init__ is original
