"""The SQS records the collector and the export receive, as Powertools parser models (batch processing parses each).

A record whose body does not parse fails alone: SQS redelivers it and, after maxReceiveCount, moves it to the
queue's dead-letter queue, where it can be read. Only the two handlers import this module (the parser's SQS models
are a cold-start cost the API does not pay).
"""

# No `from __future__ import annotations`: pydantic would evaluate every string annotation again as each model is
# created, which is about 40% of the models' import time (a cold-start cost).

from aws_lambda_powertools.utilities.parser.models.sqs import SqsRecordModel
from pydantic import Json

from xengage.pipeline.export_job import ExportJob
from xengage.pipeline.messages import CollectMessage


class CollectRecord(SqsRecordModel):
    """One record of the collect queue: its body, JSON text, is one `CollectMessage` (a planned batch, a
    continuation or a live-query job's share)."""

    body: Json[CollectMessage]


class ExportRecord(SqsRecordModel):
    """One record of the export queue: its body is the `ExportJob` a previous invocation handed on."""

    body: Json[ExportJob]
