"""3-legged OAuth 1.0a (request token -> authorize -> access token) with requests-oauthlib.

Steps and response shapes: shared/reference/engagement-api.md section 7.3. requests-oauthlib signs every
request and parses the form-encoded answers; this module only names the steps and turns failures into
`OAuthFlowError` with the reason, never with a token or secret in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from xengage.api_client.catalog import DEFAULT_OAUTH_BASE_URL
from xengage.api_client.credentials import AppCredentials, UserTokens

if TYPE_CHECKING:
    from requests_oauthlib import OAuth1Session

REQUEST_TOKEN_PATH: Final = "/oauth/request_token"
AUTHORIZE_PATH: Final = "/oauth/authorize"
ACCESS_TOKEN_PATH: Final = "/oauth/access_token"
DEFAULT_TIMEOUT: Final = (3.05, 15.0)


class OAuthFlowError(Exception):
    """A step of the 3-legged flow failed; `step` says which and `status_code` what X answered (if it did)."""

    def __init__(self, step: str, message: str, *, status_code: int | None = None) -> None:
        super().__init__(f"OAuth {step} failed: {message}")
        self.step = step
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class RequestToken:
    """Step 1's temporary credentials; the secret is needed again in step 3."""

    oauth_token: str
    oauth_token_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuthorizationStart:
    request_token: RequestToken
    authorize_url: str


def _session(app: AppCredentials, **tokens: Any) -> OAuth1Session:
    # Imported here: only the two OAuth routes need requests-oauthlib, and every cold start of the API would pay it.
    from requests_oauthlib import OAuth1Session

    return OAuth1Session(app.consumer_key, client_secret=app.consumer_secret, **tokens)


def _fetch(step: str, base: str, fetch: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one token request, turning each way it fails into OAuthFlowError (X's words, never a secret)."""
    import requests
    from requests_oauthlib.oauth1_session import TokenMissing, TokenRequestDenied

    try:
        return fetch()
    except TokenRequestDenied as exc:
        # The body of a denial is X's error text (no credentials in it); keep it short.
        message = f"HTTP {exc.status_code}: {exc.response.text[:200].strip()}"
        raise OAuthFlowError(step, message, status_code=exc.status_code) from None
    except (TokenMissing, ValueError) as exc:
        raise OAuthFlowError(step, f"unexpected answer ({type(exc).__name__})") from None
    except requests.RequestException as exc:
        raise OAuthFlowError(step, f"no answer from {base} ({type(exc).__name__})") from None


def start_authorization(
    app: AppCredentials,
    callback_url: str,
    *,
    oauth_base_url: str = DEFAULT_OAUTH_BASE_URL,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> AuthorizationStart:
    """Step 1 (POST /oauth/request_token with oauth_callback) and the step 2 URL to send the user to."""
    base = oauth_base_url.rstrip("/")
    session = _session(app, callback_uri=callback_url)
    token = _fetch(
        "request_token", base, lambda: session.fetch_request_token(base + REQUEST_TOKEN_PATH, timeout=timeout)
    )
    if token.get("oauth_callback_confirmed") != "true":
        # RFC 5849 2.1 / X docs: without the confirmation the callback was not accepted.
        raise OAuthFlowError("request_token", "oauth_callback_confirmed is not true")
    request_token = RequestToken(oauth_token=token["oauth_token"], oauth_token_secret=token["oauth_token_secret"])
    authorize_url = session.authorization_url(base + AUTHORIZE_PATH)
    return AuthorizationStart(request_token=request_token, authorize_url=authorize_url)


def finish_authorization(
    app: AppCredentials,
    request_token: RequestToken,
    verifier: str,
    *,
    oauth_base_url: str = DEFAULT_OAUTH_BASE_URL,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> UserTokens:
    """Step 3: exchange the request token and the callback's oauth_verifier for the account's tokens."""
    base = oauth_base_url.rstrip("/")
    session = _session(
        app,
        resource_owner_key=request_token.oauth_token,
        resource_owner_secret=request_token.oauth_token_secret,
        verifier=verifier,
    )
    token = _fetch("access_token", base, lambda: session.fetch_access_token(base + ACCESS_TOKEN_PATH, timeout=timeout))
    user_id = token.get("user_id")
    if not user_id:
        raise OAuthFlowError("access_token", "the answer names no user_id")
    return UserTokens(
        access_token=token["oauth_token"],
        access_token_secret=token["oauth_token_secret"],
        user_id=str(user_id),
        screen_name=token.get("screen_name") or None,
    )
