"""GET /dashboard and its assets (self-contained, relative, escaped), and GET /collection/health's bounded figures."""

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path

import pytest

from tests.api.conftest import ApiCaller
from tests.stack_dal import registry_dal, status_dal
from xengage.api_client.catalog import METRICS_BY_ENDPOINT, Endpoint
from xengage.dal.registry import ACCOUNT_NEEDS_REAUTH
from xengage.dal.status import KNOWN_STATUSES
from xengage.http_api.dashboard import ASSET_TYPES, STATIC_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTS = [f"18612345678901234{n:02d}" for n in range(12)]


# --- the page -----------------------------------------------------------------------------------------------------


def test_the_page_is_html_with_a_self_only_policy_and_relative_assets(api: ApiCaller) -> None:
    # Given the API
    # When the dashboard is asked for
    reply = api("GET", "/dashboard")

    # Then it is HTML allowing scripts, styles and requests from its own origin only
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/html")
    policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    # And every asset it loads is relative (works under /v1/ or a proxy) and served, with its type
    sources = re.findall(r'(?:src|href)="([^"]+)"', reply.text)
    assert sources and all(not re.match(r"^(/|[a-z]+:)", source) for source in sources if source != "data:,")
    for source in (source for source in sources if source != "data:,"):
        asset = api("GET", "/" + source)
        assert asset.status == 200, source
        assert asset.headers["Content-Type"] == ASSET_TYPES[source.rsplit("/", 1)[1]]
    # And its metric pickers are the catalog's, escaped into an attribute
    encoded = re.search(r'data-metrics="([^"]*)"', reply.text)
    assert encoded is not None
    assert json.loads(html.unescape(encoded.group(1))) == {e.value: list(m) for e, m in METRICS_BY_ENDPOINT.items()}


def test_an_unknown_or_malformed_asset_is_refused(api: ApiCaller) -> None:
    # Given names that are no asset: another file of the layer, a path, nonsense
    # When they are asked for
    # Then each is 404 asset_not_found, or 422 when the name is no file name at all
    assert api("GET", "/dashboard/assets/dashboard.html").error_code == "asset_not_found"
    assert api("GET", "/dashboard/assets/VENDORED.txt").error_code == "asset_not_found"
    assert api("GET", "/dashboard/assets/..%2Fhealth.py").status in (404, 422)
    assert api("GET", "/dashboard/assets/" + "a" * 65).status == 422


def test_the_page_script_writes_text_only_and_calls_nothing_absolute() -> None:
    # Given the page's own script and markup
    script = (STATIC_DIR / "dashboard.js").read_text(encoding="utf-8")
    markup = (STATIC_DIR / "dashboard.html").read_text(encoding="utf-8")
    # Then no data goes into the DOM as markup, and no URL names a host or an absolute path
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert not re.search(r"""fetch\(\s*["'`](/|https?:)""", script)
    assert "http://" not in script + markup and "https://" not in script + markup


def test_the_vendored_uplot_is_the_pinned_package() -> None:
    # Given the vendoring record and the Makefile's pin
    record = (STATIC_DIR / "VENDORED.txt").read_text(encoding="utf-8").splitlines()
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    version = re.search(r"^UPLOT_VERSION := (\S+)$", makefile, re.M)
    integrity = re.search(r"^UPLOT_INTEGRITY := (\S+)$", makefile, re.M)
    assert version and integrity
    # Then the files come from that package, unchanged since they were checked against its integrity
    assert f"package uplot@{version.group(1)}" in record and f"integrity {integrity.group(1)}" in record
    hashes = [line.split() for line in record if line.startswith("sha256 ")]
    assert {name for _, name, _ in hashes} == {"uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"}
    for _, name, digest in hashes:
        assert hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest() == digest, name
    assert f"(v{version.group(1)})" in (STATIC_DIR / "uPlot.iife.min.js").read_text(encoding="utf-8")[:200]


# --- collection health --------------------------------------------------------------------------------------------


def _track(api: ApiCaller, account: str, tweet_ids: list[str]) -> None:
    api.put_account(account, "brand")
    assert api("POST", "/tweets", body={"tweet_ids": tweet_ids, "account_id": account}).status == 200


def test_health_counts_posts_by_status_up_to_the_limit(api: ApiCaller) -> None:
    # Given 12 tracked Posts: 7 ok on /totals, 3 protected, 2 rate limited on /28hr
    _track(api, "800", POSTS)
    statuses = status_dal()
    for n, tweet_id in enumerate(POSTS):
        status, endpoint = ("ok", Endpoint.TOTALS) if n < 7 else ("protected", Endpoint.TOTALS)
        if n >= 10:
            status, endpoint = "rate_limited", Endpoint.HOURLY_28HR
        statuses.record(tweet_id, endpoint, status, at=f"2026-11-25T18:{n:02d}:00Z", message="why")

    # When the health is read with room to count them all, and with a limit of 5
    full = api("GET", "/collection/health").json()
    bounded = api("GET", "/collection/health", query={"count_limit": "5"}).json()

    # Then every status is listed, ok first, with exact counts; past the limit a count says "at least"
    assert full["statuses"][0]["status"] == "ok"
    counts = {entry["status"]: (entry["count"], entry["at_least"]) for entry in full["statuses"]}
    assert counts["ok"] == (7, False) and counts["protected"] == (3, False) and counts["rate_limited"] == (2, False)
    assert counts["unavailable"] == (0, False) and set(counts) == KNOWN_STATUSES  # every status, zeros too
    limited = {entry["status"]: (entry["count"], entry["at_least"]) for entry in bounded["statuses"]}
    assert limited["ok"] == (5, True) and limited["protected"] == (3, False)
    assert bounded["count_limit"] == 5


def test_health_names_the_oldest_overdue_post_per_endpoint_not_a_leased_one(api: ApiCaller) -> None:
    # Given Posts tracked with their markers due at different times, one of them leased by a tick
    _track(api, "800", POSTS[:4])
    registry = registry_dal()
    due = {POSTS[0]: "2026-11-25T10:00:00Z", POSTS[1]: "2026-11-25T09:00:00Z", POSTS[2]: "2026-11-25T11:00:00Z"}
    for tweet_id, at in due.items():
        registry.reschedule_due(tweet_id, Endpoint.TOTALS, next_due_at=at, keep_lease=False)
        registry.reschedule_due(tweet_id, Endpoint.HISTORICAL, next_due_at="2099-01-01T00:00:00Z", keep_lease=False)
    leased = registry.get_due_marker(POSTS[1], Endpoint.TOTALS)
    assert leased is not None
    registry.lease_due(leased, lease="2026-11-25T12:00:00Z", until="2099-01-01T02:00:00Z")
    registry.reschedule_due(POSTS[3], Endpoint.TOTALS, next_due_at="2099-01-01T00:00:00Z", keep_lease=False)

    # When the health is read
    health = api("GET", "/collection/health").json()

    # Then /totals names the Post due longest ago that no tick holds, with how long it has waited
    overdue = {entry["endpoint"]: entry for entry in health["oldest_overdue"]}
    assert overdue["totals"]["tweet_id"] == POSTS[0] and overdue["totals"]["next_due_at"] == due[POSTS[0]]
    assert overdue["totals"]["account_id"] == "800" and overdue["totals"]["overdue_seconds"] > 86_400
    # And /28hr (all due since tracking) names the lowest id of the tie, /historical the only one still due
    assert overdue["28hr"]["tweet_id"] == POSTS[0]
    assert overdue["historical"]["tweet_id"] == POSTS[3]


def test_health_lists_the_accounts_needing_reauthorization(api: ApiCaller) -> None:
    # Given three accounts, two of them refused by X
    for user_id in ("801", "802", "803"):
        api.put_account(user_id, f"brand{user_id}")
    registry = registry_dal()
    for user_id in ("801", "803"):
        registry.set_account_status(user_id, ACCOUNT_NEEDS_REAUTH, now="2026-11-25T18:00:00Z", last_error="401")

    # When the health is read, with room for all accounts and with a limit of 1
    flagged = api("GET", "/collection/health").json()["accounts_needing_reauth"]
    bounded = api("GET", "/collection/health", query={"count_limit": "1"}).json()["accounts_needing_reauth"]

    # Then both are named with X's error, and the bounded read says it did not look at every account
    assert [(a["user_id"], a["last_error"]) for a in flagged["accounts"]] == [("801", "401"), ("803", "401")]
    assert flagged["at_least"] is False
    assert bounded["at_least"] is True and [a["user_id"] for a in bounded["accounts"]] == ["801"]


@pytest.mark.parametrize("limit", ["0", "10001", "many"])
def test_health_refuses_a_count_limit_out_of_range(api: ApiCaller, limit: str) -> None:
    assert api("GET", "/collection/health", query={"count_limit": limit}).error_code == "validation_error"
