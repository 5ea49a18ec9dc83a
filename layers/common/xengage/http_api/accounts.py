"""Routes of /accounts: register an account's tokens, read, list, delete; rank its Posts by a metric."""

from __future__ import annotations

import dataclasses
from http import HTTPStatus
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from xengage.api_client.credentials import UserTokens
from xengage.api_client.deadline import API_GATEWAY_TIMEOUT_SECONDS, Deadline
from xengage.dal.registry import Account
from xengage.http_api import context, cursors
from xengage.http_api.errors import ApiError, answers, not_found
from xengage.http_api.models import AccountOut, AccountPage, AccountTokensIn
from xengage.http_api.params import CursorQuery, UserIdPath
from xengage.observability import logger
from xengage.timeutil import to_iso, utc_now

router = Router()

ERRORS = answers({404: "account not registered (account_not_found)"})
# What checking tokens at X (GET /2/users/me) can answer: PUT /accounts and the OAuth callback document these.
TOKENS_REJECTED: Final = "tokens_rejected"
TOKEN_USER_MISMATCH: Final = "token_user_mismatch"
X_UNAVAILABLE: Final = "x_unavailable"
VERIFY_ERRORS: Final = {
    400: "X refused the access token and secret (tokens_rejected)",
    409: "the tokens belong to another X user than the one named; the message names both ids (token_user_mismatch)",
    503: "X did not answer whose tokens they are (x_unavailable, with Retry-After), or it refused the app's "
    "credentials (app_credentials_refused); nothing was stored",
}
VERIFY_RESERVE_SECONDS: Final = 3.0  # after X answers: store the secret and the registry row, then answer


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        user_id=account.user_id,
        screen_name=account.screen_name,
        status="needs_reauth" if account.needs_reauth else "active",
        last_success_at=account.last_success_at,
        last_error=account.last_error,
    )


def register_account(tokens: UserTokens) -> Account:
    """Store the tokens in the account's secret first, then mark the account active in the registry.

    Secret first: a registry row never points at tokens that were not saved.
    """
    assert tokens.user_id is not None
    context.deps().secrets.save_tokens(tokens)
    account = context.deps().registry.put_account(tokens.user_id, tokens.screen_name, now=to_iso(utc_now()))
    logger.info("account registered", extra={"account_id": tokens.user_id})
    return account


def verified(tokens: UserTokens, user_id: str, *, again: str = "try again") -> UserTokens:
    """Ask X whose tokens they are (GET /2/users/me) before anything is stored; X's @handle replaces the given one.

    Refused tokens, tokens of another user and an X that does not answer are all errors: nothing is stored then.
    """
    # Imported here: requests and oauthlib load with the routes that call X, not with every cold start of the API.
    from xengage.api_client.users import TokensRejected, VerificationUnavailable, fetch_me

    settings = context.deps().settings
    app = context.deps().secrets.load_app()
    try:
        user = fetch_me(app, tokens, base_url=settings.x_api_url, deadline=verify_deadline())
    except TokensRejected as exc:
        raise ApiError(
            HTTPStatus.BAD_REQUEST, TOKENS_REJECTED, f"{exc}: get new tokens for account {user_id}; nothing was stored"
        ) from None
    except VerificationUnavailable as exc:
        raise x_unavailable(exc.retry_after, f"{exc}; nothing was stored, {again}") from None
    if user.id != user_id:
        raise ApiError(
            HTTPStatus.CONFLICT,
            TOKEN_USER_MISMATCH,
            f"the tokens belong to X user {user.id} (@{user.username}), not to user {user_id}; nothing was stored",
        )
    logger.info("tokens verified at X", extra={"account_id": user_id})
    return dataclasses.replace(tokens, user_id=user.id, screen_name=user.username)


def x_unavailable(retry_after: float, message: str) -> ApiError:
    seconds = max(1, round(retry_after))
    return ApiError(HTTPStatus.SERVICE_UNAVAILABLE, X_UNAVAILABLE, message, headers={"Retry-After": str(seconds)})


def verify_deadline() -> Deadline:
    """API Gateway's 29 s, or the function's remaining time if shorter, less what follows the call to X."""
    remaining_millis = API_GATEWAY_TIMEOUT_SECONDS * 1000
    lambda_context: Any = getattr(router, "lambda_context", None)
    if hasattr(lambda_context, "get_remaining_time_in_millis"):
        remaining_millis = min(remaining_millis, lambda_context.get_remaining_time_in_millis())
    return Deadline.from_remaining_millis(int(remaining_millis), reserve_seconds=VERIFY_RESERVE_SECONDS)


def require_account(user_id: str) -> Account:
    account = context.deps().registry.get_account(user_id)
    if account is None:
        raise not_found("account", user_id)
    return account


@router.put(
    "/accounts/<user_id>",
    summary="Register or update an account's OAuth tokens, once X confirms they are this user's",
    tags=["accounts"],
    responses=answers(VERIFY_ERRORS, ok="the account, active, with the @handle X returned", with_body=True),
)
def put_account(user_id: UserIdPath, body: AccountTokensIn) -> AccountOut:
    tokens = UserTokens(
        access_token=body.access_token.get_secret_value(),
        access_token_secret=body.access_token_secret.get_secret_value(),
        user_id=user_id,
        screen_name=body.screen_name,
    )
    return account_out(register_account(verified(tokens, user_id)))


@router.get("/accounts/<user_id>", summary="Read an account", tags=["accounts"], responses=ERRORS)
def get_account(user_id: UserIdPath) -> AccountOut:
    return account_out(require_account(user_id))


@router.delete(
    "/accounts/<user_id>", summary="Remove an account and its token secret", tags=["accounts"], responses=ERRORS
)
def delete_account(user_id: UserIdPath) -> AccountOut:
    account = require_account(user_id)
    context.deps().secrets.delete_tokens(user_id)
    context.deps().registry.delete_account(user_id)
    logger.info("account deleted", extra={"account_id": user_id})
    return account_out(account)


@router.get(
    "/accounts",
    summary="List registered accounts",
    tags=["accounts"],
    responses=answers({400: "a cursor this API did not issue for this listing (invalid_cursor)"}),
)
def list_accounts(
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> AccountPage:
    scope = cursors.listing("accounts")
    page = context.deps().registry.list_accounts(limit=limit, cursor=cursors.unseal(scope, cursor))
    return AccountPage(
        accounts=[account_out(account) for account in page.items], next_cursor=cursors.seal(scope, page.cursor)
    )
