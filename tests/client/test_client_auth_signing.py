"""Auth choice per endpoint and metrics, and the OAuth 1.0a signer against published vectors.

The vectors go through `auth.oauth1_signer` (requests-oauthlib OAuth1 over oauthlib's Client), the very
object the client attaches to each request, with only the nonce and timestamp fixed.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
import requests
from oauthlib.oauth1 import Client
from oauthlib.oauth1.rfc5849 import signature

from xengage.api_client import AppCredentials, Endpoint, UserContextRequired, UserTokens
from xengage.api_client.auth import AuthKind, choose_auth, oauth1_signer
from xengage.api_client.catalog import PUBLIC_TOTALS_METRICS, TOTALS_METRICS

DOCS_APP = AppCredentials(
    consumer_key="xvz1evFS4wEEPTGEFPHBog",
    consumer_secret="kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
    bearer_token="unused",
)
DOCS_USER = UserTokens(
    access_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
    access_token_secret="LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
)
DOCS_NONCE, DOCS_TIMESTAMP = "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", "1318622958"


def _signature_of(prepared: requests.PreparedRequest) -> str:
    header = prepared.headers["Authorization"]
    header = header.decode() if isinstance(header, bytes) else header
    match = re.search(r'oauth_signature="([^"]+)"', header)
    assert match, header
    return unquote(match.group(1))


@pytest.mark.parametrize(
    ("host_path", "expected"),
    [
        ("https://api.x.com/1.1/statuses/update.json", "Ls93hJiZbQ3akF3HF3x1Bz8/zU4="),
        ("https://api.twitter.com/1.1/statuses/update.json", "hCtSmYh+iHYCEqBWrE7C7hYmtUk="),
    ],
)
def test_x_docs_signature_vector_through_the_client_signer(host_path: str, expected: str) -> None:
    # Given the "Creating a signature" request of the X docs and the client's signer with fixed nonce/timestamp
    signer = oauth1_signer(DOCS_APP, DOCS_USER, nonce=DOCS_NONCE, timestamp=DOCS_TIMESTAMP)
    request = requests.Request(
        "POST",
        f"{host_path}?include_entities=true",
        data={"status": "Hello Ladies + Gentlemen, a signed OAuth request!"},
    )
    # When requests prepares it with that signer, exactly as a client call is prepared
    with requests.Session() as session:
        signed = signer(session.prepare_request(request))
    # Then the Authorization header carries the published signature for that host
    assert _signature_of(signed) == expected


def test_oauth_core_1_0_appendix_a5_vector_through_the_client_signer() -> None:
    # Given OAuth Core 1.0 A.5 (GET photos, oauth_version=1.0 which oauthlib always sends)
    app = AppCredentials(consumer_key="dpf43f3p2l4k3l03", consumer_secret="kd94hf93k423kf44", bearer_token="-")
    user = UserTokens(access_token="nnch734d00sl2jdk", access_token_secret="pfkkdhi9sl3r4s00")
    signer = oauth1_signer(app, user, nonce="kllo9940pd9333jh", timestamp="1191242096")
    prepared = requests.Request("GET", "http://photos.example.net/photos?file=vacation.jpg&size=original").prepare()
    # Then the signature is the one published with that example
    assert _signature_of(signer(prepared)) == "tR3+Ty81lMeYAr/Fid0kMTYa/WM="


def test_rfc5849_examples_through_oauthlib_base_string_and_hmac() -> None:
    # Given RFC 5849 section 3.4.1's request (no oauth_version, so built from oauthlib's signature functions,
    # the same ones its Client uses)
    params = signature.collect_parameters(
        uri_query="b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        body="c2&a3=2+q",
        headers={
            "Authorization": 'OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", '
            'oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", '
            'oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", oauth_signature="ignored"'
        },
    )
    base = signature.signature_base_string(
        "POST", signature.base_string_uri("http://example.com/request"), signature.normalize_parameters(params)
    )
    # Then the base string is the RFC's, and its HMAC-SHA1 the recomputed (erratum) value
    assert base == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D"
        "%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a"
        "%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    )
    rfc_client = Client("9djdj82h48djs9d2", client_secret="j49sk3j29djd", resource_owner_secret="dh893hdasih9")
    assert signature.sign_hmac_sha1_with_client(base, rfc_client) == "r6/TJjbCOr97/+UU0NsvSne7s5g="
    # And section 1.2's protected-resource request signs to the RFC's value over http
    photos = signature.collect_parameters(
        uri_query="file=vacation.jpg&size=original",
        headers={
            "Authorization": 'OAuth oauth_consumer_key="dpf43f3p2l4k3l03", oauth_token="nnch734d00sl2jdk", '
            'oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131202", oauth_nonce="chapoH"'
        },
    )
    photos_base = signature.signature_base_string(
        "GET", signature.base_string_uri("http://photos.example.net/photos"), signature.normalize_parameters(photos)
    )
    photos_client = Client(
        "dpf43f3p2l4k3l03", client_secret="kd94hf93k423kf44", resource_owner_secret="pfkkdhi9sl3r4s00"
    )
    assert signature.sign_hmac_sha1_with_client(photos_base, photos_client) == "MdpQcU8iPSUjWoN/UDMsK2sui9I="


def test_json_body_is_not_signed_and_each_signing_gets_a_new_nonce(app: AppCredentials, owner: UserTokens) -> None:
    # Given the client's signer and a JSON request like an Engagement API call
    signer = oauth1_signer(app, owner)
    request = requests.Request("POST", "http://127.0.0.1:1/insights/engagement/28hr", json={"tweet_ids": ["1"]})
    # When the same request is prepared and signed twice
    first = signer(request.prepare()).headers["Authorization"]
    second = signer(request.prepare()).headers["Authorization"]
    # Then nonces differ and no body hash sneaks into the signature
    nonce = re.compile(r'oauth_nonce="([^"]+)"')
    assert nonce.search(str(first)).group(1) != nonce.search(str(second)).group(1)  # type: ignore[union-attr]
    assert "oauth_body_hash" not in str(first)
    assert app.consumer_secret not in str(first) and owner.access_token_secret not in str(first)


def test_bearer_only_for_totals_public_metrics(app: AppCredentials, owner: UserTokens) -> None:
    assert choose_auth(Endpoint.TOTALS, PUBLIC_TOTALS_METRICS, app, None).kind is AuthKind.BEARER
    # Public metrics stay on the bearer token even when the owner's tokens are at hand (works for any Post)
    assert choose_auth(Endpoint.TOTALS, ["favorites"], app, owner).kind is AuthKind.BEARER
    assert choose_auth(Endpoint.TOTALS, TOTALS_METRICS, app, owner).kind is AuthKind.OAUTH1
    assert choose_auth(Endpoint.HOURLY_28HR, ["favorites"], app, owner).kind is AuthKind.OAUTH1
    assert choose_auth(Endpoint.HISTORICAL, ["favorites"], app, owner).account == "1001"


@pytest.mark.parametrize(
    ("endpoint", "metrics", "message"),
    [
        (Endpoint.TOTALS, ["favorites", "impressions"], "/totals metrics impressions"),
        (Endpoint.HOURLY_28HR, ["favorites"], "/28hr"),
        (Endpoint.HISTORICAL, ["url_clicks"], "/historical"),
    ],
)
def test_missing_user_tokens_are_refused(
    app: AppCredentials, endpoint: Endpoint, metrics: list[str], message: str
) -> None:
    with pytest.raises(UserContextRequired, match=message):
        choose_auth(endpoint, metrics, app, None)
    with pytest.raises(UserContextRequired):
        choose_auth(endpoint, metrics, app, UserTokens(access_token="t", access_token_secret=""))
