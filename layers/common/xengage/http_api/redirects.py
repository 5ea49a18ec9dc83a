"""Where the OAuth callback may send a browser: only to the deployment's allowlist (template OAuthRedirectAllowlist).

Without it the callback would be an open redirect on the API's domain. An entry is an origin
(`https://app.example.com`: any path there) or a URL prefix (`https://app.example.com/after-oauth/`); an empty list
means the callback never redirects and answers the account as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import SplitResult, urlsplit

from xengage.http_api.errors import ApiError, bad_request

# Control characters and spaces, raw or percent-encoded, and backslashes (browsers read `\` as `/`).
_UNSAFE: Final = re.compile(r"[\x00-\x20\x7f\\]|%(?:[01][0-9a-f]|7f|20|5c)", re.IGNORECASE)
FIELD: Final = "redirect_uri"


def _absolute_web_url(value: str) -> SplitResult:
    if _UNSAFE.search(value):
        raise bad_request("invalid_redirect_uri", f"{FIELD}: control characters, spaces and backslashes are refused")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise bad_request("invalid_redirect_uri", f"{FIELD}: not a URL") from None
    if parts.scheme.lower() not in {"http", "https"} or not host:
        raise bad_request("invalid_redirect_uri", f"{FIELD}: must be an absolute http(s) URL")
    if "@" in parts.netloc:
        raise bad_request("invalid_redirect_uri", f"{FIELD}: a user name or password in the URL is refused")
    return parts


def _matches(parts: SplitResult, entry: str) -> bool:
    allowed = urlsplit(entry)
    if (parts.scheme.lower(), parts.netloc.lower()) != (allowed.scheme.lower(), allowed.netloc.lower()):
        return False
    prefix = allowed.path
    if prefix in {"", "/"}:
        return True
    if prefix.endswith("/"):
        return parts.path.startswith(prefix)
    # A prefix ends at a path segment: /app allows /app and /app/done, never /app.evil.
    return parts.path == prefix or parts.path.startswith(prefix + "/")


def is_allowed(value: str, allowlist: Sequence[str]) -> bool:
    try:
        parts = _absolute_web_url(value)
    except ApiError:
        return False
    return any(_matches(parts, entry) for entry in allowlist)


def allowed_redirect(value: str | None, allowlist: Sequence[str]) -> str | None:
    """The redirect_uri when it is safe and on the allowlist; 400 `invalid_redirect_uri` naming why otherwise."""
    if value is None or value == "":
        return None
    parts = _absolute_web_url(value)
    if not allowlist:
        raise bad_request(
            "invalid_redirect_uri",
            f"{FIELD}: this deployment redirects nowhere (its OAuthRedirectAllowlist is empty); "
            "omit redirect_uri and the callback answers the account as JSON",
        )
    if not any(_matches(parts, entry) for entry in allowlist):
        raise bad_request(
            "invalid_redirect_uri",
            f"{FIELD}: {parts.scheme}://{parts.netloc[:100]} with that path is not on this deployment's "
            "OAuthRedirectAllowlist",
        )
    return value
