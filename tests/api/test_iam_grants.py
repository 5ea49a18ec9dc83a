"""Least privilege proven by behaviour: every AWS call each function makes is granted to it, and nothing else is.

Each function runs its handler through everything it does (the API through every route and the OAuth round trip,
the planner through a tick per endpoint, the collector through the planner's messages, a console run and a token
failure) while every botocore call in the process is recorded. The calls, mapped to IAM actions and template
resources, must equal the function's grants in template.yaml: a missing grant fails in AWS with AccessDenied, an
extra one is privilege nobody uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from local.emulator import BRAND_USER_ID, CLIENT_USER_ID, EmulatorServer, PostState
from local.stack.template import parse_template_text
from tests.api.conftest import ApiCaller
from tests.api.events import sqs_event
from tests.api.test_oauth import approve, callback_query
from tests.aws_fixtures import AwsResources
from tests.conftest import FakeLambdaContext, cold_starts
from tests.stack_dal import app_state_dal
from tests.template.test_template import (
    ACCOUNT_SECRETS,
    PENDING_SECRETS,
    TEMPLATE,
    inline_grants,
    policy_templates,
)
from xengage.timeutil import to_iso, utc_now

pytestmark = pytest.mark.integration

Grant = tuple[str, str]  # (IAM action, resource as template.yaml writes it)
# What a SAM policy template grants, as (action, resource) pairs its argument names.
POLICY_TEMPLATE_ACTIONS = {"SQSSendMessagePolicy": ("sqs:SendMessage",)}
# API calls authorized by another action's name (IAM has no separate action for them).
AUTHORIZED_AS = {"sqs:SendMessageBatch": "sqs:SendMessage"}
# TransactWriteItems has no action of its own: IAM authorizes each of its items as the single-item action.
TRANSACTION_ACTIONS = {
    "Update": "dynamodb:UpdateItem",
    "Put": "dynamodb:PutItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


class CallRecorder:
    """Records (service, operation, params) of every botocore call made while a function is running."""

    def __init__(self) -> None:
        self.function: str | None = None
        self.calls: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        # Each function is its own process in AWS: nothing another one cached (secret values) is shared.
        cold_starts()
        self.function = function
        try:
            yield
        finally:
            self.function = None


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> CallRecorder:
    recorder = CallRecorder()
    original = BaseClient._make_api_call

    def recording(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        if recorder.function is not None:
            service = client.meta.service_model.service_name
            recorder.calls.setdefault(recorder.function, []).append((service, operation_name, api_params))
        return original(client, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return recorder


def required_grants(calls: list[tuple[str, str, dict[str, Any]]], aws: AwsResources) -> set[Grant]:
    """The (action, template resource) each recorded call needs."""
    tables = {
        aws.registry_table: "RegistryTable",
        aws.metrics_table: "MetricsTable",
        aws.rollups_table: "RollupsTable",
        aws.jobs_table: "JobsTable",
    }
    app_secret_name = aws.app_secret_arn.split(":secret:", 1)[1].rsplit("-", 1)[0]
    needed: set[Grant] = set()
    for service, operation, params in calls:
        action = AUTHORIZED_AS.get(f"{service}:{operation}", f"{service}:{operation}")
        if service == "dynamodb":
            needed |= dynamodb_grants(action, params, tables)
        elif service == "secretsmanager":
            secret = params.get("SecretId") or params["Name"]
            if secret in (aws.app_secret_arn, app_secret_name):
                needed.add((action, "AppSecret"))
            elif secret.startswith(f"{aws.secret_prefix}accounts/"):
                needed.add((action, ACCOUNT_SECRETS))
            elif secret.startswith(f"{aws.secret_prefix}oauth-pending/"):
                needed.add((action, PENDING_SECRETS))
            else:
                raise AssertionError(f"a secret outside the stack's names: {secret}")
        elif service == "sqs":
            queues = {aws.collect_queue_url: "CollectQueue.QueueName", aws.export_queue_url: "ExportQueue.QueueName"}
            needed.add((action, queues[params["QueueUrl"]]))
        elif service == "s3":
            needed.add(_s3_grant(operation, params, aws))
        else:
            raise AssertionError(f"unexpected service {service} ({operation})")
    return needed


def _s3_grant(operation: str, params: dict[str, Any], aws: AwsResources) -> Grant:
    """The analytics export's bucket: objects under metrics/ (DeleteObjects is authorized as DeleteObject), and
    ListObjectsV2 as ListBucket on the bucket, for that prefix only (the grant's condition)."""
    assert params["Bucket"] == aws.export_bucket, params["Bucket"]
    if operation == "ListObjectsV2":
        assert params["Prefix"].startswith("metrics/"), params["Prefix"]
        return ("s3:ListBucket", "ExportBucket.Arn")
    keys = [entry["Key"] for entry in params["Delete"]["Objects"]] if operation == "DeleteObjects" else [params["Key"]]
    assert all(key.startswith("metrics/") for key in keys), keys
    return ({"DeleteObjects": "s3:DeleteObject"}.get(operation, f"s3:{operation}"), "${ExportBucket.Arn}/metrics/*")


def dynamodb_grants(action: str, params: dict[str, Any], tables: dict[str, str]) -> set[Grant]:
    if action == "dynamodb:TransactWriteItems":  # authorized as each of its actions on its table
        return {
            (TRANSACTION_ACTIONS[kind], f"{tables[write['TableName']]}.Arn")
            for item in params["TransactItems"]
            for kind, write in item.items()
        }
    names = list(params["RequestItems"]) if "RequestItems" in params else [params["TableName"]]
    index = params.get("IndexName")
    return {(action, f"${{{tables[name]}.Arn}}/index/{index}" if index else f"{tables[name]}.Arn") for name in names}


def template_grants(logical_id: str) -> set[Grant]:
    function = parse_template_text(TEMPLATE.read_text())["Resources"][logical_id]
    granted = inline_grants(function)
    for name, resource in policy_templates(function):
        granted |= {(action, resource) for action in POLICY_TEMPLATE_ACTIONS[name]}
    return granted


def use_every_api_route(api: ApiCaller, emulator: EmulatorServer) -> None:
    """Every route and outcome that touches AWS: accounts, OAuth, tracking, live queries, reads, purges."""
    brand = emulator.world.users[BRAND_USER_ID]
    owned = emulator.world.tweet_ids(emulator.world.posts_of(BRAND_USER_ID, state=PostState.PUBLIC))[:3]
    replies = [
        api.put_account(BRAND_USER_ID, brand.screen_name, token=brand.access_token, secret=brand.access_token_secret),
        api("GET", f"/accounts/{BRAND_USER_ID}"),
        api("GET", "/accounts"),
        api("POST", "/tweets", body={"tweet_ids": owned, "account_id": BRAND_USER_ID}),
        api("GET", "/tweets", query={"account_id": BRAND_USER_ID}),
        api("POST", "/engagement/totals", body={"tweet_ids": owned, "account_id": BRAND_USER_ID}),
        api("POST", "/engagement/28hr", body={"tweet_ids": owned, "account_id": BRAND_USER_ID}),
        api("GET", f"/tweets/{owned[0]}"),
        api("GET", f"/tweets/{owned[0]}/metrics", query={"endpoint": "28hr"}),
        api("GET", f"/tweets/{owned[0]}/metrics", query={"endpoint": "28hr", "format": "csv"}),
        api("GET", f"/tweets/{owned[0]}/metrics", query={"endpoint": "28hr", "granularity": "day"}),
        api("GET", f"/accounts/{BRAND_USER_ID}/metrics", query={"endpoint": "28hr", "granularity": "day"}),
        api("GET", f"/accounts/{BRAND_USER_ID}/top", query={"metric": "favorites"}),
        api("GET", f"/accounts/{BRAND_USER_ID}/top", query={"metric": "impressions", "from": to_iso(utc_now())}),
        api("GET", "/statuses/ok"),
        api("GET", "/app/status"),
        api("GET", "/usage"),
        api("GET", "/collection/health"),
        api("GET", "/dashboard"),
        api("GET", "/dashboard/assets/dashboard.js"),
        api("DELETE", f"/tweets/{owned[1]}", query={"purge": "true"}),
    ]
    # A job (its message is collected with the planner's: the collector settles its Posts in JobsTable)
    job_query = {"tweet_ids": owned[:1], "account_id": BRAND_USER_ID, "start": to_iso(utc_now() - timedelta(days=2))}
    job = api("POST", "/engagement/historical", body=job_query, headers={"Prefer": "respond-async"})
    replies += [job, api("GET", f"/jobs/{job.json()['job_id']}")]
    started = api("GET", "/oauth/start")
    location = approve(started.json()["authorize_url"], CLIENT_USER_ID)
    replies += [started, api("GET", "/oauth/callback", query=callback_query(location))]
    replies.append(api("DELETE", f"/accounts/{CLIENT_USER_ID}"))
    failed = [(reply.status, reply.text[:200]) for reply in replies if reply.status >= 300]
    assert not failed, failed


def test_each_function_is_granted_exactly_the_calls_it_makes(
    live_api: ApiCaller, emulator: EmulatorServer, aws: AwsResources, recorder: CallRecorder
) -> None:
    from functions.collector.collector import lambda_handler as collector_handler
    from functions.planner.planner import lambda_handler as planner_handler

    # Given an app secret refused before and replaced since (every function checks its version, the planner lifts
    # the pause), and the API used through every route (which also tracks Posts and registers an account)
    app_state_dal().flag_credentials("refused before", secret_version="an-older-version", now=to_iso(utc_now()))
    with recorder.running("ApiFunction"):
        use_every_api_route(live_api, emulator)

    # When the planner ticks on each endpoint and the collector consumes what it queued, plus a console run
    # and a batch whose account tokens are gone (the needs_reauth path)
    with recorder.running("PlannerFunction"):
        for endpoint in ("totals", "28hr", "historical"):
            event = {"endpoint": endpoint, "scheduled_time": to_iso(utc_now() + timedelta(minutes=1))}
            assert planner_handler(event, FakeLambdaContext())["messages"] >= 1
    sqs = boto3.client("sqs")
    received: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=aws.collect_queue_url, MaxNumberOfMessages=10).get("Messages"):
        received += messages
        sqs.delete_message_batch(
            QueueUrl=aws.collect_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    app_state_dal().flag_credentials("refused before", secret_version="an-older-version", now=to_iso(utc_now()))
    records = sqs_event([m["Body"] for m in received], message_ids=[m["MessageId"] for m in received])["Records"]
    with recorder.running("CollectorFunction"):
        batch = collector_handler({"Records": records}, FakeLambdaContext())
        planned = [json.loads(record["body"]) for record in records]
        owned = next(body["tweet_ids"][:2] for body in planned if "job_id" not in body and len(body["tweet_ids"]) > 1)
        console = collector_handler({"endpoint": "totals", "tweet_ids": owned}, FakeLambdaContext())
        # A record reached with too little time left is sent on as it is (the continuation path's SendMessage)
        late = collector_handler({"Records": records[:1]}, FakeLambdaContext(remaining_millis=4_000))
    boto3.client("secretsmanager").delete_secret(
        SecretId=f"{aws.secret_prefix}accounts/{BRAND_USER_ID}", ForceDeleteWithoutRecovery=True
    )
    with recorder.running("CollectorFunction"):
        reauth = collector_handler(
            {"endpoint": "totals", "tweet_ids": owned, "account_id": BRAND_USER_ID}, FakeLambdaContext()
        )

    # Then what each function called is exactly what the template grants it
    assert batch["batchItemFailures"] == [] and late["batchItemFailures"] == []
    assert console["counts"] == {"ok": 2} and reauth["counts"] == {"auth_failed": 2}
    assert live_api("GET", f"/accounts/{BRAND_USER_ID}").json()["status"] == "needs_reauth"
    for function in ("ApiFunction", "PlannerFunction", "CollectorFunction"):
        needed = required_grants(recorder.calls[function], aws)
        granted = template_grants(function)
        assert needed - granted == set(), f"{function} calls what it is not granted (AccessDenied in AWS)"
        assert granted - needed == set(), f"{function} is granted what it never calls"
