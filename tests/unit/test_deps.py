"""One wiring pattern (xengage.deps): a function's Deps built once per environment, parts replaced without caches."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.aws_fixtures import AwsResources
from xengage.deps import Deps, function_deps
from xengage.settings import CollectorSettings, PlannerSettings, from_env


def test_a_function_gets_one_deps_until_its_environment_changes(
    aws: AwsResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the collector's Deps of this environment
    first = function_deps(CollectorSettings)

    # Then the next invocation gets the same one (built once per cold start), another function its own
    assert function_deps(CollectorSettings) is first
    assert function_deps(PlannerSettings) is not first

    # When the environment changes (a setting, or where the AWS endpoints are)
    monkeypatch.setenv("MONTHLY_HANDLE_CAP", "3")
    capped = function_deps(CollectorSettings)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    moved = function_deps(CollectorSettings)

    # Then each gets a new Deps of its own settings
    assert capped is not first and capped.settings.handle_cap == 3
    assert moved is not capped and moved.settings == capped.settings


def test_replace_overrides_the_parts_given_and_shares_the_rest(aws: AwsResources) -> None:
    # Given Deps with a fixed clock, and a copy with no queue
    deps = Deps(from_env(CollectorSettings), now=lambda: "then")
    copy = deps.replace(queue=None)

    # Then the copy has its own queue part, the given clock, and the same parts otherwise, whoever builds them first
    assert copy.queue is None and deps.queue is not None
    assert copy.now() == "then"
    assert copy.registry is deps.registry and copy.usage is deps.usage and copy.secrets is deps.secrets
    # And a part Deps does not have is refused by name
    with pytest.raises(TypeError, match="registy"):
        Deps(deps.settings, registy=None)


def test_a_new_deps_reads_secrets_afresh_and_one_deps_keeps_its_cache(aws: AwsResources) -> None:
    # Given the app credentials read through one Deps
    settings = from_env(CollectorSettings)
    warm = Deps(settings)
    before = warm.load_app()
    assert before.consumer_key != "k2"

    # When the operator replaces the app secret
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.app_secret_arn,
        SecretString=json.dumps({"consumer_key": "k2", "consumer_secret": "s2", "bearer_token": "b2"}),
    )

    # Then that Deps still answers from its cache (5 minutes), and a new one (a cold start) reads the new value
    assert warm.load_app() == before
    assert Deps(settings).load_app().consumer_key == "k2"
    assert warm.load_app(fresh=True).consumer_key == "k2"
