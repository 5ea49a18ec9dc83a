"""Secrets Manager through Powertools parameters (cached 5 min): app credentials, account tokens, OAuth state.

Names follow docs/DESIGN.md: the app secret's ARN/name, `{prefix}accounts/{user_id}` and
`{prefix}oauth-pending/{oauth_token}`. Values are returned as credential objects whose repr hides secrets;
nothing here logs a value.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.dal.aws import secretsmanager_client

SECRET_MAX_AGE_SECONDS: Final = 300


class MissingSecret(LookupError):
    """The secret is absent or not the expected JSON; the message names the secret, never its value."""


def account_secret_name(prefix: str, user_id: str) -> str:
    return f"{prefix}accounts/{user_id}"


def pending_secret_name(prefix: str, oauth_token: str) -> str:
    return f"{prefix}oauth-pending/{oauth_token}"


def _get_json(name: str, *, force_fetch: bool = False) -> dict[str, Any]:
    try:
        value = parameters.get_secret(name, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch)
    except (GetParameterError, TransformParameterError) as exc:
        raise MissingSecret(f"secret {name} is missing or not JSON") from exc
    if not isinstance(value, dict):
        raise MissingSecret(f"secret {name} is not a JSON object")
    return value


def load_app_credentials(app_secret_name: str) -> AppCredentials:
    value = _get_json(app_secret_name)
    try:
        return AppCredentials(
            consumer_key=str(value["consumer_key"]),
            consumer_secret=str(value["consumer_secret"]),
            bearer_token=str(value["bearer_token"]),
        )
    except KeyError as exc:
        raise MissingSecret(f"secret {app_secret_name} lacks field {exc.args[0]}") from exc


def load_account_tokens(prefix: str, user_id: str) -> UserTokens:
    name = account_secret_name(prefix, user_id)
    value = _get_json(name)
    try:
        return UserTokens(
            access_token=str(value["access_token"]),
            access_token_secret=str(value["access_token_secret"]),
            user_id=str(value.get("user_id") or user_id),
            screen_name=value.get("screen_name"),
        )
    except KeyError as exc:
        raise MissingSecret(f"secret {name} lacks field {exc.args[0]}") from exc


def store_account_tokens(prefix: str, tokens: UserTokens) -> None:
    """Create or update an account's tokens (after 3-legged OAuth or a manual registration)."""
    if not tokens.user_id:
        raise ValueError("tokens must name their user_id to be stored")
    name = account_secret_name(prefix, tokens.user_id)
    parameters.set_secret(
        name=name,
        value=json.dumps(
            {
                "access_token": tokens.access_token,
                "access_token_secret": tokens.access_token_secret,
                "user_id": tokens.user_id,
                "screen_name": tokens.screen_name,
            }
        ),
    )
    # The next read must see the new tokens, not the 5-minute cached ones.
    _get_json(name, force_fetch=True)


def delete_secret(name: str) -> bool:
    """Delete a secret at once (no recovery window); False when it did not exist."""
    client = secretsmanager_client()
    try:
        client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except client.exceptions.ResourceNotFoundException:
        return False
    return True


def delete_account_tokens(prefix: str, user_id: str) -> bool:
    return delete_secret(account_secret_name(prefix, user_id))


def store_pending_request(prefix: str, oauth_token: str, oauth_token_secret: str, *, expires_at: str) -> None:
    """Keep a 3-legged OAuth request token until its callback (deleted there)."""
    parameters.set_secret(
        name=pending_secret_name(prefix, oauth_token),
        value=json.dumps(
            {"oauth_token": oauth_token, "oauth_token_secret": oauth_token_secret, "expires_at": expires_at}
        ),
    )


def load_pending_request(prefix: str, oauth_token: str) -> dict[str, str]:
    """The pending request token's fields; read uncached (it is used once)."""
    value = _get_json(pending_secret_name(prefix, oauth_token), force_fetch=True)
    return {str(k): str(v) for k, v in value.items()}


def delete_pending_request(prefix: str, oauth_token: str) -> bool:
    return delete_secret(pending_secret_name(prefix, oauth_token))
