"""The API's resolver: one APIGatewayRestResolver with validation, a Router per area, one error format."""

from __future__ import annotations

import json
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from xengage.http_api import (
    accounts,
    app_status,
    dashboard,
    engagement,
    health,
    jobs,
    metrics,
    oauth,
    rollups,
    tweets,
    usage,
)
from xengage.http_api.boundary import BoundedResolver
from xengage.http_api.errors import register_error_handlers
from xengage.http_api.models import ValidationErrorResponse

TITLE: Final = "xengage API"
VERSION: Final = "0.1.0"
DESCRIPTION: Final = (
    "Accounts and their OAuth tokens, tracked Posts, stored and live X Engagement API metrics. "
    'Every error is JSON {"error": {"code", "message"}}; request validation answers 422 with the field in the message.'
)


def build_app() -> BoundedResolver:
    app = BoundedResolver(enable_validation=True)
    for area in (accounts, oauth, tweets, metrics, rollups, engagement, jobs, app_status, usage, health, dashboard):
        app.include_router(area.router)
    register_error_handlers(app)

    @app.get("/openapi.json", summary="This API's OpenAPI document", tags=["meta"], include_in_schema=False)
    def openapi_document() -> Response[str]:
        return Response(200, content_types.APPLICATION_JSON, body=openapi_json(app))

    return app


def openapi_json(app: APIGatewayRestResolver) -> str:
    return json.dumps(openapi_dict(app), indent=4)


def openapi_dict(app: APIGatewayRestResolver) -> dict[str, Any]:
    """Powertools' document, with its 422 schema replaced by the one this API answers (the project's error shape)."""
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title=TITLE, version=VERSION, description=DESCRIPTION)
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    answered = ValidationErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in answered.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["HTTPValidationError"] = answered
    schemas.pop("ValidationError", None)  # Powertools' item schema, referenced only by its HTTPValidationError
    tweets.document_track_body(document)
    return document


app = build_app()
