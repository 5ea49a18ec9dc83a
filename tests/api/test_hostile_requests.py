"""Hostile and malformed requests, one row per class the fuzzing found: each gets a 4xx in the project's error shape.

The table (tests/hostile.py) also runs over HTTP against the local stack in tests/integration/test_api_fuzz.py;
here it runs against the handler in-process, where a crash shows its traceback.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from tests.api.conftest import ApiCaller
from tests.hostile import HOSTILE, JSON, REDIRECT_ALLOWLIST, Hostile, error_shape_problem


@pytest.fixture
def guarded(api: ApiCaller, monkeypatch: pytest.MonkeyPatch) -> ApiCaller:
    """The API with a redirect allowlist, so that "off the allowlist" differs from "no allowlist"."""
    monkeypatch.setenv("OAUTH_REDIRECT_ALLOWLIST", REDIRECT_ALLOWLIST)
    return api


def send(api: ApiCaller, case: Hostile) -> Any:
    return api(case.method, case.path, raw_body=case.raw_body, headers=case.headers)


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_a_hostile_request_gets_its_4xx_in_the_project_shape(guarded: ApiCaller, case: Hostile) -> None:
    # When the request is sent
    reply = send(guarded, case)

    # Then it is refused with the expected status and code, the body is exactly {"error": {"code", "message"}}
    assert (reply.status, reply.error_code) == (case.status, case.code), reply.text[:300]
    assert error_shape_problem(reply.json()) is None, reply.text[:300]


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
