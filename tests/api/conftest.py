"""Fixtures of the HTTP API suite: the Lambda handler behind a small caller, moto, and the emulator on loopback."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from local.emulator import DEMO_APP, EmulatorServer, World, default_world
from tests.api.events import rest_event
from tests.aws_fixtures import FAKE_APP_SECRET, AwsResources, create_resources
from tests.conftest import FAKE_AWS_ENV, FakeLambdaContext
from xengage.api_client.credentials import AppCredentials


@dataclass
class ApiReply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error_code(self) -> str:
        return str(self.json()["error"]["code"])


class ApiCaller:
    """Sends REST proxy events to functions/api/api.py's lambda_handler, as API Gateway would."""

    def __init__(self, resources: AwsResources, x_world: World | None = None) -> None:
        from functions.api.api import lambda_handler

        self.resources = resources
        self.x_world = x_world  # the emulator's World behind X_API_URL: where put_account makes tokens known
        self._handler = lambda_handler
        self.remaining_millis = 29_000  # what Lambda says is left when the handler starts (Timeout 29 s)

    def __call__(self, method: str, path: str, **kwargs: Any) -> ApiReply:
        context = FakeLambdaContext(remaining_millis=self.remaining_millis)
        answer = self._handler(rest_event(method, path, **kwargs), context)
        headers = {
            **(answer.get("headers") or {}),
            **{k: v[-1] for k, v in (answer.get("multiValueHeaders") or {}).items()},
        }
        return ApiReply(status=answer["statusCode"], headers=headers, text=answer.get("body") or "")

    def put_account(
        self, user_id: str, screen_name: str = "someone", token: str = "tok", secret: str = "sec"
    ) -> ApiReply:
        """PUT the tokens, first made known to X (the emulator) as the tokens of `user_id`, whose @handle it is."""
        if self.x_world is not None:
            known = self.x_world.users.get(user_id)
            display_name = known.display_name if known else None
            self.x_world.add_user(user_id, screen_name, token, secret, display_name=display_name)
        body = {"screen_name": screen_name, "access_token": token, "access_token_secret": secret}
        return self("PUT", f"/accounts/{user_id}", body=body)


@pytest.fixture(scope="module")
def module_aws() -> Iterator[AwsResources]:
    """One moto backend and one set of stack resources per module: creating tables per test costs seconds."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS_ENV.items():
            patch.setenv(name, value)
        # AWS_ENDPOINT_URL (set by local-stack runs) would send boto3 past the in-process mock.
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            yield create_resources()


def _scan_all(table: Any) -> list[dict[str, Any]]:
    """Every item's key, page after page (a bulk-tracking test leaves more than one page)."""
    kwargs: dict[str, Any] = {"ProjectionExpression": "pk, sk"}
    items: list[dict[str, Any]] = []
    while True:
        page = table.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _empty_stack(resources: AwsResources) -> None:
    """Delete every item and every secret but the app's, and restore the app secret: each test starts clean."""
    dynamodb = boto3.resource("dynamodb")
    for name in (resources.registry_table, resources.metrics_table, resources.jobs_table, resources.rollups_table):
        table = dynamodb.Table(name)
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in _scan_all(table)]
        with table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=key)
    sqs = boto3.client("sqs")  # PurgeQueue: once a minute only
    while messages := sqs.receive_message(QueueUrl=resources.collect_queue_url, MaxNumberOfMessages=10).get("Messages"):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=resources.collect_queue_url, Entries=entries)
    secrets = boto3.client("secretsmanager")
    for secret in secrets.list_secrets()["SecretList"]:
        if secret["ARN"] != resources.app_secret_arn:
            secrets.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
    secrets.put_secret_value(SecretId=resources.app_secret_arn, SecretString=json.dumps(FAKE_APP_SECRET))


@pytest.fixture
def aws(module_aws: AwsResources, monkeypatch: pytest.MonkeyPatch) -> AwsResources:
    """Overrides the suite-wide fixture: the module's moto stack, emptied, with the functions' environment."""
    _empty_stack(module_aws)
    for name, value in module_aws.environment().items():
        monkeypatch.setenv(name, value)
    return module_aws


@pytest.fixture(scope="module")
def accounts_x() -> Iterator[EmulatorServer]:
    """X for the `api` fixture: knows the tests' fake app keys, and the tokens put_account registers."""
    with EmulatorServer(world=World(AppCredentials(**FAKE_APP_SECRET)), port=0) as server:
        yield server


@pytest.fixture
def api(aws: AwsResources, accounts_x: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiCaller]:
    """The API with the fake app keys; PUT /accounts checks tokens at `accounts_x`."""
    monkeypatch.setenv("X_API_URL", accounts_x.url)
    accounts_x.reset_faults()
    caller = ApiCaller(aws, accounts_x.world)
    yield caller


@pytest.fixture
def api_log() -> Iterator[io.StringIO]:
    """What the API logs during the test (Powertools' handler holds the stdout of import time, past capsys)."""
    from xengage.observability import logger

    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    # At INFO whatever ran before in this worker (a benchmark smoke run quiets the logger to WARNING)
    level = logger.log_level
    logger.setLevel("INFO")
    yield stream
    logger.setLevel(level)
    logger.registered_handler.setStream(previous)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(world=default_world(), port=0) as server:
        yield server


@pytest.fixture
def live_api(aws: AwsResources, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiCaller]:
    """The API wired to the emulator for data calls and 3-legged OAuth, with the emulator's demo app keys."""
    monkeypatch.setenv("ENGAGEMENT_API_URL", emulator.url)
    monkeypatch.setenv("X_API_URL", emulator.url)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.app_secret_arn,
        SecretString=json.dumps(
            {
                "consumer_key": DEMO_APP.consumer_key,
                "consumer_secret": DEMO_APP.consumer_secret,
                "bearer_token": DEMO_APP.bearer_token,
            }
        ),
    )
    caller = ApiCaller(aws, emulator.world)
    yield caller
    emulator.reset_faults()
    emulator.restore_credentials()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Read-only routes publish no custom metric; Powertools warns about that on every call.
    for item in items:
        if "tests/api/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning"))
