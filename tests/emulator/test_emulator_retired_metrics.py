"""Retired engagement types: the API refusing a metric it used to accept, as when X retires one."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from local.emulator import FaultConfig
from tests.emulator.support import BRAND_USER_ID, Api


@pytest.mark.parametrize("endpoint", ["28hr", "historical"])
def test_retired_metric_is_refused_like_an_unknown_name(api: Api, endpoint: str) -> None:
    # Given a request for media_views that the endpoint serves today
    tweet_id = api.ids(BRAND_USER_ID)[0]
    auth = api.oauth(BRAND_USER_ID)
    assert api.query(endpoint, [tweet_id], ["impressions", "media_views"], auth=auth).status_code == 200
    # When media_views is retired
    api.emu.set_faults(FaultConfig(retired_metrics=("media_views",)))
    refused = api.query(endpoint, [tweet_id], ["impressions", "media_views"], auth=auth)
    # Then the same request is 400 with the wording used for names the endpoint never served
    assert refused.status_code == 400
    assert refused.json() == {"errors": [f"Unsupported engagement types for /{endpoint}: media_views"]}
    assert api.emu.log[-1].status == 400
    # and a request that does not ask for it is served normally
    served = api.query(endpoint, [tweet_id], ["impressions", "engagements"], auth=auth)
    assert served.status_code == 200
    assert set(served.json()["per_tweet"][tweet_id]) == {"impressions", "engagements"}


def test_retired_and_unknown_names_are_listed_together_in_request_order(api: Api) -> None:
    # Given two retired metrics, one of them public on /totals
    api.emu.set_faults(FaultConfig(retired_metrics=("video_views", "engagements")))
    tweet_id = api.ids(BRAND_USER_ID)[0]
    # When a request mixes them with a kept metric and a name /totals never served
    metrics = ["engagements", "impressions", "media_views", "video_views"]
    refused = api.query("totals", [tweet_id], metrics, auth=api.oauth(BRAND_USER_ID))
    # Then one 400 names all three, in the order asked
    assert refused.status_code == 400
    assert refused.json() == {
        "errors": ["Unsupported engagement types for /totals: engagements, media_views, video_views"]
    }
    # and the bearer path is refused the same way
    by_bearer = api.query("totals", [tweet_id], ["favorites", "video_views"], headers=api.bearer())
    assert by_bearer.json() == {"errors": ["Unsupported engagement types for /totals: video_views"]}


def test_admin_faults_route_retires_and_reinstates_metrics(api: Api) -> None:
    url = f"{api.emu.url}/_emulator/faults"
    tweet_id = api.ids(BRAND_USER_ID)[0]
    auth = api.oauth(BRAND_USER_ID)
    # Given media_views retired over HTTP as a JSON list / Then the answer lists it
    configured = requests.post(url, json={"retired_metrics": ["media_views"]}, timeout=5)
    assert configured.status_code == 200
    assert configured.json()["faults"]["retired_metrics"] == ["media_views"]
    # When asked for / Then refused
    assert api.query("28hr", [tweet_id], ["media_views"], auth=auth).status_code == 400
    # When a new fault config leaves it out / Then it is served again (a config replaces the whole config)
    assert requests.post(url, json={}, timeout=5).json()["faults"]["retired_metrics"] == []
    assert api.query("28hr", [tweet_id], ["media_views"], auth=auth).status_code == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("media_views", "must be a list of engagement types"),
        (["media_views", 3], "must hold strings"),
        (["media_view"], "unknown engagement type(s) in retired_metrics: media_view"),
    ],
)
def test_retired_metrics_must_be_a_list_of_known_names(api: Api, value: Any, expected: str) -> None:
    # Given a bare string, a non-string or a typo / Then FaultConfig and the admin route refuse it
    with pytest.raises(ValueError, match="retired_metrics"):
        FaultConfig.from_mapping({"retired_metrics": value})
    refused = requests.post(f"{api.emu.url}/_emulator/faults", json={"retired_metrics": value}, timeout=5)
    assert refused.status_code == 400
    assert expected in refused.json()["errors"][0]
    # and nothing was retired
    assert api.emu.service.faults.config.retired_metrics == ()


def test_retired_metrics_round_trip_through_json_shapes() -> None:
    # Given a config built from JSON with a repeated name
    config = FaultConfig.from_mapping({"retired_metrics": ["media_views", "url_clicks", "media_views"]})
    # Then it holds a tuple without repeats, to_dict gives a list, and from_mapping reads that back
    assert config.retired_metrics == ("media_views", "url_clicks")
    assert config.to_dict()["retired_metrics"] == ["media_views", "url_clicks"]
    assert FaultConfig.from_mapping(config.to_dict()) == config
