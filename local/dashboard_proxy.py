"""`make dashboard STACK=<name>`: open a deployed stack's dashboard from this machine, whatever its `ApiAuthType`.

A browser can neither sign requests with SigV4 (`ApiAuthType=IAM`) nor add an `x-api-key` header (`API_KEY`), so
this runs a reverse proxy on 127.0.0.1 that forwards each request to the stack's `ApiUrl`, signed with your AWS
credentials (botocore's default chain: environment, profile, SSO, instance role) or with the stack's API key added
(read with `apigateway get-api-key --include-value`, or typed at a prompt when that is not allowed), and prints the
dashboard's local URL. It listens on loopback only: whoever reaches it acts with your credentials.

    python -m local.dashboard_proxy --stack x-engagement-collector [--port 8765]
    python -m local.dashboard_proxy --api-url https://abc.execute-api.us-east-1.amazonaws.com/v1/ --auth IAM
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

AuthType = Literal["IAM", "API_KEY", "NONE"]
AUTH_TYPES: Final = ("IAM", "API_KEY", "NONE")
SERVICE: Final = "execute-api"
# What a browser sends that the API reads; cookies and the rest stay on this machine.
FORWARDED_REQUEST_HEADERS: Final = frozenset({"accept", "content-type", "accept-language"})
# Hop-by-hop headers, and those requests already undid (it decodes the body and the length changes with it).
DROPPED_RESPONSE_HEADERS: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "upgrade"}
)
UPSTREAM_TIMEOUT_SECONDS: Final = 35  # API Gateway answers within 29 s


class ProxyConfigError(RuntimeError):
    """The stack or its outputs could not be read; the message says what to check."""


@dataclass(frozen=True)
class Upstream:
    api_url: str  # the stack's ApiUrl, ending in "/" (its stage path, /v1/)
    auth: AuthType
    region: str
    credentials: Credentials | None = None  # IAM
    api_key: str | None = None  # API_KEY

    def __post_init__(self) -> None:
        if self.auth == "IAM" and self.credentials is None:
            raise ProxyConfigError("IAM auth needs AWS credentials (none found in the default chain)")
        if self.auth == "API_KEY" and not self.api_key:
            raise ProxyConfigError("API_KEY auth needs the key")

    def target(self, path: str) -> str:
        return self.api_url.rstrip("/") + "/" + path.lstrip("/")


def outgoing(upstream: Upstream, method: str, path: str, headers: Mapping[str, str], body: bytes) -> AWSRequest:
    """The request to send upstream: the browser's request to `path` with the auth the stack asks for."""
    kept = {name: value for name, value in headers.items() if name.lower() in FORWARDED_REQUEST_HEADERS}
    request = AWSRequest(method=method, url=upstream.target(path), data=body, headers=kept)
    if upstream.auth == "API_KEY":
        request.headers["x-api-key"] = str(upstream.api_key)
    elif upstream.auth == "IAM" and upstream.credentials is not None:
        # Signs the method, path, query, host and payload; X-Amz-Date and, for temporary credentials,
        # X-Amz-Security-Token are added and signed too.
        SigV4Auth(upstream.credentials, SERVICE, upstream.region).add_auth(request)
    return request


class DashboardProxy:
    """The reverse proxy: a ThreadingHTTPServer on loopback forwarding every request with `outgoing`."""

    def __init__(self, upstream: Upstream, *, port: int = 0, http: requests.Session | None = None) -> None:
        self.upstream = upstream
        self.http = http or requests.Session()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def forward(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> requests.Response:
        prepared = outgoing(self.upstream, method, path, headers, body).prepare()
        return self.http.request(
            method,
            prepared.url,
            headers=dict(prepared.headers.items()),
            data=body or None,
            allow_redirects=False,
            timeout=UPSTREAM_TIMEOUT_SECONDS,
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    answer = proxy.forward(self.command, self.path, dict(self.headers.items()), body)
                    status, content = answer.status_code, answer.content
                    headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in DROPPED_RESPONSE_HEADERS]
                except requests.RequestException as failure:
                    status, headers = 502, [("Content-Type", "application/json")]
                    content = f'{{"error": {{"code": "proxy_upstream_failed", "message": "{type(failure).__name__}"}}}}'
                    content = content.encode()
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                sys.stderr.write("dashboard proxy: " + (format % args) + "\n")

        return Handler

    def start(self) -> DashboardProxy:
        self._thread = threading.Thread(target=self.server.serve_forever, name="dashboard-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> DashboardProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def stack_upstream(
    session: boto3.session.Session,
    stack: str,
    *,
    auth: AuthType | None = None,
    api_key: str | None = None,
    ask: Callable[[str], str] = getpass.getpass,
) -> Upstream:
    """The stack's ApiUrl and auth type (its ApiAuthType parameter), with your credentials or its API key."""
    try:
        described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except (ClientError, BotoCoreError) as error:
        raise ProxyConfigError(f"cannot read stack {stack!r}: {error}") from error
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}
    if "ApiUrl" not in outputs:
        raise ProxyConfigError(f"stack {stack!r} has no ApiUrl output (is it an xengage stack?)")
    chosen: AuthType = auth or ("API_KEY" if parameters.get("ApiAuthType") == "API_KEY" else "IAM")
    key = api_key
    if chosen == "API_KEY" and not key:
        key = read_api_key(session, outputs.get("ApiKeyId"), ask)
    return Upstream(
        api_url=outputs["ApiUrl"],
        auth=chosen,
        region=session.region_name or "us-east-1",
        credentials=session.get_credentials() if chosen == "IAM" else None,
        api_key=key,
    )


def read_api_key(session: boto3.session.Session, key_id: str | None, ask: Callable[[str], str]) -> str:
    """`aws apigateway get-api-key --api-key <ApiKeyId> --include-value`; a prompt when that is not allowed."""
    if key_id:
        try:
            return str(session.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])
        except (ClientError, BotoCoreError) as error:
            print(f"could not read API key {key_id} ({error}); type it instead", file=sys.stderr)
    return ask("API key (x-api-key): ").strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="a deployed xengage stack: its ApiUrl and ApiAuthType are read")
    target.add_argument("--api-url", help="the API's base URL instead (stack output ApiUrl)")
    parser.add_argument(
        "--auth", choices=AUTH_TYPES, help="override the stack's ApiAuthType (default with --api-url: IAM)"
    )
    parser.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    parser.add_argument("--port", type=int, default=8765, help="local port (0: any free one)")
    return parser.parse_args(argv)


def upstream_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> Upstream:
    session = boto3.session.Session(region_name=args.region)
    api_key = env.get("XENGAGE_API_KEY") or None
    if args.stack:
        return stack_upstream(session, args.stack, auth=args.auth, api_key=api_key)
    auth: AuthType = args.auth or "IAM"
    if auth == "API_KEY" and not api_key:
        api_key = getpass.getpass("API key (x-api-key): ").strip()
    return Upstream(
        api_url=args.api_url,
        auth=auth,
        region=session.region_name or "us-east-1",
        credentials=session.get_credentials() if auth == "IAM" else None,
        api_key=api_key,
    )


def main(
    argv: list[str] | None = None,
    stop: threading.Event | None = None,
    listening: Callable[[str], None] | None = None,
) -> int:
    """Run until Ctrl-C or `stop`; `listening` is told the dashboard's URL once the proxy accepts requests."""
    args = parse_args(argv)
    if not (args.stack or args.api_url):
        print("make dashboard STACK=<stack name>", file=sys.stderr)
        return 2
    try:
        upstream = upstream_from_args(args, os.environ)
    except (ProxyConfigError, BotoCoreError) as error:
        print(f"dashboard proxy: {error}", file=sys.stderr)
        return 2
    stopping = stop or threading.Event()
    with DashboardProxy(upstream, port=args.port) as proxy:
        print(f"forwarding to {upstream.api_url} ({upstream.auth})", flush=True)
        print(f"dashboard: {proxy.url}/dashboard   (Ctrl-C to stop)", flush=True)
        if listening is not None:
            listening(f"{proxy.url}/dashboard")
        try:
            while not stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
