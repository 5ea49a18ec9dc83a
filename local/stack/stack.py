"""`LocalStack`: the template's resources, functions and triggers, running together on loopback."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.stack.api_gateway import ApiServer, api_routes
from local.stack.aws_faults import ENV_VAR as AWS_FAULTS_ENV_VAR
from local.stack.aws_faults import fault_log_path, read_fault_log, write_fault_config
from local.stack.dynamodb import DynaliteServer, dynalite_missing, start_dynalite
from local.stack.functions import FunctionSpec, FunctionWorker, Invocation, function_specs
from local.stack.resources import (
    QUEUE,
    SECRET,
    MotoEndpoint,
    aws_client,
    create_stack_resources,
    put_secret_json,
    start_moto_server,
)
from local.stack.schedules import ScheduleRunner, schedule_targets
from local.stack.sqs_poller import SqsEventSource
from local.stack.template import SERVERLESS_API, PhysicalIds, StackTemplate, load_template

logger = logging.getLogger("local.stack")


@dataclass
class StackSettings:
    """How to run the stack; tests use the defaults (ephemeral ports, no timetable)."""

    template_path: Path
    parameter_overrides: dict[str, Any] = field(default_factory=dict)
    moto_port: int = 0
    api_port: int | None = 0  # None: no API server
    run_schedules: bool = False  # fire schedules on their timetable (they can always be fired by hand)
    schedule_speed: float = 1.0
    schedule_retry_delay_seconds: float = 1.0
    start_pollers: bool = True
    poll_wait_seconds: int = 1
    environment_overrides: dict[str, str] = field(default_factory=dict)
    app_secret_logical_id: str = "AppSecret"
    app_secret_value: dict[str, str] | None = None
    log_dir: Path | None = None  # worker stdout/stderr go to <log_dir>/<LogicalId>.log; None: inherited
    # "dynalite" (Query reads only the keys asked, like DynamoDB), "moto", or "auto": dynalite when it can run.
    dynamodb: str = "auto"
    dynamodb_port: int = 0
    # AWS faults the workers' botocore injects (local/stack/aws_faults.py), set with `LocalStack.set_aws_faults`.
    aws_faults_file: Path | None = None


class LocalStack:
    """Start with `start()` (or `with LocalStack(settings) as stack:`); everything stops in `stop()`."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.template: StackTemplate = load_template(
            settings.template_path, parameter_overrides=settings.parameter_overrides
        )
        self.moto: MotoEndpoint | None = None
        self.dynalite: DynaliteServer | None = None
        self.ids = PhysicalIds()
        self.specs: dict[str, FunctionSpec] = {}
        self.workers: dict[str, FunctionWorker] = {}
        self.schedules: ScheduleRunner | None = None
        self.pollers: list[SqsEventSource] = []
        self.api: ApiServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.moto = start_moto_server(self.settings.moto_port)
        self.dynalite = self._start_dynalite()
        self.ids = create_stack_resources(self.template, self.moto.url, self.dynamodb_url)
        self._put_app_secret()
        self._start_workers()
        self.schedules = ScheduleRunner(
            schedule_targets(
                self.specs.values(),
                region=self.template.region,
                account_id=self.template.account_id,
                queue_url_for_arn=self.queue_url,
            ),
            self.invoke,
            self.client("sqs"),
            speed=self.settings.schedule_speed,
            retry_delay_seconds=self.settings.schedule_retry_delay_seconds,
        )
        self.pollers = self._event_source_mappings()
        if self.settings.start_pollers:
            for poller in self.pollers:
                poller.start()
        if self.settings.run_schedules:
            self.schedules.start()
        if self.settings.api_port is not None:
            self._start_api(self.settings.api_port)

    def _put_app_secret(self) -> None:
        value, logical_id = self.settings.app_secret_value, self.settings.app_secret_logical_id
        if value is not None and logical_id in self.ids.resources:
            assert self.moto is not None
            put_secret_json(self.moto.url, self.template.region, self.ids.ref(logical_id), value)

    def _start_workers(self) -> None:
        assert self.moto is not None
        self.specs = function_specs(
            self.template,
            self.template.resolver(self.ids),
            endpoint_url=self.moto.url,
            dynamodb_url=self.dynamodb_url,
            environment_overrides={**self.settings.environment_overrides, **self._aws_faults_environment()},
        )
        log_dir = self.settings.log_dir
        self.workers = {
            logical_id: FunctionWorker(spec, log_path=log_dir / f"{logical_id}.log" if log_dir else None)
            for logical_id, spec in self.specs.items()
        }
        # Cold starts in parallel: each worker spends most of its init importing boto3/Powertools.
        with ThreadPoolExecutor(max_workers=len(self.workers) or 1) as pool:
            list(pool.map(lambda worker: worker.start(), self.workers.values()))

    def _start_api(self, port: int) -> None:
        resolver = self.template.resolver(self.ids)
        stages = {
            self.ids.ref(lid): str(resolver.resolve((res.get("Properties") or {}).get("StageName", "Prod")))
            for lid, res in self.template.of_type(SERVERLESS_API).items()
        }
        routes = api_routes(self.specs.values(), api_ids={}, stages=stages)
        if routes:
            self.api = ApiServer(routes, self.invoke, port=port)
            self.api.start()

    def _start_dynalite(self) -> DynaliteServer | None:
        choice = self.settings.dynamodb
        if choice not in ("auto", "dynalite", "moto"):
            raise ValueError(f"dynamodb must be auto, dynalite or moto, not {choice!r}")
        if choice == "moto":
            return None
        missing = dynalite_missing()
        if missing and choice == "auto":
            logger.warning("DynamoDB runs on moto, whose queries read the whole table: %s", missing)
            return None
        return start_dynalite(self.settings.dynamodb_port)

    def _aws_faults_environment(self) -> dict[str, str]:
        # Absolute: each worker runs in its own code directory.
        path = self.settings.aws_faults_file
        return {AWS_FAULTS_ENV_VAR: str(path.resolve())} if path is not None else {}

    def _event_source_mappings(self) -> list[SqsEventSource]:
        pollers = []
        for spec in self.specs.values():
            for event in spec.events.values():
                if event.get("Type") != "SQS":
                    continue
                properties = event.get("Properties") or {}
                if not properties.get("Enabled", True):
                    continue
                queue_arn = str(properties["Queue"])
                queue_url = self.queue_url(queue_arn)
                if queue_url is None:
                    raise ValueError(f"{spec.logical_id}: SQS event queue {queue_arn} is not a queue of the template")
                pollers.append(
                    SqsEventSource(
                        spec.logical_id,
                        self.invoke,
                        self.client("sqs"),
                        queue_url=queue_url,
                        queue_arn=queue_arn,
                        region=self.template.region,
                        batch_size=int(properties.get("BatchSize", 10)),
                        batching_window_seconds=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
                        report_batch_item_failures="ReportBatchItemFailures"
                        in (properties.get("FunctionResponseTypes") or []),
                        poll_wait_seconds=self.settings.poll_wait_seconds,
                    )
                )
        return pollers

    def stop(self) -> None:
        """Stop triggers first (so nothing invokes a stopped worker), then workers, then moto."""
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.schedules is not None:
            self.schedules.stop()
        for poller in self.pollers:
            poller.stop()
        for worker in self.workers.values():
            worker.stop()
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.dynalite is not None:
            self.dynalite.stop()
            self.dynalite = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use ----------------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        assert self.moto is not None, "the stack is not started"
        return self.moto.url

    @property
    def dynamodb_url(self) -> str:
        """Where the stack's tables are: dynalite's URL, or moto's when DynamoDB runs there."""
        return self.dynalite.url if self.dynalite is not None else self.endpoint_url

    def client(self, service: str) -> Any:
        """A boto3 client for the stack's moto server (DynamoDB: for wherever the tables are)."""
        return aws_client(service, self.endpoint_url, self.template.region, dynamodb_url=self.dynamodb_url)

    def invoke(self, function_id: str, event: Any) -> Invocation:
        if function_id not in self.workers:
            raise KeyError(f"unknown function {function_id!r}; the template has {sorted(self.workers)}")
        return self.workers[function_id].invoke(event)

    def queue_url(self, arn_or_logical_id: str) -> str | None:
        """The URL of a template queue given its ARN (or logical id)."""
        for logical_id, resource in self.ids.resources.items():
            if self.template.resources.get(logical_id, {}).get("Type") != QUEUE:
                continue
            if arn_or_logical_id in (logical_id, resource.attributes.get("Arn")):
                return str(resource.attributes["QueueUrl"])
        return None

    def queue_depth(self, queue_url: str) -> int:
        """Visible, in-flight and delayed messages (continuations wait delayed until the API takes them)."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in names)

    def wait_until_drained(self, timeout: float = 60.0) -> bool:
        """Wait until every polled queue is empty and no batch is being processed; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(not poller.busy and self.queue_depth(poller.queue_url) == 0 for poller in self.pollers):
                return True
            time.sleep(0.2)
        return False

    def set_aws_faults(self, config: Mapping[str, Any] | None) -> None:
        """Replace the fault rules the workers read on their next AWS call (see aws_faults.FaultConfig); None: none."""
        write_fault_config(self._aws_faults_path(), config)

    def aws_fault_counts(self) -> Counter[tuple[str, str]]:
        """Faults the workers injected so far, by (operation, kind)."""
        return read_fault_log(fault_log_path(self._aws_faults_path()))

    def _aws_faults_path(self) -> Path:
        if self.settings.aws_faults_file is None:
            raise ValueError("AWS faults need StackSettings.aws_faults_file, set when the stack starts")
        return self.settings.aws_faults_file.resolve()

    def state(self) -> dict[str, Any]:
        """The running stack as `.local-state/stack.json` records it (no secret values)."""
        return {
            "template": str(self.template.path),
            "stack_name": self.template.stack_name,
            "region": self.template.region,
            "moto_url": self.endpoint_url,
            "dynamodb_url": self.dynamodb_url,
            "api_url": self.api.url if self.api else None,
            "physical_ids": self.ids.to_json(),
            "functions": {lid: spec.to_json() for lid, spec in self.specs.items()},
            "secrets": {
                lid: self.ids.resources[lid].attributes.get("Name")
                for lid in self.template.of_type(SECRET)
                if lid in self.ids.resources
            },
        }

    def write_state(self, path: Path, extra: Mapping[str, Any] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.state(), **(extra or {})}, indent=2) + "\n", encoding="utf-8")
