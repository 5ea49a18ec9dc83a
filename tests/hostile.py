"""Hostile and malformed requests, one row per class the fuzzing found, with the answer each must get.

Run in-process by tests/api/test_hostile_requests.py and over HTTP against the local stack by
tests/integration/test_api_fuzz.py (and `make fuzz`).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from typing import Any

# What the table's OAuth rows assume: redirects allowed to these only (OAUTH_REDIRECT_ALLOWLIST).
REDIRECT_ALLOWLIST = "https://app.example/after-oauth/,https://console.example"

JSON = {"Content-Type": "application/json"}
DEEP = ("[" * 5000 + "]" * 5000).encode()


@dataclass(frozen=True)
class Hostile:
    """One request and the answer it must get: status and error code."""

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
    Hostile("over 256 KiB", "POST", "/engagement/totals", 413, "body_too_large", tracking(["20"] * 50_000), JSON),
    # POST /tweets takes up to 10,000 ids, as JSON or CSV, in 1 MiB
    Hostile("over 1 MiB", "POST", "/tweets", 413, "body_too_large", tracking(["20"] * 200_000), JSON),
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
    # (POST /tweets judges each id on its own and answers the bad ones in rejected_ids: tests/api/test_bulk_tracking.py)
    Hostile("tweet id of zeros", "POST", "/engagement/totals", 422, "validation_error", tracking(["0" * 19]), JSON),
    Hostile("tweet id from 2086", "POST", "/engagement/totals", 422, "validation_error", tracking(["9" * 19]), JSON),
    Hostile("tweet id past int64", "GET", "/tweets/99999999999999999999", 422, "validation_error"),
    Hostile("tweet id from the future in a path", "GET", "/tweets/9999999999999999999", 422, "validation_error"),
    Hostile("user id 0", "GET", "/accounts/0", 422, "validation_error"),
    Hostile("user id with leading zeros", "GET", "/accounts/0006253282", 422, "validation_error"),
    Hostile("live query id 0", "POST", "/engagement/totals", 422, "validation_error", tracking(["0"]), JSON),
    # strings far longer than any valid value
    Hostile(
        "a 10,000-character metric name",
        "POST",
        "/engagement/totals",
        422,
        "validation_error",
        json.dumps({"tweet_ids": ["20"], "engagement_types": ["x" * 10_000]}).encode(),
        JSON,
    ),
    Hostile("a 1,000-character timestamp", "GET", "/tweets/20/metrics?from=" + "1" * 1000, 422, "validation_error"),
    Hostile("a 5,000-character cursor", "GET", "/accounts?cursor=" + "A" * 5000, 422, "validation_error"),
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


def error_shape_problem(body: Any) -> str | None:
    """Why `body` is not `{"error": {"code", "message"}}` (plus documented fields), or None when it is."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return "no error object"
    error = body["error"]
    if set(error) != {"code", "message"} or not all(isinstance(error[key], str) and error[key] for key in error):
        return f"error has {sorted(error)}, not a non-empty code and message"
    return None
