"""GET /dashboard: an HTML page over the public routes, and its static assets (the vendored uPlot and the page's
own script and style), all shipped in the layer (`static/`): no CDN, nothing fetched from outside the API.

The page uses relative URLs only, so it works behind any base path (API Gateway's `/v1/`, a local proxy). Its
Content-Security-Policy allows scripts, styles and requests from this origin only.
"""

from __future__ import annotations

import functools
import html
import json
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam

from xengage.api_client.catalog import Endpoint, metrics_for
from xengage.http_api.errors import ApiError, answers

router = Router()

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
PAGE: Final = "dashboard.html"
ASSET_TYPES: Final = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# 'self' only: the page can load nothing, and send nothing, beyond this API. uPlot sizes its elements through CSSOM
# (element.style), which style-src does not govern.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HTML: Final = "text/html; charset=utf-8"


@functools.cache
def static_text(name: str) -> str:
    """A shipped file, read on first use (not at import: most invocations never serve the page)."""
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def page() -> str:
    """The page, with the metric names of each endpoint from the catalog and its configured extras (its pickers),
    escaped as an attribute. The script adds names it finds in the stored points it reads."""
    return _page(json.dumps({endpoint.value: list(metrics_for(endpoint)) for endpoint in Endpoint}))


@functools.cache
def _page(names: str) -> str:
    """Built once per catalog (a changed EXTRA_ENGAGEMENT_TYPES gives another page)."""
    return static_text(PAGE).replace("{{METRICS}}", html.escape(names, quote=True))


@router.get(
    "/dashboard",
    summary="The dashboard: a Post's metrics over time, an account's top and tracked Posts, collection health",
    description="An HTML page that reads this API's own routes (relative URLs) and draws them with uPlot, shipped "
    "with the API. Open it in a browser; behind IAM auth, through `make dashboard STACK=<name>` (a local SigV4 proxy).",
    tags=["dashboard"],
    responses=answers(custom={200: {"description": "the page", "content": {HTML: {"schema": {"type": "string"}}}}}),
)
def get_dashboard() -> Response[Any]:
    return Response(
        HTTPStatus.OK, content_type=HTML, body=page(), headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    )


@router.get(
    "/dashboard/assets/<name>",
    summary="A static asset of the dashboard (its script and style, uPlot's)",
    tags=["dashboard"],
    responses=answers(
        {404: "no such asset (asset_not_found)"},
        custom={
            200: {
                "description": "the file",
                "content": {
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                },
            }
        },
    ),
)
def get_asset(name: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9._-]{1,64}$", max_length=64)]) -> Response[Any]:
    content_type = ASSET_TYPES.get(name)
    if content_type is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "asset_not_found", f"name: the dashboard has no asset {name!r}")
    return Response(
        HTTPStatus.OK,
        content_type=content_type,
        body=static_text(name),
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=300"},
    )
