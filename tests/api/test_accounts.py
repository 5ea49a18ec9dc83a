"""PUT/GET/DELETE /accounts/{user_id} and GET /accounts: tokens go to Secrets Manager only, never back out."""

from __future__ import annotations

import io
import json

import boto3
import pytest

from tests.api.conftest import ApiCaller


def secret_json(name: str) -> dict[str, str]:
    return json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])


def test_put_account_stores_tokens_in_its_secret_and_never_echoes_them(api: ApiCaller, api_log: io.StringIO) -> None:
    # Given an account's tokens from the developer portal, which X knows as @brand's
    body = {"screen_name": "brand", "access_token": "AT-sentinel-1234", "access_token_secret": "ATS-sentinel-5678"}
    assert api.x_world is not None
    api.x_world.add_user("6253282", "brand", "AT-sentinel-1234", "ATS-sentinel-5678")

    # When they are registered
    reply = api("PUT", "/accounts/6253282", body=body)

    # Then the account is active, the answer holds no token, and the secret holds both
    assert reply.status == 200
    assert reply.json() == {
        "user_id": "6253282",
        "screen_name": "brand",
        "status": "active",
        "last_success_at": None,
        "last_error": None,
    }
    assert "sentinel" not in reply.text
    stored = secret_json(f"{api.resources.secret_prefix}accounts/6253282")
    assert stored["access_token"] == "AT-sentinel-1234"
    assert stored["access_token_secret"] == "ATS-sentinel-5678"
    # And something was logged, and none of it carries them
    assert "account registered" in api_log.getvalue()
    assert "sentinel" not in api_log.getvalue()


def test_put_account_again_replaces_the_tokens_and_keeps_one_account(api: ApiCaller) -> None:
    # Given a registered account
    api.put_account("42", "first", token="old-token")

    # When it is registered again with new tokens and a new screen name
    reply = api.put_account("42", "renamed", token="new-token")

    # Then the secret holds the new token and the registry the new name, still once in the list
    assert reply.status == 200
    assert secret_json(f"{api.resources.secret_prefix}accounts/42")["access_token"] == "new-token"
    assert api("GET", "/accounts/42").json()["screen_name"] == "renamed"
    assert [a["user_id"] for a in api("GET", "/accounts").json()["accounts"]] == ["42"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/accounts/12ab", {"screen_name": "x", "access_token": "a", "access_token_secret": "b"}, "path.user_id"),
        (
            "/accounts/12345678901234567890",
            {"screen_name": "x", "access_token": "a", "access_token_secret": "b"},
            "path.user_id",
        ),
        (
            "/accounts/12",
            {"screen_name": "not a name!", "access_token": "a", "access_token_secret": "b"},
            "body.screen_name",
        ),
        ("/accounts/12", {"screen_name": "x", "access_token": "a"}, "body.access_token_secret"),
        ("/accounts/12", {"screen_name": "x", "access_token": "", "access_token_secret": "b"}, "body.access_token"),
    ],
)
def test_put_account_rejects_bad_input_naming_the_field_and_writes_nothing(
    api: ApiCaller, path: str, body: dict[str, str], field: str
) -> None:
    # Given a malformed id or body
    # When it is sent
    reply = api("PUT", path, body=body)

    # Then 422 names the field, echoes no token, and no account exists
    assert reply.status == 422
    assert reply.error_code == "validation_error"
    assert field in reply.json()["error"]["message"]
    assert all("input" not in detail for detail in reply.json()["detail"])
    assert api("GET", "/accounts").json()["accounts"] == []


def test_put_account_with_malformed_json_is_400_invalid_json(api: ApiCaller) -> None:
    # Given a body that is not JSON
    # When it is sent
    reply = api("PUT", "/accounts/12", body="{not json")

    # Then it is refused as a body that is not JSON, naming where it broke
    assert (reply.status, reply.error_code) == (400, "invalid_json")
    assert reply.json()["error"]["message"].startswith("body: not JSON") and "character 1" in reply.text


def test_get_unknown_account_is_404(api: ApiCaller) -> None:
    # Given no account 77
    # When it is read
    reply = api("GET", "/accounts/77")

    # Then 404 names it
    assert reply.status == 404
    assert reply.error_code == "account_not_found"
    assert "77" in reply.json()["error"]["message"]


def test_delete_account_removes_row_and_secret_and_allows_registering_again(api: ApiCaller) -> None:
    # Given a registered account
    api.put_account("99", "gone")
    secrets = boto3.client("secretsmanager")

    # When it is deleted
    reply = api("DELETE", "/accounts/99")

    # Then it is gone from the registry and Secrets Manager, and a second delete is 404
    assert reply.status == 200
    assert api("GET", "/accounts/99").status == 404
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.get_secret_value(SecretId=f"{api.resources.secret_prefix}accounts/99")
    assert api("DELETE", "/accounts/99").status == 404
    # And the same id can be registered again at once (no recovery window blocks the name)
    assert api.put_account("99", "back").status == 200


def test_list_accounts_pages_with_a_cursor(api: ApiCaller) -> None:
    # Given five accounts
    ids = [str(100 + n) for n in range(5)]
    for user_id in ids:
        api.put_account(user_id)

    # When they are listed two at a time, following next_cursor
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api("GET", "/accounts", query=query).json()
        seen += [account["user_id"] for account in page["accounts"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break

    # Then every account comes exactly once, over three pages
    assert sorted(seen) == ids
    assert pages == 3


def test_list_accounts_rejects_a_forged_cursor(api: ApiCaller) -> None:
    # Given a cursor this API never handed out
    # When it is used
    reply = api("GET", "/accounts", query={"cursor": "bm90LWEtY3Vyc29y"})

    # Then 400 says the cursor is the problem
    assert reply.status == 400
    assert reply.error_code == "invalid_cursor"
