"""Every failure the API answers with: `{"error": {"code", "message"}}` and a 4xx/5xx status.

Request validation by Powertools keeps its 422 and documented `detail` list, and gains the same `error`
object, so a client can always read `error.code` / `error.message` whatever went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from xengage.api_client.errors import (
    AppAuthError,
    MalformedResponse,
    RetriesExhausted,
    UserAuthError,
    UserContextRequired,
)
from xengage.api_client.errors import RequestValidationError as ClientValidationError
from xengage.dal.paging import InvalidCursor
from xengage.dal.registry import NotFound
from xengage.dal.secrets import AppSecretPlaceholder, SecretContentError
from xengage.oauth_flow import OAuthFlowError
from xengage.observability import count, logger

if TYPE_CHECKING:
    from xengage.http_api.boundary import BoundedResolver


class ApiError(Exception):
    """An answer other than success, with the HTTP status and a machine-readable code."""

    def __init__(
        self, status: HTTPStatus, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers  # e.g. Retry-After of a 503
        self.extra = extra  # documented fields beside `error` (e.g. account_id of AccountErrorResponse)


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, code, message)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, f"{what}_not_found", f"{what} {ident} is not registered")


def error_response(
    status: HTTPStatus | int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return Response(
        status_code=int(status),
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": code, "message": message}, **extra},
        headers=headers,
    )


def request_id(event: Mapping[str, Any]) -> str:
    return str((event.get("requestContext") or {}).get("requestId") or "unknown")


def internal_error_message(event: Mapping[str, Any]) -> str:
    return f"unexpected failure; quote request id {request_id(event)} to the operator"


def _field_name(loc: Any) -> str:
    # Powertools reports ("body", "tweet_ids", 0) or ("query", "from"): keep it readable as body.tweet_ids[0].
    parts = [str(part) for part in (loc or ())]
    name = ""
    for part in parts:
        name += f"[{part}]" if part.isdigit() and name else (f".{part}" if name else part)
    return name or "request"


def validation_message(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{_field_name(err.get('loc'))}: {err.get('msg', 'invalid')}" for err in errors)


def register_error_handlers(app: BoundedResolver) -> None:
    """Attach one handler per failure family, so routes raise and never build error bodies themselves."""
    _register_routing_errors(app)
    _register_request_errors(app)
    _register_upstream_errors(app)


def _register_routing_errors(app: BoundedResolver) -> None:
    """No such path (404), a path without that method (405), and the catch-all for what nobody foresaw (500)."""

    @app.not_found
    def _no_route(exc: Exception) -> Response:
        event = app.current_event
        allowed = app.allowed_methods(event.path)
        if allowed:
            return error_response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"{event.path} answers {', '.join(sorted(allowed))}, not {event.http_method}",
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        return error_response(HTTPStatus.NOT_FOUND, "route_not_found", f"no route {event.http_method} {event.path}")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        event = app.current_event.raw_event
        logger.exception("unexpected failure", extra={"request_id": request_id(event)})
        count("ApiUnexpectedErrors")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", internal_error_message(event))


def _register_request_errors(app: APIGatewayRestResolver) -> None:
    """What the caller can fix: the body, the ids, the cursor, the account."""

    @app.exception_handler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        # Powertools' own `detail` shape (documented in the OpenAPI 422), minus the echoed input: it could be a token.
        detail = [{"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")} for err in errors]
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", validation_message(errors), detail=detail
        )

    @app.exception_handler(NotFound)
    def _not_found(exc: NotFound) -> Response:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", str(exc))

    @app.exception_handler(InvalidCursor)
    def _invalid_cursor(exc: InvalidCursor) -> Response:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "invalid_cursor",
            "cursor: not one this API issued for this listing and its filters (edited, copied from another listing, "
            "or older than the app secret); start the listing again without it",
        )

    @app.exception_handler(UserContextRequired)
    def _account_required(exc: UserContextRequired) -> Response:
        # The client's message speaks of its own `user=` argument; the API caller knows it as account_id.
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "account_required",
            "account_id: these metrics or endpoint need the Post owner's OAuth 1.0a tokens; "
            "give the account_id of the registered account that owns the Posts",
        )

    @app.exception_handler(ClientValidationError)
    def _client_rejected(exc: ClientValidationError) -> Response:
        return error_response(HTTPStatus.BAD_REQUEST, "invalid_query", str(exc))


def _register_upstream_errors(app: APIGatewayRestResolver) -> None:
    """What X, the credentials or the deployment did: the rate limit, the deadline, refused tokens, secrets."""

    @app.exception_handler(UserAuthError)
    def _account_refused(exc: UserAuthError) -> Response:
        return error_response(HTTPStatus.CONFLICT, "account_needs_reauth", str(exc), account_id=exc.account)

    @app.exception_handler(AppAuthError)
    def _app_refused(exc: AppAuthError) -> Response:
        # Nothing the caller can fix: the operator must replace the app secret; collection is paused until then.
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "app_credentials_refused",
            f"{exc}; collection is paused until the app secret is replaced",
        )

    @app.exception_handler(AppSecretPlaceholder)
    def _app_placeholder(exc: AppSecretPlaceholder) -> Response:
        return error_response(HTTPStatus.SERVICE_UNAVAILABLE, "app_credentials_missing", str(exc))

    @app.exception_handler(RetriesExhausted)
    def _upstream_unavailable(exc: RetriesExhausted) -> Response:
        return error_response(HTTPStatus.BAD_GATEWAY, "upstream_unavailable", f"Engagement API: {exc}")

    @app.exception_handler(MalformedResponse)
    def _upstream_malformed(exc: MalformedResponse) -> Response:
        return error_response(HTTPStatus.BAD_GATEWAY, "upstream_malformed", f"Engagement API: {exc}")

    @app.exception_handler(OAuthFlowError)
    def _oauth_failed(exc: OAuthFlowError) -> Response:
        # X refusing our signed request is an upstream problem (bad app keys, unregistered callback), not the caller's.
        return error_response(HTTPStatus.BAD_GATEWAY, f"oauth_{exc.step}_failed", str(exc))

    @app.exception_handler(SecretContentError)
    def _secret_broken(exc: SecretContentError) -> Response:
        logger.error("secret content invalid", extra={"problem": str(exc)})
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "secret_invalid", str(exc))


# Answers any route can give: the boundary's refusals of a body, and the catch-all.
_BODY_ERRORS: dict[int, str] = {
    400: "the body is not UTF-8 JSON (invalid_body, invalid_json)",
    413: "the body is larger than 256 KiB (body_too_large)",
    415: "not application/json in UTF-8, or a Content-Encoding (unsupported_media_type, unsupported_charset, "
    "unsupported_content_encoding)",
}
_ANY_ROUTE: dict[int, str] = {500: "an unexpected failure, logged with the request id the message names"}


def answers(
    errors: dict[int, str] | None = None,
    *,
    ok: str = "success",
    with_body: bool = False,
    custom: dict[int, Any] | None = None,
) -> dict[int, Any]:
    """OpenAPI `responses` of a route: its 200 (schema from the return type), its errors with the ErrorResponse body
    (descriptions merged with the boundary's own when a route takes a body), and `custom` entries given whole."""
    from xengage.http_api.models import ErrorResponse  # models import nothing from here: no cycle, kept local anyway

    merged: dict[int, list[str]] = {}
    for source in (errors or {}, _BODY_ERRORS if with_body else {}, _ANY_ROUTE):
        for status, description in source.items():
            merged.setdefault(status, []).append(description)
    documented: dict[int, Any] = {200: {"description": ok}}
    # 422 is not listed: Powertools documents it on every route, and app.openapi_dict gives it the project's shape.
    for status, descriptions in sorted(merged.items()):
        documented[status] = {
            "description": "; ".join(descriptions),
            "content": {"application/json": {"model": ErrorResponse}},
        }
    documented.update(custom or {})
    return documented
