"""The dashboard in a real browser: Debian's chromium, driven by playwright, on `make run`'s stack and demo data.

The page must draw exactly the points the API answers, load nothing from beyond loopback, log no console error, and
leave a screenshot (`test-artifacts/dashboard.png`). Skipped, saying why, only where chromium is not installed and
`make browser` (a prerequisite of `make test`) could not install it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode, urlsplit
from urllib.request import Request, urlopen

import pytest

from tests.integration.helpers import make_run_in_background

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "test-artifacts" / "dashboard.png"
LOOPBACK = frozenset({"127.0.0.1", "localhost"})
WAIT_MS = 20_000


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def get_json(api_url: str, path: str, **params: Any) -> tuple[int, Any]:
    query = urlencode({name: value for name, value in params.items() if value is not None})
    request = Request(f"{api_url}/{path}" + (f"?{query}" if query else ""), headers={"Accept": "application/json"})
    try:
        with urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def api_series(api_url: str, plotted: dict[str, Any]) -> list[list[Any]]:
    """What the chart should draw, from the API itself: x in epoch seconds, y the metric (null where absent)."""
    xs: list[float] = []
    ys: list[int | None] = []
    cursor = None
    while True:
        status, page = get_json(
            api_url,
            f"tweets/{plotted['tweet_id']}/metrics",
            endpoint=plotted["endpoint"],
            limit=1000,
            cursor=cursor,
            **{"from": plotted["from"], "to": plotted["to"]},
        )
        assert status == 200, page
        for point in page["points"]:
            xs.append(_epoch(point["at"]))
            ys.append(point["metrics"].get(plotted["metric"]))
        cursor = page["next_cursor"]
        if not cursor:
            return [xs, ys]


def _epoch(at: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium: `make browser` installs Debian's (apt-get install chromium) and could not here")
    return path


@pytest.fixture(scope="module")
def running_stack(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with make_run_in_background(tmp_path_factory.mktemp("dashboard-state")) as api_url:
            yield api_url
    except RuntimeError as failed:
        pytest.fail(str(failed))


@pytest.fixture
def page(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


class PageLog:
    """Every request the page made (and any it tried beyond loopback, refused), its console errors and exceptions."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        self.refused: list[str] = []
        self.console_errors: list[tuple[str, str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append((f"uncaught: {error}", "")))
        page.route("**/*", self._route)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, str(message.location.get("url", ""))))

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.urls.append(url)
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()


def wait_for_view(page: Any, after_generation: int) -> None:
    page.wait_for_function(
        "n => window.xengageDashboard && window.xengageDashboard.ready && window.xengageDashboard.generation > n",
        arg=after_generation,
        timeout=WAIT_MS,
    )


def drawn(page: Any) -> dict[str, Any]:
    """What each chart holds (uPlot's own data arrays, as drawn) and what it was asked for."""
    return page.evaluate(
        """() => {
            const d = window.xengageDashboard;
            const out = {};
            for (const name of ["totals", "hourly"]) {
                out[name] = {...d.plotted[name], data: d.charts[name].data.map(a => Array.from(a))};
            }
            out.errors = d.errors;
            return out;
        }"""
    )


def test_the_dashboard_draws_what_the_api_answers_on_loopback_only(running_stack: str, page: Any) -> None:
    # Given make run's stack with its demo account, Posts and first collection, and the API's own view of it
    api = running_stack
    _, accounts = get_json(api, "accounts")
    account_id = accounts["accounts"][0]["user_id"]
    _, top = get_json(api, f"accounts/{account_id}/top", metric="impressions", limit=10)
    _, health = get_json(api, "collection/health")
    usage_status, usage = get_json(api, "usage")
    log = PageLog(page)

    # When the dashboard opens from the API's own address
    page.goto(f"{api}/dashboard")
    wait_for_view(page, 0)
    first = drawn(page)

    # Then both charts draw exactly the points the API answers for the account's top Post
    assert first["errors"] == []
    for name in ("totals", "hourly"):
        chart = first[name]
        assert chart["tweet_id"] == top["posts"][0]["tweet_id"] and chart["metric"] == "impressions"
        assert chart["data"] == api_series(api, chart), name
    assert first["totals"]["endpoint"] == "totals" and first["hourly"]["endpoint"] == "28hr"
    assert len(first["hourly"]["data"][0]) > 1 and any(v is not None for v in first["hourly"]["data"][1])

    # And the health figures are the API's
    rows = page.locator("#health-statuses tbody tr").all_inner_texts()
    shown = {row.split("\t")[0]: row.split("\t")[1] for row in rows}
    expected = {e["status"]: f"{e['count']:,}" for e in health["statuses"] if e["count"] or e["status"] == "ok"}
    assert shown == expected
    handles = page.locator("#health-handles").inner_text()
    if usage_status == 200:
        assert str(usage["unique_handles"]) in handles
    else:
        assert usage_status == 404 and handles == "n/a"

    # And the accounts are the API's (and the app's own Posts), the top Posts its ranking
    options = page.locator("#account-select option").evaluate_all("nodes => nodes.map(n => n.value)")
    assert options == [account["user_id"] for account in accounts["accounts"]] + [""]
    top_rows = page.locator("#top-table tbody tr").all_inner_texts()
    assert [row.split("\t")[1] for row in top_rows] == [entry["tweet_id"] for entry in top["posts"]]

    # And the account's tracked Posts are listed, and the search narrows them
    _, posts = get_json(api, "tweets", account_id=account_id, limit=250)
    listed = page.locator("#post-list li button").all_inner_texts()
    assert sorted(listed) == sorted(post["tweet_id"] for post in posts["posts"])
    needle = posts["posts"][0]["tweet_id"][-6:]
    page.fill("#post-search", needle)
    narrowed = page.locator("#post-list li button").all_inner_texts()
    assert narrowed and all(needle in tweet_id for tweet_id in narrowed) and len(narrowed) < len(listed)

    # When another metric, range and hourly series are picked
    page.select_option("#metric", "engagements")
    page.select_option("#range", "7d")
    page.select_option("#series-endpoint", "historical")
    page.wait_for_function(
        "() => { const p = window.xengageDashboard.plotted.hourly; return window.xengageDashboard.ready && "
        "p.endpoint === 'historical' && p.metric === 'engagements' && p.from !== null; }",
        timeout=WAIT_MS,
    )
    second = drawn(page)

    # Then the charts follow, again point for point
    for name in ("totals", "hourly"):
        assert second[name]["metric"] == "engagements" and second[name]["from"] is not None
        assert second[name]["data"] == api_series(api, second[name]), name
    assert len(second["hourly"]["data"][0]) > 1

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    print(f"\ndashboard screenshot: {SCREENSHOT}")

    # And nothing left loopback, and the console stayed clean (a 404 from /usage is the page's n/a, not an error)
    assert log.refused == []
    assert log.urls and all(urlsplit(url).hostname in LOOPBACK for url in log.urls if not url.startswith("data:"))
    tolerated = {f"{api}/usage"} if usage_status == 404 else set()
    assert [error for error in log.console_errors if error[1] not in tolerated] == []
    assert SCREENSHOT.stat().st_size > 10_000


def test_through_the_signing_proxy_the_page_works_as_on_the_api(running_stack: str, page: Any) -> None:
    # Given `make dashboard`'s proxy in IAM mode in front of the stack's API (a deployed stack's stage path is /v1/:
    # the proxy maps its root there, and the page asks for nothing by absolute path)
    from botocore.credentials import Credentials

    from local.dashboard_proxy import DashboardProxy, Upstream

    upstream = Upstream(
        api_url=running_stack + "/", auth="IAM", region="us-east-1", credentials=Credentials("AKIDTEST", "secret")
    )
    log = PageLog(page)
    with DashboardProxy(upstream) as proxy:
        # When the browser opens the URL the proxy prints
        page.goto(f"{proxy.url}/dashboard")
        wait_for_view(page, 0)
        shown = drawn(page)

    # Then the page drew the API's points, every request went through the proxy, and nothing failed
    assert shown["errors"] == []
    for name in ("totals", "hourly"):
        assert shown[name]["data"] == api_series(running_stack, shown[name]), name
    assert log.refused == [] and all(url.startswith(proxy.url) for url in log.urls if not url.startswith("data:"))
    usage_status, _ = get_json(running_stack, "usage")
    tolerated = {f"{proxy.url}/usage"} if usage_status == 404 else set()
    assert [error for error in log.console_errors if error[1] not in tolerated] == []
