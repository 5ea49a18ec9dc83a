"""Credential holders. Their repr never shows a secret, so they are safe to log by accident."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AppCredentials:
    """The app's consumer key/secret (OAuth 1.0a) and its OAuth 2.0 bearer token."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    bearer_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class UserTokens:
    """One X account's access token and secret, as granted to the app (developer portal or 3-legged)."""

    access_token: str = field(repr=False)
    access_token_secret: str = field(repr=False)
    user_id: str | None = None
    screen_name: str | None = None

    @property
    def label(self) -> str:
        """How errors and logs name this account, without any secret."""
        return self.user_id or self.screen_name or "unnamed account"
