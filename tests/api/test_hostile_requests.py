"""Hostile and malformed requests, one row per class the fuzzing found: each gets a 4xx in the project's error shape.

The same table runs over HTTP against the local stack in tests/integration/test_api_fuzz.py; here it runs against
the handler in-process, where a crash shows its traceback.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.api.conftest import ApiCaller

JSON = {"Content-Type": "application/json"}
DEEP = ("[" * 5000 + "]" * 5000).encode()


@dataclass(frozen=True)
class Hostile:
    name: str
    method: str
    path: str
    status: int
    code: str
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def tracking(ids: list[str]) -> bytes:
    return json.dumps({"tweet_ids": ids}).encode()


HOSTILE: list[Hostile] = [
    # bodies that are not UTF-8 JSON
    Hostile("random bytes", "POST", "/tweets", 400, "invalid_body", b"\xff\xfe\x00\x81garbage", JSON),
    Hostile(
        "charset latin-1",
        "POST",
        "/tweets",
        415,
        "unsupported_charset",
        '{"tweet_ids": ["1"], "x": "caf\xe9"}'.encode("latin-1"),
        {"Content-Type": "application/json; charset=latin-1"},
    ),
    Hostile(
        "UTF-16", "POST", "/engagement/totals", 400, "invalid_body", tracking(["20"]).decode().encode("utf-16"), JSON
    ),
    Hostile("nested 5,000 deep", "POST", "/engagement/totals", 422, "body_too_deep", DEEP, JSON),
    Hostile(
        "nested 40 deep in a field",
        "PUT",
        "/accounts/6253282",
        422,
        "body_too_deep",
        b'{"screen_name": "a", "access_token": ' + b"[" * 40 + b"]" * 40 + b', "access_token_secret": "s"}',
        JSON,
    ),
    Hostile(
        "gzip body",
        "POST",
        "/tweets",
        415,
        "unsupported_content_encoding",
        gzip.compress(tracking(["20"])),
        {**JSON, "Content-Encoding": "gzip"},
    ),
    Hostile("over 256 KiB", "POST", "/tweets", 413, "body_too_large", tracking(["20"] * 50_000), JSON),
    Hostile("truncated JSON", "PUT", "/accounts/6253282", 400, "invalid_json", b'{"screen_name": "a", ', JSON),
    Hostile("JSON with a BOM", "POST", "/tweets", 400, "invalid_json", b"\xef\xbb\xbf" + tracking(["20"]), JSON),
    # content types
    Hostile(
        "text/plain", "POST", "/tweets", 415, "unsupported_media_type", tracking(["20"]), {"Content-Type": "text/plain"}
    ),
    Hostile("no content type", "POST", "/tweets", 415, "unsupported_media_type", tracking(["20"])),
    Hostile(
        "form-encoded",
        "POST",
        "/tweets",
        415,
        "unsupported_media_type",
        b"tweet_ids=1&tweet_ids=2",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Hostile(
        "multipart without boundary",
        "POST",
        "/tweets",
        415,
        "unsupported_media_type",
        b"--x\r\n\r\n1\r\n--x--",
        {"Content-Type": "multipart/form-data"},
    ),
    Hostile(
        "multipart on PUT",
        "PUT",
        "/accounts/6253282",
        415,
        "unsupported_media_type",
        b"--b\r\n--b--",
        {"Content-Type": "multipart/form-data; boundary=b"},
    ),
    Hostile(
        "json-ish media type",
        "POST",
        "/tweets",
        415,
        "unsupported_media_type",
        tracking(["20"]),
        {"Content-Type": "application/jsonp"},
    ),
    # ids that are not real snowflakes
    Hostile("tweet id 0", "POST", "/tweets", 422, "validation_error", tracking(["0"]), JSON),
    Hostile("tweet id of zeros", "POST", "/tweets", 422, "validation_error", tracking(["0000000000000000000"]), JSON),
    Hostile("tweet id from 2086", "POST", "/tweets", 422, "validation_error", tracking(["9999999999999999999"]), JSON),
    Hostile("tweet id past int64", "GET", "/tweets/99999999999999999999", 422, "validation_error"),
    Hostile("tweet id from the future in a path", "GET", "/tweets/9999999999999999999", 422, "validation_error"),
    Hostile("user id 0", "GET", "/accounts/0", 422, "validation_error"),
    Hostile("user id with leading zeros", "GET", "/accounts/0006253282", 422, "validation_error"),
    Hostile("live query id 0", "POST", "/engagement/totals", 422, "validation_error", tracking(["0"]), JSON),
    # cursors this API never issued (copied and edited ones: tests/api/test_cursors.py)
    Hostile("made-up cursor on accounts", "GET", "/accounts?cursor=eyJwayI6IngifQ", 400, "invalid_cursor"),
    Hostile("made-up cursor on tweets", "GET", "/tweets?cursor=e30.AAAAAAAAAAAAAAAAAAAAAA", 400, "invalid_cursor"),
    Hostile("made-up cursor on statuses", "GET", "/statuses/ok?cursor=%00%ff", 400, "invalid_cursor"),
    Hostile("made-up cursor on metrics", "GET", "/tweets/20/metrics?cursor=..", 400, "invalid_cursor"),
    # routing
    Hostile("unknown route", "GET", "/nope", 404, "route_not_found"),
    Hostile("wrong method", "PATCH", "/tweets", 405, "method_not_allowed", tracking(["20"]), JSON),
    Hostile("DELETE on a list", "DELETE", "/accounts", 405, "method_not_allowed"),
    # OAuth redirects
    Hostile("redirect to a NUL host", "GET", "/oauth/start?redirect_uri=http://%00", 400, "invalid_redirect_uri"),
    Hostile(
        "redirect with CR/LF",
        "GET",
        "/oauth/start?redirect_uri=https://a.example/%0d%0aSet-Cookie:x=1",
        400,
        "invalid_redirect_uri",
    ),
    Hostile(
        "redirect off the allowlist",
        "GET",
        "/oauth/start?redirect_uri=https://evil.example/",
        400,
        "invalid_redirect_uri",
    ),
    Hostile(
        "redirect with javascript:", "GET", "/oauth/start?redirect_uri=javascript:alert(1)", 400, "invalid_redirect_uri"
    ),
]


@pytest.fixture
def guarded(api: ApiCaller, monkeypatch: pytest.MonkeyPatch) -> ApiCaller:
    """The API with a redirect allowlist, so that "off the allowlist" differs from "no allowlist"."""
    from xengage.http_api import context

    monkeypatch.setenv("OAUTH_REDIRECT_ALLOWLIST", "https://app.example/after-oauth/,https://console.example")
    context.reset()
    return api


def send(api: ApiCaller, case: Hostile) -> Any:
    return api(case.method, case.path, raw_body=case.raw_body, headers=case.headers)


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_a_hostile_request_gets_its_4xx_in_the_project_shape(guarded: ApiCaller, case: Hostile) -> None:
    # When the request is sent
    reply = send(guarded, case)

    # Then it is refused with the expected status and code, the body is exactly {"error": {"code", "message"}}
    assert (reply.status, reply.error_code) == (case.status, case.code), reply.text[:300]
    body = reply.json()
    assert set(body) == {"error"} or case.status == 422, body
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"], body


def test_nothing_is_tracked_by_a_refused_body(api: ApiCaller) -> None:
    # Given form-encoded and multipart bodies that a lenient parser would read as ids 1 and 2
    for case in HOSTILE:
        if case.path == "/tweets" and case.method == "POST":
            send(api, case)
    # Then no Post is tracked
    assert api("GET", "/tweets").json()["posts"] == []


def test_an_unexpected_exception_is_a_logged_500_with_the_request_id_and_no_internals(
    api: ApiCaller, monkeypatch: pytest.MonkeyPatch, api_log: io.StringIO
) -> None:
    # Given a registry that fails in a way nobody foresaw
    from xengage.http_api import accounts

    def explode(user_id: str) -> None:
        raise KeyError("internal-detail-xyz")

    monkeypatch.setattr(accounts, "require_account", explode)

    # When a route meets it
    reply = api("GET", "/accounts/6253282")

    # Then the answer is a 500 in the project's shape naming the request id, without the exception's text
    assert reply.status == 500 and reply.error_code == "internal_error"
    assert "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" in reply.json()["error"]["message"]
    assert "internal-detail-xyz" not in reply.text and "KeyError" not in reply.text
    # And the log has the traceback for the operator
    assert "internal-detail-xyz" in api_log.getvalue()


def test_a_405_names_the_methods_the_path_answers(api: ApiCaller) -> None:
    reply = api("PUT", "/tweets/1021817816134156288", raw_body=b"{}", headers=JSON)
    assert reply.status == 405
    assert reply.headers["Allow"] == "DELETE, GET"
