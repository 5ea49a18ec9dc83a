"""Rate limits and injected faults, through the Python API and the HTTP admin routes."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import requests

from local.emulator import FaultConfig
from tests.emulator.support import BRAND_USER_ID, NOW, PUBLIC_METRICS, Api


def _call(api: Api, headers: dict[str, str] | None = None) -> requests.Response:
    """A valid bearer /totals call."""
    return api.query("totals", api.ids(BRAND_USER_ID)[:2], ["favorites"], headers=headers or api.bearer())


def test_every_data_response_carries_rate_limit_headers(api: Api) -> None:
    # Given a limit of 3 per minute
    api.emu.set_per_minute_limit(3)
    # When calling three times / Then the headers count down, on successes and errors alike
    remaining = []
    for _ in range(3):
        response = api.query("totals", api.ids(BRAND_USER_ID)[:1], ["impressions"], headers=api.bearer())
        assert response.headers["x-per-minute-limit"] == "3"
        remaining.append(response.headers["x-per-minute-remaining"])
    assert remaining == ["2", "1", "0"]


def test_over_the_limit_is_429_until_the_next_minute(api: Api) -> None:
    # Given a limit of 2 per minute on /totals
    api.emu.set_per_minute_limit(2)
    assert [_call(api).status_code for _ in range(2)] == [200, 200]
    # When a third call comes in the same minute / Then 429 with the documented body
    limited = _call(api)
    assert limited.status_code == 429
    assert limited.json() == {"errors": ["Rate limit exceeded"]}
    assert limited.headers["x-per-minute-remaining"] == "0"
    # and other endpoints have their own budget
    own_budget = api.query("28hr", api.ids(BRAND_USER_ID)[:1], ["favorites"], auth=api.oauth(BRAND_USER_ID))
    assert own_budget.status_code == 200
    # When the clock reaches the next calendar minute / Then calls pass again
    api.emu.set_now(NOW.replace(second=0) + timedelta(minutes=1))
    assert _call(api).status_code == 200


def test_unlimited_emulator_still_advertises_headers(api: Api) -> None:
    # Given no limit (the default) / When calling / Then headers are present with a large budget
    response = _call(api)
    assert int(response.headers["x-per-minute-limit"]) >= 1000
    assert int(response.headers["x-per-minute-remaining"]) == int(response.headers["x-per-minute-limit"]) - 1


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ("429", 429, "Rate limit exceeded"),
        ("500", 500, "internal server error"),
        ("502", 502, "Proxy Error"),
        ("503", 503, "Service Unavailable"),
    ],
)
def test_scripted_status_faults(api: Api, fault: str, status: int, message: str) -> None:
    # Given one scripted fault / When two calls follow
    api.emu.script_faults([fault])
    faulted, normal = _call(api), _call(api)
    # Then only the first gets it, with an errors body; the log records the fault
    assert faulted.status_code == status
    assert faulted.json() == {"errors": [message]}
    assert normal.status_code == 200
    assert [(e.status, e.fault) for e in api.emu.log] == [(status, fault), (200, None)]


def test_scripted_reset_closes_the_connection_without_response(api: Api) -> None:
    # Given a scripted connection reset / When calling / Then the client sees a connection error
    api.emu.script_faults(["reset"])
    with pytest.raises(requests.ConnectionError):
        _call(api)
    # and the emulator keeps serving; the log shows status 0 (no response)
    assert _call(api).status_code == 200
    assert [e.status for e in api.emu.log] == [0, 200]


def test_scripted_malformed_body_is_200_with_truncated_json(api: Api) -> None:
    # Given a scripted malformed answer, asked without gzip so the raw text is visible
    api.emu.script_faults(["malformed"])
    response = _call(api, headers={**api.bearer(), "Accept-Encoding": "identity"})
    # Then status 200 but the body does not parse as JSON
    assert response.status_code == 200
    assert response.text.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_scripted_timeout_hangs_past_the_client_timeout(api: Api) -> None:
    # Given a scripted timeout with a 1 s hang
    api.emu.set_faults(FaultConfig(hang_seconds=1.0))
    api.emu.script_faults(["timeout"])
    url = f"{api.emu.url}/insights/engagement/totals"
    body = {
        "tweet_ids": api.ids(BRAND_USER_ID)[:1],
        "engagement_types": ["favorites"],
        "groupings": {"g": {"group_by": ["tweet.id"]}},
    }
    # When the client waits only 0.2 s / Then it times out
    with pytest.raises(requests.ReadTimeout):
        requests.post(url, json=body, headers=api.bearer(), timeout=(1, 0.2))
    # and a patient client gets the normal answer after the hang
    api.emu.script_faults(["timeout"])
    began = time.perf_counter()
    patient = requests.post(url, json=body, headers=api.bearer(), timeout=5)
    assert patient.status_code == 200
    assert time.perf_counter() - began >= 0.9


def test_script_ok_slots_let_calls_through_in_order(api: Api) -> None:
    # Given a script mixing faults and pass-through slots
    api.emu.script_faults(["503", "ok", "429"])
    # When four calls are made / Then they answer in script order, then normally
    assert [_call(api).status_code for _ in range(4)] == [503, 200, 429, 200]


def test_random_faults_follow_their_shares_and_seed(api: Api) -> None:
    # Given every call configured to fail with a 5xx
    api.emu.set_faults(FaultConfig(rate_5xx=1.0, seed=7))
    statuses = [_call(api).status_code for _ in range(12)]
    # Then all are 500/502/503, and the same seed gives the same sequence again
    assert set(statuses) <= {500, 502, 503}
    api.emu.set_faults(FaultConfig(rate_5xx=1.0, seed=7))
    assert [_call(api).status_code for _ in range(12)] == statuses
    # When shares are split between 429 and success / Then both appear over enough calls
    api.emu.set_faults(FaultConfig(rate_429=0.5, seed=3))
    mixed = {_call(api).status_code for _ in range(30)}
    assert mixed == {200, 429}


def test_latency_is_added_to_each_data_call(api: Api) -> None:
    # Given 150 ms latency / When calling / Then the call takes at least that long
    api.emu.set_faults(FaultConfig(latency_ms=150))
    began = time.perf_counter()
    assert _call(api).status_code == 200
    assert time.perf_counter() - began >= 0.15


def test_fault_config_rejects_impossible_shares() -> None:
    # Given shares outside 0..1 or summing above 1 / Then a clear ValueError
    with pytest.raises(ValueError, match="rate_429"):
        FaultConfig(rate_429=1.5)
    with pytest.raises(ValueError, match="more than 1"):
        FaultConfig(rate_429=0.6, rate_5xx=0.6)


def test_admin_routes_configure_a_running_instance(api: Api) -> None:
    base = f"{api.emu.url}/_emulator"
    # Given faults and a limit set over HTTP
    assert requests.post(f"{base}/script", json={"faults": ["502"]}, timeout=5).json() == {"pending": ["502"]}
    assert requests.post(f"{base}/limit", json={"per_minute_limit": 5}, timeout=5).status_code == 200
    # When a data call is made / Then the scripted fault and the new limit apply
    response = _call(api)
    assert response.status_code == 502
    assert response.headers["x-per-minute-limit"] == "5"
    # Given random faults posted as JSON / Then they are in force
    configured = requests.post(f"{base}/faults", json={"rate_429": 1.0}, timeout=5)
    assert configured.json()["faults"]["rate_429"] == 1.0
    assert _call(api).status_code == 429
    # Given a typo in a fault option / Then 400 naming it
    typo = requests.post(f"{base}/faults", json={"rate_4299": 1.0}, timeout=5)
    assert typo.status_code == 400 and "rate_4299" in typo.json()["errors"][0]
    # When the log is read and cleared over HTTP / Then it lists both calls, then none
    entries = requests.get(f"{base}/log", timeout=5).json()["requests"]
    assert [(e["endpoint"], e["status"], e["auth_kind"]) for e in entries] == [
        ("totals", 502, "bearer"),
        ("totals", 429, "bearer"),
    ]
    assert requests.delete(f"{base}/log", timeout=5).status_code == 200
    assert requests.get(f"{base}/log", timeout=5).json() == {"requests": []}


def test_admin_clock_route_moves_the_age_rules(api: Api) -> None:
    # Given a Post 80 days old
    tweet_id = api.world.add_post(BRAND_USER_ID, NOW - timedelta(days=80)).tweet_id
    # When the clock is moved 30 days on over HTTP
    moved = requests.post(
        f"{api.emu.url}/_emulator/clock", json={"now": (NOW + timedelta(days=30)).isoformat()}, timeout=5
    )
    assert moved.status_code == 200
    # Then impressions are no longer served for it on /totals
    body = api.query("totals", [tweet_id], ["impressions"], auth=api.oauth(BRAND_USER_ID)).json()
    assert body["unsupported_for_impressions_engagements_tweet_ids"] == [tweet_id]


def test_concurrent_clients_are_served(api: Api) -> None:
    # Given latency so that sequential handling would take 8 x 0.2 s
    from concurrent.futures import ThreadPoolExecutor

    api.emu.set_faults(FaultConfig(latency_ms=200))
    ids = api.ids(BRAND_USER_ID)[:3]
    url = f"{api.emu.url}/insights/engagement/totals"
    body = {"tweet_ids": ids, "engagement_types": PUBLIC_METRICS, "groupings": {"g": {"group_by": ["tweet.id"]}}}
    # When 8 clients call at once
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(lambda _: requests.post(url, json=body, headers=api.bearer(), timeout=5).status_code, range(8))
        )
    # Then all succeed in far less than the sequential time
    assert statuses == [200] * 8
    assert time.perf_counter() - began < 1.2
