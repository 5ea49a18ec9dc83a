"""Server-side OAuth for the emulator, all verified by oauthlib.

- OAuth 1.0a on the data endpoints (ResourceEndpoint) and the 3-legged flow (request token, authorize,
  access token), backed by `EmulatorValidator` over the World's app and tokens.
- OAuth 2.0 app-only bearer token (`POST /oauth2/token`, client credentials grant).

The JSON body of data calls is not signed (RFC 5849 3.4.1.3.1); oauthlib already leaves non-form bodies
out of the base string.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from oauthlib import oauth1, oauth2
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import errors as oauth1_errors

from .world import User, World

_DUMMY = "emulator-dummy"
_TOKEN_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")


@dataclass
class _PendingRequestToken:
    secret: str
    client_key: str
    callback: str
    approved_user: str | None = None
    verifier: str | None = None


class EmulatorValidator(oauth1.RequestValidator):
    """oauthlib's hooks answered from the World. Failure reasons are left on the oauthlib request."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        self._lock = threading.Lock()
        self._nonces: dict[tuple[str, str, str, str], int] = {}
        self._pending: dict[str, _PendingRequestToken] = {}

    # Real X tokens look like "370773112-GmHxMAgY...": allow '-', '_' and any sensible length.
    @property
    def safe_characters(self) -> set[str]:
        return _TOKEN_CHARACTERS

    @property
    def client_key_length(self) -> tuple[int, int]:
        return 1, 200

    @property
    def request_token_length(self) -> tuple[int, int]:
        return 1, 200

    @property
    def access_token_length(self) -> tuple[int, int]:
        return 1, 200

    @property
    def nonce_length(self) -> tuple[int, int]:
        return 1, 200

    @property
    def verifier_length(self) -> tuple[int, int]:
        return 1, 200

    @property
    def enforce_ssl(self) -> bool:
        return False  # the emulator serves plain http on loopback

    @property
    def dummy_client(self) -> str:
        return _DUMMY

    @property
    def dummy_request_token(self) -> str:
        return _DUMMY

    @property
    def dummy_access_token(self) -> str:
        return _DUMMY

    # --- client (the app) ---------------------------------------------------------------------------------
    def validate_client_key(self, client_key: str, request: OAuthRequest) -> bool:
        return client_key == self.world.app.consumer_key

    def get_client_secret(self, client_key: str, request: OAuthRequest) -> str:
        app = self.world.app  # read once: a rotation in between must not pair an old key with a new secret
        return app.consumer_secret if client_key == app.consumer_key else _DUMMY

    def validate_timestamp_and_nonce(
        self,
        client_key: str,
        timestamp: str,
        nonce: str,
        request: OAuthRequest,
        request_token: str | None = None,
        access_token: str | None = None,
    ) -> bool:
        key = (client_key, timestamp, nonce, request_token or access_token or "")
        now = int(time.time())
        with self._lock:
            if key in self._nonces:
                request.emulator_failure = "Nonce already used"
                return False
            if len(self._nonces) > 50_000:  # beyond the timestamp window a replay fails on its timestamp anyway
                cutoff = now - 2 * self.timestamp_lifetime
                self._nonces = {k: ts for k, ts in self._nonces.items() if ts >= cutoff}
            self._nonces[key] = int(timestamp)
        return True

    def get_default_realms(self, client_key: str, request: OAuthRequest) -> list[str]:
        return []

    def validate_requested_realms(self, client_key: str, realms: list[str], request: OAuthRequest) -> bool:
        return True

    def validate_realms(
        self, client_key: str, token: str, request: OAuthRequest, uri: str | None = None, realms: Any = None
    ) -> bool:
        return True

    def get_realms(self, token: str, request: OAuthRequest) -> list[str]:
        return []

    def verify_realms(self, token: str, realms: list[str], request: OAuthRequest) -> bool:
        return True

    # --- access tokens (data endpoints) ----------------------------------------------------------------
    def validate_access_token(self, client_key: str, token: str, request: OAuthRequest) -> bool:
        return self.world.token_owner(token) is not None

    def get_access_token_secret(self, client_key: str, token: str, request: OAuthRequest) -> str:
        return self.world.token_secret(token) or _DUMMY

    # --- 3-legged flow -----------------------------------------------------------------------------------
    def validate_redirect_uri(self, client_key: str, redirect_uri: str, request: OAuthRequest) -> bool:
        return redirect_uri == "oob" or redirect_uri.startswith(("http://", "https://"))

    def save_request_token(self, token: dict[str, str], request: OAuthRequest) -> None:
        with self._lock:
            self._pending[token["oauth_token"]] = _PendingRequestToken(
                secret=token["oauth_token_secret"], client_key=request.client_key, callback=request.redirect_uri
            )

    def verify_request_token(self, token: str, request: OAuthRequest) -> bool:
        with self._lock:
            return token in self._pending

    def approve(self, request_token: str, user_id: str) -> bool:
        """The user behind /oauth/authorize says yes; False when the request token is unknown."""
        with self._lock:
            pending = self._pending.get(request_token)
            if pending is None:
                return False
            pending.approved_user = user_id
            return True

    def get_redirect_uri(self, token: str, request: OAuthRequest) -> str:
        with self._lock:
            return self._pending[token].callback

    def save_verifier(self, token: str, verifier: dict[str, str], request: OAuthRequest) -> None:
        with self._lock:
            self._pending[token].verifier = verifier["oauth_verifier"]

    def validate_request_token(self, client_key: str, token: str, request: OAuthRequest) -> bool:
        with self._lock:
            pending = self._pending.get(token)
            return pending is not None and pending.client_key == client_key

    def get_request_token_secret(self, client_key: str, token: str, request: OAuthRequest) -> str:
        with self._lock:
            pending = self._pending.get(token)
        return pending.secret if pending else _DUMMY

    def validate_verifier(self, client_key: str, token: str, verifier: str, request: OAuthRequest) -> bool:
        with self._lock:
            pending = self._pending.get(token)
        return (
            pending is not None
            and pending.verifier is not None
            and pending.approved_user is not None
            and secrets.compare_digest(pending.verifier, verifier)
        )

    def save_access_token(self, token: dict[str, str], request: OAuthRequest) -> None:
        with self._lock:
            pending = self._pending[request.resource_owner_key]
        assert pending.approved_user is not None  # validate_verifier checked it
        user = self.world.users[pending.approved_user]
        self.world.register_access_token(user.user_id, token["oauth_token"], token["oauth_token_secret"])
        # oauthlib urlencodes this same dict after saving: X's response also names the user.
        token.pop("oauth_authorized_realms", None)
        token["user_id"] = user.user_id
        token["screen_name"] = user.screen_name

    def invalidate_request_token(self, client_key: str, request_token: str, request: OAuthRequest) -> None:
        with self._lock:
            self._pending.pop(request_token, None)


class _ReasonRecordingResourceEndpoint(oauth1.ResourceEndpoint):
    """ResourceEndpoint that keeps the reason of a failed parameter check (stale timestamp, bad method...)."""

    def _check_mandatory_parameters(self, request: OAuthRequest) -> None:
        try:
            super()._check_mandatory_parameters(request)
        except oauth1_errors.OAuth1Error as exc:
            request.emulator_failure = exc.description or exc.error
            raise


@dataclass(frozen=True, slots=True)
class OAuth1Verdict:
    user: User | None
    failure: str | None  # the "Reason: ..." text when user is None


class OAuthServer:
    """All OAuth endpoints of the emulator over one validator and World."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.validator = EmulatorValidator(world)
        self._resource = _ReasonRecordingResourceEndpoint(self.validator)
        self._request_token = oauth1.RequestTokenEndpoint(self.validator)
        self._authorization = oauth1.AuthorizationEndpoint(self.validator)
        self._access_token = oauth1.AccessTokenEndpoint(self.validator)
        self._app_only = oauth2.BackendApplicationServer(
            _AppOnlyValidator(world), token_generator=lambda _request: world.app.bearer_token
        )

    def verify_resource_request(self, uri: str, method: str, body: bytes, headers: dict[str, str]) -> OAuth1Verdict:
        valid, request = self._resource.validate_protected_resource_request(
            uri, http_method=method, body=body.decode("utf-8", "replace"), headers=headers
        )
        if valid and request is not None:
            owner = self.world.token_owner(request.resource_owner_key)
            # None only when the token was revoked between oauthlib's check and this line
            return OAuth1Verdict(owner, None if owner is not None else "Access token not found")
        return OAuth1Verdict(None, _failure_reason(request))

    def request_token(self, uri: str, body: str, headers: dict[str, str]) -> tuple[dict[str, str], str | None, int]:
        return self._request_token.create_request_token_response(uri, "POST", body, headers)

    def authorize(self, uri: str, request_token: str, user_id: str) -> tuple[dict[str, str], str | None, int]:
        if user_id not in self.world.users:
            return {}, f"unknown user {user_id}", 400
        if not self.validator.approve(request_token, user_id):
            return {}, "unknown or expired oauth_token", 401
        try:
            return self._authorization.create_authorization_response(uri, "GET")
        except oauth1_errors.OAuth1Error as exc:
            return {}, exc.urlencoded, exc.status_code

    def access_token(self, uri: str, body: str, headers: dict[str, str]) -> tuple[dict[str, str], str | None, int]:
        return self._access_token.create_access_token_response(uri, "POST", body, headers)

    def app_only_token(self, uri: str, body: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """POST /oauth2/token: X's shape `{"token_type":"bearer","access_token":...}`; bad client -> 403."""
        _headers, raw, status = self._app_only.create_token_response(uri, "POST", body, headers)
        answer = json.loads(raw) if raw else {}
        if status == 200:
            return 200, {"token_type": "bearer", "access_token": answer["access_token"]}
        if answer.get("error") == "invalid_client":
            message = "Unable to verify your credentials"
            return 403, {"errors": [{"code": 99, "label": "authenticity_token_error", "message": message}]}
        return status, {"errors": [{"code": 170, "message": answer.get("error_description") or answer.get("error")}]}


def _failure_reason(request: OAuthRequest | None) -> str:
    if request is None:
        return "Malformed OAuth parameters"
    recorded = getattr(request, "emulator_failure", None)
    if recorded:
        return str(recorded)
    log = request.validator_log
    if not log:
        return "Access token not found"  # oauthlib rejects badly formed tokens before logging anything
    if not log.get("client"):
        return "Unknown consumer key"
    if not log.get("resource_owner"):
        return "Access token not found"
    return "Invalid signature"


class _AppOnlyValidator(oauth2.RequestValidator):
    """Client credentials grant: HTTP Basic with the URL-encoded consumer key and secret."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def client_authentication_required(self, request: OAuthRequest, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: OAuthRequest, *args: Any, **kwargs: Any) -> bool:
        scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        app = self.world.app
        matches = secrets.compare_digest(unquote(key), app.consumer_key) and secrets.compare_digest(
            unquote(secret), app.consumer_secret
        )
        if matches:
            request.client = SimpleNamespace(client_id=app.consumer_key)  # oauthlib reads request.client.client_id
        return matches

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: OAuthRequest, *args: Any, **kwargs: Any
    ) -> bool:
        return grant_type == "client_credentials"

    def get_default_scopes(self, client_id: str, request: OAuthRequest, *args: Any, **kwargs: Any) -> list[str]:
        return []

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: OAuthRequest, *args: Any, **kwargs: Any
    ) -> bool:
        return True

    def save_bearer_token(self, token: dict[str, Any], request: OAuthRequest, *args: Any, **kwargs: Any) -> None:
        """X has exactly one bearer token per app; nothing to store."""
