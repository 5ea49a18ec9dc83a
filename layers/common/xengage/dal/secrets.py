"""Secrets Manager through a Powertools SecretsProvider (cached 5 min): app credentials, account tokens, OAuth state.

Each `SecretStore` owns its provider, so its cache lives as long as the store (one per `Deps`, that is per cold
start): a new store starts with nothing cached.

Names follow docs/DESIGN.md: the app secret's ARN/name, `{prefix}accounts/{user_id}` and
`{prefix}oauth-pending/{oauth_token}`. Values are returned as credential objects whose repr hides secrets;
nothing here logs a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.dal.aws import secretsmanager_client
from xengage.timeutil import parse_iso, to_iso, utc_now

SECRET_MAX_AGE_SECONDS: Final = 300
# What template.yaml puts in the app secret until the operator stores the real credentials.
APP_SECRET_PLACEHOLDER: Final = "REPLACE_ME"


class SecretError(Exception):
    """A secret could not be used; the message names the secret, never its value."""


class SecretNotFoundError(SecretError, LookupError):
    """The secret does not exist (never stored, or deleted)."""


class SecretContentError(SecretError, ValueError):
    """The secret exists but is not the JSON object expected (or lacks a field)."""


class AppSecretPlaceholder(SecretContentError):
    """The app secret still holds the template's placeholder values: nothing may be sent to X with them."""


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """A 3-legged OAuth request token waiting for its callback."""

    oauth_token: str
    oauth_token_secret: str = field(repr=False)
    expires_at: datetime = field(default_factory=utc_now)
    redirect_uri: str | None = None

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def account_secret_name(prefix: str, user_id: str) -> str:
    return f"{prefix}accounts/{user_id}"


def pending_secret_name(prefix: str, oauth_token: str) -> str:
    return f"{prefix}oauth-pending/{oauth_token}"


class SecretStore:
    """The secrets of one deployment: the app secret (`app_secret_name`) and those under `prefix`."""

    def __init__(self, prefix: str, app_secret_name: str | None = None) -> None:
        self.prefix = prefix
        self._app_secret_name = app_secret_name
        self._provider: SecretsProvider | None = None

    @property
    def provider(self) -> SecretsProvider:
        if self._provider is None:  # built at first use: a function that reads no secret never builds the client
            self._provider = SecretsProvider(boto3_client=secretsmanager_client())
        return self._provider

    @property
    def app_secret_name(self) -> str:
        if not self._app_secret_name:
            raise RuntimeError("APP_SECRET_ARN is not set: this function has no app secret")
        return self._app_secret_name

    def _get_json(self, name: str, *, force_fetch: bool = False) -> dict[str, Any]:
        try:
            value = self.provider.get(name, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch)
        except TransformParameterError as exc:
            raise SecretContentError(f"secret {name} is not JSON") from exc
        except GetParameterError as exc:
            # Powertools wraps the SDK error; its context (or text) tells "absent" from other failures.
            cause = exc.__cause__ or exc.__context__
            code = getattr(cause, "response", {}).get("Error", {}).get("Code") if cause else None
            if code == "ResourceNotFoundException" or "ResourceNotFoundException" in str(exc):
                raise SecretNotFoundError(f"secret {name} does not exist") from exc
            raise
        if not isinstance(value, dict):
            raise SecretContentError(f"secret {name} is not a JSON object")
        return value

    def load_app(self, *, fresh: bool = False) -> AppCredentials:
        """The app's credentials (cached 5 min, unless `fresh`); AppSecretPlaceholder while the template's
        placeholders are there."""
        name = self.app_secret_name
        value = self._get_json(name, force_fetch=fresh)
        try:
            app = AppCredentials(
                consumer_key=str(value["consumer_key"]),
                consumer_secret=str(value["consumer_secret"]),
                bearer_token=str(value["bearer_token"]),
            )
        except KeyError as exc:
            raise SecretContentError(f"secret {name} lacks field {exc.args[0]}") from exc
        placeholders = [
            field
            for field in ("consumer_key", "consumer_secret", "bearer_token")
            if value[field] == APP_SECRET_PLACEHOLDER
        ]
        if placeholders:
            raise AppSecretPlaceholder(
                f"secret {name} still holds the template's placeholder for {', '.join(placeholders)}: "
                "put the app's consumer key, consumer secret and bearer token there (README, Deploy)"
            )
        return app

    def app_text(self) -> str:
        """The app secret's value as stored (cached 5 min), placeholders or not: key material for signing cursors."""
        return str(self.provider.get(self.app_secret_name, max_age=SECRET_MAX_AGE_SECONDS))

    def app_version(self) -> str | None:
        """The version id of the app secret's current value (DescribeSecret: metadata only, never the value).

        A paused deployment resumes when this changes: the operator stored new credentials.
        """
        response = secretsmanager_client().describe_secret(SecretId=self.app_secret_name)
        for version, stages in (response.get("VersionIdsToStages") or {}).items():
            if "AWSCURRENT" in stages:
                return str(version)
        return None

    def load_tokens(self, user_id: str) -> UserTokens:
        name = account_secret_name(self.prefix, user_id)
        value = self._get_json(name)
        try:
            return UserTokens(
                access_token=str(value["access_token"]),
                access_token_secret=str(value["access_token_secret"]),
                user_id=str(value.get("user_id") or user_id),
                screen_name=value.get("screen_name"),
            )
        except KeyError as exc:
            raise SecretContentError(f"secret {name} lacks field {exc.args[0]}") from exc

    def save_tokens(self, tokens: UserTokens) -> None:
        """Create or update an account's tokens (after 3-legged OAuth or a manual registration)."""
        if not tokens.user_id:
            raise ValueError("tokens must name their user_id to be stored")
        name = account_secret_name(self.prefix, tokens.user_id)
        self.provider.set(
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
        self._get_json(name, force_fetch=True)

    def delete_tokens(self, user_id: str) -> bool:
        return delete_secret(account_secret_name(self.prefix, user_id))

    def save_pending(self, pending: PendingAuthorization) -> None:
        """Keep a 3-legged OAuth request token until its callback (which deletes it)."""
        self.provider.set(
            name=pending_secret_name(self.prefix, pending.oauth_token),
            value=json.dumps(
                {
                    "oauth_token": pending.oauth_token,
                    "oauth_token_secret": pending.oauth_token_secret,
                    "expires_at": to_iso(pending.expires_at),
                    "redirect_uri": pending.redirect_uri,
                }
            ),
        )

    def load_pending(self, oauth_token: str) -> PendingAuthorization:
        """The pending request token, read uncached (it is used once). SecretNotFoundError when unknown."""
        name = pending_secret_name(self.prefix, oauth_token)
        value = self._get_json(name, force_fetch=True)
        try:
            return PendingAuthorization(
                oauth_token=str(value["oauth_token"]),
                oauth_token_secret=str(value["oauth_token_secret"]),
                expires_at=parse_iso(str(value["expires_at"])),
                redirect_uri=value.get("redirect_uri"),
            )
        except (KeyError, ValueError) as exc:
            raise SecretContentError(f"secret {name} is not a pending authorization") from exc

    def delete_pending(self, oauth_token: str) -> bool:
        return delete_secret(pending_secret_name(self.prefix, oauth_token))


def delete_secret(name: str) -> bool:
    """Delete a secret at once (no recovery window); False when it did not exist."""
    client = secretsmanager_client()
    try:
        client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    except client.exceptions.ResourceNotFoundException:
        return False
    return True
