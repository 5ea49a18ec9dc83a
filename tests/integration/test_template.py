"""Template parsing: short tags, Globals, parameters, conditions and intrinsic functions."""

from __future__ import annotations

import pytest

from local.stack.template import (
    PhysicalIds,
    TemplateError,
    UnresolvedResource,
    load_template,
    merge_globals,
    parse_template_text,
)

from .conftest import FIXTURE_TEMPLATE

pytestmark = pytest.mark.integration


def test_short_tags_become_long_form_intrinsics():
    # Given YAML using every short-tag shape (scalar, sequence, dotted GetAtt)
    text = """
Resources:
  A:
    Type: X
    Properties:
      Ref: !Ref B
      Att: !GetAtt B.Arn.Deep
      AttList: !GetAtt [B, Arn]
      Sub: !Sub "${AWS::Region}-x"
      SubList: !Sub ["${v}", {v: !Ref B}]
      Cond: !If [C, !Ref B, !Ref "AWS::NoValue"]
"""
    # When it is parsed
    props = parse_template_text(text)["Resources"]["A"]["Properties"]
    # Then each tag is the long form CloudFormation documents
    assert props["Ref"] == {"Ref": "B"}
    assert props["Att"] == {"Fn::GetAtt": ["B", "Arn.Deep"]}
    assert props["AttList"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert props["Sub"] == {"Fn::Sub": "${AWS::Region}-x"}
    assert props["SubList"] == {"Fn::Sub": ["${v}", {"v": {"Ref": "B"}}]}
    assert props["Cond"] == {"Fn::If": ["C", {"Ref": "B"}, {"Ref": "AWS::NoValue"}]}


def test_globals_merge_maps_add_lists_and_let_the_resource_win():
    # Given global function settings and a resource overriding some of them
    globals_function = {"Timeout": 5, "Layers": ["L1"], "Environment": {"Variables": {"A": "g", "B": "g"}}}
    resource = {"Timeout": 9, "Layers": ["L2"], "Environment": {"Variables": {"B": "r"}}}
    # When they are merged
    merged = merge_globals(globals_function, resource)
    # Then scalars come from the resource, lists add up and maps merge key by key
    assert merged == {"Timeout": 9, "Layers": ["L1", "L2"], "Environment": {"Variables": {"A": "g", "B": "r"}}}


def test_fixture_template_resolves_parameters_conditions_and_intrinsics():
    # Given the fixture template with its default parameters
    template = load_template(FIXTURE_TEMPLATE)
    ids = PhysicalIds()
    ids.add("ItemsTable", "items-table", Arn="arn:items")
    ids.add("ScheduleDeadLetterQueue", "http://q", Arn="arn:aws:sqs:us-east-1:123456789012:dlq")
    resolver = template.resolver(ids)
    # When the TickFunction environment (Globals included) is resolved
    env = resolver.resolve(template.properties("TickFunction")["Environment"]["Variables"])
    # Then every intrinsic has its CloudFormation value
    assert env == {
        "STAGE": "test",
        "LOG_LEVEL": "DEBUG",
        "ITEMS_TABLE": "items-table",
        "SECRET_PREFIX": "x-engagement-collector-local/",
        "WHO": "tick",
        "EXTERNAL_API_URL": "https://example.invalid",
        "MODE": "local-test",
        "DLQ_ARN": "arn:aws:sqs:us-east-1:123456789012:dlq",
        "JOINED": "a-y",
    }
    # And the resource whose condition is false is gone, the layer comes from Globals
    assert "ProdOnlyTable" not in template.resources
    assert template.properties("WorkFunction")["Layers"] == [{"Ref": "SharedLayer"}]


def test_parameter_override_flips_conditions():
    # Given Stage=prod
    template = load_template(FIXTURE_TEMPLATE, parameter_overrides={"Stage": "prod"})
    resolver = template.resolver(PhysicalIds())
    # Then the prod-only table exists and the Ifs follow the parameter
    assert "ProdOnlyTable" in template.resources
    assert template.conditions == {"IsProd": True, "IsNotProd": False}
    assert resolver.resolve(template.properties("TickFunction")["Environment"]["Variables"]["LOG_LEVEL"]) == "INFO"
    assert resolver.resolve({"Fn::If": ["IsNotProd", "a", "b"]}) == "b"


def test_sub_forms_and_escapes():
    template = load_template(FIXTURE_TEMPLATE)
    ids = PhysicalIds()
    ids.add("WorkQueue", "http://queue-url", Arn="arn:queue")
    resolver = template.resolver(ids)
    # When Sub is used with pseudo-parameters, GetAtt, Ref and an escaped literal
    text = resolver.resolve({"Fn::Sub": "${AWS::AccountId}:${AWS::Partition}:${WorkQueue.Arn}:${WorkQueue}:${!Keep}"})
    # Then each part is substituted, and ${!Keep} stays a literal ${Keep}
    assert text == "123456789012:aws:arn:queue:http://queue-url:${Keep}"


def test_no_value_removes_keys_and_list_items():
    template = load_template(FIXTURE_TEMPLATE)
    resolver = template.resolver(PhysicalIds())
    value = {"keep": 1, "drop": {"Ref": "AWS::NoValue"}, "list": ["a", {"Ref": "AWS::NoValue"}]}
    assert resolver.resolve(value) == {"keep": 1, "list": ["a"]}


def test_bad_inputs_raise_typed_errors_naming_the_problem():
    # An unknown parameter, a value outside AllowedValues, a Ref to nothing, a resource not created yet
    with pytest.raises(TemplateError, match="Nope"):
        load_template(FIXTURE_TEMPLATE, parameter_overrides={"Nope": "1"})
    with pytest.raises(TemplateError, match="staging"):
        load_template(FIXTURE_TEMPLATE, parameter_overrides={"Stage": "staging"})
    resolver = load_template(FIXTURE_TEMPLATE).resolver(PhysicalIds())
    with pytest.raises(TemplateError, match="Missing"):
        resolver.resolve({"Ref": "Missing"})
    with pytest.raises(UnresolvedResource, match="WorkQueue"):
        resolver.resolve({"Fn::GetAtt": ["WorkQueue", "Arn"]})
