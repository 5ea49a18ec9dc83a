"""The 3-legged OAuth flow end to end against the emulator: start -> authorize -> callback -> usable tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests

from local.emulator import CLIENT_USER_ID, EmulatorServer, PostState
from tests.api.conftest import ApiCaller
from tests.api.events import API_HOST, STAGE
from tests.conftest import cold_starts
from xengage.dal.secrets import PendingAuthorization, SecretStore

pytestmark = pytest.mark.integration

CALLBACK = f"https://{API_HOST}/{STAGE}/oauth/callback"


def approve(authorize_url: str, as_user: str) -> str:
    """The account owner approves at X: the emulator redirects to the callback; returns that Location."""
    answer = requests.get(authorize_url, params={"as_user": as_user}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def callback_query(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def pending_secret_names(api: ApiCaller) -> list[str]:
    listed = boto3.client("secretsmanager").list_secrets()["SecretList"]
    return [s["Name"] for s in listed if s["Name"].startswith(f"{api.resources.secret_prefix}oauth-pending/")]


def test_oauth_round_trip_registers_an_account_whose_tokens_work(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    # Given the flow is started
    started = live_api("GET", "/oauth/start")
    assert started.status == 200, started.text
    authorize_url = started.json()["authorize_url"]
    assert authorize_url.startswith(f"{emulator.url}/oauth/authorize?oauth_token=")
    # And the request-token secret is parked in Secrets Manager only, never in the answer
    assert len(pending_secret_names(live_api)) == 1
    assert "secret" not in started.text

    # When the agency client approves and X redirects to this API's own callback (host + stage)
    location = approve(authorize_url, CLIENT_USER_ID)
    assert location.startswith(CALLBACK + "?")
    reply = live_api("GET", "/oauth/callback", query=callback_query(location))

    # Then the account is registered active, the pending secret is gone, and no token is in the answer
    assert reply.status == 200, reply.text
    assert reply.json()["user_id"] == CLIENT_USER_ID
    assert reply.json()["screen_name"] == "demo_agency_client"
    assert reply.json()["status"] == "active"
    assert pending_secret_names(live_api) == []
    stored = json.loads(
        boto3.client("secretsmanager").get_secret_value(
            SecretId=f"{live_api.resources.secret_prefix}accounts/{CLIENT_USER_ID}"
        )["SecretString"]
    )
    assert stored["access_token"] not in reply.text
    owner = emulator.world.token_owner(stored["access_token"])
    assert owner is not None and owner.user_id == CLIENT_USER_ID

    # And the granted tokens serve a live /28hr query on the client's own Post
    post = emulator.world.tweet_ids(emulator.world.posts_of(CLIENT_USER_ID, state=PostState.PUBLIC))[0]
    live = live_api("POST", "/engagement/28hr", body={"tweet_ids": [post], "account_id": CLIENT_USER_ID})
    assert live.status == 200, live.text
    assert live.json()["results"][post]["status"] == "ok"

    # And the request token cannot be used twice
    again = live_api("GET", "/oauth/callback", query=callback_query(location))
    assert again.status == 400 and again.error_code == "oauth_token_unknown"


def allow_redirects_to(monkeypatch: pytest.MonkeyPatch, allowlist: str) -> None:
    monkeypatch.setenv("OAUTH_REDIRECT_ALLOWLIST", allowlist)  # settings read again: a new Deps


def test_callback_redirects_to_the_redirect_uri_given_at_start(
    live_api: ApiCaller, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment that allows redirects to app.example, and a start with a redirect_uri that has a query
    allow_redirects_to(monkeypatch, "https://app.example")
    started = live_api("GET", "/oauth/start", query={"redirect_uri": "https://app.example/done?from=x"}).json()

    # When the owner approves and the callback runs
    location = approve(started["authorize_url"], CLIENT_USER_ID)
    reply = live_api("GET", "/oauth/callback", query=callback_query(location))

    # Then the browser is sent on to redirect_uri with the account named
    assert reply.status == 302
    target = urlsplit(reply.headers["Location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "app.example", "/done")
    assert parse_qs(target.query) == {"from": ["x"], "user_id": [CLIENT_USER_ID], "screen_name": ["demo_agency_client"]}


def test_callback_url_override_is_sent_to_x(
    live_api: ApiCaller, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given OAUTH_CALLBACK_URL set (custom domain)
    monkeypatch.setenv("OAUTH_CALLBACK_URL", "https://api.example.org/oauth/callback")

    # When the flow starts and the owner approves
    location = approve(live_api("GET", "/oauth/start").json()["authorize_url"], CLIENT_USER_ID)

    # Then X redirects to the override
    assert location.startswith("https://api.example.org/oauth/callback?")


def test_expired_authorization_is_400_and_forgotten(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    # Given a started flow whose pending request token expired a minute ago
    started = live_api("GET", "/oauth/start").json()
    location = approve(started["authorize_url"], CLIENT_USER_ID)
    query = callback_query(location)
    SecretStore(live_api.resources.secret_prefix).save_pending(
        PendingAuthorization(query["oauth_token"], "whatever", datetime.now(UTC) - timedelta(minutes=1)),
    )

    # When the callback arrives
    reply = live_api("GET", "/oauth/callback", query=query)

    # Then 400 says it expired, the pending secret is deleted, and no account was created
    assert reply.status == 400 and reply.error_code == "oauth_token_expired"
    assert "expired" in reply.json()["error"]["message"]
    assert pending_secret_names(live_api) == []
    assert live_api("GET", f"/accounts/{CLIENT_USER_ID}").status == 404


def test_unknown_token_denied_flow_and_incomplete_callback_are_400(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given a started flow
    started = live_api("GET", "/oauth/start").json()
    token = parse_qs(urlsplit(started["authorize_url"]).query)["oauth_token"][0]

    # When callbacks arrive for an unknown token, without a verifier, and as a refusal
    unknown = live_api("GET", "/oauth/callback", query={"oauth_token": "nope", "oauth_verifier": "v"})
    incomplete = live_api("GET", "/oauth/callback", query={"oauth_token": token})
    denied = live_api("GET", "/oauth/callback", query={"denied": token})
    malformed = live_api("GET", "/oauth/callback", query={"oauth_token": "../../app", "oauth_verifier": "v"})

    # Then each is a 4xx naming the problem, and the refusal forgets the pending token
    assert unknown.status == 400 and unknown.error_code == "oauth_token_unknown"
    assert incomplete.status == 400 and incomplete.error_code == "oauth_callback_incomplete"
    assert denied.status == 400 and denied.error_code == "oauth_denied"
    assert malformed.status == 422 and "query.oauth_token" in malformed.json()["error"]["message"]
    assert pending_secret_names(live_api) == []


def test_start_rejects_a_relative_redirect_uri(live_api: ApiCaller) -> None:
    reply = live_api("GET", "/oauth/start", query={"redirect_uri": "/relative"})
    assert reply.status == 400 and reply.error_code == "invalid_redirect_uri"
    assert pending_secret_names(live_api) == []


@pytest.mark.parametrize(
    ("redirect_uri", "allowed"),
    [
        ("https://app.example/after-oauth/", True),
        ("https://app.example/after-oauth/done?x=1", True),
        ("https://APP.example/after-oauth/done", True),
        ("https://console.example/anything", True),
        ("https://app.example/after-oauth", False),  # the prefix ends with /, this path is its parent
        ("https://app.example/after-oauth-evil/", False),
        ("https://app.example/", False),
        ("http://console.example/", False),  # another scheme is another origin
        ("https://console.example:8443/", False),
        ("https://console.example@evil.example/", False),
        ("https://evil.example/?next=https://console.example", False),
        ("https://console.example.evil.example/", False),
        ("https://console.example/%0d%0aSet-Cookie:a=b", False),
        ("https://console.example/\\evil.example", False),
        ("//console.example/", False),
        ("javascript://console.example/%0aalert(1)", False),
    ],
)
def test_redirect_uri_must_be_on_the_allowlist(redirect_uri: str, allowed: bool) -> None:
    from xengage.http_api.errors import ApiError
    from xengage.http_api.redirects import allowed_redirect

    allowlist = ("https://app.example/after-oauth/", "https://console.example")
    if allowed:
        assert allowed_redirect(redirect_uri, allowlist) == redirect_uri
    else:
        with pytest.raises(ApiError) as refused:
            allowed_redirect(redirect_uri, allowlist)
        assert refused.value.code == "invalid_redirect_uri" and refused.value.message.startswith("redirect_uri: ")


def test_without_an_allowlist_a_redirect_uri_is_refused_and_the_callback_answers_json(live_api: ApiCaller) -> None:
    reply = live_api("GET", "/oauth/start", query={"redirect_uri": "https://app.example/done"})
    assert reply.status == 400 and reply.error_code == "invalid_redirect_uri"
    assert "OAuthRedirectAllowlist is empty" in reply.json()["error"]["message"]
    assert pending_secret_names(live_api) == []


def test_the_callback_does_not_redirect_to_a_uri_the_allowlist_no_longer_holds(
    live_api: ApiCaller, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a start while app.example was allowed
    allow_redirects_to(monkeypatch, "https://app.example")
    started = live_api("GET", "/oauth/start", query={"redirect_uri": "https://app.example/done"}).json()
    # And the operator empties the allowlist before the owner approves
    allow_redirects_to(monkeypatch, "")

    # When the callback runs
    reply = live_api("GET", "/oauth/callback", query=callback_query(approve(started["authorize_url"], CLIENT_USER_ID)))

    # Then the account is registered and answered as JSON, with no redirect
    assert reply.status == 200 and "Location" not in reply.headers
    assert reply.json()["user_id"] == CLIENT_USER_ID


def test_wrong_app_keys_are_a_502_naming_the_step(live_api: ApiCaller) -> None:
    # Given app keys X does not know
    boto3.client("secretsmanager").put_secret_value(
        SecretId=live_api.resources.app_secret_arn,
        SecretString=json.dumps({"consumer_key": "k", "consumer_secret": "s", "bearer_token": "b"}),
    )
    cold_starts()  # the app secret is read afresh

    # When the flow starts
    reply = live_api("GET", "/oauth/start")

    # Then 502 says the request_token step failed, and nothing is pending
    assert reply.status == 502 and reply.error_code == "oauth_request_token_failed"
    assert pending_secret_names(live_api) == []
