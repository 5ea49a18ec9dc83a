"""ExportFunction: the analytics export of stored metrics to S3 as Parquet (docs/DESIGN.md, "The analytics export").

Events, all parsed by models: the daily schedule's `{"scheduled_time", "days"}` (the `days` UTC days before the
tick's day), a backfill's `{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}` (console, `make invoke`, `aws lambda invoke`),
or the export queue's continuations (SQS records parsed as `ExportRecord`, one job each). pyarrow is this function's
own dependency (functions/exporter/requirements.txt), imported when the first file is written: the other functions
never load it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from xengage.api_client.deadline import Deadline
from xengage.dal.export import ExportDal
from xengage.dal.queue import CollectQueue
from xengage.deps import function_deps
from xengage.observability import count, logger, metrics, tracer
from xengage.pipeline.events import parse_event
from xengage.pipeline.export import ExportSummary, run_export
from xengage.pipeline.export_job import ExportJob, InvalidExportEvent, job_from_event
from xengage.pipeline.records import ExportRecord
from xengage.settings import ExportSettings

# Kept free at the end of an invocation: the continuation's SendMessage and the summary.
EXPORT_RESERVE_SECONDS = 10.0


def export(job: ExportJob, context: LambdaContext) -> ExportSummary:
    settings = function_deps(ExportSettings).settings
    queue = CollectQueue(settings.export_queue_url)
    summary = run_export(
        job,
        dal=ExportDal(settings.registry_table, settings.metrics_table, settings.export_bucket),
        prefix=settings.export_prefix,
        deadline=Deadline.from_remaining_millis(
            context.get_remaining_time_in_millis(), reserve_seconds=EXPORT_RESERVE_SECONDS
        ),
        send_on=lambda rest: queue.send_batch([rest.model_dump(mode="json")]),
    )
    count("ExportedFiles", len(summary.files))
    count("ExportedRows", summary.rows)
    count("ExportContinuations", int(summary.continued is not None))
    logger.info("export done", extra=summary.as_dict())
    return summary


def jobs_of(event: dict[str, Any]) -> list[ExportJob]:
    """Continuations come one per SQS record (BatchSize 1; an error fails the record, which SQS redelivers);
    anything else is the schedule's input or a backfill. Raises InvalidExportEvent naming the problem."""
    if isinstance(event, dict) and "Records" in event:
        return [parse_event(ExportRecord, record, InvalidExportEvent).body for record in event["Records"]]
    return [job_from_event(event)]


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    jobs = jobs_of(event)
    results = []
    for job in jobs:
        logger.append_keys(export_day=job.day.isoformat(), export_last_day=job.last_day.isoformat())
        results.append(export(job, context).as_dict())
    return results[0] if len(results) == 1 else {"jobs": results}
