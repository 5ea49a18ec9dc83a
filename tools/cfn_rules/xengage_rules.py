"""Project cfn-lint rules: the design rules template.yaml keeps, checked for every resource they apply to.

`make cfn-lint` loads this folder with `--append-rules tools/cfn_rules` (cfn-lint imports each file by name, so
the rules live in this one module). cfn-lint hands rules the SAM template with `Globals` merged into each resource,
not SAM's CloudFormation output, so SAM shapes (Policies, Events) are read here directly.
Ignore a finding for one resource with its `Metadata: cfn-lint: config: ignore_checks: [E91xx]` and a reason.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch

FUNCTION = "AWS::Serverless::Function"
STACK_PREFIX = "${AWS::StackName}/"
STACK_SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" + STACK_PREFIX
# SAM policy templates and AWS managed policies that grant dynamodb:Scan.
SCAN_POLICIES = frozenset(
    {"DynamoDBReadPolicy", "DynamoDBCrudPolicy", "AmazonDynamoDBFullAccess", "AmazonDynamoDBReadOnlyAccess"}
)
# Defaults AWS applies when the property is absent.
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_FUNCTION_TIMEOUT = 3
DEFAULT_SQS_BATCH_SIZE = 10

Path = list[str | int]


def resources(cfn: Any, resource_type: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in (cfn.template.get("Resources") or {}).items():
        if isinstance(resource, dict) and resource_type in (None, resource.get("Type")):
            yield logical_id, resource


def properties(resource: Mapping[str, Any]) -> dict[str, Any]:
    found = resource.get("Properties")
    return found if isinstance(found, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def get_att_target(value: Any) -> str | None:
    """GetAtt X.Arn (either spelling) -> X."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        name = target[0] if isinstance(target, list) else str(target).split(".", 1)[0]
        return str(name)
    return None


def allow_statements(node: Any, path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every Allow statement of an IAM or resource policy anywhere under `node` (trust policies left out)."""
    if isinstance(node, dict):
        if "Action" in node and node.get("Effect") == "Allow":
            yield path, node
            return
        for key, value in node.items():
            if key != "AssumeRolePolicyDocument":
                yield from allow_statements(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from allow_statements(value, [*path, index])


def policy_templates(resource: Mapping[str, Any]) -> Iterator[tuple[int, str, Any]]:
    """(index, name, arguments) of a SAM function's policy templates and managed policies (arguments None)."""
    for index, policy in enumerate(as_list(properties(resource).get("Policies") or [])):
        if isinstance(policy, str):
            yield index, policy.rsplit("/", 1)[-1], None
        elif isinstance(policy, dict) and "Statement" not in policy and len(policy) == 1:
            ((name, arguments),) = policy.items()
            yield index, str(name), arguments


def number(value: Any) -> int | None:
    """A literal whole number (YAML may give it as text), else None."""
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def function_timeout(cfn: Any, function: Mapping[str, Any]) -> int | None:
    """The longest Timeout the function can have: a number, or the MaxValue of the parameter it refers to."""
    timeout = properties(function).get("Timeout", DEFAULT_FUNCTION_TIMEOUT)
    if isinstance(timeout, dict) and "Ref" in timeout:
        parameter = (cfn.template.get("Parameters") or {}).get(timeout["Ref"]) or {}
        timeout = parameter.get("MaxValue")
    return number(timeout)


class NoTableScan(CloudFormationLintRule):
    """Every read is a key or index Query: a Scan reads (and bills) the whole table."""

    id = "E9101"
    shortdesc = "No DynamoDB Scan"
    description = "No policy allows dynamodb:Scan, by name, wildcard, policy template or managed policy"
    tags = ["xengage", "iam", "dynamodb"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for logical_id, resource in resources(cfn):
            for path, statement in allow_statements(properties(resource), ["Resources", logical_id, "Properties"]):
                for action in as_list(statement["Action"]):
                    if isinstance(action, str) and fnmatch.fnmatch("dynamodb:scan", action.lower()):
                        matches.append(RuleMatch(path, f"{logical_id}: action {action!r} allows dynamodb:Scan"))
            for index, name, _ in policy_templates(resource):
                if name in SCAN_POLICIES:
                    path = ["Resources", logical_id, "Properties", "Policies", index]
                    matches.append(RuleMatch(path, f"{logical_id}: policy {name} allows dynamodb:Scan"))
        return matches


class SecretsScopedToStack(CloudFormationLintRule):
    """Secrets are named under ${AWS::StackName}/ and grants name those secrets, never another stack's."""

    id = "E9102"
    shortdesc = "Secrets scoped to the stack"
    description = (
        "Each secret is named ${AWS::StackName}/...; each secretsmanager grant names a secret of the template "
        "(Ref) or an ARN under the stack's prefix"
    )
    tags = ["xengage", "iam", "secretsmanager"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        secrets = {logical_id for logical_id, _ in resources(cfn, "AWS::SecretsManager::Secret")}
        matches = []
        for logical_id in sorted(secrets):
            secret_name = properties(cfn.template["Resources"][logical_id]).get("Name")
            if not (isinstance(secret_name, dict) and str(secret_name.get("Fn::Sub", "")).startswith(STACK_PREFIX)):
                path: Path = ["Resources", logical_id, "Properties", "Name"]
                matches.append(RuleMatch(path, f"{logical_id}: Name must be !Sub '{STACK_PREFIX}...'"))
        for logical_id, resource in resources(cfn):
            for path, statement in allow_statements(properties(resource), ["Resources", logical_id, "Properties"]):
                actions = [action for action in as_list(statement["Action"]) if isinstance(action, str)]
                if any(action.lower().startswith(("secretsmanager:", "*")) for action in actions):
                    matches += self._check(secrets, path, as_list(statement.get("Resource")), logical_id)
            for index, name, arguments in policy_templates(resource):
                if name.startswith("AWSSecretsManager") and isinstance(arguments, dict):
                    path = ["Resources", logical_id, "Properties", "Policies", index]
                    matches += self._check(secrets, path, list(arguments.values()), logical_id)
        return matches

    @staticmethod
    def _check(secrets: set[str], path: Path, targets: list[Any], logical_id: str) -> list[RuleMatch]:
        return [
            RuleMatch(path, f"{logical_id}: secret grant {target!r} is not a secret of this stack")
            for target in targets
            if not SecretsScopedToStack._scoped(secrets, target)
        ]

    @staticmethod
    def _scoped(secrets: set[str], target: Any) -> bool:
        if not isinstance(target, dict) or len(target) != 1:
            return False
        ((key, value),) = target.items()
        if key == "Ref":
            return value in secrets
        text = value[0] if key == "Fn::Sub" and isinstance(value, list) else value
        rest = str(text).removeprefix(STACK_SECRET_ARN) if key == "Fn::Sub" else ""
        return rest != str(text) and bool(rest) and not rest.startswith("*")


class QueueSourcesRedeliverOnlyFailures(CloudFormationLintRule):
    """A message is redelivered only when its processing failed, never while its batch still runs."""

    id = "E9103"
    shortdesc = "SQS sources: visibility timeout and partial batch failures"
    description = (
        "A function's SQS queue keeps a message invisible for at least 6x the function's longest timeout plus the "
        "batching window (Lambda's guidance), and a source with batches reports ReportBatchItemFailures"
    )
    tags = ["xengage", "sqs", "lambda"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for logical_id, function in resources(cfn, FUNCTION):
            for event_name, event in (properties(function).get("Events") or {}).items():
                if isinstance(event, dict) and event.get("Type") == "SQS":
                    path: Path = ["Resources", logical_id, "Properties", "Events", event_name]
                    matches += self._check(cfn, function, properties(event), path, f"{logical_id}/{event_name}")
        return matches

    @staticmethod
    def _check(cfn: Any, function: dict[str, Any], source: dict[str, Any], path: Path, name: str) -> list[RuleMatch]:
        matches = []
        batch_size = source.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)
        reports = "ReportBatchItemFailures" in as_list(source.get("FunctionResponseTypes") or [])
        if not (isinstance(batch_size, int) and batch_size == 1) and not reports:
            message = f"{name}: batches of several messages need FunctionResponseTypes [ReportBatchItemFailures]"
            matches.append(RuleMatch(path, message))
        queue_id = get_att_target(source.get("Queue"))
        queue = (cfn.template.get("Resources") or {}).get(queue_id) if queue_id else None
        timeout = function_timeout(cfn, function)
        visibility = number(properties(queue).get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)) if queue else None
        window = number(source.get("MaximumBatchingWindowInSeconds", 0))
        if timeout is None or visibility is None or window is None:
            message = (
                f"{name}: needs a queue of this template with a numeric VisibilityTimeout, a numeric batching window "
                "and a Timeout that is a number or a parameter's MaxValue"
            )
            return [*matches, RuleMatch(path, message)]
        needed = 6 * timeout + window
        if visibility < needed:
            message = f"{name}: {queue_id} VisibilityTimeout {visibility} < 6 x timeout {timeout} + window = {needed}"
            matches.append(RuleMatch(["Resources", str(queue_id), "Properties"], message))
        return matches


class SchedulesKeepTheirFailures(CloudFormationLintRule):
    """A tick that fails is retried and then kept in a dead-letter queue; two stacks' schedules never collide."""

    id = "E9104"
    shortdesc = "Schedules: dead-letter queues and generated names"
    description = (
        "Each ScheduleV2 event has a RetryPolicy, a DeadLetterConfig and OmitName: true (SAM would name it after "
        "the function and event, the same in every stack of an account); its function, invoked asynchronously, "
        "sends failed invocations to an OnFailure destination"
    )
    tags = ["xengage", "scheduler", "lambda"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for logical_id, function in resources(cfn, FUNCTION):
            scheduled = False
            for event_name, event in (properties(function).get("Events") or {}).items():
                if not (isinstance(event, dict) and event.get("Type") == "ScheduleV2"):
                    continue
                scheduled = True
                schedule = properties(event)
                path: Path = ["Resources", logical_id, "Properties", "Events", event_name]
                missing = [key for key in ("RetryPolicy", "DeadLetterConfig") if key not in schedule]
                missing += [] if schedule.get("OmitName") is True else ["OmitName: true"]
                if missing:
                    matches.append(RuleMatch(path, f"{logical_id}/{event_name}: missing {', '.join(missing)}"))
            config = properties(function).get("EventInvokeConfig") or {}
            on_failure = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
            if scheduled and "Destination" not in on_failure:
                message = f"{logical_id}: scheduled, so its EventInvokeConfig needs DestinationConfig.OnFailure"
                matches.append(RuleMatch(["Resources", logical_id, "Properties"], message))
        return matches


class TablesKeepWhatIsBackedUp(CloudFormationLintRule):
    """Tables are encrypted with SSE; a table worth point-in-time recovery outlives its stack and replacements."""

    id = "E9105"
    shortdesc = "DynamoDB tables: SSE, and PITR implies Retain"
    description = (
        "Each table sets SSESpecification.SSEEnabled; one with point-in-time recovery has DeletionPolicy and "
        "UpdateReplacePolicy Retain (its history cannot be fetched again)"
    )
    tags = ["xengage", "dynamodb"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for logical_id, table in resources(cfn, "AWS::DynamoDB::Table"):
            table_properties = properties(table)
            path: Path = ["Resources", logical_id]
            if (table_properties.get("SSESpecification") or {}).get("SSEEnabled") is not True:
                matches.append(RuleMatch(path, f"{logical_id}: SSESpecification.SSEEnabled must be true"))
            recovery = table_properties.get("PointInTimeRecoverySpecification") or {}
            kept = table.get("DeletionPolicy") == table.get("UpdateReplacePolicy") == "Retain"
            if recovery.get("PointInTimeRecoveryEnabled") is True and not kept:
                message = f"{logical_id}: has point-in-time recovery, so DeletionPolicy/UpdateReplacePolicy Retain"
                matches.append(RuleMatch(path, message))
        return matches


class ApiRoutesStateTheirAuth(CloudFormationLintRule):
    """No route is open by omission, and each function's Api event is a route of its API."""

    id = "E9106"
    shortdesc = "API routes: explicit security, events match the definition"
    description = (
        "Each operation of an AWS::Serverless::Api DefinitionBody has a security list (an open route says "
        "security: []) naming defined schemes; each Api event of a function names a path and method of that body"
    )
    tags = ["xengage", "apigateway"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        routes: dict[str, set[tuple[str, str]]] = {}
        for logical_id, api in resources(cfn, "AWS::Serverless::Api"):
            body = properties(api).get("DefinitionBody")
            if isinstance(body, dict):
                routes[logical_id] = set()
                matches += self._check_body(logical_id, body, routes[logical_id])
        for logical_id, function in resources(cfn, FUNCTION):
            for event_name, event in (properties(function).get("Events") or {}).items():
                source = properties(event) if isinstance(event, dict) and event.get("Type") == "Api" else {}
                rest_api = source.get("RestApiId")
                api_id = rest_api.get("Ref") if isinstance(rest_api, dict) else None
                route = (str(source.get("Path")), str(source.get("Method", "")).lower())
                if api_id in routes and route not in routes[api_id]:
                    path: Path = ["Resources", logical_id, "Properties", "Events", event_name]
                    matches.append(RuleMatch(path, f"{logical_id}/{event_name}: {route} is no route of {api_id}"))
        return matches

    @staticmethod
    def _check_body(logical_id: str, body: dict[str, Any], routes: set[tuple[str, str]]) -> list[RuleMatch]:
        matches = []
        schemes = set(body.get("securityDefinitions") or {})
        for route, operations in (body.get("paths") or {}).items():
            for method, operation in (operations or {}).items():
                method_name = "any" if method == "x-amazon-apigateway-any-method" else method
                routes.add((route, method_name))
                path: Path = ["Resources", logical_id, "Properties", "DefinitionBody", "paths", route, method]
                security = operation.get("security", body.get("security")) if isinstance(operation, dict) else None
                if security is None:
                    matches.append(RuleMatch(path, f"{logical_id}: {method} {route} states no security"))
                    continue
                named = set(_security_names(security))
                if not named <= schemes:
                    message = f"{logical_id}: {method} {route} names undefined schemes {sorted(named - schemes)}"
                    matches.append(RuleMatch(path, message))
        return matches


def _security_names(security: Any) -> Iterator[str]:
    """Scheme names of a security list, through both branches of an Fn::If."""
    if isinstance(security, dict) and "Fn::If" in security:
        for branch in security["Fn::If"][1:]:
            yield from _security_names(branch)
    elif isinstance(security, list):
        for requirement in security:
            if isinstance(requirement, dict):
                yield from (str(name) for name in requirement)
