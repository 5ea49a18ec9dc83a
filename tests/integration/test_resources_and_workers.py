"""Resources created from the template, and functions running in isolated warm workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from local.stack import dynamodb
from local.stack.dynamodb import dynalite_missing
from local.stack.resources import TABLE, aws_client
from local.stack.stack import LocalStack, StackSettings

pytestmark = pytest.mark.integration


def _key_set(schema):
    return {(key["AttributeName"], key["KeyType"]) for key in schema}


def test_tables_match_the_template_key_schemas_and_indexes(fixture_stack: LocalStack):
    dynamodb = fixture_stack.client("dynamodb")
    for logical_id in fixture_stack.template.of_type(TABLE):
        # Given a table declared in the template
        declared = fixture_stack.template.properties(logical_id)
        # When the stack's DynamoDB describes the table it created
        table = dynamodb.describe_table(TableName=fixture_stack.ids.ref(logical_id))["Table"]
        # Then its keys and every GSI (keys and projection) are the template's
        assert _key_set(table["KeySchema"]) == _key_set(declared["KeySchema"])
        created = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
        assert set(created) == {index["IndexName"] for index in declared.get("GlobalSecondaryIndexes", [])}
        for index in declared.get("GlobalSecondaryIndexes", []):
            assert _key_set(created[index["IndexName"]]["KeySchema"]) == _key_set(index["KeySchema"])
            assert created[index["IndexName"]]["Projection"]["ProjectionType"] == index["Projection"]["ProjectionType"]


def test_tables_live_in_dynalite_and_every_function_is_pointed_there(fixture_stack: LocalStack):
    missing = dynalite_missing()
    if missing:
        pytest.skip(f"dynalite cannot run here: {missing}")
    # Given a stack started with the default DynamoDB choice, where dynalite can run
    assert fixture_stack.dynalite is not None
    tables = {fixture_stack.ids.ref(logical_id) for logical_id in fixture_stack.template.of_type(TABLE)}
    # When each server is asked for its tables
    in_dynalite = set(fixture_stack.client("dynamodb").list_tables()["TableNames"])
    in_moto = set(
        aws_client("dynamodb", fixture_stack.endpoint_url, fixture_stack.template.region).list_tables()["TableNames"]
    )
    # Then the tables are in dynalite only, and every function's boto3 sends DynamoDB calls there, the rest to moto
    assert tables and in_dynalite == tables and not in_moto
    for spec in fixture_stack.specs.values():
        assert spec.environment["AWS_ENDPOINT_URL_DYNAMODB"] == fixture_stack.dynamodb_url
        assert spec.environment["AWS_ENDPOINT_URL"] == fixture_stack.endpoint_url != fixture_stack.dynamodb_url


def test_dynamodb_choice_is_validated_and_a_forced_dynalite_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Given stacks asking for moto, for something unknown, and for dynalite where it is not installed
    template = Path(__file__).parent / "fixtures" / "template.yaml"
    monkeypatch.setattr(dynamodb, "DYNALITE_PACKAGE", tmp_path / "absent" / "package.json")
    # When each one picks its DynamoDB
    # Then moto needs nothing, an unknown choice is refused, and dynalite names the make target that installs it
    assert LocalStack(StackSettings(template_path=template, dynamodb="moto"))._start_dynalite() is None
    with pytest.raises(ValueError, match="auto, dynalite or moto"):
        LocalStack(StackSettings(template_path=template, dynamodb="sqlite"))._start_dynalite()
    with pytest.raises(dynamodb.DynaliteUnavailable, match="make node-deps"):
        LocalStack(StackSettings(template_path=template, dynamodb="dynalite"))._start_dynalite()
    assert LocalStack(StackSettings(template_path=template, dynamodb="auto"))._start_dynalite() is None


def test_queue_redrive_policy_points_at_the_dead_letter_queue(fixture_stack: LocalStack):
    # When the work queue's attributes are read back
    attributes = fixture_stack.client("sqs").get_queue_attributes(
        QueueUrl=fixture_stack.ids.ref("WorkQueue"), AttributeNames=["All"]
    )["Attributes"]
    # Then the redrive policy carries the DLQ's ARN and the parameter's maxReceiveCount, and the visibility timeout
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == fixture_stack.ids.get_att("WorkDeadLetterQueue", "Arn")
    assert int(policy["maxReceiveCount"]) == int(fixture_stack.template.parameters["MaxReceiveCount"])
    assert attributes["VisibilityTimeout"] == "1"


def test_secret_is_created_with_its_template_name_and_value(fixture_stack: LocalStack):
    secret = fixture_stack.client("secretsmanager").get_secret_value(SecretId=fixture_stack.ids.ref("AppSecret"))
    assert secret["Name"] == "x-engagement-collector-local/app"
    assert json.loads(secret["SecretString"])["consumer_key"] == "placeholder"


def test_each_worker_sees_only_its_own_environment(fixture_stack: LocalStack, monkeypatch: pytest.MonkeyPatch):
    # Given a variable in the parent process that no function declares
    monkeypatch.setenv("PARENT_ONLY_SENTINEL", "leak")
    # When two functions report their environment
    tick = fixture_stack.invoke("TickFunction", {"job": "env"})
    spec = fixture_stack.specs["WorkFunction"]
    assert tick.ok, tick.payload
    env = tick.payload["env"]
    # Then the tick function sees its own WHO, the shared Globals values and the moto endpoint...
    assert env["WHO"] == "tick"
    assert env["ITEMS_TABLE"] == fixture_stack.ids.ref("ItemsTable")
    assert env["AWS_ENDPOINT_URL"] == fixture_stack.endpoint_url
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    # ...nothing of the parent's, and the work function's spec keeps its own value
    assert "PARENT_ONLY_SENTINEL" not in env
    assert "PYTHONPATH" not in env
    assert spec.environment["WHO"] == "work"
    assert os.environ.get("WHO") is None
    # And sys.path starts like Lambda's: the code directory, then the layer as /opt/python
    assert tick.payload["sys_path"][:2] == [fixture_stack.specs["TickFunction"].code_dir, *spec.layer_dirs]
    assert tick.payload["layer"] == "shared-layer"


def test_handler_error_comes_back_as_a_lambda_error_payload(fixture_stack: LocalStack):
    result = fixture_stack.invoke("TickFunction", {"job": "fail", "execution_id": "err", "attempt": "1"})
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "RuntimeError"
    assert result.payload["errorMessage"] == "tick asked to fail"
    assert result.payload["requestId"] == result.request_id
    assert any("tick.py" in line for line in result.payload["stackTrace"])


def test_timeout_resets_the_container_and_the_next_invoke_cold_starts(fixture_stack: LocalStack):
    echo = fixture_stack.workers["EchoFunction"]  # Timeout: 2
    tick_cold_starts = fixture_stack.workers["TickFunction"].cold_starts
    before = echo.cold_starts
    # When the handler runs past the function's Timeout
    timed_out = echo.invoke({"path": "/sleep"})
    # Then it fails with Lambda's timeout error after about Timeout seconds...
    assert timed_out.function_error == "Unhandled"
    assert timed_out.payload["errorType"] == "Sandbox.Timedout"
    assert timed_out.payload["errorMessage"] == "Task timed out after 2.00 seconds"
    assert 1_900 <= timed_out.duration_ms < 5_000
    # ...the next invocation runs in a fresh container, and other functions' containers are untouched
    again = echo.invoke({"path": "/ok"})
    assert again.ok
    assert echo.cold_starts == before + 1
    assert fixture_stack.workers["TickFunction"].cold_starts == tick_cold_starts


def test_context_carries_the_function_name_and_remaining_time(fixture_stack: LocalStack):
    result = fixture_stack.invoke("TickFunction", {"job": "ok"})
    assert result.payload["function"] == fixture_stack.specs["TickFunction"].function_name
    assert 0 < result.payload["remaining_ms"] <= 5_000
