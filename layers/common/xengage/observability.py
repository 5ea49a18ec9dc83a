"""The only Powertools Logger, Tracer and Metrics instances; every module imports these.

Service name, namespace and log level come from POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE and
POWERTOOLS_LOG_LEVEL (set in template.yaml Globals), so nothing is hard-coded here.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger: Logger = Logger()
tracer: Tracer = Tracer()
metrics: Metrics = Metrics()


def count(name: str, value: int = 1) -> None:
    """Add a Count metric; zero values are skipped so dashboards only show what happened."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
