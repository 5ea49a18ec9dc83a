"""Cursors handed to API callers: the DAL's page key, bound to the listing and filters that issued it, and signed.

`<dal cursor>.<mac>`, where mac is HMAC-SHA256 over the listing's scope and the DAL cursor, keyed from the app secret.
An edited cursor, one from another listing, account, status, Post or filter, or one made up is `invalid_cursor`
(400) before it reaches DynamoDB. Replacing the app secret retires the cursors in flight: a caller starts the listing
again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

from xengage.dal.paging import InvalidCursor
from xengage.http_api import context

_KEY_LABEL: Final = b"xengage cursor key v1"
_MAC_CHARS: Final = 22  # 128 bits of the HMAC, base64url


def listing(*parts: object) -> str:
    """The scope a cursor is bound to: the route and every filter that shapes its pages (not the page size)."""
    return "\x1f".join("" if part is None else str(part) for part in parts)


def _mac(scope: str, payload: str) -> str:
    key = hmac.new(context.deps().secrets.app_text().encode(), _KEY_LABEL, hashlib.sha256)
    digest = hmac.new(key.digest(), f"{scope}\n{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]


def seal(scope: str, cursor: str | None) -> str | None:
    return f"{cursor}.{_mac(scope, cursor)}" if cursor else None


def unseal(scope: str, sealed: str | None) -> str | None:
    """The DAL cursor inside `sealed`, if this API issued it for this listing; InvalidCursor otherwise."""
    if not sealed:
        return None
    payload, dot, mac = sealed.rpartition(".")
    if not dot or not payload or not hmac.compare_digest(mac.encode(), _mac(scope, payload).encode()):
        raise InvalidCursor("cursor was not issued for this listing")
    return payload
