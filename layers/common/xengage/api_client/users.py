"""Whose tokens are these? `GET {X_API_URL}/2/users/me` signed with the app's consumer key and the user's tokens.

Answers `{"data": {"id", "name", "username"}}` for valid tokens and 401 for invalid or revoked ones
(shared/reference/aws-limits.md, "Verifying user tokens at X"). A 401 can also come from the app's consumer
key/secret: the app-only token endpoint tells which (app_check.py), so an app problem is never blamed on the tokens.
One attempt, cut to the caller's deadline: the caller (a PUT, the OAuth callback) can simply be repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import requests

from xengage.api_client.app_check import consumer_credentials_refused
from xengage.api_client.auth import oauth1_signer
from xengage.api_client.catalog import DEFAULT_OAUTH_BASE_URL
from xengage.api_client.credentials import AppCredentials, UserTokens
from xengage.api_client.deadline import Deadline
from xengage.api_client.errors import AppAuthError, EngagementError

USERS_ME_PATH: Final = "/2/users/me"
DEFAULT_TIMEOUT: Final = (3.05, 10.0)  # (connect, read) seconds; a deadline cuts both
MIN_CALL_SECONDS: Final = 0.5  # below this, no answer is worth waiting for
REFUSED: Final = frozenset({401, 403})  # 403: a user-context call this app may not make for the account
DEFAULT_RETRY_AFTER: Final = 60.0


@dataclass(frozen=True, slots=True)
class XUser:
    """The account X says the tokens belong to."""

    id: str
    name: str
    username: str  # the @handle without "@" (screen_name in OAuth 1.0a answers)


class TokensRejected(EngagementError):
    """X answered 401 (or 403): the access token and secret are invalid, revoked, or not this app's."""

    def __init__(self, status_code: int | None) -> None:
        why = f"HTTP {status_code} on {USERS_ME_PATH}" if status_code else "not text that can be signed"
        super().__init__(f"X refused the access token and secret ({why})")
        self.status_code = status_code  # None: refused before any call


class VerificationUnavailable(EngagementError):
    """X did not say whose tokens they are: 429, 5xx, a timeout, no connection or an unreadable answer."""

    def __init__(self, reason: str, *, retry_after: float = 0.0) -> None:
        super().__init__(f"X did not answer {USERS_ME_PATH}: {reason}")
        self.retry_after = retry_after


def fetch_me(
    app: AppCredentials,
    tokens: UserTokens,
    *,
    base_url: str | None = None,
    deadline: Deadline | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
) -> XUser:
    """The user the tokens belong to; `TokensRejected`, `AppAuthError` or `VerificationUnavailable` otherwise."""
    base = (base_url or DEFAULT_OAUTH_BASE_URL).rstrip("/")
    call_timeout = _cut(timeout, deadline)
    http = session or requests.Session()
    try:
        response = http.get(base + USERS_ME_PATH, auth=oauth1_signer(app, tokens), timeout=call_timeout)
        if response.status_code in REFUSED:
            if consumer_credentials_refused(http, app, base, timeout=_cut(timeout, deadline)):
                raise AppAuthError("X refused the app's consumer key/secret", status_code=response.status_code)
            raise TokensRejected(response.status_code)
        return _user_of(response)
    except requests.RequestException as exc:
        raise VerificationUnavailable(f"no answer from {base} ({type(exc).__name__})") from None
    except UnicodeError:
        raise TokensRejected(None) from None  # e.g. a lone surrogate from a JSON escape: no X token looks like it
    finally:
        if session is None:
            http.close()


def _cut(timeout: tuple[float, float], deadline: Deadline | None) -> tuple[float, float]:
    if deadline is None:
        return timeout
    remaining = deadline.remaining()
    if remaining < MIN_CALL_SECONDS:
        raise VerificationUnavailable(f"no time left before the deadline ({remaining:.1f} s)")
    return (min(timeout[0], remaining), min(timeout[1], remaining))


def _user_of(response: requests.Response) -> XUser:
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "")
        seconds = float(retry_after) if retry_after.isdigit() else DEFAULT_RETRY_AFTER
        raise VerificationUnavailable("rate limited (HTTP 429)", retry_after=seconds)
    if response.status_code != 200:
        raise VerificationUnavailable(f"HTTP {response.status_code}")
    try:
        data: Any = response.json()["data"]
        return XUser(id=str(data["id"]), name=str(data.get("name") or ""), username=str(data["username"]))
    except (ValueError, KeyError, TypeError):
        raise VerificationUnavailable("an answer without data.id and data.username") from None
