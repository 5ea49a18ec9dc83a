"""The catalog's configured extras (`EXTRA_ENGAGEMENT_TYPES`): parsed once, accepted and asked by the client's
request shaping, and the emulator configured to serve an engagement type X added."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.emulator import FaultConfig
from xengage.api_client.batching import resolve_metrics
from xengage.api_client.catalog import (
    METRICS_BY_ENDPOINT,
    PUBLIC_TOTALS_METRICS,
    TIME_SERIES_METRICS,
    Endpoint,
    all_metrics,
    metrics_for,
)
from xengage.api_client.errors import RequestValidationError
from xengage.settings import CatalogSettings, parse_extra_engagement_types


@pytest.fixture
def extras(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("EXTRA_ENGAGEMENT_TYPES", "series:video_completions, totals:bookmarks,shares,impressions")
    yield
    monkeypatch.delenv("EXTRA_ENGAGEMENT_TYPES")


def test_entries_are_scoped_to_endpoints_in_the_order_given() -> None:
    parsed = parse_extra_engagement_types(" series:a_b , totals:c,d,28hr:e,historical:f,,")
    assert parsed == {
        Endpoint.HOURLY_28HR: ("a_b", "d", "e"),
        Endpoint.HISTORICAL: ("a_b", "d", "f"),
        Endpoint.TOTALS: ("c", "d"),
    }
    assert CatalogSettings.model_validate({}).extra_engagement_types == {}


@pytest.mark.parametrize(
    ("text", "named"),
    [("weekly:shares", "weekly:shares"), ("Shares", "Shares"), ("totals:", "totals:"), ("a-b", "a-b")],
)
def test_a_bad_entry_stops_the_settings_naming_it(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        CatalogSettings.model_validate({"EXTRA_ENGAGEMENT_TYPES": text})


def test_extras_join_the_catalog_after_its_names_without_repeating_them(extras: None) -> None:
    # Given series:video_completions, totals:bookmarks, and shares and impressions everywhere
    # Then each endpoint takes its documented names first, then the new ones (impressions is not repeated)
    assert metrics_for(Endpoint.TOTALS) == (*METRICS_BY_ENDPOINT[Endpoint.TOTALS], "bookmarks", "shares")
    assert metrics_for(Endpoint.HISTORICAL) == (*TIME_SERIES_METRICS, "video_completions", "shares")
    assert {"bookmarks", "video_completions", "shares"} <= set(all_metrics())
    # And the documented catalog itself is unchanged (the emulator and the storage format read it)
    assert "shares" not in METRICS_BY_ENDPOINT[Endpoint.TOTALS]


def test_the_client_asks_and_accepts_the_extras_in_user_context(extras: None) -> None:
    # The collector's default (no list given) asks for the extras with the owner's tokens, not with the app's bearer
    assert resolve_metrics(Endpoint.HOURLY_28HR, None, has_user=True)[-2:] == ["video_completions", "shares"]
    assert resolve_metrics(Endpoint.TOTALS, None, has_user=True)[-2:] == ["bookmarks", "shares"]
    assert resolve_metrics(Endpoint.TOTALS, None, has_user=False) == list(PUBLIC_TOTALS_METRICS)
    assert resolve_metrics(Endpoint.TOTALS, ["bookmarks"], has_user=True) == ["bookmarks"]
    with pytest.raises(RequestValidationError, match="video_completions"):
        resolve_metrics(Endpoint.TOTALS, ["video_completions"], has_user=True)


def test_without_extras_the_client_refuses_new_names() -> None:
    with pytest.raises(RequestValidationError, match="video_completions"):
        resolve_metrics(Endpoint.HOURLY_28HR, ["video_completions"], has_user=True)


def test_the_emulator_takes_only_new_well_formed_names_as_added() -> None:
    assert FaultConfig(added_metrics=("video_completions",)).to_dict()["added_metrics"] == ["video_completions"]
    for bad in (("impressions",), ("Bad-Name",)):
        with pytest.raises(ValueError, match="added_metrics"):
            FaultConfig(added_metrics=bad)
