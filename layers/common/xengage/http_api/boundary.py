"""The API's error boundary: what reaches a route is a JSON body it can read, and nothing a client sends escapes as a
crash.

Checked before Powertools routes the request (its validation runs first among middlewares, so a middleware would
come too late): a request body must be `application/json` in UTF-8 (no other charset, no `Content-Encoding`), at
most `MAX_BODY_BYTES` long and `MAX_JSON_DEPTH` deep. `POST /tweets` alone also takes `text/csv` (UTF-8) and up to
`MAX_BULK_BODY_BYTES` (`BODY_RULES`). Anything that still goes wrong becomes a logged 500 naming
the request id and nothing of the internals.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from xengage.http_api.errors import ApiError, internal_error_message, request_id
from xengage.observability import logger

# Far above any valid body (250 ids are ~6 KiB) and far below Lambda's 6 MB payload.
MAX_BODY_BYTES: Final = 256 * 1024
# The API's bodies nest 2 levels; 32 leaves room for any honest client.
MAX_JSON_DEPTH: Final = 32
BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
JSON_MEDIA_TYPE: Final = "application/json"
CSV_MEDIA_TYPE: Final = "text/csv"
# 10,000 ids are ~220 KB as JSON or CSV; room for pretty-printed JSON and long bad lines, far below Lambda's 6 MB.
MAX_BULK_BODY_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BodyRule:
    media_types: tuple[str, ...] = (JSON_MEDIA_TYPE,)
    max_bytes: int = MAX_BODY_BYTES


DEFAULT_BODY_RULE: Final = BodyRule()
# Routes whose bodies differ from the default: bulk tracking takes CSV too, and more bytes.
BODY_RULES: Final[Mapping[tuple[str, str], BodyRule]] = MappingProxyType(
    {("POST", "/tweets"): BodyRule((JSON_MEDIA_TYPE, CSV_MEDIA_TYPE), MAX_BULK_BODY_BYTES)}
)


def body_rule(event: Mapping[str, Any]) -> BodyRule:
    method = str(event.get("httpMethod") or "").upper()
    path = str(event.get("path") or "").rstrip("/") or "/"
    return BODY_RULES.get((method, path), DEFAULT_BODY_RULE)


def _header(event: Mapping[str, Any], name: str) -> str | None:
    headers = event.get("headers") or {}
    return next((str(value) for key, value in headers.items() if key.lower() == name), None)


def _body_bytes(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body).encode("utf-8", errors="surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_body", "body: not valid base64 as declared") from None


def check_content_type(value: str | None, accepted: tuple[str, ...] = (JSON_MEDIA_TYPE,)) -> str:
    """One of `accepted` (`application/json` unless the route says more), optionally `; charset=utf-8`: any other
    type or charset is refused, never guessed. Returns the media type."""
    media_type, *params = [part.strip() for part in (value or "").split(";")]
    if media_type.lower() not in accepted:
        shown = f"{media_type[:80]!r}" if media_type else "none"
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            f"Content-Type: this route takes {' or '.join(accepted)} (UTF-8) only, got {shown}",
        )
    for param in filter(None, params):
        name, _, given = param.partition("=")
        if name.strip().lower() == "charset" and given.strip().strip('"').lower() not in {"utf-8", "utf8"}:
            raise ApiError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_charset",
                f"Content-Type: the body is read as UTF-8 only, got charset {given.strip()[:40]!r}",
            )
    return media_type.lower()


def check_content_encoding(value: str | None) -> None:
    if value and value.strip().lower() != "identity":
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_encoding",
            f"Content-Encoding: {value.strip()[:40]!r} is not accepted; send the JSON uncompressed",
        )


def json_depth(value: Any) -> int:
    """How deep arrays and objects nest (a scalar is 0), walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def utf8_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "invalid_body", f"body: not UTF-8 text (byte {exc.start} cannot be decoded)"
        ) from None


def parse_json_text(raw: bytes) -> Any:
    text = utf8_text(raw)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, "invalid_json", f"body: not JSON ({exc.msg} at character {exc.pos})"
        ) from None
    except RecursionError:
        raise _too_deep() from None


def _too_deep() -> ApiError:
    return ApiError(
        HTTPStatus.UNPROCESSABLE_ENTITY, "body_too_deep", f"body: JSON nests deeper than {MAX_JSON_DEPTH} levels"
    )


def check_request(event: Mapping[str, Any]) -> None:
    """Refuse, with an ApiError, a body no route could read; a request without a body passes untouched."""
    if str(event.get("httpMethod") or "").upper() not in BODY_METHODS or not event.get("body"):
        return
    check_content_encoding(_header(event, "content-encoding"))
    raw = _body_bytes(event)
    rule = body_rule(event)
    if len(raw) > rule.max_bytes:
        raise ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "body_too_large",
            f"body: {len(raw)} bytes, at most {rule.max_bytes} are accepted",
        )
    if check_content_type(_header(event, "content-type"), rule.media_types) == CSV_MEDIA_TYPE:
        utf8_text(raw)
    elif json_depth(parse_json_text(raw)) > MAX_JSON_DEPTH:
        raise _too_deep()


def error_payload(status: int, code: str, message: str) -> dict[str, Any]:
    """An API Gateway proxy answer in the project's error shape, built without the resolver (it may be the failure)."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON_MEDIA_TYPE},
        "body": json.dumps({"error": {"code": code, "message": message}}),
        "isBase64Encoded": False,
    }


class BoundedResolver(APIGatewayRestResolver):
    """APIGatewayRestResolver that refuses unreadable bodies up front and never lets an exception out."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        try:
            check_request(event)
        except ApiError as refused:
            logger.info("request refused", extra={"code": refused.code, "status": int(refused.status)})
            return error_payload(int(refused.status), refused.code, refused.message)
        try:
            return super().resolve(event, context)
        except Exception:  # the last line: an exception handler or the framework itself failed
            logger.exception("request failed outside the routes", extra={"request_id": request_id(event)})
            return error_payload(500, "internal_error", internal_error_message(event))

    @cached_property
    def route_methods(self) -> list[tuple[re.Pattern[str], frozenset[str]]]:
        """Each documented path as a pattern with its methods, to tell 405 from 404."""
        paths = self.get_openapi_schema().paths or {}
        table = [
            (
                re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
                frozenset(
                    method.upper() for method in ("get", "put", "post", "delete", "patch") if getattr(item, method)
                ),
            )
            for path, item in paths.items()
        ]
        return [*table, (re.compile("^/openapi\\.json$"), frozenset({"GET"}))]

    def allowed_methods(self, path: str) -> frozenset[str]:
        return frozenset().union(*(methods for pattern, methods in self.route_methods if pattern.match(path)))
