"""`make dashboard`'s proxy (local/dashboard_proxy.py) against the local stack's API Gateway: it forwards, signs with
SigV4 (IAM) or adds the API key (API_KEY), and passes on nothing else of the browser's.

The local gateway checks no signature, so the test reads what reached it and verifies the signature itself with
botocore's signer; the stack's outputs and the key come from AWS through botocore's Stubber.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.request import Request, urlopen

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.stub import Stubber

from local.dashboard_proxy import DashboardProxy, ProxyConfigError, Upstream, main, stack_upstream
from local.stack.api_gateway import ReceivedRequest
from local.stack.stack import LocalStack, StackSettings

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
CREDENTIALS = Credentials("AKIDDASHBOARDTEST", "dashboard-test-secret", "dashboard-session-token")
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    settings = StackSettings(template_path=TEMPLATE, start_pollers=False, log_dir=tmp_path_factory.mktemp("logs"))
    with LocalStack(settings) as running:
        yield running


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    with urlopen(Request(url, headers=headers or {}), timeout=30) as answer:
        return answer.status, answer.headers.get("Content-Type", ""), answer.read()


def received(stack: LocalStack, path: str) -> ReceivedRequest:
    assert stack.api is not None
    return [request for request in stack.api.received if request.path == path][-1]


def test_in_iam_mode_every_request_reaches_the_api_signed_and_answers_as_direct(stack: LocalStack) -> None:
    # Given the proxy in front of the local API with IAM auth and temporary credentials
    assert stack.api is not None
    upstream = Upstream(api_url=stack.api.url + "/", auth="IAM", region=REGION, credentials=CREDENTIALS)
    with DashboardProxy(upstream) as proxy:
        # When the dashboard and a route are read through it, a browser's cookie and authorization along
        through = [
            fetch(f"{proxy.url}{path}", {"Cookie": "session=1", "Authorization": "Bearer mine", "Accept": "*/*"})
            for path in ("/dashboard", "/accounts?limit=5")
        ]
    arrived = received(stack, "/accounts?limit=5")
    direct = [fetch(f"{stack.api.url}{path}") for path in ("/dashboard", "/accounts?limit=5")]

    # Then the answers are the API's own
    assert [(s, t.split(";")[0], b) for s, t, b in through] == [(s, t.split(";")[0], b) for s, t, b in direct]
    assert through[0][1].startswith("text/html") and json.loads(through[1][2]) == {"accounts": [], "next_cursor": None}
    # And what reached the API is signed SigV4 for execute-api in the region, with the session token, and the
    # signature is right for the request as it arrived; the browser's cookie and authorization stayed behind
    headers = {name.lower(): value for name, value in arrived.headers}
    assert "cookie" not in headers and headers["accept"] == "*/*"
    authorization = headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={CREDENTIALS.access_key}/")
    assert f"/{REGION}/execute-api/aws4_request" in authorization
    assert headers["x-amz-security-token"] == CREDENTIALS.token
    assert signature_of(arrived, stack.api.url, headers) == authorization.rsplit("Signature=", 1)[1]


def signature_of(arrived: ReceivedRequest, api_url: str, headers: dict[str, str]) -> str:
    """The SigV4 signature botocore computes for the request as it arrived, over the headers it says it signed."""
    signed = headers["authorization"].split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    request = AWSRequest(method=arrived.method, url=api_url + arrived.path, data=b"")
    for name in signed:
        request.headers[name] = headers[name]
    request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(CREDENTIALS, "execute-api", REGION)
    return cast(str, signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request))


def test_in_api_key_mode_the_key_is_added_and_nothing_is_signed(stack: LocalStack) -> None:
    # Given the proxy with the stack's API key
    assert stack.api is not None
    upstream = Upstream(api_url=stack.api.url + "/", auth="API_KEY", region=REGION, api_key="key-of-the-stack")
    with DashboardProxy(upstream) as proxy:
        # When a page asset is read through it
        status, content_type, body = fetch(f"{proxy.url}/dashboard/assets/dashboard.js")

    # Then it is served, and reached the API with the key and without any signature
    assert status == 200 and content_type.startswith("text/javascript") and b"xengageDashboard" in body
    headers = {name.lower(): value for name, value in received(stack, "/dashboard/assets/dashboard.js").headers}
    assert headers["x-api-key"] == "key-of-the-stack"
    assert "authorization" not in headers and "x-amz-date" not in headers


class StubbedSession:
    """A boto3 session whose clients answer from botocore Stubbers."""

    def __init__(self) -> None:
        session = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name=REGION)
        self.clients = {name: session.client(name) for name in ("cloudformation", "apigateway")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        self.region_name = REGION

    def client(self, name: str) -> Any:
        return self.clients[name]

    def get_credentials(self) -> Credentials:
        return CREDENTIALS


def described(auth_type: str) -> dict[str, Any]:
    outputs = [{"OutputKey": "ApiUrl", "OutputValue": "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/"}]
    if auth_type == "API_KEY":
        outputs.append({"OutputKey": "ApiKeyId", "OutputValue": "key123"})
    return {
        "Stacks": [
            {
                "StackName": "xe",
                "CreationTime": "2026-12-01T00:00:00Z",
                "StackStatus": "CREATE_COMPLETE",
                "Parameters": [{"ParameterKey": "ApiAuthType", "ParameterValue": auth_type}],
                "Outputs": outputs,
            }
        ]
    }


def test_the_stack_decides_the_auth_an_iam_stack_is_signed_with_your_credentials() -> None:
    # Given a stack deployed with ApiAuthType=IAM
    session = StubbedSession()
    session.stubs["cloudformation"].add_response("describe_stacks", described("IAM"), {"StackName": "xe"})
    with session.stubs["cloudformation"]:
        # When the proxy reads it
        upstream = stack_upstream(cast(Any, session), "xe")
    # Then it forwards to its ApiUrl, signing with the credentials of the default chain
    assert upstream.auth == "IAM" and upstream.credentials is CREDENTIALS and upstream.api_key is None
    assert upstream.target("/dashboard") == "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/dashboard"


def test_an_api_key_stack_gets_its_key_from_api_gateway_or_from_a_prompt() -> None:
    # Given a stack deployed with ApiAuthType=API_KEY, whose key can be read once and then is denied
    session = StubbedSession()
    for _ in range(2):
        session.stubs["cloudformation"].add_response("describe_stacks", described("API_KEY"), {"StackName": "xe"})
    session.stubs["apigateway"].add_response(
        "get_api_key", {"id": "key123", "value": "the-key"}, {"apiKey": "key123", "includeValue": True}
    )
    session.stubs["apigateway"].add_client_error("get_api_key", "AccessDeniedException", http_status_code=403)
    asked: list[str] = []
    with session.stubs["cloudformation"], session.stubs["apigateway"]:
        # When the proxy reads it twice
        first = stack_upstream(cast(Any, session), "xe", ask=lambda prompt: asked.append(prompt) or "unused")
        second = stack_upstream(cast(Any, session), "xe", ask=lambda prompt: asked.append(prompt) or " typed-key ")
    # Then the key comes from API Gateway, and when that is denied, from the person at the prompt
    assert (first.auth, first.api_key, first.credentials) == ("API_KEY", "the-key", None)
    assert second.api_key == "typed-key" and len(asked) == 1


def test_a_stack_that_cannot_be_read_or_a_missing_key_is_a_clear_error() -> None:
    session = StubbedSession()
    session.stubs["cloudformation"].add_client_error("describe_stacks", "ValidationError", "Stack xe does not exist")
    with session.stubs["cloudformation"], pytest.raises(ProxyConfigError, match="cannot read stack 'xe'"):
        stack_upstream(cast(Any, session), "xe")
    with pytest.raises(ProxyConfigError, match="needs the key"):
        Upstream(api_url="https://x/v1/", auth="API_KEY", region=REGION, api_key="")


def test_the_command_prints_the_dashboard_url_and_serves_it(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given `python -m local.dashboard_proxy` (make dashboard) pointed at the local API without auth
    assert stack.api is not None
    stop, listening = threading.Event(), queue.Queue[str]()
    argv = ["--api-url", stack.api.url + "/", "--auth", "NONE", "--port", "0"]
    runner = threading.Thread(target=main, args=(argv, stop, listening.put), daemon=True)
    runner.start()
    try:
        # When it listens
        url = listening.get(timeout=10)
        # Then it printed that loopback URL, where the dashboard answers
        assert f"dashboard: {url}" in capsys.readouterr().out
        assert url.startswith("http://127.0.0.1:") and url.endswith("/dashboard")
        status, content_type, _ = fetch(url)
        assert status == 200 and content_type.startswith("text/html")
    finally:
        stop.set()
        runner.join(timeout=5)
    assert not runner.is_alive()
