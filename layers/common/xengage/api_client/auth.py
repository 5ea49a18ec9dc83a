"""Which credentials sign a call, and the requests `AuthBase` that does the signing.

Bearer for /totals public metrics, OAuth 1.0a (requests-oauthlib) with the Post owner's tokens otherwise.
A fresh `AuthBase` is built for every attempt and requests runs it while preparing each new request, so
a retried OAuth call always carries a new nonce and timestamp (a replayed nonce is rejected by X).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import requests
from requests_oauthlib import OAuth1

from xengage.api_client.catalog import Endpoint, needs_user_context
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.errors import UserContextRequired


class AuthKind(StrEnum):
    BEARER = "bearer"
    OAUTH1 = "oauth1"


class BearerAuth(requests.auth.AuthBase):
    """App-only OAuth 2.0 bearer token (requests ships no bearer helper)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(****)"


@dataclass(frozen=True, slots=True)
class AuthChoice:
    """The credentials one call uses; `account` names them in errors and logs (never a secret)."""

    kind: AuthKind
    app: AppCredentials
    user: UserTokens | None = None

    @property
    def account(self) -> str | None:
        return self.user.label if self.user is not None else None

    def new_auth(self) -> requests.auth.AuthBase:
        """A signer for one attempt; OAuth 1.0a gets a new nonce/timestamp each time it signs."""
        if self.kind is AuthKind.BEARER:
            return BearerAuth(self.app.bearer_token)
        assert self.user is not None  # choose_auth guarantees tokens for OAuth 1.0a
        return oauth1_signer(self.app, self.user)


def choose_auth(endpoint: Endpoint, metrics: Sequence[str], app: AppCredentials, user: UserTokens | None) -> AuthChoice:
    """Bearer when the app token suffices; else the owner's tokens, refused before any HTTP call when absent."""
    if not needs_user_context(endpoint, list(metrics)):
        return AuthChoice(AuthKind.BEARER, app)
    if user is None or not user.access_token or not user.access_token_secret:
        private = [m for m in metrics if endpoint.is_time_series or needs_user_context(endpoint, [m])]
        what = f"/{endpoint.value}" if endpoint.is_time_series else f"/totals metrics {', '.join(private)}"
        raise UserContextRequired(f"{what} need the Post owner's OAuth 1.0a access token and secret (user=...)")
    return AuthChoice(AuthKind.OAUTH1, app, user)


def oauth1_signer(
    app: AppCredentials, user: UserTokens, *, nonce: str | None = None, timestamp: str | None = None
) -> OAuth1:
    """The OAuth 1.0a signer the client uses; nonce/timestamp are fixed only by signature tests."""
    return OAuth1(
        app.consumer_key,
        client_secret=app.consumer_secret,
        resource_owner_key=user.access_token,
        resource_owner_secret=user.access_token_secret,
        nonce=nonce,
        timestamp=timestamp,
    )
