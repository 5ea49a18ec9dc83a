"""ApiFunction: API Gateway REST proxy events -> the xengage HTTP API (routes in xengage.http_api)."""

from __future__ import annotations

import gc

# Cold start: the imports below allocate objects that live as long as the process; collecting garbage among them
# while they load only costs time (~10% of the import). Frozen afterwards, later collections skip them too.
gc.disable()

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from xengage.deps import function_deps
from xengage.http_api.app import app
from xengage.observability import logger, metrics, tracer
from xengage.settings import ApiSettings

gc.freeze()
gc.enable()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    app.append_context(deps=function_deps(ApiSettings))  # the routes' dependencies (xengage.http_api.context)
    return app.resolve(event, context)
