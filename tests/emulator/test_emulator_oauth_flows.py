"""The api.x.com side: 3-legged OAuth 1.0a with requests_oauthlib.OAuth1Session, and the app-only bearer token."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests_oauthlib import OAuth1, OAuth1Session
from requests_oauthlib.oauth1_session import TokenRequestDenied

from tests.emulator.support import BRAND_USER_ID, CLIENT_USER_ID, Api

CALLBACK = "http://127.0.0.1:9/callback"  # never contacted: the test reads the redirect itself


def _session(api: Api, **kwargs: str) -> OAuth1Session:
    app = api.world.app
    return OAuth1Session(app.consumer_key, client_secret=app.consumer_secret, **kwargs)


def _three_legged(api: Api, authorize_query: str = "") -> dict[str, str]:
    oauth = _session(api, callback_uri=CALLBACK)
    # step 1: request token (callback confirmed)
    request_token = oauth.fetch_request_token(f"{api.emu.url}/oauth/request_token")
    assert request_token["oauth_callback_confirmed"] == "true"
    # step 2: the user approves; follow the 302 by hand
    authorize_url = oauth.authorization_url(f"{api.emu.url}/oauth/authorize") + authorize_query
    redirect = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    assert location.startswith(CALLBACK)
    oauth.parse_authorization_response(location)
    # step 3: access token
    return dict(oauth.fetch_access_token(f"{api.emu.url}/oauth/access_token"))


def test_three_legged_round_trip_grants_a_working_token(api: Api) -> None:
    # Given the full flow approved by the default user (the brand account)
    tokens = _three_legged(api)
    # Then the access token response names the user, like X's
    assert tokens["user_id"] == BRAND_USER_ID
    assert tokens["screen_name"] == api.world.users[BRAND_USER_ID].screen_name
    assert tokens["oauth_token"] != api.world.users[BRAND_USER_ID].access_token
    # When the new token calls /28hr for the brand's Post
    app = api.world.app
    auth = OAuth1(app.consumer_key, app.consumer_secret, tokens["oauth_token"], tokens["oauth_token_secret"])
    tweet_id = api.ids(BRAND_USER_ID)[0]
    response = api.query("28hr", [tweet_id], ["impressions"], auth=auth)
    # Then it works and the log attributes the call to that user
    assert response.status_code == 200
    assert tweet_id in response.json()["per_tweet"]
    assert api.emu.log[-1].user_id == BRAND_USER_ID


def test_as_user_query_parameter_picks_the_approving_user(api: Api) -> None:
    # Given the flow approved with as_user=<agency client>
    tokens = _three_legged(api, f"&as_user={CLIENT_USER_ID}")
    # Then the token belongs to the client: its own Posts work, the brand's are forbidden
    app = api.world.app
    auth = OAuth1(app.consumer_key, app.consumer_secret, tokens["oauth_token"], tokens["oauth_token_secret"])
    assert tokens["user_id"] == CLIENT_USER_ID
    assert api.query("totals", api.ids(CLIENT_USER_ID)[:1], ["impressions"], auth=auth).status_code == 200
    assert api.query("totals", api.ids(BRAND_USER_ID)[:1], ["impressions"], auth=auth).status_code == 403


def test_oob_flow_shows_a_pin_that_works_as_verifier(api: Api) -> None:
    # Given PIN mode (callback "oob")
    oauth = _session(api, callback_uri="oob")
    oauth.fetch_request_token(f"{api.emu.url}/oauth/request_token")
    # When the user opens the authorize page
    page = requests.get(oauth.authorization_url(f"{api.emu.url}/oauth/authorize"), timeout=5)
    # Then it shows a PIN, and that PIN completes the flow
    assert page.status_code == 200 and "PIN" in page.text
    match = re.search(r"<code id='oauth_pin'>([^<]+)</code>", page.text)
    assert match
    tokens = oauth.fetch_access_token(f"{api.emu.url}/oauth/access_token", verifier=match.group(1))
    assert tokens["user_id"] == BRAND_USER_ID


def test_request_token_needs_a_callback(api: Api) -> None:
    # Given a request-token call without oauth_callback / Then it is refused
    oauth = _session(api)
    with pytest.raises(TokenRequestDenied) as denied:
        oauth.fetch_request_token(f"{api.emu.url}/oauth/request_token")
    assert denied.value.status_code == 400


def test_request_token_with_a_wrong_consumer_secret_is_401(api: Api) -> None:
    # Given a bad consumer secret / Then the request token is denied
    oauth = OAuth1Session(api.world.app.consumer_key, client_secret="wrong", callback_uri=CALLBACK)
    with pytest.raises(TokenRequestDenied) as denied:
        oauth.fetch_request_token(f"{api.emu.url}/oauth/request_token")
    assert denied.value.status_code == 401


def test_access_token_needs_the_right_verifier_and_is_single_use(api: Api) -> None:
    # Given an approved request token
    oauth = _session(api, callback_uri=CALLBACK)
    oauth.fetch_request_token(f"{api.emu.url}/oauth/request_token")
    location = requests.get(
        oauth.authorization_url(f"{api.emu.url}/oauth/authorize"), allow_redirects=False, timeout=5
    ).headers["Location"]
    verifier = parse_qs(urlsplit(location).query)["oauth_verifier"][0]
    request_token = parse_qs(urlsplit(location).query)["oauth_token"][0]
    # When a wrong verifier is offered / Then 401
    with pytest.raises(TokenRequestDenied) as wrong:
        oauth.fetch_access_token(f"{api.emu.url}/oauth/access_token", verifier="not-the-verifier")
    assert wrong.value.status_code == 401
    # When the right one is offered / Then tokens come back, and a second exchange is refused
    assert oauth.fetch_access_token(f"{api.emu.url}/oauth/access_token", verifier=verifier)["user_id"] == BRAND_USER_ID
    app = api.world.app
    again = OAuth1Session(
        app.consumer_key,
        client_secret=app.consumer_secret,
        resource_owner_key=request_token,
        resource_owner_secret="x",
        verifier=verifier,
    )
    with pytest.raises(TokenRequestDenied):
        again.fetch_access_token(f"{api.emu.url}/oauth/access_token")


def test_authorize_with_unknown_token_or_user_is_refused(api: Api) -> None:
    # Given a request token X never issued / Then authorize refuses it
    unknown = requests.get(f"{api.emu.url}/oauth/authorize?oauth_token=nope", allow_redirects=False, timeout=5)
    assert unknown.status_code == 401
    # Given a real request token but an unknown as_user / Then 400 naming the user
    oauth = _session(api, callback_uri=CALLBACK)
    oauth.fetch_request_token(f"{api.emu.url}/oauth/request_token")
    bad_user = requests.get(
        oauth.authorization_url(f"{api.emu.url}/oauth/authorize") + "&as_user=42", allow_redirects=False, timeout=5
    )
    assert bad_user.status_code == 400
    assert "42" in bad_user.json()["errors"][0]


def test_oauth2_token_returns_the_apps_bearer_token(api: Api) -> None:
    # Given the app's key and secret as HTTP Basic, with the documented form body
    app = api.world.app
    response = requests.post(
        f"{api.emu.url}/oauth2/token",
        auth=(app.consumer_key, app.consumer_secret),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    # Then X's shape with the app's bearer token, which then works on /totals
    assert response.status_code == 200
    assert response.json() == {"token_type": "bearer", "access_token": app.bearer_token}
    token = response.json()["access_token"]
    assert api.query("totals", api.ids(BRAND_USER_ID)[:1], ["favorites"], headers=api.bearer(token)).status_code == 200


def test_oauth2_token_with_bad_credentials_is_403(api: Api) -> None:
    # Given a wrong secret / Then 403 with X's code 99
    response = requests.post(
        f"{api.emu.url}/oauth2/token",
        auth=(api.world.app.consumer_key, "wrong"),
        data={"grant_type": "client_credentials"},
        timeout=5,
    )
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == 99


def test_oauth2_token_with_a_wrong_grant_type_is_refused(api: Api) -> None:
    # Given the right credentials but another grant type / Then it is refused with an error
    app = api.world.app
    response = requests.post(
        f"{api.emu.url}/oauth2/token",
        auth=(app.consumer_key, app.consumer_secret),
        data={"grant_type": "password"},
        timeout=5,
    )
    assert response.status_code in (400, 401)
    assert "errors" in response.json()
