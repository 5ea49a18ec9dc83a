"""Shared fixtures: fake AWS credentials, moto resources created from template.yaml, a Lambda context."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.aws_fixtures import AwsResources, create_resources

# Fake credentials and region so nothing can reach real AWS; only filled in when a suite has not set them.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "XEngagementTest",
    "POWERTOOLS_SERVICE_NAME": "xengage-test",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


# Powertools reads these when its singletons are created, at import of xengage.observability (test collection),
# before any fixture runs; the values the functions get from template.yaml Globals, named for tests.
for _name in ("POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_TRACE_DISABLED"):
    os.environ.setdefault(_name, FAKE_AWS_ENV[_name])


def cold_starts() -> None:
    """The functions start anew, as in new processes: no Deps built yet, so nothing is cached in one (secret values,
    the rate budget's learned limits, the usage guard). Within a test only: `fake_aws_env` restores the original."""
    from xengage import deps

    deps.BUILT = {}


@pytest.fixture(autouse=True)
def fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from xengage import deps

    for name, value in FAKE_AWS_ENV.items():
        if name not in os.environ:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(deps, "BUILT", {})  # each test's functions start cold
    yield
    from xengage.observability import metrics

    metrics.clear_metrics()  # metrics a test added without a handler flushing them must not leak into the next


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsResources]:
    """moto in-process with the stack's tables, queue and app secret; the functions' environment points at them."""
    from moto import mock_aws

    # AWS_ENDPOINT_URL (set by local-stack runs) would send boto3 past the in-process mock.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        resources = create_resources()
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        yield resources


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    remaining_millis: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
