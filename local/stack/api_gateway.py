"""API Gateway, locally: `ApiServer` turns HTTP requests on loopback into REST (v1) proxy events."""

from __future__ import annotations

import base64
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.stack.functions import Invocation, Invoker

logger = logging.getLogger("local.stack")

RECENT_REQUESTS = 1000


@dataclass
class ApiRoute:
    function_id: str
    method: str  # "ANY" or an HTTP verb
    path: str  # the resource, e.g. /accounts/{user_id} or /{proxy+}
    stage: str
    api_id: str
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        regex = ""
        for segment in self.path.strip("/").split("/"):
            if not segment:
                continue
            greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
            single = re.fullmatch(r"\{(\w+)\}", segment)
            if greedy:
                regex += f"/(?P<{greedy.group(1)}>.+)"
            elif single:
                regex += f"/(?P<{single.group(1)}>[^/]+)"
            else:
                regex += "/" + re.escape(segment)
        self.pattern = re.compile(f"^{regex or '/'}$")

    @property
    def specificity(self) -> tuple[int, int, int]:
        # API Gateway prefers literal paths over {param}, and {param} over {greedy+}; an exact method over ANY.
        return (self.path.count("+}"), self.path.count("{"), 1 if self.method == "ANY" else 0)


def api_routes(specs: Iterable[Any], *, api_ids: Mapping[str, str], stages: Mapping[str, str]) -> list[ApiRoute]:
    """Routes from every function's `Api` events; `api_ids`/`stages` map a RestApiId value to its id and stage."""
    routes = []
    for spec in specs:
        for event in spec.events.values():
            if event.get("Type") != "Api":
                continue
            properties = event.get("Properties") or {}
            rest_api = str(properties.get("RestApiId") or "ServerlessRestApi")
            routes.append(
                ApiRoute(
                    function_id=spec.logical_id,
                    method=str(properties.get("Method", "ANY")).upper(),
                    path=str(properties["Path"]),
                    stage=stages.get(rest_api, "Prod"),
                    api_id=api_ids.get(rest_api, rest_api),
                )
            )
    return sorted(routes, key=lambda route: route.specificity)


def match_route(routes: list[ApiRoute], method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
    for route in routes:
        if route.method not in ("ANY", method):
            continue
        found = route.pattern.match(path)
        if found:
            return route, found.groupdict()
    return None


def forwarded_headers(headers: list[tuple[str, str]], client_ip: str, port: int) -> list[tuple[str, str]]:
    """The request headers plus the X-Forwarded-* ones API Gateway adds (here plain http on loopback), so code
    that builds its own URLs (the OAuth callback) gets the scheme and port the caller used."""
    added = [("X-Forwarded-For", client_ip), ("X-Forwarded-Port", str(port)), ("X-Forwarded-Proto", "http")]
    names = {name.lower() for name, _ in added}
    return [(name, value) for name, value in headers if name.lower() not in names] + added


def proxy_event(
    route: ApiRoute,
    *,
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    path_parameters: Mapping[str, str],
    source_ip: str,
    domain: str,
) -> dict[str, Any]:
    """The API Gateway REST (v1) proxy event for one request."""
    parts = urlsplit(raw_path)
    multi_headers = _multi_value(headers)
    multi_query = _multi_value(parse_qsl(parts.query, keep_blank_values=True))
    text_body, is_base64 = _event_body(body)
    user_agent = multi_headers.get("User-Agent", [None])[-1]
    return {
        "resource": route.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": _request_context(route, method, parts.path, domain, source_ip, user_agent),
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


def _multi_value(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return values


def _event_body(body: bytes) -> tuple[str | None, bool]:
    """The event's body and isBase64Encoded: text as is, anything not UTF-8 in base64."""
    try:
        return (body.decode("utf-8") if body else None), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode(), True


# Caller identity fields API Gateway leaves null without an authorizer.
_NULL_IDENTITY = dict.fromkeys(
    (
        "accessKey",
        "accountId",
        "apiKey",
        "caller",
        "user",
        "userArn",
        "cognitoIdentityId",
        "cognitoIdentityPoolId",
        "cognitoAuthenticationProvider",
        "cognitoAuthenticationType",
    )
)


def _request_context(
    route: ApiRoute, method: str, path: str, domain: str, source_ip: str, user_agent: str | None
) -> dict[str, Any]:
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "accountId": "123456789012",
        "apiId": route.api_id,
        "resourceId": "local",
        "resourcePath": route.path,
        "stage": route.stage,
        "requestId": request_id,
        "extendedRequestId": request_id,
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "httpMethod": method,
        "path": f"/{route.stage}{path}",
        "protocol": "HTTP/1.1",
        "domainName": domain,
        "identity": {"sourceIp": source_ip, "userAgent": user_agent, **_NULL_IDENTITY},
    }


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def proxy_response(invocation: Invocation) -> HttpResponse:
    """The HTTP response API Gateway writes for a proxy integration result (502 when it is malformed)."""
    payload = invocation.payload
    if not invocation.ok or not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        if not invocation.ok:
            logger.warning("API function error: %s", invocation.error_text)
        return HttpResponse(502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}')
    headers: list[tuple[str, str]] = [(k, str(v)) for k, v in (payload.get("headers") or {}).items()]
    single = {name.lower() for name, _ in headers}
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(value)) for value in values if name.lower() not in single)
    raw_body = payload.get("body") or ""
    body = base64.b64decode(raw_body) if payload.get("isBase64Encoded") else str(raw_body).encode()
    if "content-type" not in {name.lower() for name, _ in headers}:
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(payload["statusCode"], headers, body)


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as it reached the local API Gateway (which checks no SigV4 signature or API key: tests read the
    headers a client sent, such as the dashboard proxy's signature)."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]


class ApiServer:
    """API Gateway on loopback: routes HTTP requests to the functions' `Api` events."""

    def __init__(self, routes: list[ApiRoute], invoke: Invoker, *, port: int = 3000, host: str = "127.0.0.1") -> None:
        self.routes = routes
        self.invoke = invoke
        self.requests = 0
        self.received: deque[ReceivedRequest] = deque(maxlen=RECENT_REQUESTS)
        handler = self._handler_class()
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, client_ip: str
    ) -> HttpResponse:
        """What API Gateway answers one request: the routed function's response, or its 403 without a route."""
        self.requests += 1
        self.received.append(ReceivedRequest(method, raw_path, tuple(headers)))
        matched = match_route(self.routes, method, urlsplit(raw_path).path)
        if matched is None:
            # What API Gateway answers for a path/method it has no resource for.
            return HttpResponse(
                403, [("Content-Type", "application/json")], b'{"message": "Missing Authentication Token"}'
            )
        route, parameters = matched
        event = proxy_event(
            route,
            method=method,
            raw_path=raw_path,
            headers=forwarded_headers(headers, client_ip, self.port),
            body=body,
            path_parameters=parameters,
            source_ip=client_ip,
            domain=next((value for name, value in headers if name.lower() == "host"), ""),
        )
        return proxy_response(self.invoke(route.function_id, event))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY a keep-alive client's delayed ACK
            # holds small answers ~40 ms (measured: one-day metrics window p50 56 ms -> 11 ms).
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = list(self.headers.items())
                response = api.handle(self.command, self.path, headers, body, self.client_address[0])
                self.send_response(response.status)
                for name, value in response.headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def __getattr__(self, name: str) -> Any:
                # Any other method (TRACE, QUERY, ...) goes to the `ANY` route too, so it meets the function's 405
                # rather than http.server's HTML 501.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("api: " + format, *args)

        return Handler

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="api-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
