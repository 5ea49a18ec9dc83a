"""Credentials that stop working: revoked account tokens, a rotated bearer token, a rotated consumer secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from requests_oauthlib import OAuth1, OAuth1Session
from requests_oauthlib.oauth1_session import TokenRequestDenied

from tests.emulator.support import BRAND_USER_ID, CLIENT_USER_ID, Api

AUTH_FAILED = "Your account could not be authenticated. Reason: "
TOKEN_NOT_FOUND = {"errors": [AUTH_FAILED + "Access token not found"]}
BAD_BEARER = {"errors": [AUTH_FAILED + "Invalid or expired bearer token"]}
BAD_SIGNATURE = {"errors": [AUTH_FAILED + "Invalid signature"]}
BAD_CLIENT = {
    "errors": [{"code": 99, "label": "authenticity_token_error", "message": "Unable to verify your credentials"}]
}
UNCHANGED = {"revoked_users": [], "bearer_token_rotated": False, "consumer_secret_rotated": False}


def _private(api: Api, user_id: str, auth: OAuth1) -> requests.Response:
    """A /totals call for private metrics of the user's own Post."""
    return api.query("totals", api.ids(user_id)[:1], ["impressions"], auth=auth)


def _public(api: Api, bearer_token: str) -> requests.Response:
    return api.query("totals", api.ids(BRAND_USER_ID)[:1], ["favorites"], headers=api.bearer(bearer_token))


def _app_only_token(api: Api, key: str, secret: str) -> requests.Response:
    return requests.post(
        f"{api.emu.url}/oauth2/token", auth=(key, secret), data={"grant_type": "client_credentials"}, timeout=5
    )


def _admin(api: Api, body: Any) -> requests.Response:
    return requests.post(f"{api.emu.url}/_emulator/credentials", json=body, timeout=5)


def test_revoked_user_tokens_answer_access_token_not_found(api: Api) -> None:
    # Given the brand's portal token and a second token from a 3-legged grant, both working
    api.world.register_access_token(BRAND_USER_ID, "1000000001-grantedEarlier", "granted-earlier-secret")
    app = api.world.app
    granted = OAuth1(app.consumer_key, app.consumer_secret, "1000000001-grantedEarlier", "granted-earlier-secret")
    assert _private(api, BRAND_USER_ID, api.oauth(BRAND_USER_ID)).status_code == 200
    assert _private(api, BRAND_USER_ID, granted).status_code == 200
    # When the brand's tokens are revoked / Then both are counted
    assert api.emu.revoke_user_tokens(BRAND_USER_ID) == 2
    # and both answer 401 with the account reason (not an app reason), on every endpoint
    for auth in (api.oauth(BRAND_USER_ID), granted):
        refused = _private(api, BRAND_USER_ID, auth)
        assert (refused.status_code, refused.json()) == (401, TOKEN_NOT_FOUND)
    series = api.query("28hr", api.ids(BRAND_USER_ID)[:1], ["impressions"], auth=api.oauth(BRAND_USER_ID))
    assert (series.status_code, series.json()) == (401, TOKEN_NOT_FOUND)
    # and other accounts and the app's bearer token are untouched
    assert _private(api, CLIENT_USER_ID, api.oauth(CLIENT_USER_ID)).status_code == 200
    assert _public(api, app.bearer_token).status_code == 200


def test_a_revoked_account_recovers_by_granting_a_new_token(api: Api) -> None:
    # Given the brand's tokens revoked
    api.emu.revoke_user_tokens(BRAND_USER_ID)
    # When the account authorizes the app again (what a completed 3-legged flow registers)
    api.world.register_access_token(BRAND_USER_ID, "1000000001-reauthorized", "reauthorized-secret")
    app = api.world.app
    fresh = OAuth1(app.consumer_key, app.consumer_secret, "1000000001-reauthorized", "reauthorized-secret")
    # Then the new token works while the revoked one stays refused
    assert _private(api, BRAND_USER_ID, fresh).status_code == 200
    assert _private(api, BRAND_USER_ID, api.oauth(BRAND_USER_ID)).status_code == 401


def test_revoking_an_unknown_user_is_an_error(api: Api) -> None:
    # Given a user id the world does not have / Then KeyError, and nothing is revoked
    with pytest.raises(KeyError, match="42"):
        api.emu.revoke_user_tokens("42")
    assert api.world.credential_state().revoked_users == ()


def test_rotated_bearer_token_refuses_the_old_one_everywhere(api: Api) -> None:
    # Given the app's bearer token, working
    app = api.world.app
    old = app.bearer_token
    assert _public(api, old).status_code == 200
    # When it is rotated
    new = api.emu.rotate_bearer_token()
    # Then the old one answers 401 with the bearer reason, and the new one works
    assert new != old and new == api.world.app.bearer_token
    refused = _public(api, old)
    assert (refused.status_code, refused.json()) == (401, BAD_BEARER)
    assert _public(api, new).status_code == 200
    # and /oauth2/token now issues the new one
    issued = _app_only_token(api, app.consumer_key, app.consumer_secret)
    assert issued.json() == {"token_type": "bearer", "access_token": new}
    # and OAuth 1.0a is untouched
    assert _private(api, BRAND_USER_ID, api.oauth(BRAND_USER_ID)).status_code == 200


def test_rotated_consumer_secret_breaks_old_signatures_and_client_credentials(api: Api) -> None:
    # Given the app's key and secret and the brand's tokens, working
    app = api.world.app
    user = api.world.users[BRAND_USER_ID]
    signed_with_old = OAuth1(app.consumer_key, app.consumer_secret, user.access_token, user.access_token_secret)
    assert _private(api, BRAND_USER_ID, signed_with_old).status_code == 200
    # When the consumer secret is rotated
    new_secret = api.emu.rotate_consumer_secret()
    assert new_secret != app.consumer_secret and api.world.app.consumer_key == app.consumer_key
    # Then data calls signed with the old secret fail the signature check
    refused = _private(api, BRAND_USER_ID, signed_with_old)
    assert (refused.status_code, refused.json()) == (401, BAD_SIGNATURE)
    # and /oauth2/token with the old key:secret is 403 code 99; with the new one it issues the same bearer
    old_client = _app_only_token(api, app.consumer_key, app.consumer_secret)
    assert (old_client.status_code, old_client.json()) == (403, BAD_CLIENT)
    assert _app_only_token(api, app.consumer_key, new_secret).json()["access_token"] == app.bearer_token
    # and the 3-legged flow refuses the old secret too
    with pytest.raises(TokenRequestDenied) as denied:
        OAuth1Session(
            app.consumer_key, client_secret=app.consumer_secret, callback_uri="http://127.0.0.1:9/callback"
        ).fetch_request_token(f"{api.emu.url}/oauth/request_token")
    assert denied.value.status_code == 401
    # and signing with the new secret (same user tokens) works; the bearer token was not rotated
    signed_with_new = OAuth1(app.consumer_key, new_secret, user.access_token, user.access_token_secret)
    assert _private(api, BRAND_USER_ID, signed_with_new).status_code == 200
    assert _public(api, app.bearer_token).status_code == 200


def test_restore_credentials_undoes_every_revocation_and_rotation(api: Api) -> None:
    # Given the original credentials, then everything revoked and rotated
    original = api.world.app
    api.emu.revoke_user_tokens(BRAND_USER_ID)
    api.emu.revoke_user_tokens(CLIENT_USER_ID)
    api.emu.rotate_bearer_token()
    api.emu.rotate_consumer_secret()
    assert api.world.credential_state().to_dict() == {
        "revoked_users": [BRAND_USER_ID, CLIENT_USER_ID],
        "bearer_token_rotated": True,
        "consumer_secret_rotated": True,
    }
    # When restored
    api.emu.restore_credentials()
    # Then the original app credentials and the revoked tokens all work again
    assert api.world.app == original
    assert _public(api, original.bearer_token).status_code == 200
    assert _private(api, BRAND_USER_ID, api.oauth(BRAND_USER_ID)).status_code == 200
    assert _private(api, CLIENT_USER_ID, api.oauth(CLIENT_USER_ID)).status_code == 200
    assert _app_only_token(api, original.consumer_key, original.consumer_secret).status_code == 200
    assert api.world.credential_state().to_dict() == UNCHANGED


def test_admin_route_changes_credentials_and_never_answers_a_secret(api: Api) -> None:
    original = api.world.app
    # Given each command posted in turn / Then each answers the summary so far
    assert _admin(api, {"revoke_user": BRAND_USER_ID}).json() == {**UNCHANGED, "revoked_users": [BRAND_USER_ID]}
    rotated_bearer = _admin(api, {"rotate": "bearer_token"})
    rotated_secret = _admin(api, {"rotate": "consumer_secret"})
    assert rotated_secret.status_code == 200
    assert rotated_secret.json() == {
        "revoked_users": [BRAND_USER_ID],
        "bearer_token_rotated": True,
        "consumer_secret_rotated": True,
    }
    # and they took effect
    assert _private(api, BRAND_USER_ID, api.oauth(BRAND_USER_ID)).json() == TOKEN_NOT_FOUND
    assert _public(api, original.bearer_token).json() == BAD_BEARER
    # and no answer, nor GET /_emulator/credentials or /_emulator/world, holds any secret, old or new
    current = api.world.app
    answers = [
        rotated_bearer.text,
        rotated_secret.text,
        requests.get(f"{api.emu.url}/_emulator/credentials", timeout=5).text,
        requests.get(f"{api.emu.url}/_emulator/world", timeout=5).text,
    ]
    secrets = [original.consumer_secret, original.bearer_token, current.consumer_secret, current.bearer_token]
    secrets += [s for u in api.world.users.values() for s in (u.access_token, u.access_token_secret)]
    assert not [secret for secret in secrets for text in answers if secret in text]
    assert json.loads(answers[3])["credentials"] == rotated_secret.json()
    # When restored over HTTP / Then the summary is back to unchanged and the old tokens work
    assert _admin(api, {"restore": True}).json() == UNCHANGED
    assert _private(api, BRAND_USER_ID, api.oauth(BRAND_USER_ID)).status_code == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "expected one of"),
        (["rotate", "bearer_token"], "expected one of"),
        ({"rotate": "bearer_token", "restore": True}, "expected one of"),
        ({"revoke_user": "42"}, "unknown user '42'"),
        ({"revoke_user": 1000000001}, "unknown user 1000000001"),
        ({"rotate": "access_token"}, 'rotate must be "bearer_token" or "consumer_secret"'),
        ({"restore": False}, "restore must be true"),
        ({"revoke": BRAND_USER_ID}, "unknown credentials command 'revoke'"),
    ],
)
def test_admin_route_refuses_anything_else_and_changes_nothing(api: Api, body: Any, expected: str) -> None:
    # Given a body that is not exactly one known command / When posted / Then 400 naming the problem
    refused = _admin(api, body)
    assert refused.status_code == 400
    assert expected in refused.json()["errors"][0]
    # and the credentials are as they were
    assert api.world.credential_state().to_dict() == UNCHANGED
