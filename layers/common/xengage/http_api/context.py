"""The Deps of the API invocation being answered: the handler (functions/api/api.py) appends them to the resolver's
context, and every route and helper of `xengage.http_api` gets them here."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from xengage.deps import Deps
    from xengage.settings import ApiSettings


def deps() -> Deps[ApiSettings]:
    from xengage.http_api.app import app  # imported here: the app imports the routes, which import this module

    return cast("Deps[ApiSettings]", app.context["deps"])
