"""Is it the app or the account? A 401 on an OAuth 1.0a call ("Could not authenticate you", "Invalid signature")
can come from the app's consumer key/secret or from the account's tokens, and only the first must never be blamed
on an account. X's app-only token endpoint answers that: it issues a bearer token for a valid consumer key and
secret, and refuses (403, code 99) anything else.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

import requests

from xengage.api_client.credentials import AppCredentials
from xengage.observability import client_logger as logger

TOKEN_PATH: Final = "/oauth2/token"
REFUSED_STATUSES: Final = frozenset({400, 401, 403})


def consumer_credentials_refused(
    session: requests.Session, app: AppCredentials, oauth_base_url: str, *, timeout: float | tuple[float, float]
) -> bool | None:
    """True when X refuses the app's consumer key/secret, False when it accepts them, None when it cannot tell.

    The client-credentials grant (RFC 6749 4.4) with HTTP Basic of the URL-encoded key and secret, as X documents.
    """
    try:
        response = session.post(
            f"{oauth_base_url.rstrip('/')}{TOKEN_PATH}",
            data={"grant_type": "client_credentials"},
            auth=(quote(app.consumer_key, safe=""), quote(app.consumer_secret, safe="")),
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        logger.warning("app credential check could not reach %s: %s", oauth_base_url, type(exc).__name__)
        return None
    if response.status_code == 200:
        return False
    if response.status_code in REFUSED_STATUSES:
        return True
    return None
