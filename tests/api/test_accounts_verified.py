"""Tokens are checked at X (GET /2/users/me) before PUT /accounts or the OAuth callback store anything."""

from __future__ import annotations

import io
import json
import time

import boto3
import pytest

from local.emulator import BRAND_USER_ID, CLIENT_USER_ID, EmulatorServer, FaultConfig
from tests.api.conftest import ApiCaller
from tests.api.test_oauth import approve, callback_query, pending_secret_names

pytestmark = pytest.mark.integration


def stored_secret_names(api: ApiCaller) -> list[str]:
    listed = boto3.client("secretsmanager").list_secrets()["SecretList"]
    return [s["Name"] for s in listed if s["Name"].startswith(f"{api.resources.secret_prefix}accounts/")]


def tokens_body(emulator: EmulatorServer, user_id: str, screen_name: str | None = None) -> dict[str, str]:
    user = emulator.world.users[user_id]
    body = {"access_token": user.access_token, "access_token_secret": user.access_token_secret}
    return {**body, "screen_name": screen_name} if screen_name else body


def assert_nothing_stored(api: ApiCaller) -> None:
    assert stored_secret_names(api) == []
    assert api("GET", "/accounts").json()["accounts"] == []


def test_verified_tokens_store_the_handle_x_returns(
    live_api: ApiCaller, emulator: EmulatorServer, api_log: io.StringIO
) -> None:
    # Given the brand's own tokens, sent with an old handle, and the client's sent with none
    emulator.clear_log()
    # When both are registered
    brand = live_api("PUT", f"/accounts/{BRAND_USER_ID}", body=tokens_body(emulator, BRAND_USER_ID, "old_handle"))
    client = live_api("PUT", f"/accounts/{CLIENT_USER_ID}", body=tokens_body(emulator, CLIENT_USER_ID))

    # Then both are active with the @handle X returned, after one /2/users/me call each
    assert (brand.status, brand.json()["screen_name"]) == (200, "demo_brand"), brand.text
    assert (client.status, client.json()["screen_name"]) == (200, "demo_agency_client"), client.text
    assert live_api("GET", f"/accounts/{BRAND_USER_ID}").json()["screen_name"] == "demo_brand"
    checks = [(e.endpoint, e.user_id) for e in emulator.log if e.endpoint == "users/me"]
    assert checks == [("users/me", BRAND_USER_ID), ("users/me", CLIENT_USER_ID)]
    # And the log says so without any token
    assert "tokens verified at X" in api_log.getvalue()
    assert "AccessToken" not in api_log.getvalue() and "token-secret" not in api_log.getvalue()


def test_tokens_of_another_user_are_409_naming_both_ids_and_nothing_is_stored(
    live_api: ApiCaller, emulator: EmulatorServer, api_log: io.StringIO
) -> None:
    # Given the agency client's tokens
    # When they are put under the brand's id
    reply = live_api("PUT", f"/accounts/{BRAND_USER_ID}", body=tokens_body(emulator, CLIENT_USER_ID, "demo_brand"))

    # Then 409 token_user_mismatch names the id the tokens belong to and the one they were put under
    assert (reply.status, reply.error_code) == (409, "token_user_mismatch"), reply.text
    message = reply.json()["error"]["message"]
    assert CLIENT_USER_ID in message and BRAND_USER_ID in message and "@demo_agency_client" in message
    # And nothing was stored, and no token is in the answer or the log
    assert_nothing_stored(live_api)
    assert "AccessToken" not in reply.text + api_log.getvalue()


def test_rejected_tokens_are_400_and_keep_the_tokens_stored_before(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given the brand registered with its working tokens
    assert live_api("PUT", f"/accounts/{BRAND_USER_ID}", body=tokens_body(emulator, BRAND_USER_ID)).status == 200
    secret_id = f"{live_api.resources.secret_prefix}accounts/{BRAND_USER_ID}"
    before = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]

    # When tokens X never issued are put for it
    bad = {"access_token": "1000000001-neverIssuedToken", "access_token_secret": "never-issued-secret"}
    reply = live_api("PUT", f"/accounts/{BRAND_USER_ID}", body=bad)

    # Then 400 tokens_rejected, without the tokens in the answer, and the stored tokens are untouched
    assert (reply.status, reply.error_code) == (400, "tokens_rejected"), reply.text
    assert "neverIssued" not in reply.text and "never-issued" not in reply.text
    assert boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"] == before
    assert json.loads(before)["access_token"] == emulator.world.users[BRAND_USER_ID].access_token


@pytest.mark.parametrize("fault", ["503", "429", "reset"])
def test_x_failing_is_503_with_retry_after_and_nothing_is_stored(
    live_api: ApiCaller, emulator: EmulatorServer, fault: str
) -> None:
    # Given X failing the next call
    emulator.script_faults([fault])

    # When the brand's valid tokens are put
    reply = live_api("PUT", f"/accounts/{BRAND_USER_ID}", body=tokens_body(emulator, BRAND_USER_ID))

    # Then 503 x_unavailable with a Retry-After, and nothing was stored
    assert (reply.status, reply.error_code) == (503, "x_unavailable"), reply.text
    assert int(reply.headers["Retry-After"]) >= 1
    assert_nothing_stored(live_api)
    # And the same PUT once X answers again registers the account
    assert live_api("PUT", f"/accounts/{BRAND_USER_ID}", body=tokens_body(emulator, BRAND_USER_ID)).status == 200


def test_a_hanging_x_is_cut_before_api_gateways_deadline(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    # Given X hanging 5 s, and an invocation with 4.5 s left (3 s of it kept to store and answer)
    emulator.set_faults(FaultConfig(timeout_share=1.0, hang_seconds=5.0))
    live_api.remaining_millis = 4_500

    # When the brand's tokens are put
    started = time.monotonic()
    reply = live_api("PUT", f"/accounts/{BRAND_USER_ID}", body=tokens_body(emulator, BRAND_USER_ID))

    # Then it answers 503 at the deadline, without waiting for X, and stored nothing
    assert (reply.status, reply.error_code) == (503, "x_unavailable"), reply.text
    assert time.monotonic() - started < 3.0
    assert_nothing_stored(live_api)


def test_a_rotated_consumer_secret_blames_the_app_not_the_tokens(live_api: ApiCaller, emulator: EmulatorServer) -> None:
    # Given X rotated the app's consumer secret and the app secret still holds the old one
    emulator.rotate_consumer_secret()

    # When the brand's valid tokens are put
    reply = live_api("PUT", f"/accounts/{BRAND_USER_ID}", body=tokens_body(emulator, BRAND_USER_ID))

    # Then it is the app's 503, not tokens_rejected, and nothing was stored
    assert (reply.status, reply.error_code) == (503, "app_credentials_refused"), reply.text
    assert_nothing_stored(live_api)


def test_oauth_callback_stores_nothing_when_x_cannot_say_whose_tokens_they_are(
    live_api: ApiCaller, emulator: EmulatorServer
) -> None:
    # Given a started flow the agency client approved
    started = live_api("GET", "/oauth/start").json()
    location = approve(started["authorize_url"], CLIENT_USER_ID)
    # And X failing its next answer (the check after the token exchange)
    emulator.script_faults(["503"])

    # When X redirects to the callback
    reply = live_api("GET", "/oauth/callback", query=callback_query(location))

    # Then 503 x_unavailable says to start again, no account is stored, and the spent request token is forgotten
    assert (reply.status, reply.error_code) == (503, "x_unavailable"), reply.text
    assert "/oauth/start" in reply.json()["error"]["message"]
    assert_nothing_stored(live_api)
    assert pending_secret_names(live_api) == []
    # And the tokens were checked once, after the exchange
    assert [e.status for e in emulator.log if e.endpoint == "users/me"][-1] == 503
