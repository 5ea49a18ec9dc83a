"""template.yaml: lint, SAM transform, build, and the promises the template makes (policies, events, samples).

The structural tests parse the template with the local stack's CloudFormation-aware loader and are fast. The
`template` tests run cfn-lint, `sam validate --lint`, the SAM translator and `sam build`, and import the built
artifacts the way Lambda would (handler dir, then /opt/python = the built layer, then the runtime's boto3).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from local.stack.template import parse_template_text
from xengage.pipeline.messages import CollectMessage

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS = REPO / "events"
SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"
SAM_CLI = REPO / ".venv-sam" / "bin" / "sam"
# Persistent (gitignored) SAM build caches: a rebuild with unchanged sources copies artifacts instead of pip.
SAM_CACHE = REPO / ".aws-sam" / "test-cache"

FUNCTIONS = {
    "PlannerFunction": "planner",
    "CollectorFunction": "collector",
    "ApiFunction": "api",
    "ExportFunction": "exporter",
}
SECRET_ARN_PREFIX = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}/"
ACCOUNT_SECRETS = SECRET_ARN_PREFIX + "accounts/*"
PENDING_SECRETS = SECRET_ARN_PREFIX + "oauth-pending/*"
# What the python3.13 runtime ships and the layer therefore leaves out (see layers/common/requirements.txt).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six")
DESIGN_ENV = (
    "REGISTRY_TABLE",
    "METRICS_TABLE",
    "ROLLUPS_TABLE",
    "APP_SECRET_ARN",
    "SECRET_PREFIX",
    "ENGAGEMENT_API_URL",
    "X_API_URL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
)

INTENDED_EVENTS = {
    "PlannerFunction": {
        "TotalsSchedule": "ScheduleV2",
        "Hourly28hrSchedule": "ScheduleV2",
        "HistoricalSchedule": "ScheduleV2",
    },
    "CollectorFunction": {"CollectBatches": "SQS"},
    "ApiFunction": {"ProxyApi": "Api", "OAuthCallback": "Api"},
    "ExportFunction": {"DailyExport": "ScheduleV2", "ExportContinuations": "SQS"},
}
SCHEDULES = {  # event -> (endpoint in Input, expression parameter, sample event file)
    "TotalsSchedule": ("totals", "TotalsScheduleExpression", "schedule_totals.json"),
    "Hourly28hrSchedule": ("28hr", "Hourly28hrScheduleExpression", "schedule_28hr.json"),
    "HistoricalSchedule": ("historical", "HistoricalScheduleExpression", "schedule_historical.json"),
}


# --- helpers ----------------------------------------------------------------------------------------------------


def resource_name(value: Any) -> str:
    """A readable, comparable form of a policy Resource: Ref X -> X, GetAtt X.Arn -> X.Arn, Sub s -> s."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "Ref":
            return str(inner)
        if key == "Fn::GetAtt":
            return ".".join(inner) if isinstance(inner, list) else str(inner)
        if key == "Fn::Sub" and isinstance(inner, str):
            return inner
    raise AssertionError(f"unexpected policy resource shape: {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def inline_grants(function: dict[str, Any]) -> set[tuple[str, str]]:
    grants: set[tuple[str, str]] = set()
    for policy in function["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                for resource in as_list(statement["Resource"]):
                    grants.add((action, resource_name(resource)))
    return grants


def policy_templates(function: dict[str, Any]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for policy in function["Properties"].get("Policies", []):
        if isinstance(policy, str):
            found.add((policy, ""))  # a managed policy name or ARN
        elif "Statement" not in policy:
            ((name, args),) = policy.items()
            found |= {(name, resource_name(arg)) for arg in args.values()} if args else {(name, "")}
    return found


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def iam_statements(document: Any) -> Iterator[dict[str, Any]]:
    """Every IAM statement anywhere in a (raw or transformed) template."""
    for node in walk(document):
        if isinstance(node, dict) and "Action" in node and "Effect" in node:
            yield node


def load_event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return parse_template_text(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


# --- structure: fast, no tools ------------------------------------------------------------------------------------


@pytest.mark.parametrize("logical_id", list(FUNCTIONS))
def test_each_function_has_exactly_the_intended_triggers(resources: dict[str, Any], logical_id: str) -> None:
    # Given a function of the template
    events = resources[logical_id]["Properties"].get("Events", {})
    # When its events are listed by name and type
    found = {name: event["Type"] for name, event in events.items()}
    # Then they are the intended triggers and nothing else
    assert found == INTENDED_EVENTS[logical_id]


@pytest.mark.parametrize("logical_id", list(FUNCTIONS))
def test_functions_build_with_makefiles_and_use_the_common_layer(
    template: dict[str, Any], resources: dict[str, Any], logical_id: str
) -> None:
    # Given a function and the template's Globals
    function = resources[logical_id]
    globals_function = template["Globals"]["Function"]
    # When its build method, code location and layer are read
    code_dir = REPO / function["Properties"]["CodeUri"]
    module, _, handler = function["Properties"]["Handler"].partition(".")
    makefile = (code_dir / "Makefile").read_text()
    # Then it builds with its own Makefile target (no local python3.13 needed), its handler file exists there,
    # and it runs on python3.13/arm64 with the CommonLayer
    assert function["Metadata"] == {"BuildMethod": "makefile"}
    assert f"build-{logical_id}:" in makefile
    assert (code_dir / f"{module}.py").is_file()
    assert handler == "lambda_handler"
    assert globals_function["Runtime"] == "python3.13"
    assert globals_function["Architectures"] == ["arm64"]
    assert globals_function["Layers"] == [{"Ref": "CommonLayer"}]


@pytest.mark.parametrize("logical_id", list(FUNCTIONS))
def test_every_function_gets_the_design_environment(
    template: dict[str, Any], resources: dict[str, Any], logical_id: str
) -> None:
    # Given the global and the function's own environment
    env = {
        **template["Globals"]["Function"]["Environment"]["Variables"],
        **resources[logical_id]["Properties"].get("Environment", {}).get("Variables", {}),
    }
    # Then every name docs/DESIGN.md promises is set; the functions that send to the collect queue know it (the
    # planner its plan, the collector continuations, the API jobs), and the API and the collector know the jobs table
    assert set(DESIGN_ENV) <= set(env)
    assert env["SECRET_PREFIX"] == {"Fn::Sub": "${AWS::StackName}/"}
    assert env["APP_SECRET_ARN"] == {"Ref": "AppSecret"}
    queue = {"Ref": "CollectQueue"} if logical_id in ("PlannerFunction", "CollectorFunction", "ApiFunction") else None
    assert env.get("COLLECT_QUEUE_URL") == queue
    assert env.get("JOBS_TABLE") == (
        {"Ref": "JobsTable"} if logical_id in ("CollectorFunction", "ApiFunction") else None
    )
    # And the functions that make Engagement API calls get the monthly @handle cap from its parameter
    cap = env.get("MONTHLY_HANDLE_CAP")
    assert cap == ({"Ref": "MonthlyHandleCap"} if logical_id in ("CollectorFunction", "ApiFunction") else None)
    assert template["Parameters"]["MonthlyHandleCap"] | {"Description": ""} == {
        "Type": "Number",
        "Default": 0,
        "MinValue": 0,
        "Description": "",
    }


def test_no_statement_grants_scan_or_wildcard_dynamodb(template: dict[str, Any]) -> None:
    # Given every IAM statement written in the template, and the policy templates in use
    actions = [action for statement in iam_statements(template) for action in as_list(statement["Action"])]
    used_templates = {name for fn in FUNCTIONS for name, _ in policy_templates(template["Resources"][fn])}
    # Then nothing can Scan: no Scan action, no dynamodb wildcard, no policy template that includes Scan
    assert actions, "expected inline statements"
    assert not [action for action in actions if "scan" in action.lower() or action in ("*", "dynamodb:*")]
    assert not used_templates & {"DynamoDBReadPolicy", "DynamoDBCrudPolicy", "DynamoDBReconfigurePolicy"}


def test_every_secret_grant_is_scoped_to_this_stack(template: dict[str, Any]) -> None:
    # Given every statement that touches Secrets Manager
    statements = [
        statement
        for statement in iam_statements(template)
        if any(action.startswith("secretsmanager:") for action in as_list(statement["Action"]))
    ]
    # Then each resource is the stack's AppSecret or a name under ${AWS::StackName}/ (never a bare wildcard)
    assert statements
    for statement in statements:
        for resource in map(resource_name, as_list(statement["Resource"])):
            assert resource == "AppSecret" or resource.startswith(SECRET_ARN_PREFIX), resource
            assert resource in ("AppSecret", ACCOUNT_SECRETS, PENDING_SECRETS), resource


@pytest.mark.parametrize("event_name", list(SCHEDULES))
def test_schedules_carry_the_tick_identity_and_dead_letter(resources: dict[str, Any], event_name: str) -> None:
    # Given one of the planner's schedules
    endpoint, expression_parameter, _ = SCHEDULES[event_name]
    properties = resources["PlannerFunction"]["Properties"]["Events"][event_name]["Properties"]
    # When its Input is parsed as the JSON Scheduler will deliver
    schedule_input = json.loads(properties["Input"]["Fn::Sub"])
    # Then it names its endpoint and carries the scheduled time (the idempotency key of a tick), the schedule, the
    # attempt and its own expression (the time to the next tick bounds what the contract can serve); it fires on
    # time, can be switched off, and undeliverable ticks go to the schedule DLQ
    assert schedule_input == {
        "endpoint": endpoint,
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "schedule_arn": "<aws.scheduler.schedule-arn>",
        "attempt": "<aws.scheduler.attempt-number>",
        "schedule_expression": f"${{{expression_parameter}}}",
    }
    assert properties["ScheduleExpression"] == {"Ref": expression_parameter}
    assert properties["State"] == {"Ref": "SchedulesState"}
    assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert properties["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}
    assert properties["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert properties["OmitName"] is True  # generated names: two stacks in one account do not collide


def test_planner_function_errors_go_to_the_schedule_dead_letter_queue(resources: dict[str, Any]) -> None:
    # Given the planner's asynchronous invoke configuration
    config = resources["PlannerFunction"]["Properties"]["EventInvokeConfig"]
    # Then a failing tick is retried and then kept in the schedule DLQ instead of vanishing
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]},
    }
    assert 0 <= config["MaximumRetryAttempts"] <= 2


def test_collector_reports_partial_batch_failures_within_its_concurrency(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # Given the collector, its SQS trigger and its concurrency parameters
    collector = resources["CollectorFunction"]["Properties"]
    sqs = collector["Events"]["CollectBatches"]["Properties"]
    parameters = template["Parameters"]
    # Then only failed records are redelivered; the pollers are bounded by a parameter SQS accepts (>= 2) on any
    # account; and the reservation defaults to none (0), which accounts with a concurrency limit of 10 require
    assert sqs["Queue"] == {"Fn::GetAtt": ["CollectQueue", "Arn"]}
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= sqs["BatchSize"] <= 10
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "CollectorMaxConcurrency"}
    assert parameters["CollectorMaxConcurrency"]["MinValue"] == 2
    assert parameters["CollectorReservedConcurrency"]["Default"] == 0
    assert collector["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasCollectorReservation", {"Ref": "CollectorReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }


def test_collect_queue_outlasts_collector_retries_and_dead_letters(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    # Given the queue, the longest timeout the collector's parameter allows, and its batching window
    queue = resources["CollectQueue"]["Properties"]
    collector = resources["CollectorFunction"]["Properties"]
    window = collector["Events"]["CollectBatches"]["Properties"]["MaximumBatchingWindowInSeconds"]
    assert collector["Timeout"] == {"Ref": "CollectorTimeoutSeconds"}
    longest = template["Parameters"]["CollectorTimeoutSeconds"]["MaxValue"]
    # Then the visibility timeout is at least 6x the timeout plus the window (AWS guidance for SQS sources), and
    # messages dead-letter after 5 receives
    assert queue["VisibilityTimeout"] >= 6 * longest + window
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["CollectDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }


def test_tables_match_the_design_keys_and_indexes(resources: dict[str, Any]) -> None:
    # Given the three tables
    def keys(schema: list[dict[str, str]]) -> tuple[str, ...]:
        return tuple(key["AttributeName"] for key in schema)

    def indexes(table: dict[str, Any]) -> dict[str, tuple[tuple[str, ...], dict[str, Any]]]:
        return {
            index["IndexName"]: (keys(index["KeySchema"]), index["Projection"])
            for index in table["Properties"].get("GlobalSecondaryIndexes", [])
        }

    import dataclasses

    from xengage.dal.status import PostStatus

    registry, metrics = (resources[name] for name in ("RegistryTable", "MetricsTable"))
    # What a listing by status reads (the refusals' reasons are read from the marker only: GET /tweets/{id})
    status_fields = [field.name for field in dataclasses.fields(PostStatus) if field.name != "refusals"]
    # Then keys and indexes are exactly docs/DESIGN.md's (statuses live on the due markers: no table of their own)
    assert "StatusTable" not in resources
    for table in (registry, metrics):
        assert keys(table["Properties"]["KeySchema"]) == ("pk", "sk")
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert indexes(registry) == {
        "ListIndex": (("list_pk", "list_sk"), {"ProjectionType": "ALL"}),
        "DueIndex": (
            ("due_pk", "due_sk"),
            {
                "ProjectionType": "INCLUDE",
                "NonKeyAttributes": ["tweet_id", "account_id", "endpoint", "last_hour_collected"],
            },
        ),
        "StatusIndex": (
            ("status_pk", "status_sk"),
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": status_fields},
        ),
    }
    assert indexes(metrics) == {}
    # and the history that cannot be fetched again survives stack deletion or replacement
    for table in (registry, metrics):
        assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_app_secret_is_a_placeholder_named_after_the_stack(resources: dict[str, Any]) -> None:
    # Given the app secret
    properties = resources["AppSecret"]["Properties"]
    # Then it is named ${AWS::StackName}/app and holds only placeholders for the three app fields
    assert properties["Name"] == {"Fn::Sub": "${AWS::StackName}/app"}
    placeholder = json.loads(properties["SecretString"])
    assert placeholder == dict.fromkeys(("consumer_key", "consumer_secret", "bearer_token"), "REPLACE_ME")


def test_api_auth_follows_the_api_auth_type_parameter(template: dict[str, Any], resources: dict[str, Any]) -> None:
    # Given the REST API, its usage plan resources and the condition on ApiAuthType
    api = resources["EngagementApi"]["Properties"]
    method = api["DefinitionBody"]["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]
    # Then the proxy method signs with SigV4 unless ApiAuthType=API_KEY, which requires x-api-key instead and brings
    # its key and usage plan (those exist only under the condition)
    assert template["Conditions"]["UseApiKeyAuth"] == {"Fn::Equals": [{"Ref": "ApiAuthType"}, "API_KEY"]}
    assert template["Parameters"]["ApiAuthType"]["Default"] == "IAM"
    assert method["security"] == {"Fn::If": ["UseApiKeyAuth", [{"api_key": []}], [{"sigv4": []}]]}
    assert api["DefinitionBody"]["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert method["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
    assert "${ApiFunction.Arn}" in method["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    for logical_id in ("EngagementApiUsagePlan", "EngagementApiKey", "EngagementApiUsagePlanKey"):
        assert resources[logical_id]["Condition"] == "UseApiKeyAuth"
    proxy = resources["ApiFunction"]["Properties"]["Events"]["ProxyApi"]["Properties"]
    assert (proxy["Path"], proxy["Method"], proxy["RestApiId"]) == ("/{proxy+}", "ANY", {"Ref": "EngagementApi"})
    # And the one open route is X's browser redirect to the OAuth callback (GET only), to the same function
    paths = api["DefinitionBody"]["paths"]
    assert set(paths) == {"/{proxy+}", "/oauth/callback"}
    callback = paths["/oauth/callback"]
    assert set(callback) == {"get"} and callback["get"]["security"] == []
    assert callback["get"]["x-amazon-apigateway-integration"] == method["x-amazon-apigateway-integration"]
    event = resources["ApiFunction"]["Properties"]["Events"]["OAuthCallback"]["Properties"]
    assert (event["Path"], event["Method"]) == ("/oauth/callback", "GET")


def test_layer_pins_equal_the_tested_versions() -> None:
    # Given the layer's requirements and the pinned development environment the tests run in
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line.strip())
            if match:
                found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
        return found

    layer = pins(REPO / "layers" / "common" / "requirements.txt")
    tested = pins(REPO / "requirements" / "dev.txt")
    # Then every bundled package has exactly the tested version, and nothing the runtime ships is bundled
    assert {"aws-lambda-powertools", "pydantic", "requests-oauthlib", "oauthlib", "requests"} <= set(layer)
    assert {name: version for name, version in layer.items() if tested.get(name) != version} == {}
    assert not set(layer) & {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six"}
    # And the export function's own packages (pyarrow, not in the layer: no other function loads it) too
    export = pins(REPO / "functions" / "exporter" / "requirements.txt")
    assert set(export) == {"pyarrow"} and not set(export) & set(layer)
    assert {name: version for name, version in export.items() if tested.get(name) != version} == {}


# --- events/ samples ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_name", list(SCHEDULES))
def test_schedule_samples_are_the_input_with_placeholders_filled(resources: dict[str, Any], event_name: str) -> None:
    # Given a schedule's Input and its sample event
    endpoint, _, sample_file = SCHEDULES[event_name]
    schedule_properties = resources["PlannerFunction"]["Properties"]["Events"][event_name]["Properties"]
    schedule_input = json.loads(schedule_properties["Input"]["Fn::Sub"])
    sample = load_event(sample_file)
    # Then the sample has the same fields, the same endpoint and real values where Scheduler substitutes
    assert set(sample) == set(schedule_input)
    assert sample["endpoint"] == endpoint
    assert not [value for value in sample.values() if "<aws.scheduler" in value]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sample["scheduled_time"])
    assert sample["schedule_arn"].startswith("arn:aws:scheduler:")
    assert sample["schedule_expression"].startswith("rate(")


def test_sqs_sample_records_are_valid_collect_messages() -> None:
    # Given the SQS sample
    records = load_event("sqs_collect_batch.json")["Records"]
    # When each body is validated with the planner -> collector message model
    messages = [CollectMessage.model_validate_json(record["body"]) for record in records]
    # Then there are two valid messages, one app-token /totals batch and one owner-token time series batch
    assert len(messages) == 2
    assert {record["eventSource"] for record in records} == {"aws:sqs"}
    assert [message.endpoint.value for message in messages] == ["totals", "28hr"]
    assert messages[0].account_id is None and messages[1].account_id


@pytest.mark.parametrize(
    ("sample_file", "endpoint", "needs_account", "has_window"),
    [
        ("collector_console_totals.json", "totals", False, False),
        ("collector_console_28hr.json", "28hr", True, False),
        ("collector_console_historical.json", "historical", True, True),
    ],
)
def test_collector_console_samples_are_valid_payloads(
    sample_file: str, endpoint: str, needs_account: bool, has_window: bool
) -> None:
    # Given a console sample
    payload = load_event(sample_file)
    # When it is read as a collect message (the console adds the scheduled time itself)
    message = CollectMessage.model_validate({**payload, "scheduled_time": "2026-11-25T18:15:00Z"})
    # Then it only uses the console fields and is valid for its endpoint
    assert set(payload) <= {"endpoint", "tweet_ids", "account_id", "start", "end"}
    assert message.endpoint.value == endpoint
    assert bool(message.account_id) == needs_account
    assert (message.start is not None and message.end is not None) == has_window


@pytest.mark.parametrize(
    ("sample_file", "method", "path"),
    [
        ("api_get_tweet_metrics.json", "GET", re.compile(r"/tweets/\d+/metrics")),
        ("api_post_tweets.json", "POST", re.compile(r"/tweets")),
    ],
)
def test_api_samples_are_rest_proxy_events_for_the_proxy_route(
    resources: dict[str, Any], sample_file: str, method: str, path: re.Pattern[str]
) -> None:
    # Given an API Gateway sample and the function's proxy route
    event = load_event(sample_file)
    route = resources["ApiFunction"]["Properties"]["Events"]["ProxyApi"]["Properties"]["Path"]
    # Then it is a REST proxy event on that route, as the v1 stage delivers it, without credentials
    assert event["resource"] == route == event["requestContext"]["resourcePath"]
    assert event["httpMethod"] == method == event["requestContext"]["httpMethod"]
    assert path.fullmatch(event["path"])
    assert event["pathParameters"] == {"proxy": event["path"].lstrip("/")}
    assert event["requestContext"]["stage"] == "v1"
    assert event["requestContext"]["path"] == "/v1" + event["path"]
    assert not {"Authorization", "authorization", "x-api-key"} & set(event["headers"])
    if event["body"] is not None:
        assert isinstance(json.loads(event["body"]), dict)


def test_export_samples_are_the_schedule_input_and_a_backfill(resources: dict[str, Any]) -> None:
    from xengage.pipeline.export_job import job_from_event

    # Given the export's schedule Input and its two samples
    schedule = resources["ExportFunction"]["Properties"]["Events"]["DailyExport"]["Properties"]
    daily, backfill = load_event("export_daily.json"), load_event("export_backfill.json")
    # Then the daily sample is the Input with the scheduled time filled in, and both are jobs the function accepts:
    # the two closed days before the tick, and the backfill's inclusive range
    assert set(daily) == set(json.loads(schedule["Input"])) and daily["days"] == json.loads(schedule["Input"])["days"]
    daily_job, backfill_job = job_from_event(daily), job_from_event(backfill)
    assert (daily_job.last_day - daily_job.day).days == daily["days"] - 1
    assert daily_job.last_day.isoformat() < daily["scheduled_time"][:10]
    assert (backfill_job.day.isoformat(), backfill_job.last_day.isoformat()) == (backfill["from"], backfill["to"])


def test_samples_hold_no_secret_material() -> None:
    # Given every sample event
    texts = {path.name: path.read_text() for path in sorted(EVENTS.glob("*.json"))}
    # Then none carries a token, key or signature field (samples are committed and shown in docs)
    assert len(texts) == 11
    forbidden = re.compile(
        r"access_token|token_secret|consumer_secret|consumer_key|bearer_token|oauth_signature|AKIA[0-9A-Z]{16}", re.I
    )
    assert {name: forbidden.findall(text) for name, text in texts.items() if forbidden.search(text)} == {}


# --- tools: cfn-lint, sam validate, SAM translator, sam build ------------------------------------------------------
# Each tool is slow to start (seconds), so the first test that needs one starts all of them at once and every test
# then waits for its own: the suite takes about as long as the slowest tool, not their sum.

TRANSLATE_SCRIPT = """
import json, sys
from samtranslator.translator.transform import transform
document = json.load(sys.stdin)
for resource in document["Resources"].values():
    if resource["Type"] == "AWS::Serverless::Function":
        resource["Properties"]["CodeUri"] = "s3://bucket/function.zip"
    if resource["Type"] == "AWS::Serverless::LayerVersion":
        resource["Properties"]["ContentUri"] = "s3://bucket/layer.zip"
class NoManagedPolicies:
    def load(self):
        return {}
print(json.dumps(transform(document, {}, NoManagedPolicies())))
"""


def tool_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1", **extra}
    # The layer Makefile runs `python3 -m pip`: make that the project venv's interpreter, which surely has pip.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def host_platform() -> str:
    machine = sysconfig.get_platform().rsplit("-", 1)[-1]
    return f"manylinux2014_{machine}"


@dataclass
class ToolRun:
    """A started tool whose combined output goes to a file (large outputs would fill a pipe and stall it)."""

    process: subprocess.Popen[str]
    log: Path

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        return returncode, self.log.read_text()


@dataclass
class Tools:
    runs: dict[str, ToolRun]
    lambda_build: Path  # `sam build` output: what Lambda gets (arm64, cp313 wheels)
    host_layer: Path  # the layer Makefile's output with wheels for this machine, importable here

    def result(self, name: str) -> tuple[int, str]:
        if name not in self.runs:
            pytest.skip(f"{name} needs the SAM CLI venv ({SAM_CLI}; run `make sam-venv`) and make")
        return self.runs[name].finish()


@pytest.fixture(scope="module")
def tools(template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tools]:
    root = tmp_path_factory.mktemp("template-tools")
    have_sam = SAM_CLI.exists() and SAM_PYTHON.exists()
    have_make = shutil.which("make") is not None
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "cfn-lint": ([str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)], {}),
    }
    if have_sam:
        commands["sam-validate"] = (
            [str(SAM_CLI), "validate", "--lint", "--template", str(TEMPLATE), "--region", "us-east-1"],
            {},
        )
        commands["translate"] = ([str(SAM_PYTHON), "-c", TRANSLATE_SCRIPT], {})
    if have_sam and have_make:
        # --cached with a persistent cache: unchanged sources are copied instead of rebuilt with pip.
        commands["sam-build"] = (
            [
                *(str(SAM_CLI), "build", "--template", str(TEMPLATE), "--build-dir", str(root / "lambda")),
                *("--cached", "--cache-dir", str(SAM_CACHE), "--parallel"),
            ],
            {},
        )
    if have_make:
        commands["host-layer"] = (
            [
                *("make", "--no-print-directory", "-C", str(REPO / "layers" / "common"), "build-CommonLayer"),
                f"ARTIFACTS_DIR={root / 'host-layer'}",
                f"LAYER_PLATFORM={host_platform()}",
                "LAYER_PYTHON_VERSION={}.{}".format(*sys.version_info),
            ],
            {},
        )
    runs: dict[str, ToolRun] = {}
    try:
        for name, (argv, extra_env) in commands.items():
            log = root / f"{name}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    argv,
                    cwd=REPO,
                    env=tool_env(**extra_env),
                    stdin=subprocess.PIPE if name == "translate" else subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT if name != "translate" else subprocess.DEVNULL,
                    text=True,
                )
            if name == "translate":
                assert process.stdin is not None
                process.stdin.write(json.dumps(template))
                process.stdin.close()
            runs[name] = ToolRun(process, log)
        yield Tools(runs=runs, lambda_build=root / "lambda", host_layer=root / "host-layer" / "python")
    finally:
        for run in runs.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()


@pytest.mark.template
def test_cfn_lint_passes(tools: Tools) -> None:
    # When cfn-lint (the project venv's) checks the template; it also runs the SAM transform
    returncode, output = tools.result("cfn-lint")
    # Then it reports nothing at all (errors, warnings or informational)
    assert (returncode, output) == (0, "")


@pytest.mark.template
def test_sam_validate_lint_passes(tools: Tools) -> None:
    # When the SAM CLI validates the template offline, with its own lint
    returncode, output = tools.result("sam-validate")
    # Then it is valid
    assert returncode == 0, output
    assert "is a valid SAM Template" in output


@pytest.fixture(scope="module")
def transformed(tools: Tools) -> dict[str, Any]:
    """The CloudFormation the SAM translator (from the SAM CLI venv) makes of the template, offline."""
    returncode, output = tools.result("translate")
    assert returncode == 0, output
    document: dict[str, Any] = json.loads(output)
    return document


@pytest.mark.template
def test_transformed_roles_grant_no_scan_and_only_stack_secrets(transformed: dict[str, Any]) -> None:
    # Given every IAM role SAM generates (function roles with expanded policy templates, schedule roles)
    roles = {name: res for name, res in transformed["Resources"].items() if res["Type"] == "AWS::IAM::Role"}
    statements = [statement for role in roles.values() for statement in iam_statements(role["Properties"])]
    actions = [action for statement in statements for action in as_list(statement["Action"])]
    # Then no action can Scan or wildcard DynamoDB, and Secrets Manager grants never use a bare "*"
    assert {"PlannerFunctionRole", "CollectorFunctionRole", "ApiFunctionRole"} <= set(roles)
    assert "dynamodb:Query" in actions
    assert not [action for action in actions if "scan" in action.lower() or action in ("*", "dynamodb:*")]
    for statement in statements:
        if any(action.startswith("secretsmanager:") for action in as_list(statement["Action"])):
            assert "*" not in as_list(statement["Resource"])


@pytest.mark.template
def test_transform_wires_schedules_queue_and_conditional_api_key(transformed: dict[str, Any]) -> None:
    # Given the CloudFormation SAM produces
    resources = transformed["Resources"]
    schedules = [res for res in resources.values() if res["Type"] == "AWS::Scheduler::Schedule"]
    mapping = [res for res in resources.values() if res["Type"] == "AWS::Lambda::EventSourceMapping"]
    # Then three schedules target the planner with their own names generated by CloudFormation, the collector
    # maps from the queue with partial failures, and the API key resources exist only under the condition
    # (the analytics export has a schedule and a queue of its own)
    planner = [schedule for schedule in schedules if "PlannerFunction" in json.dumps(schedule["Properties"]["Target"])]
    mapping = [m for m in mapping if m["Properties"]["FunctionName"] == {"Ref": "CollectorFunction"}]
    assert len(planner) == 3 and len(schedules) == 4
    for schedule in planner:
        target = schedule["Properties"]["Target"]
        assert target["Arn"] == {"Fn::GetAtt": ["PlannerFunction", "Arn"]}
        assert "<aws.scheduler.scheduled-time>" in json.dumps(target["Input"])
        assert "Name" not in schedule["Properties"]
    assert len(mapping) == 1 and mapping[0]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    conditional = {name for name, res in resources.items() if res.get("Condition") == "UseApiKeyAuth"}
    assert {"EngagementApiUsagePlan", "EngagementApiKey", "EngagementApiUsagePlanKey"} <= conditional
    assert [res["Type"] for res in resources.values()].count("AWS::ApiGateway::Stage") == 1


@pytest.mark.template
def test_sam_build_produces_an_arm64_layer_without_runtime_packages(tools: Tools) -> None:
    # When `sam build` runs the Makefiles (BuildMethod makefile: no local python3.13, no Docker)
    returncode, output = tools.result("sam-build")
    assert returncode == 0, output
    layer = tools.lambda_build / "CommonLayer" / "python"
    # Then the layer holds the library and cp313 aarch64 binaries, and leaves boto3 & co. to the runtime; each
    # function artifact holds its handler
    assert (layer / "xengage" / "__init__.py").is_file()
    # And its bytecode is python3.13's only: compiled where the build found a python3.13, else said to be missing
    bytecode = list(layer.rglob("*.pyc"))
    assert all(".cpython-313." in path.name for path in bytecode), bytecode[:3]
    assert bool(bytecode) != ("the layer ships without bytecode" in output), output[-500:]
    binaries = [path.name for path in layer.rglob("*.so")]
    assert binaries and all("cpython-313-aarch64-linux-gnu" in name for name in binaries), binaries
    assert not [name for name in RUNTIME_PROVIDED if (layer / name).exists()]
    for logical_id, module in FUNCTIONS.items():
        assert (tools.lambda_build / logical_id / f"{module}.py").is_file()
    # And only the export function bundles pyarrow (aarch64, cp313), within Lambda's 250 MB unzipped with the layer
    export = tools.lambda_build / "ExportFunction"
    assert (export / "pyarrow" / "parquet" / "__init__.py").is_file()
    assert [path.name for path in (export / "pyarrow").glob("lib.cpython-313-aarch64-linux-gnu.so")]
    assert not [
        name for name in FUNCTIONS if name != "ExportFunction" and (tools.lambda_build / name / "pyarrow").exists()
    ]
    assert not (layer / "pyarrow").exists()
    unzipped = sum(path.stat().st_size for root in (export, layer.parent) for path in root.rglob("*") if path.is_file())
    assert unzipped < 250 * 1024 * 1024, unzipped
    assert "CodeUri: PlannerFunction" in (tools.lambda_build / "template.yaml").read_text()


IMPORT_SCRIPT = """
import importlib, json, pkgutil, sys
function_dir, layer_dir, runtime_dir, module = sys.argv[1:5]
sys.path[:0] = [function_dir, layer_dir, runtime_dir]  # /var/task, /opt/python, the runtime's boto3
handler = importlib.import_module(module).lambda_handler
import xengage
library = [info.name for info in pkgutil.walk_packages(xengage.__path__, "xengage.")]
for name in library:
    importlib.import_module(name)
bundled = {"pydantic", "requests_oauthlib", "aws_lambda_powertools"}
third_party = sorted({name.split(".")[0] for name in sys.modules} & bundled)
print(json.dumps({
    "handler": callable(handler),
    "xengage": xengage.__file__,
    "modules": len(library),
    "third_party": {name: sys.modules[name].__file__ for name in third_party},
}))
"""


@pytest.fixture(scope="module")
def runtime_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in for the runtime's own site-packages: only boto3 and what boto3 needs, linked from this venv."""
    runtime = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PROVIDED:
        spec = find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    return runtime


@pytest.mark.template
@pytest.mark.parametrize("logical_id", list(FUNCTIONS))
def test_built_artifacts_import_like_lambda(tools: Tools, runtime_packages: Path, logical_id: str) -> None:
    # Given the built function artifact, the layer from the same Makefile with wheels for this machine, and only
    # boto3 & co. besides them
    for name in ("sam-build", "host-layer"):
        returncode, output = tools.result(name)
        assert returncode == 0, output
    function_dir = tools.lambda_build / logical_id
    # And the layer Makefile compiled every module of the library for this interpreter, unchecked (flags 0b01: hash
    # based, source not checked), so the read-only /opt/python never compiles at a cold start
    for source in (tools.host_layer / "xengage").rglob("*.py"):
        header = Path(importlib.util.cache_from_source(str(source))).read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(header[4:8], "little") == 1, source
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": FUNCTIONS[logical_id],
    }
    argv = [str(function_dir), str(tools.host_layer), str(runtime_packages), FUNCTIONS[logical_id]]
    # When a fresh interpreter without site-packages imports the handler and every xengage module
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", IMPORT_SCRIPT, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=function_dir,
        check=False,
    )
    # Then everything imports from the artifacts alone: the library and its dependencies come from the layer
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["handler"] is True
    assert report["xengage"].startswith(str(tools.host_layer))
    assert report["modules"] >= 10
    assert report["third_party"], "the handler should pull in Powertools at least"
    assert all(path.startswith(str(tools.host_layer)) for path in report["third_party"].values()), report


def test_samconfig_overrides_name_template_parameters_and_reserve_nothing(template: dict[str, Any]) -> None:
    # Given every parameter_overrides of samconfig.toml
    import tomllib

    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    overrides = [
        dict(pair.split("=", 1) for pair in section["parameters"]["parameter_overrides"].split())
        for section in (env.get("deploy") for env in config.values() if isinstance(env, dict))
        if section and "parameter_overrides" in section.get("parameters", {})
    ]
    # Then each names a template parameter, and none reserves collector concurrency (accounts limited to 10 refuse it)
    assert overrides
    for values in overrides:
        assert set(values) <= set(template["Parameters"]), values
        assert values.get("CollectorReservedConcurrency", "0") == "0"
