"""GET /app/status: what the deployment learned about the app as a whole (credentials, refused metrics, limits)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from xengage.http_api import context
from xengage.http_api.errors import answers
from xengage.http_api.models import AppCredentialsOut, AppStatusOut

router = Router()


@router.get(
    "/app/status",
    summary="The app's credential state, the metrics the API refuses and its per-minute limits",
    description="`credentials.status` is `needs_credentials` when X refused the app's bearer token or consumer "
    "key: planning and collection pause until the app secret is replaced (no account is blamed).",
    tags=["app"],
    responses=answers(),
)
def get_app_status() -> AppStatusOut:
    state = context.deps().app_state.get()
    return AppStatusOut(
        credentials=AppCredentialsOut(
            status="needs_credentials" if state.needs_credentials else "ok",
            error=state.credentials_error,
            since=state.credentials_since,
        ),
        refused_metrics={endpoint.value: dict(refused) for endpoint, refused in state.refused_metrics.items()},
        rate_limits={endpoint.value: limit for endpoint, limit in state.rate_limits.items()},
    )
