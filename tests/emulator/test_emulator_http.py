"""HTTP-level behaviour: gzip, the request log, unknown routes, and `python -m local.emulator` itself."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from local.emulator import EmulatorServer, FaultConfig, default_world
from tests.emulator.support import BRAND_USER_ID, CLIENT_USER_ID, NOW, PUBLIC_METRICS, Api

REPO_ROOT = Path(__file__).resolve().parents[2]


def _raw_post(api: Api, accept_encoding: str) -> requests.Response:
    body = {
        "tweet_ids": api.ids(BRAND_USER_ID)[:3],
        "engagement_types": PUBLIC_METRICS,
        "groupings": {"g": {"group_by": ["tweet.id"]}},
    }
    headers = {**api.bearer(), "Accept-Encoding": accept_encoding}
    return requests.post(
        f"{api.emu.url}/insights/engagement/totals", json=body, headers=headers, timeout=5, stream=True
    )


def test_gzip_when_asked_for_and_plain_otherwise(api: Api) -> None:
    # Given a client that accepts gzip / When calling
    zipped = _raw_post(api, "gzip")
    raw = zipped.raw.read(decode_content=False)
    # Then the body is gzip-compressed JSON and says so
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(raw))["g"]
    # Given a client that does not / Then plain JSON without Content-Encoding
    plain = _raw_post(api, "identity")
    assert "Content-Encoding" not in plain.headers
    assert json.loads(plain.raw.read())["g"]


def test_request_log_records_every_data_call(api: Api) -> None:
    # Given calls with OAuth (ok), bearer (forbidden ids are irrelevant for bearer) and a failing one
    own = api.ids(BRAND_USER_ID)[:2]
    api.query("totals", own, ["impressions"], auth=api.oauth(BRAND_USER_ID))
    api.query("28hr", api.ids(CLIENT_USER_ID)[:1], ["impressions"], auth=api.oauth(BRAND_USER_ID))
    api.query("totals", own, ["favorites"])
    # When reading the log / Then each call is there with endpoint, auth, user, ids and status
    log = api.emu.log
    assert [(e.endpoint, e.auth_kind, e.user_id, e.id_count, e.status) for e in log] == [
        ("totals", "oauth1", BRAND_USER_ID, 2, 200),
        ("28hr", "oauth1", BRAND_USER_ID, 1, 403),
        ("totals", "none", None, 2, 401),
    ]
    assert log[0].tweet_ids == tuple(own)
    assert log[0].at == NOW
    # and the log is a copy: changing it changes nothing; clear_log empties it
    log.clear()
    assert len(api.emu.log) == 3
    api.emu.clear_log()
    assert api.emu.log == []


def test_unknown_paths_are_404_json(api: Api) -> None:
    # Given a path the API does not have / Then 404 with an errors body
    response = requests.post(f"{api.emu.url}/insights/engagement/weekly", json={}, timeout=5)
    assert response.status_code == 404
    assert "weekly" in response.json()["errors"][0]


def test_world_route_lists_posts_without_secrets(api: Api) -> None:
    # Given the demo world / When GET /_emulator/world
    summary = requests.get(f"{api.emu.url}/_emulator/world", timeout=5).json()
    # Then every Post is listed and no token or secret appears
    assert {p["tweet_id"] for p in summary["posts"]} == set(api.world.posts)
    text = json.dumps(summary)
    for user in api.world.users.values():
        assert user.access_token not in text and user.access_token_secret not in text
    assert api.world.app.consumer_secret not in text


def test_stop_releases_the_port_even_with_a_hanging_request() -> None:
    # Given a running emulator whose next call hangs for 30 s, and a client stuck in that call
    emu = EmulatorServer(default_world(NOW), now=NOW, faults=FaultConfig(hang_seconds=30)).start()
    url = emu.url
    emu.script_faults(["timeout"])
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{url}/insights/engagement/totals", json={}, timeout=(1, 0.2))
    # When stopped / Then it stops promptly and the port no longer answers
    began = time.perf_counter()
    emu.stop()
    assert time.perf_counter() - began < 3
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_emulator/health", timeout=1)


def test_command_line_runs_prints_credentials_and_stops_on_sigterm() -> None:
    # Given `python -m local.emulator --port 0 --per-minute-limit 7` with EMULATOR_WINDOW_SECONDS=2.5
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO_ROOT / 'layers' / 'common'}{os.pathsep}{REPO_ROOT}",
        "EMULATOR_WINDOW_SECONDS": "2.5",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "local.emulator", "--port", "0", "--per-minute-limit", "7"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.split(" on ")[1].split()[0]
        banner = "".join(process.stdout.readline() for _ in range(3))
        # Then it prints its URL and the demo credentials
        assert url.startswith("http://127.0.0.1:")
        assert "demo-consumer-key" in banner and "demo-bearer-token" in banner
        # and serves data calls with the configured limit
        world = default_world()
        tweet_id = world.posts_of(BRAND_USER_ID)[0].tweet_id
        response = requests.post(
            f"{url}/insights/engagement/totals",
            json={
                "tweet_ids": [tweet_id],
                "engagement_types": ["favorites"],
                "groupings": {"g": {"group_by": ["tweet.id"]}},
            },
            headers={"Authorization": "Bearer demo-bearer-token"},
            timeout=5,
        )
        assert response.status_code == 200
        assert response.headers["x-per-minute-limit"] == "7"
        # and the rate-limit window comes from the environment
        limits = requests.get(f"{url}/_emulator/limit", timeout=5).json()
        assert limits == {"per_minute_limit": 7, "window_seconds": 2.5}
        # When SIGTERM arrives / Then it exits cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_command_line_rejects_impossible_fault_shares(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a share above 1 / When the CLI parses it / Then it exits with a usage error naming the option
    from local.emulator.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--rate-429", "2"])
    assert exited.value.code == 2
    assert "rate_429 must be within 0..1" in capsys.readouterr().err
