"""Rate limits and injected faults, through the Python API and the HTTP admin routes."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from local.emulator import EmulatorServer, FaultConfig, default_world
from local.emulator.ratelimit import PerMinuteLimiter
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


def test_shortened_window_lets_several_limited_minutes_pass_quickly(api: Api) -> None:
    # Given a limit of 2 per 5-second "minute", with the clock pinned on a window start (12:30:00)
    api.emu.set_per_minute_limit(2)
    api.emu.set_window_seconds(5)
    assert [_call(api).status_code for _ in range(3)] == [200, 200, 429]
    # When the clock is still inside the same 5 s / Then the budget stays spent
    api.emu.set_now(NOW + timedelta(seconds=4.999))
    assert _call(api).status_code == 429
    # When the next 5 s window starts / Then calls pass again, with the full budget advertised
    api.emu.set_now(NOW + timedelta(seconds=5))
    fresh = _call(api)
    assert fresh.status_code == 200
    assert fresh.headers["x-per-minute-remaining"] == "1"


def test_windows_are_aligned_to_the_epoch_not_to_the_first_call(api: Api) -> None:
    # Given 7 s windows (7 does not divide a minute) and the clock half a second before a multiple of 7 s
    boundary = datetime.fromtimestamp(math.ceil(NOW.timestamp() / 7) * 7, UTC)
    api.emu.set_per_minute_limit(1)
    api.emu.set_window_seconds(7)
    api.emu.set_now(boundary - timedelta(seconds=0.5))
    assert [_call(api).status_code for _ in range(2)] == [200, 429]
    # When half a second passes, crossing the epoch-aligned boundary / Then a new window has begun
    api.emu.set_now(boundary)
    assert _call(api).status_code == 200


def test_limiter_window_index_is_time_since_epoch_over_window() -> None:
    # Given a sub-second window of 0.25 s and a limit of 1
    limiter = PerMinuteLimiter(1, window_seconds=0.25)
    start = NOW + timedelta(seconds=0.25)
    # When calls land 0.2 s apart, then on the next multiple of 0.25 s
    first, same_window, next_window = (limiter.take("totals", start + timedelta(seconds=s)) for s in (0, 0.2, 0.25))
    # Then only the call in the already used window is refused
    assert (first.allowed, same_window.allowed, next_window.allowed) == (True, False, True)
    # and the default of 60 s is the calendar minute: 12:30:59 and 12:30:59.999999 share one, 12:31:00 starts anew
    minute = PerMinuteLimiter(1)
    assert minute.window_seconds == 60.0
    assert minute.take("totals", NOW + timedelta(seconds=59)).allowed
    assert not minute.take("totals", NOW + timedelta(seconds=59.999999)).allowed
    assert minute.take("totals", NOW + timedelta(minutes=1)).allowed


@pytest.mark.parametrize("window", [0, -1.0, math.nan, math.inf])
def test_window_seconds_must_be_a_positive_number(window: float) -> None:
    # Given a window that is not a finite positive number / Then every way of setting it refuses it
    with pytest.raises(ValueError, match="window_seconds"):
        PerMinuteLimiter(None, window_seconds=window)
    with pytest.raises(ValueError, match="window_seconds"):
        EmulatorServer(default_world(NOW), now=NOW, window_seconds=window)
    limiter = PerMinuteLimiter(5, window_seconds=2.0)
    with pytest.raises(ValueError, match="window_seconds"):
        limiter.set_window_seconds(window)
    # and a refused value changes nothing
    assert (limiter.limit, limiter.window_seconds) == (5, 2.0)


def test_admin_limit_route_sets_either_value_and_answers_both(api: Api) -> None:
    url = f"{api.emu.url}/_emulator/limit"
    # Given the defaults / When read / Then unlimited with 60 s windows
    assert requests.get(url, timeout=5).json() == {"per_minute_limit": None, "window_seconds": 60.0}
    # When only the window is posted / Then the limit keeps its value, and the other way round
    assert requests.post(url, json={"window_seconds": 2.5}, timeout=5).json() == {
        "per_minute_limit": None,
        "window_seconds": 2.5,
    }
    assert requests.post(url, json={"per_minute_limit": 1}, timeout=5).json() == {
        "per_minute_limit": 1,
        "window_seconds": 2.5,
    }
    # Then both are in force on data calls
    assert [_call(api).status_code for _ in range(2)] == [200, 429]
    api.emu.set_now(NOW + timedelta(seconds=2.5))
    assert _call(api).status_code == 200
    # When both are posted at once / Then both change
    both = requests.post(url, json={"per_minute_limit": None, "window_seconds": 60}, timeout=5)
    assert both.json() == {"per_minute_limit": None, "window_seconds": 60.0}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"window_seconds": 0}, "window_seconds must be a finite number > 0"),
        ({"window_seconds": -3, "per_minute_limit": 9}, "window_seconds must be a finite number > 0"),
        ({"window_seconds": "5"}, "window_seconds must be a number > 0"),
        ({"window_seconds": None}, "window_seconds must be a number > 0"),
        ({"per_minute_limit": -1}, "per_minute_limit must be >= 0"),
        ({"minute_seconds": 5}, "unknown limit option(s): minute_seconds"),
    ],
)
def test_admin_limit_route_refuses_bad_values_and_changes_nothing(
    api: Api, body: dict[str, object], expected: str
) -> None:
    # Given a limit of 4 per 10 s
    api.emu.set_per_minute_limit(4)
    api.emu.set_window_seconds(10)
    url = f"{api.emu.url}/_emulator/limit"
    # When a bad value is posted / Then 400 naming it
    refused = requests.post(url, json=body, timeout=5)
    assert refused.status_code == 400
    assert expected in refused.json()["errors"][0]
    # and neither value changed, not even the valid one posted alongside
    assert requests.get(url, timeout=5).json() == {"per_minute_limit": 4, "window_seconds": 10.0}


def test_window_seconds_option_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from local.emulator.__main__ import build_parser

    # Given no environment variable / Then the window is the 60 s minute
    monkeypatch.delenv("EMULATOR_WINDOW_SECONDS", raising=False)
    assert build_parser().parse_args([]).window_seconds == 60.0
    # Given EMULATOR_WINDOW_SECONDS / Then it is the default, and the flag still wins over it
    monkeypatch.setenv("EMULATOR_WINDOW_SECONDS", "2.5")
    assert build_parser().parse_args([]).window_seconds == 2.5
    assert build_parser().parse_args(["--window-seconds", "0.5"]).window_seconds == 0.5


def test_command_line_rejects_a_window_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    # Given --window-seconds 0 / When the CLI starts / Then a usage error naming the option, before binding
    from local.emulator.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", "--window-seconds", "0"])
    assert exited.value.code == 2
    assert "window_seconds must be a finite number > 0" in capsys.readouterr().err


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
