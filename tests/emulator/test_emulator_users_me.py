"""GET /2/users/me: whose OAuth 1.0a user-context tokens these are, in X API v2's shapes."""

from __future__ import annotations

import time

import requests
from requests_oauthlib import OAuth1

from tests.emulator.support import BRAND_USER_ID, CLIENT_USER_ID, Api

UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}


def _me(api: Api, auth: OAuth1 | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    return api.session.get(f"{api.emu.url}/2/users/me", auth=auth, headers=headers, timeout=5)


def _signed(api: Api, token: str, secret: str, consumer_secret: str | None = None) -> OAuth1:
    app = api.world.app
    return OAuth1(app.consumer_key, consumer_secret or app.consumer_secret, token, secret)


def test_known_tokens_answer_their_user(api: Api) -> None:
    # Given the brand's and the client's portal tokens
    # When each asks who it is
    brand = _me(api, api.oauth(BRAND_USER_ID))
    client = _me(api, api.oauth(CLIENT_USER_ID))

    # Then each gets its own id, display name and handle, in the v2 `data` envelope
    assert (brand.status_code, brand.json()) == (
        200,
        {"data": {"id": BRAND_USER_ID, "name": "Demo Brand", "username": "demo_brand"}},
    )
    assert client.json()["data"]["id"] == CLIENT_USER_ID
    assert client.json()["data"]["username"] == "demo_agency_client"
    # and the call is logged as a user-context call of that user, with the rate headers of a data call
    entry = api.emu.log[-1]
    assert (entry.endpoint, entry.auth_kind, entry.user_id, entry.status) == ("users/me", "oauth1", CLIENT_USER_ID, 200)
    assert "x-per-minute-remaining" in client.headers


def test_tokens_granted_later_are_known_and_revoked_ones_are_not(api: Api) -> None:
    # Given a token pair granted by a 3-legged flow
    api.world.register_access_token(CLIENT_USER_ID, "1000000002-grantedLater", "granted-later-secret")
    granted = _signed(api, "1000000002-grantedLater", "granted-later-secret")
    assert _me(api, granted).json()["data"]["id"] == CLIENT_USER_ID

    # When the account revokes the app
    api.emu.revoke_user_tokens(CLIENT_USER_ID)

    # Then the same signed call is a v2 401
    refused = _me(api, granted)
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)


def test_bad_tokens_signatures_and_schemes_are_refused(api: Api) -> None:
    brand = api.world.users[BRAND_USER_ID]
    # Given an unknown token, a wrong token secret, a wrong consumer secret, no header and the app's bearer token
    cases = {
        "unknown token": _me(api, _signed(api, "999-unknownToken", "whatever")),
        "wrong token secret": _me(api, _signed(api, brand.access_token, "not-the-secret")),
        "wrong consumer secret": _me(api, _signed(api, brand.access_token, brand.access_token_secret, "nope")),
        "no header": _me(api),
    }

    # Then each is a v2 401 that names nobody
    for case, reply in cases.items():
        assert (reply.status_code, reply.json()) == (401, UNAUTHORIZED), case
        assert "demo_brand" not in reply.text, case
    # and app-only auth is refused as unsupported for this endpoint (403, as X does)
    app_only = _me(api, headers=api.bearer())
    assert app_only.status_code == 403
    assert app_only.json()["title"] == "Unsupported Authentication"


def test_a_replayed_nonce_is_refused(api: Api) -> None:
    # Given a call signed with a fixed nonce and timestamp, answered once
    user = api.world.users[BRAND_USER_ID]
    app = api.world.app
    stamp = str(int(time.time()))
    fixed = OAuth1(
        app.consumer_key, app.consumer_secret, user.access_token, user.access_token_secret, nonce="n1", timestamp=stamp
    )
    assert _me(api, fixed).status_code == 200

    # When the very same signed request is sent again
    replay = _me(api, fixed)

    # Then it is refused
    assert (replay.status_code, replay.json()) == (401, UNAUTHORIZED)


def test_scripted_faults_apply_to_users_me(api: Api) -> None:
    # Given X failing the next call with a 503
    api.emu.script_faults(["503"])

    # When the brand asks who it is, twice
    failed = _me(api, api.oauth(BRAND_USER_ID))
    recovered = _me(api, api.oauth(BRAND_USER_ID))

    # Then the first gets X's 503 and the next one its answer
    assert failed.status_code == 503
    assert recovered.json()["data"]["id"] == BRAND_USER_ID
