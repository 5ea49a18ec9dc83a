"""Authentication and authorization paths of the data endpoints (reference doc section 3)."""

from __future__ import annotations

import time

import pytest
import requests
from requests_oauthlib import OAuth1

from tests.emulator.support import BRAND_USER_ID, CLIENT_USER_ID, PUBLIC_METRICS, UNRELATED_USER_ID, Api

AUTH_FAILED = "Your account could not be authenticated. Reason: "


def _errors(response: requests.Response) -> list[str]:
    errors = response.json()["errors"]
    assert isinstance(errors, list)
    return errors


def test_valid_oauth1_is_accepted_and_logged_with_the_user(api: Api) -> None:
    # Given the brand's own Post and the brand's tokens
    tweet_id = api.ids(BRAND_USER_ID)[0]
    # When /totals is asked for private metrics
    response = api.query("totals", [tweet_id], ["impressions", "engagements"], auth=api.oauth(BRAND_USER_ID))
    # Then 200 with numbers, and the log names the user and the auth kind
    assert response.status_code == 200
    assert int(response.json()["per_tweet"][tweet_id]["impressions"]) > 0
    entry = api.emu.log[-1]
    assert (entry.auth_kind, entry.user_id, entry.status) == ("oauth1", BRAND_USER_ID, 200)


def test_bad_signature_is_401(api: Api) -> None:
    # Given tokens signed with the wrong consumer secret
    user = api.world.users[BRAND_USER_ID]
    auth = OAuth1(api.world.app.consumer_key, "not-the-secret", user.access_token, user.access_token_secret)
    # When calling / Then 401 with the documented prefix and the reason
    response = api.query("totals", api.ids(BRAND_USER_ID)[:1], ["impressions"], auth=auth)
    assert response.status_code == 401
    assert _errors(response) == [AUTH_FAILED + "Invalid signature"]


def test_wrong_token_secret_is_401(api: Api) -> None:
    # Given the right token with a wrong token secret / When calling / Then the signature fails
    user = api.world.users[BRAND_USER_ID]
    app = api.world.app
    auth = OAuth1(app.consumer_key, app.consumer_secret, user.access_token, "wrong-secret")
    response = api.query("28hr", api.ids(BRAND_USER_ID)[:1], ["impressions"], auth=auth)
    assert response.status_code == 401
    assert _errors(response) == [AUTH_FAILED + "Invalid signature"]


def test_replayed_nonce_is_401(api: Api) -> None:
    # Given one signed request
    request = requests.Request(
        "POST",
        f"{api.emu.url}/insights/engagement/totals",
        json={
            "tweet_ids": api.ids(BRAND_USER_ID)[:1],
            "engagement_types": ["impressions"],
            "groupings": {"g": {"group_by": ["tweet.id"]}},
        },
        auth=api.oauth(BRAND_USER_ID),
    ).prepare()
    # When it is sent twice unchanged (same nonce and timestamp)
    first = api.session.send(request, timeout=10)
    replay = api.session.send(request, timeout=10)
    # Then the first passes and the replay is refused
    assert first.status_code == 200
    assert replay.status_code == 401
    assert _errors(replay) == [AUTH_FAILED + "Nonce already used"]


def test_stale_timestamp_is_401(api: Api) -> None:
    # Given a request signed with a timestamp an hour old (oauthlib allows 600 s)
    user = api.world.users[BRAND_USER_ID]
    app = api.world.app
    stale = str(int(time.time()) - 3600)
    auth = OAuth1(app.consumer_key, app.consumer_secret, user.access_token, user.access_token_secret, timestamp=stale)
    # When calling / Then 401 whose reason names the timestamp
    response = api.query("totals", api.ids(BRAND_USER_ID)[:1], ["impressions"], auth=auth)
    assert response.status_code == 401
    (message,) = _errors(response)
    assert message.startswith(AUTH_FAILED) and "Timestamp" in message


def test_unknown_access_token_is_401_access_token_not_found(api: Api) -> None:
    # Given a token X never issued / When calling / Then the documented "Access token not found"
    app = api.world.app
    auth = OAuth1(app.consumer_key, app.consumer_secret, "999-neverIssued", "whatever")
    response = api.query("totals", api.ids(BRAND_USER_ID)[:1], ["impressions"], auth=auth)
    assert response.status_code == 401
    assert _errors(response) == [AUTH_FAILED + "Access token not found"]


def test_unknown_consumer_key_is_401(api: Api) -> None:
    # Given a consumer key of another app / When calling / Then 401
    user = api.world.users[BRAND_USER_ID]
    auth = OAuth1("other-app", "other-secret", user.access_token, user.access_token_secret)
    response = api.query("totals", api.ids(BRAND_USER_ID)[:1], ["impressions"], auth=auth)
    assert response.status_code == 401
    assert _errors(response) == [AUTH_FAILED + "Unknown consumer key"]


def test_real_looking_tokens_pass_oauthlib_format_checks(api: Api) -> None:
    # Given a token shaped like the X docs' example (digits, '-', 40 chars; oauthlib's default allows 20-30
    # letters and digits only)
    token, secret = "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
    api.world.register_access_token(BRAND_USER_ID, token, secret)
    app = api.world.app
    # When calling with it / Then it works like any other token of that user
    response = api.query(
        "totals",
        api.ids(BRAND_USER_ID)[:1],
        ["impressions"],
        auth=OAuth1(app.consumer_key, app.consumer_secret, token, secret),
    )
    assert response.status_code == 200


def test_missing_or_unknown_authorization_is_401(api: Api) -> None:
    tweet_ids = api.ids(BRAND_USER_ID)[:1]
    # Given no Authorization header / When calling / Then 401
    missing = api.query("totals", tweet_ids, ["favorites"])
    assert missing.status_code == 401
    assert _errors(missing)[0].startswith(AUTH_FAILED)
    # Given an unsupported scheme / When calling / Then 401 "Unknown Authorization Type"
    basic = api.query("totals", tweet_ids, ["favorites"], headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert basic.status_code == 401
    assert _errors(basic) == [AUTH_FAILED + "Unknown Authorization Type"]
    assert api.emu.log[-1].auth_kind == "none"


def test_other_users_posts_are_403_listing_every_foreign_id(api: Api) -> None:
    # Given the brand's tokens, one own Post and two Posts of other users
    own = api.ids(BRAND_USER_ID)[0]
    foreign = [api.ids(CLIENT_USER_ID)[0], api.ids(UNRELATED_USER_ID)[0]]
    # When asking about all three
    response = api.query("totals", [own, *foreign], ["favorites"], auth=api.oauth(BRAND_USER_ID))
    # Then the whole request fails with the documented message listing exactly the foreign ids
    assert response.status_code == 403
    assert response.json() == {"errors": [f"Forbidden to access tweets: {foreign[0]}, {foreign[1]}"]}


def test_bearer_reads_public_metrics_of_any_users_public_posts(api: Api) -> None:
    # Given public Posts of three different users
    tweet_ids = [api.ids(user)[0] for user in (BRAND_USER_ID, CLIENT_USER_ID, UNRELATED_USER_ID)]
    # When /totals is asked for public metrics with the app's bearer token
    response = api.query("totals", tweet_ids, PUBLIC_METRICS, headers=api.bearer())
    # Then every Post has every public metric as an integer string
    assert response.status_code == 200
    grouping = response.json()["per_tweet"]
    assert set(grouping) == set(tweet_ids)
    assert all(set(values) == set(PUBLIC_METRICS) for values in grouping.values())
    assert all(v.isdigit() for values in grouping.values() for v in values.values())
    assert api.emu.log[-1].auth_kind == "bearer"


def test_bearer_asking_private_metrics_is_403(api: Api) -> None:
    # Given the bearer token and a private metric / When calling / Then 403 naming the metric
    response = api.query("totals", api.ids(BRAND_USER_ID)[:1], ["favorites", "impressions"], headers=api.bearer())
    assert response.status_code == 403
    assert _errors(response) == ["Forbidden to access metrics: impressions"]


@pytest.mark.parametrize("endpoint", ["28hr", "historical"])
def test_bearer_on_time_series_endpoints_is_403_unknown_authorization_type(api: Api, endpoint: str) -> None:
    # Given the bearer token on an endpoint that needs user context / When calling / Then 403
    response = api.query(endpoint, api.ids(BRAND_USER_ID)[:1], ["favorites"], headers=api.bearer())
    assert response.status_code == 403
    assert _errors(response) == [AUTH_FAILED + "Unknown Authorization Type"]


def test_unknown_bearer_is_401(api: Api) -> None:
    # Given a bearer token that is not the app's / When calling / Then 401
    response = api.query("totals", api.ids(BRAND_USER_ID)[:1], ["favorites"], headers=api.bearer("AAAA-not-ours"))
    assert response.status_code == 401
    assert _errors(response)[0].startswith(AUTH_FAILED)
