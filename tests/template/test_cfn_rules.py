"""The project's cfn-lint rules (tools/cfn_rules/): each passes template.yaml and catches the change it guards against.

Each case breaks one promise of template.yaml in a copy and runs only the project's rules on it, in-process (fast).
`make cfn-lint` and tests/template/test_template.py::test_cfn_lint_passes run them with everything else.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cfnlint.config import ConfigMixIn
from cfnlint.rules import CloudFormationLintRule, RulesCollection
from cfnlint.runner import run_template_by_data

from local.stack.template import parse_template_text
from tools.cfn_rules import xengage_rules

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
STACK_SECRET = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}/"

Template = dict[str, Any]


def project_rules() -> list[type[CloudFormationLintRule]]:
    return [
        value
        for value in vars(xengage_rules).values()
        if isinstance(value, type) and issubclass(value, CloudFormationLintRule) and value is not CloudFormationLintRule
    ]


@pytest.fixture(scope="module")
def template() -> Template:
    return parse_template_text(TEMPLATE.read_text())


def findings(template: Template) -> list[tuple[str, str]]:
    rules = RulesCollection()
    for rule in project_rules():
        rules.register(rule())
    matches = run_template_by_data(copy.deepcopy(template), ConfigMixIn(regions=["us-east-1"]), rules)
    return [(match.rule.id, match.message) for match in matches]


def props(template: Template, logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return found


def statements(template: Template, logical_id: str) -> list[dict[str, Any]]:
    policy = next(policy for policy in props(template, logical_id)["Policies"] if "Statement" in policy)
    found: list[dict[str, Any]] = policy["Statement"]
    return found


def event(template: Template, logical_id: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = props(template, logical_id)["Events"][name]["Properties"]
    return found


def proxy_method(template: Template) -> dict[str, Any]:
    found: dict[str, Any] = props(template, "EngagementApi")["DefinitionBody"]["paths"]["/{proxy+}"]
    return found["x-amazon-apigateway-any-method"]


def allow(template: Template, logical_id: str, action: str, resource: Any) -> None:
    statements(template, logical_id).append({"Effect": "Allow", "Action": [action], "Resource": resource})


# Each case: (rule id, a phrase of its message, what breaks the promise)
BREAKS: dict[str, tuple[str, str, Callable[[Template], None]]] = {
    "a Scan action": ("E9101", "allows dynamodb:Scan", lambda t: allow(t, "ApiFunction", "dynamodb:Scan", "*")),
    "a dynamodb wildcard": (
        "E9101",
        "'dynamodb:*' allows dynamodb:Scan",
        lambda t: statements(t, "PlannerFunction")[0]["Action"].append("dynamodb:*"),
    ),
    "a policy template with Scan": (
        "E9101",
        "policy DynamoDBCrudPolicy",
        lambda t: props(t, "ExportFunction")["Policies"].append({"DynamoDBCrudPolicy": {"TableName": "x"}}),
    ),
    "any secret of the account": (
        "E9102",
        "is not a secret of this stack",
        lambda t: allow(t, "CollectorFunction", "secretsmanager:GetSecretValue", "*"),
    ),
    "every secret of the stack": (
        "E9102",
        "is not a secret of this stack",
        lambda t: allow(t, "ApiFunction", "secretsmanager:GetSecretValue", {"Fn::Sub": STACK_SECRET + "*"}),
    ),
    "a secret named without the stack": (
        "E9102",
        "AppSecret: Name must be",
        lambda t: props(t, "AppSecret").update(Name="app"),
    ),
    "a visibility timeout shorter than the retries": (
        "E9103",
        "CollectQueue VisibilityTimeout 600",
        lambda t: props(t, "CollectQueue").update(VisibilityTimeout=600),
    ),
    "a timeout parameter without a bound": (
        "E9103",
        "a parameter's MaxValue",
        lambda t: t["Parameters"]["CollectorTimeoutSeconds"].pop("MaxValue"),
    ),
    "a batch without partial failures": (
        "E9103",
        "CollectBatches: batches of several messages",
        lambda t: event(t, "CollectorFunction", "CollectBatches").pop("FunctionResponseTypes"),
    ),
    "a schedule without dead-letter queue": (
        "E9104",
        "TotalsSchedule: missing DeadLetterConfig",
        lambda t: event(t, "PlannerFunction", "TotalsSchedule").pop("DeadLetterConfig"),
    ),
    "a schedule named after its event": (
        "E9104",
        "DailyExport: missing OmitName: true",
        lambda t: event(t, "ExportFunction", "DailyExport").pop("OmitName"),
    ),
    "a scheduled function without failure destination": (
        "E9104",
        "PlannerFunction: scheduled, so its EventInvokeConfig",
        lambda t: props(t, "PlannerFunction").pop("EventInvokeConfig"),
    ),
    "a backed-up table deleted with the stack": (
        "E9105",
        "MetricsTable: has point-in-time recovery",
        lambda t: t["Resources"]["MetricsTable"].update(DeletionPolicy="Delete"),
    ),
    "a table without SSE": (
        "E9105",
        "JobsTable: SSESpecification",
        lambda t: props(t, "JobsTable").pop("SSESpecification"),
    ),
    "a route open by omission": (
        "E9106",
        "/{proxy+} states no security",
        lambda t: proxy_method(t).pop("security"),
    ),
    "a route naming an undefined scheme": (
        "E9106",
        "undefined schemes ['cognito']",
        lambda t: proxy_method(t).update(security=[{"cognito": []}]),
    ),
    "an event that is no route of its API": (
        "E9106",
        "OAuthCallback: ('/oauth/callback', 'post') is no route",
        lambda t: event(t, "ApiFunction", "OAuthCallback").update(Method="POST"),
    ),
}


def test_template_yaml_keeps_every_project_rule(template: Template) -> None:
    # Given template.yaml as it stands, and the project's rules
    assert len(project_rules()) == len({rule_id for rule_id, _, _ in BREAKS.values()})
    # When only those rules check it
    # Then they find nothing
    assert findings(template) == []


@pytest.mark.parametrize("case", list(BREAKS))
def test_a_rule_catches_the_change_it_guards_against(template: Template, case: str) -> None:
    # Given template.yaml with one promise broken
    rule_id, phrase, breaks = BREAKS[case]
    broken = copy.deepcopy(template)
    breaks(broken)
    # When the project's rules check it
    found = findings(broken)
    # Then exactly that rule reports it, naming the resource and the problem
    assert [rule for rule, _ in found] == [rule_id], found
    assert phrase in found[0][1], found
