"""Routes of /oauth: the 3-legged OAuth 1.0a flow that registers an account without copying tokens by hand.

start: request token with this API's own /oauth/callback, request-token secret parked in Secrets Manager
(`{prefix}oauth-pending/{oauth_token}`, 15 minutes) -> authorize_url. callback: verifier -> access token ->
account secret + registry row, pending secret deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Final, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from xengage import oauth_flow
from xengage.api_client.catalog import DEFAULT_OAUTH_BASE_URL
from xengage.dal.secrets import PendingAuthorization, SecretNotFoundError
from xengage.http_api import context
from xengage.http_api.accounts import VERIFY_ERRORS, account_out, register_account, verified
from xengage.http_api.errors import ApiError, answers, bad_request
from xengage.http_api.models import AccountOut, OAuthStartOut
from xengage.http_api.redirects import allowed_redirect, is_allowed
from xengage.observability import logger
from xengage.timeutil import to_iso, utc_now

router = Router()

PENDING_TTL: Final = timedelta(minutes=15)
CALLBACK_PATH: Final = "/oauth/callback"
# Request tokens are URL-safe text; anything else never came from X and must not reach a secret name.
OAUTH_TOKEN_PATTERN: Final = r"^[A-Za-z0-9_\-]{1,200}$"
VERIFIER_PATTERN: Final = r"^[A-Za-z0-9_\-]{1,200}$"


def callback_url(event: APIGatewayProxyEvent, override: str | None) -> str:
    """This API's own /oauth/callback: the override, or the host (and stage on execute-api hosts) of the request."""
    if override:
        return override
    host = event.headers.get("Host") or event.request_context.domain_name
    if not host:
        raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, "callback_unknown", "set OAUTH_CALLBACK_URL: no Host header")
    scheme = event.headers.get("X-Forwarded-Proto") or "https"
    stage = event.request_context.stage
    # The default execute-api URL carries the stage as first path segment; custom domains and the local stack don't.
    prefix = f"/{stage}" if stage and host.endswith(".amazonaws.com") else ""
    return f"{scheme}://{host}{prefix}{CALLBACK_PATH}"


def start(event: APIGatewayProxyEvent, redirect_uri: str | None, *, now: datetime) -> OAuthStartOut:
    settings = context.deps().settings
    app_credentials = context.deps().secrets.load_app()
    begun = oauth_flow.start_authorization(
        app_credentials,
        callback_url(event, settings.oauth_callback_url),
        oauth_base_url=settings.x_api_url or DEFAULT_OAUTH_BASE_URL,
    )
    expires_at = now + PENDING_TTL
    context.deps().secrets.save_pending(
        PendingAuthorization(
            oauth_token=begun.request_token.oauth_token,
            oauth_token_secret=begun.request_token.oauth_token_secret,
            expires_at=expires_at,
            redirect_uri=redirect_uri,
        ),
    )
    return OAuthStartOut(authorize_url=begun.authorize_url, expires_at=to_iso(expires_at))


def load_pending(oauth_token: str, *, now: datetime) -> PendingAuthorization:
    try:
        pending = context.deps().secrets.load_pending(oauth_token)
    except SecretNotFoundError:
        raise bad_request(
            "oauth_token_unknown", "oauth_token: no pending authorization (unknown, or already used)"
        ) from None
    if pending.is_expired(now):
        context.deps().secrets.delete_pending(oauth_token)
        raise bad_request(
            "oauth_token_expired",
            f"oauth_token: the authorization expired at {to_iso(pending.expires_at)}; start again",
        )
    return pending


def finish(oauth_token: str, verifier: str, *, now: datetime) -> tuple[AccountOut, str | None]:
    settings = context.deps().settings
    pending = load_pending(oauth_token, now=now)
    tokens = oauth_flow.finish_authorization(
        context.deps().secrets.load_app(),
        oauth_flow.RequestToken(pending.oauth_token, pending.oauth_token_secret),
        verifier,
        oauth_base_url=settings.x_api_url or DEFAULT_OAUTH_BASE_URL,
    )
    # Single use: the request token is spent once exchanged, whatever X says about the tokens next.
    context.deps().secrets.delete_pending(oauth_token)
    assert tokens.user_id is not None  # finish_authorization refuses an answer without one
    account = register_account(verified(tokens, tokens.user_id, again="start again at /oauth/start"))
    return account_out(account), pending.redirect_uri


def with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


@router.get(
    "/oauth/start",
    summary="Begin 3-legged OAuth: get the URL the account owner approves at",
    tags=["oauth"],
    responses=answers(
        {
            400: "redirect_uri is not an http(s) URL on the OAuthRedirectAllowlist",
            502: "X refused the request token",
            503: "the app secret still holds the template's placeholders (app_credentials_missing)",
        }
    ),
)
def oauth_start(
    redirect_uri: Annotated[
        str | None, Query(max_length=2048, description="where the callback sends the browser afterwards")
    ] = None,
) -> OAuthStartOut:
    allowed = allowed_redirect(redirect_uri, context.deps().settings.redirect_allowlist)
    return start(cast(APIGatewayProxyEvent, router.current_event), allowed, now=utc_now())


@router.get(
    "/oauth/callback",
    summary="X redirects here after approval; stores the account's tokens",
    tags=["oauth"],
    responses=answers(
        {
            400: f"unknown, expired or denied oauth_token; {VERIFY_ERRORS[400]}",
            409: VERIFY_ERRORS[409],
            502: "X refused the token exchange",
            503: "the app secret still holds the template's placeholders (app_credentials_missing); "
            + VERIFY_ERRORS[503],
        },
        custom={
            200: {"description": "the registered account", "content": {"application/json": {"model": AccountOut}}},
            302: {
                "description": "redirect to the redirect_uri given at start (on the OAuthRedirectAllowlist), with "
                "user_id and screen_name"
            },
        },
    ),
)
def oauth_callback(
    oauth_token: Annotated[str | None, Query(pattern=OAUTH_TOKEN_PATTERN)] = None,
    oauth_verifier: Annotated[str | None, Query(pattern=VERIFIER_PATTERN)] = None,
    denied: Annotated[str | None, Query(pattern=OAUTH_TOKEN_PATTERN, description="set by X on refusal")] = None,
) -> Response[Any]:
    now = utc_now()
    if denied:
        # The owner refused: forget the request token so it cannot be replayed.
        context.deps().secrets.delete_pending(denied)
        raise bad_request("oauth_denied", "the account owner did not approve the app")
    if not oauth_token or not oauth_verifier:
        raise bad_request("oauth_callback_incomplete", "oauth_token and oauth_verifier are both required")
    account, redirect_uri = finish(oauth_token, oauth_verifier, now=now)
    logger.info("oauth callback completed", extra={"account_id": account.user_id})
    # Checked again: the allowlist may have changed since start; the callback never redirects off it.
    if redirect_uri and is_allowed(redirect_uri, context.deps().settings.redirect_allowlist):
        location = with_query(redirect_uri, {"user_id": account.user_id, "screen_name": account.screen_name or ""})
        return Response(status_code=HTTPStatus.FOUND, headers={"Location": location}, body="")
    return Response(status_code=HTTPStatus.OK, content_type="application/json", body=account.model_dump(mode="json"))
