"""Routes of /accounts: register an account's tokens, read, list, delete; rank its Posts by a metric."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from xengage.api_client.credentials import UserTokens
from xengage.dal import secrets
from xengage.dal.registry import Account
from xengage.http_api import context, cursors
from xengage.http_api.errors import answers, not_found
from xengage.http_api.models import AccountOut, AccountPage, AccountTokensIn
from xengage.http_api.params import CursorQuery, UserIdPath
from xengage.observability import logger
from xengage.timeutil import to_iso, utc_now

router = Router()

ERRORS = answers({404: "account not registered (account_not_found)"})


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
    secrets.save_account_tokens(context.settings().secret_prefix, tokens)
    account = context.registry().put_account(tokens.user_id, tokens.screen_name, now=to_iso(utc_now()))
    logger.info("account registered", extra={"account_id": tokens.user_id})
    return account


def require_account(user_id: str) -> Account:
    account = context.registry().get_account(user_id)
    if account is None:
        raise not_found("account", user_id)
    return account


@router.put(
    "/accounts/<user_id>",
    summary="Register or update an account's OAuth tokens",
    tags=["accounts"],
    responses=answers(ok="the account, active", with_body=True),
)
def put_account(user_id: UserIdPath, body: AccountTokensIn) -> AccountOut:
    tokens = UserTokens(
        access_token=body.access_token.get_secret_value(),
        access_token_secret=body.access_token_secret.get_secret_value(),
        user_id=user_id,
        screen_name=body.screen_name,
    )
    return account_out(register_account(tokens))


@router.get("/accounts/<user_id>", summary="Read an account", tags=["accounts"], responses=ERRORS)
def get_account(user_id: UserIdPath) -> AccountOut:
    return account_out(require_account(user_id))


@router.delete(
    "/accounts/<user_id>", summary="Remove an account and its token secret", tags=["accounts"], responses=ERRORS
)
def delete_account(user_id: UserIdPath) -> AccountOut:
    account = require_account(user_id)
    secrets.delete_account_tokens(context.settings().secret_prefix, user_id)
    context.registry().delete_account(user_id)
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
    page = context.registry().list_accounts(limit=limit, cursor=cursors.unseal(scope, cursor))
    return AccountPage(
        accounts=[account_out(account) for account in page.items], next_cursor=cursors.seal(scope, page.cursor)
    )
