"""template.yaml's operations: alarms, their topic and the dashboard watch what the functions really emit.

The single source of metric names is `xengage.observability.EMITTED_METRICS` (by `service` dimension). These tests tie
it to both sides: the code (every `count`/`gauges` name is declared, every declared name is emitted) and the template
(every alarm and dashboard metric is declared for the service it names). The local run checks the same against the
EMF the functions print (tests/integration/test_local_run.py).
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack.template import PhysicalIds, StackTemplate, load_template
from xengage.api_client.catalog import Endpoint, Reason
from xengage.observability import EMITTED_METRICS, POSTS_BY_STATUS_PREFIX

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
CODE = [REPO / "layers" / "common" / "xengage", REPO / "functions"]
NAMESPACE = "XEngagementCollector"
ALARM = "AWS::CloudWatch::Alarm"
# Declared for the @handle billing guard (issue 10, item 4), emitted by the collector and live queries once it lands.
EMITTED_BY_THE_USAGE_GUARD = {"UsageCapDeferredPosts", "UniqueHandlesThisMonth", "LiveQueriesUsageCapped"}
# Parameters that switch the optional alarm and subscription on.
ALL_ON = {"AlarmEmail": "ops@example.com", "HandleWarningThreshold": 500}


def declared(service: str, name: str) -> bool:
    if name in EMITTED_METRICS.get(service, ()):
        return True
    return service == "collector" and name.removeprefix(POSTS_BY_STATUS_PREFIX) in {reason.value for reason in Reason}


# --- what the code emits ------------------------------------------------------------------------------------------


def _metric_calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("count", "gauge", "gauges", "add_metric", "single_metric"):
                yield node


def emitted_in_code() -> tuple[set[str], set[str]]:
    """(literal metric names, prefixes of f-string names) the code emits; a name built any other way fails."""
    names: set[str] = set()
    prefixes: set[str] = set()
    for path in (file for root in CODE for file in root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _metric_calls(tree):
            arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "name"), None)
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
            elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
                prefixes.add(str(arg.values[0].value))
            elif isinstance(arg, ast.Name) and path.name == "observability.py":
                continue  # the helpers themselves
            elif isinstance(arg, ast.Name) and _is_gauge_dict(arg.id, tree):
                names |= _gauge_names(arg.id, tree)
            else:
                raise AssertionError(f"{path}:{call.lineno}: a metric name the tests cannot read: {ast.unparse(call)}")
    return names, prefixes


def _is_gauge_dict(variable: str, tree: ast.AST) -> bool:
    return bool(_gauge_names(variable, tree))


def _gauge_names(variable: str, tree: ast.AST) -> set[str]:
    """String keys put in the dict `variable` (a literal or item assignments) of a module that calls gauges()."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id == variable and isinstance(node.value, ast.Dict):
                    names |= {str(key.value) for key in node.value.keys if isinstance(key, ast.Constant)}
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == variable
                    and isinstance(target.slice, ast.Constant)
                ):
                    names.add(str(target.slice.value))
    return names


def test_every_metric_the_code_emits_is_declared_and_every_declared_one_is_emitted() -> None:
    # Given the names the code passes to count/gauges, and the declaration
    names, prefixes = emitted_in_code()
    declared_names = set().union(*EMITTED_METRICS.values())

    # Then the code emits nothing undeclared (the per-status counts are the one pattern)
    assert names - declared_names == set()
    assert prefixes == {POSTS_BY_STATUS_PREFIX}
    # And every declared name is emitted somewhere, but for the usage guard's, which its own branch emits
    assert declared_names - names <= EMITTED_BY_THE_USAGE_GUARD


# --- the template -------------------------------------------------------------------------------------------------


def stack(**overrides: Any) -> StackTemplate:
    return load_template(TEMPLATE, parameter_overrides=overrides)


def physical_ids(template: StackTemplate) -> PhysicalIds:
    """A name, ARN and queue name for every resource, so any Ref, GetAtt or Sub resolves."""
    ids = PhysicalIds()
    for logical_id in template.resources:
        arn = f"arn:aws:local:us-east-1:123456789012:{logical_id}"
        ids.add(logical_id, f"{logical_id}-name", Arn=arn, QueueName=f"{logical_id}-queue", Name=logical_id)
    return ids


def alarms(template: StackTemplate) -> dict[str, dict[str, Any]]:
    return {logical_id: template.properties(logical_id) for logical_id in template.of_type(ALARM)}


def watched(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads: its one metric, or every MetricStat of its metric math."""
    if "MetricName" in alarm:
        return [{key: alarm[key] for key in ("Namespace", "MetricName", "Dimensions")}]
    return [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]


def dimensions(metric: dict[str, Any]) -> dict[str, Any]:
    return {dimension["Name"]: dimension["Value"] for dimension in metric.get("Dimensions", [])}


@pytest.fixture(scope="module")
def full() -> StackTemplate:
    return stack(**ALL_ON)


def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_clears(full: StackTemplate) -> None:
    # Given every alarm, the optional one included
    assert alarms(full)
    for logical_id, alarm in alarms(full).items():
        # Then ALARM and OK both go to the stack's topic, and missing data is treated by choice, not by default
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], logical_id
        assert alarm["TreatMissingData"] in ("notBreaching", "ignore"), logical_id


def test_every_threshold_is_a_parameter_with_a_default_and_every_threshold_parameter_is_used(
    full: StackTemplate,
) -> None:
    declared_parameters = full.document["Parameters"]
    used = set()
    for logical_id, alarm in alarms(full).items():
        # Then each threshold is a Ref to a Number parameter with a default
        parameter = alarm["Threshold"]["Ref"]
        assert declared_parameters[parameter]["Type"] == "Number", logical_id
        assert "Default" in declared_parameters[parameter], logical_id
        used.add(parameter)
    # And no threshold parameter is left without an alarm
    assert {name for name in declared_parameters if name.endswith("Threshold")} == used


def test_every_alarm_watches_a_metric_its_service_emits_or_a_resource_of_the_stack(full: StackTemplate) -> None:
    for logical_id, alarm in alarms(full).items():
        for metric in watched(alarm):
            where = dimensions(metric)
            if metric["Namespace"] == NAMESPACE:
                assert declared(where["service"], metric["MetricName"]), (logical_id, metric)
            elif metric["Namespace"] == "AWS/SQS":
                queue, attribute = where["QueueName"]["Fn::GetAtt"]
                assert attribute == "QueueName" and full.resources[queue]["Type"] == "AWS::SQS::Queue", logical_id
            else:
                assert metric["Namespace"] == "AWS/Lambda", logical_id
                assert where["FunctionName"]["Ref"] in full.resources, logical_id


def test_an_alarm_on_a_custom_metric_reads_it_from_every_function_that_emits_it(full: StackTemplate) -> None:
    # Given the custom metrics each alarm reads, by service
    for logical_id, alarm in alarms(full).items():
        services: dict[str, set[str]] = {}
        for metric in watched(alarm):
            if metric["Namespace"] == NAMESPACE:
                services.setdefault(metric["MetricName"], set()).add(dimensions(metric)["service"])
        # Then it misses none: AppCredentialsRefused, for one, comes from the collector and from live queries
        for name, seen in services.items():
            assert seen == {service for service, names in EMITTED_METRICS.items() if name in names}, (logical_id, name)


FAILURE_TARGETS = {("RedrivePolicy", "deadLetterTargetArn"), ("DeadLetterConfig", "Arn"), ("OnFailure", "Destination")}


def failure_queues(node: Any, parent: str = "") -> Iterator[str]:
    """The queues `node` sends what failed to: redrive targets, schedules' dead letters, OnFailure destinations."""
    if isinstance(node, dict):
        for key, value in node.items():
            if (parent, key) in FAILURE_TARGETS:
                yield value["Fn::GetAtt"][0]
            yield from failure_queues(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from failure_queues(value, parent)


def test_every_failure_of_a_background_function_and_every_endpoint_is_watched(full: StackTemplate) -> None:
    watched_metrics = [metric for alarm in alarms(full).values() for metric in watched(alarm)]

    def targets(namespace: str, name: str, dimension: str) -> set[str]:
        found = set()
        for metric in watched_metrics:
            if (metric["Namespace"], metric["MetricName"]) == (namespace, name):
                value = dimensions(metric)[dimension]
                if isinstance(value, dict):  # a resource of the stack: GetAtt Queue.QueueName, Ref Function
                    value = value["Fn::GetAtt"][0] if "Fn::GetAtt" in value else value["Ref"]
                found.add(value)
        return found

    # Given the queues that hold failures and the functions that run unseen (on a schedule or a queue)
    dead_letter_queues = set(failure_queues(full.resources))
    background = {
        logical_id: function
        for logical_id, function in full.of_type("AWS::Serverless::Function").items()
        if {event["Type"] for event in function["Properties"].get("Events", {}).values()} & {"ScheduleV2", "SQS"}
    }
    assert dead_letter_queues and background
    # Then every dead-letter queue is watched, and so is each background function: its errors, or (when all its
    # failures land in dead-letter queues) those queues
    alarmed_queues = targets("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    assert dead_letter_queues <= alarmed_queues
    alarmed_functions = targets("AWS/Lambda", "Errors", "FunctionName")
    for logical_id, function in background.items():
        queues = {
            event["Properties"]["Queue"]["Fn::GetAtt"][0]
            for event in function["Properties"]["Events"].values()
            if event["Type"] == "SQS"
        }
        lands_in = set(failure_queues(function)) | {
            target for queue in queues for target in failure_queues(full.resources[queue])
        }
        assert logical_id in alarmed_functions or (lands_in and lands_in <= alarmed_queues), logical_id
    # And every endpoint's staleness is watched
    assert targets(NAMESPACE, "OldestOverdueSchedulePeriods", "endpoint") == {endpoint.value for endpoint in Endpoint}


# --- metric math, evaluated ---------------------------------------------------------------------------------------


class _NoDivisionError(ast.NodeTransformer):
    """a / b -> DIV(a, b): CloudWatch evaluates both branches of IF and a division by 0 is no error there."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Div):
            return ast.copy_location(ast.Call(ast.Name("DIV", ast.Load()), [node.left, node.right], []), node)
        return node


def evaluate(alarm: dict[str, Any], values: dict[tuple[str, str], float | None], parameters: dict[str, Any]) -> float:
    """The alarm's returned expression for one period, given each (metric, service)'s value (None: no data).

    CloudWatch's IF, FILL and arithmetic read the same in Python; !Sub placeholders take the parameters."""
    series: dict[str, Any] = {}
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            series[query["Id"]] = values.get((metric["MetricName"], dimensions(metric).get("service", "")))
    functions: dict[str, Callable[..., Any]] = {
        "IF": lambda condition, then, otherwise: then if condition else otherwise,
        "FILL": lambda value, fill: fill if value is None else value,
        "DIV": lambda numerator, denominator: numerator / denominator if denominator else math.nan,
        "MAX": lambda values: max((value for value in values if value is not None), default=None),
    }
    result = None
    for query in alarm["Metrics"]:
        if "Expression" in query:
            expression = query["Expression"]
            if isinstance(expression, dict):  # !Sub with parameters
                expression = re.sub(r"\$\{(\w+)\}", lambda m: str(parameters[m.group(1)]), expression["Fn::Sub"])
            tree = ast.fix_missing_locations(_NoDivisionError().visit(ast.parse(expression, mode="eval")))
            code = compile(tree, query["Id"], "eval")
            series[query["Id"]] = eval(code, {"__builtins__": {}}, {**functions, **series})
            if query.get("ReturnData"):
                result = series[query["Id"]]
    return math.nan if result is None else float(result)


def test_the_429_share_counts_collector_and_live_query_calls_and_reads_no_calls_as_zero(full: StackTemplate) -> None:
    share = alarms(full)["ThrottledShareAlarm"]
    threshold = float(full.parameters["ThrottledPercentThreshold"])

    def percent(**values: float | None) -> float:
        by_metric = {
            ("EngagementCalls", "collector"): values.get("calls"),
            ("EngagementCalls", "api"): values.get("live_calls"),
            ("Throttled", "collector"): values.get("throttled"),
            ("Throttled", "api"): values.get("live_throttled"),
        }
        return evaluate(share, by_metric, full.parameters)

    # Then 429s are a share of all calls, wherever made; a period without calls is 0 %, without 429s too
    assert percent(calls=80, throttled=10, live_calls=20, live_throttled=15) == 25.0 >= threshold
    assert percent(calls=100, throttled=5) == 5.0 < threshold
    assert percent(live_calls=4, live_throttled=4) == 100.0
    assert percent() == 0.0


def test_the_duration_alarm_reads_the_longest_run_against_the_timeout_parameter() -> None:
    # Given a 60 s timeout
    template = stack(CollectorTimeoutSeconds=60)
    duration = alarms(template)["CollectorDurationAlarm"]

    def percent(milliseconds: float) -> float:
        return evaluate(duration, {("Duration", ""): milliseconds}, template.parameters)

    # Then 57 s is 95 % (the default threshold), 45 s is a normal run
    assert percent(57_000) == 95.0 >= float(template.parameters["CollectorDurationPercentThreshold"])
    assert percent(45_000) == 75.0


def test_reauth_and_app_credential_alarms_add_every_source(full: StackTemplate) -> None:
    reauth, app = alarms(full)["NeedsReauthAlarm"], alarms(full)["AppCredentialsAlarm"]
    # Then one source alone reaches the default threshold of 1, and none keeps it quiet
    assert evaluate(reauth, {("PostsOfAccountsNeedingReauth", "planner"): 12}, full.parameters) == 12
    assert evaluate(reauth, {("AccountsNeedingReauth", "api"): 1}, full.parameters) == 1
    assert evaluate(reauth, {}, full.parameters) == 0
    assert evaluate(app, {("PlanningPaused", "planner"): 3, ("AppCredentialsRefused", "collector"): 1}, {}) == 4
    assert evaluate(app, {}, full.parameters) == 0


def test_the_handle_warning_reads_the_count_whichever_function_counted_the_last_handle(full: StackTemplate) -> None:
    warning = alarms(full)["HandleWarningAlarm"]
    threshold = float(full.resolver().resolve(warning["Threshold"]))
    # Then a live query's count alone reaches it, the higher count wins, and an hour without a new handle is no data
    assert evaluate(warning, {("UniqueHandlesThisMonth", "api"): 510}, full.parameters) == 510 >= threshold
    both = {("UniqueHandlesThisMonth", "collector"): 480, ("UniqueHandlesThisMonth", "api"): 481}
    assert evaluate(warning, both, full.parameters) == 481 < threshold
    assert math.isnan(evaluate(warning, {}, full.parameters))


# --- optional resources -------------------------------------------------------------------------------------------


def test_the_email_subscription_and_the_handle_warning_exist_only_when_their_parameter_is_set() -> None:
    # Given the defaults (no email, HandleWarningThreshold 0), then the parameters set
    default, configured = stack(), stack(**ALL_ON)

    # Then by default neither exists; set, the subscription mails the address and the alarm fires at the number
    assert "AlarmEmailSubscription" not in default.resources and "HandleWarningAlarm" not in default.resources
    resolver = configured.resolver(physical_ids(configured))
    subscription = resolver.resolve(configured.properties("AlarmEmailSubscription"))
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ops@example.com")
    assert resolver.resolve(configured.properties("HandleWarningAlarm")["Threshold"]) == "500"
    # And CloudFormation takes an address or nothing, not a list (SNS mails one address per subscription)
    pattern = default.document["Parameters"]["AlarmEmail"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, ALL_ON["AlarmEmail"])
    assert not re.fullmatch(pattern, "ops@example.com,oncall@example.com") and not re.fullmatch(pattern, "ops")


# --- the dashboard ------------------------------------------------------------------------------------------------


def dashboard(template: StackTemplate) -> dict[str, Any]:
    (logical_id,) = template.of_type("AWS::CloudWatch::Dashboard")
    body = template.resolver(physical_ids(template)).resolve(template.properties(logical_id)["DashboardBody"])
    loaded: dict[str, Any] = json.loads(body)
    return loaded


def metric_rows(body: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of every metric row (expression rows left out)."""
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            fields = [part for part in row if not isinstance(part, dict)]
            if fields:
                namespace, name, *pairs = fields
                yield namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))


def test_the_dashboard_is_json_after_substitution_and_charts_only_emitted_metrics(full: StackTemplate) -> None:
    # Given the dashboard body with the stack's names and parameters substituted
    body = dashboard(full)
    rows = list(metric_rows(body))

    # Then every custom metric row names a metric its service emits, and each AWS row a resource of the stack
    names = {resource_ids.ref for resource_ids in physical_ids(full).resources.values()}
    queues = {f"{logical_id}-queue" for logical_id in full.resources}
    for namespace, name, where in rows:
        if namespace == NAMESPACE:
            assert declared(where["service"], name), (name, where)
        else:
            assert set(where.values()) <= names | queues, (namespace, name, where)
    # And it shows what the issue lists: calls and 429s, collected/planned/deferred, staleness of every endpoint,
    # re-auth, both dead-letter queues, Lambda errors and duration, and the month's @handles
    charted = {name for _, name, _ in rows}
    assert {"EngagementCalls", "Throttled", "PostsCollected", "PlannedPosts", "DeferredPosts"} <= charted
    assert {"AccountsNeedingReauth", "PostsOfAccountsNeedingReauth", "UniqueHandlesThisMonth", "Errors"} <= charted
    assert {"Duration", "ApproximateNumberOfMessagesVisible", "OldestOverdueSchedulePeriods"} <= charted
    staleness = {where["endpoint"] for _, name, where in rows if name == "OldestOverdueSchedulePeriods"}
    assert staleness == {endpoint.value for endpoint in Endpoint}
    dead_letters = {where.get("QueueName") for _, name, where in rows if name == "ApproximateNumberOfMessagesVisible"}
    assert {"CollectDeadLetterQueue-queue", "ScheduleDeadLetterQueue-queue"} <= dead_letters
    # And its thresholds are the parameters' numbers
    annotations = [
        line["value"]
        for widget in body["widgets"]
        for line in widget["properties"].get("annotations", {}).get("horizontal", [])
    ]
    assert float(full.parameters["StaleSchedulePeriodsThreshold"]) in annotations


def test_the_dashboard_shows_every_alarm_that_always_exists() -> None:
    # Given the default stack (the optional alarm is absent, so the body cannot name it)
    template = stack()
    body = dashboard(template)
    (alarm_widget,) = [widget for widget in body["widgets"] if widget["type"] == "alarm"]
    expected = {f"arn:aws:local:us-east-1:123456789012:{logical_id}" for logical_id in alarms(template)}
    assert set(alarm_widget["properties"]["alarms"]) == expected


# --- the runbook --------------------------------------------------------------------------------------------------


def test_the_readme_operate_section_has_a_runbook_entry_for_every_alarm_and_parameter(full: StackTemplate) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    operate = readme.split("## Operate", 1)[1].split("\n## ", 1)[0]
    for logical_id in alarms(full):
        assert f"`{logical_id}`" in operate, f"README Operate: no runbook entry for {logical_id}"
    for parameter in [*(name for name in full.document["Parameters"] if name.endswith("Threshold")), "AlarmEmail"]:
        assert f"`{parameter}`" in readme, f"README: parameter {parameter} is not documented"
