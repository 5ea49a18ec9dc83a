"""Read a SAM template the way CloudFormation would, far enough to run it on loopback.

`parse_template_text` is the project's one template reader: cfn-lint's YAML loader (short tags become their long
form), as plain dicts. `load_template` applies `Globals` (functions only: all template.yaml has), resolves
parameters and conditions and drops resources whose condition is false. `IntrinsicResolver` then turns the
intrinsics template.yaml uses (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::If`, `Fn::Join`, `Fn::Split`,
`Fn::Equals`, `Fn::Not`) into values, looking resource ids up in a `PhysicalIds` map filled while resources are
created.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_NAME = "x-engagement-collector-local"
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
SERVERLESS_API = "AWS::Serverless::Api"


class TemplateError(ValueError):
    """The template cannot be read or resolved; the message names the resource or value at fault."""


class UnresolvedResource(TemplateError):
    """An intrinsic refers to a resource that has no physical id yet (it is created later)."""

    def __init__(self, logical_id: str) -> None:
        super().__init__(f"resource {logical_id!r} has no physical id yet")
        self.logical_id = logical_id


# --- the one template reader ----------------------------------------------------------------------


def parse_template_text(text: str) -> dict[str, Any]:
    """Parse template YAML (or JSON, which is YAML) with cfn-lint's loader into plain long-form dicts.

    cfn-lint (a dev dependency) turns `!Ref X` into `{"Ref": "X"}`, `!GetAtt A.B` into `{"Fn::GetAtt": ["A", "B"]}`
    and so on; the JSON round trip drops its line-number node classes, so callers get plain dicts and strings.
    """
    from cfnlint.decode.cfn_yaml import loads  # lazily: importing cfn-lint takes ~0.8 s

    try:
        document = json.loads(json.dumps(loads(text)))
    except Exception as error:  # cfn-lint's parse errors, and YAML's own
        raise TemplateError(f"template cannot be parsed: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError("template has no Resources mapping")
    return document


# --- Globals ---------------------------------------------------------------------------------------


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals rule: maps merge (the resource wins per key), lists add up, scalars are overridden."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        merged = copy.deepcopy(global_value)
        for key, value in local_value.items():
            merged[key] = merge_globals(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return copy.deepcopy(global_value) + copy.deepcopy(local_value)
    return copy.deepcopy(local_value)


def apply_globals(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the resources with `Globals.Function` folded into the functions' `Properties`."""
    function_globals = (document.get("Globals") or {}).get("Function")
    resources: dict[str, dict[str, Any]] = {}
    for logical_id, resource in document["Resources"].items():
        resource = copy.deepcopy(resource)
        if function_globals and resource.get("Type") == SERVERLESS_FUNCTION:
            resource["Properties"] = merge_globals(function_globals, resource.get("Properties") or {})
        resources[logical_id] = resource
    return resources


# --- physical ids ----------------------------------------------------------------------------------


@dataclass
class PhysicalResource:
    """What `Ref` returns for a resource, and its `Fn::GetAtt` attributes."""

    ref: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class PhysicalIds:
    """Logical id → physical resource, filled as the local stack creates (or names) resources."""

    resources: dict[str, PhysicalResource] = field(default_factory=dict)

    def add(self, logical_id: str, ref: str, **attributes: Any) -> PhysicalResource:
        resource = PhysicalResource(ref=ref, attributes=dict(attributes))
        self.resources[logical_id] = resource
        return resource

    def ref(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id].ref
        except KeyError:
            raise UnresolvedResource(logical_id) from None

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise UnresolvedResource(logical_id)
        if attribute not in resource.attributes:
            raise TemplateError(f"resource {logical_id!r} has no attribute {attribute!r} locally")
        return resource.attributes[attribute]

    def to_json(self) -> dict[str, Any]:
        return {lid: {"ref": r.ref, "attributes": r.attributes} for lid, r in self.resources.items()}


# --- the template ----------------------------------------------------------------------------------


@dataclass
class StackTemplate:
    """A parsed template with Globals applied, parameters resolved and conditional resources dropped."""

    path: Path
    document: dict[str, Any]
    resources: dict[str, dict[str, Any]]
    parameters: dict[str, Any]
    conditions: dict[str, bool]
    stack_name: str = STACK_NAME
    region: str = DEFAULT_REGION
    account_id: str = ACCOUNT_ID

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def pseudo_parameters(self) -> dict[str, Any]:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res.get("Type") == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resources[logical_id].get("Properties") or {})

    def resolver(self, physical_ids: PhysicalIds | None = None) -> IntrinsicResolver:
        return IntrinsicResolver(self, physical_ids or PhysicalIds())


def resolve_parameters(declared: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parameter values from overrides or defaults, checked against AllowedValues, as strings (the template's
    parameters are String and Number ones)."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameter override(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        spec = spec or {}
        if name in overrides:
            value = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"parameter {name!r} has no Default and no override")
        allowed = spec.get("AllowedValues")
        if allowed is not None and str(value) not in {str(a) for a in allowed}:
            raise TemplateError(f"parameter {name!r}={value!r} is not one of {allowed}")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)  # a Ref to a Number parameter is a string in CloudFormation
        values[name] = value
    return values


def load_template(
    path: str | Path,
    *,
    parameter_overrides: Mapping[str, Any] | None = None,
    stack_name: str = STACK_NAME,
    region: str = DEFAULT_REGION,
    account_id: str = ACCOUNT_ID,
) -> StackTemplate:
    """Parse `path`, apply Globals, resolve parameters and conditions, drop resources whose condition is false."""
    path = Path(path).resolve()
    document = parse_template_text(path.read_text(encoding="utf-8"))
    template = StackTemplate(
        path=path,
        document=document,
        resources=apply_globals(document),
        parameters=resolve_parameters(document.get("Parameters") or {}, parameter_overrides),
        conditions={},
        stack_name=stack_name,
        region=region,
        account_id=account_id,
    )
    resolver = template.resolver()
    for name in document.get("Conditions") or {}:
        template.conditions[name] = resolver.condition(name)
    template.resources = {
        lid: res
        for lid, res in template.resources.items()
        if "Condition" not in res or template.conditions.get(res["Condition"], False)
    }
    return template


# --- intrinsic functions ---------------------------------------------------------------------------


class _NoValue:
    """`Ref: AWS::NoValue` — the key or list item holding it disappears."""


NO_VALUE = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class IntrinsicResolver:
    """Resolve intrinsic functions against parameters, pseudo-parameters, conditions and physical ids."""

    def __init__(self, template: StackTemplate, physical_ids: PhysicalIds) -> None:
        self.template = template
        self.physical_ids = physical_ids
        self._evaluating: set[str] = set()

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def condition(self, name: str) -> bool:
        if name in self.template.conditions:
            return self.template.conditions[name]
        declared = self.template.document.get("Conditions") or {}
        if name not in declared:
            raise TemplateError(f"unknown condition {name!r}")
        if name in self._evaluating:
            raise TemplateError(f"condition {name!r} refers to itself")
        self._evaluating.add(name)
        try:
            result = bool(self.resolve(declared[name]))
        finally:
            self._evaluating.discard(name)
        self.template.conditions[name] = result
        return result

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"Ref needs a name, got {name!r}")
        if name == "AWS::NoValue":
            return NO_VALUE
        pseudo = self.template.pseudo_parameters
        if name in pseudo:
            return pseudo[name]
        if name in self.template.parameters:
            return self.template.parameters[name]
        if name in self.template.resources:
            return self.physical_ids.ref(name)
        raise TemplateError(f"Ref to unknown name {name!r}")

    def _get_att(self, argument: Any) -> Any:
        argument = self.resolve(argument)
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::GetAtt needs [LogicalId, Attribute], got {argument!r}")
        logical_id, attribute = argument
        if logical_id not in self.template.resources:
            raise TemplateError(f"Fn::GetAtt to unknown resource {logical_id!r}")
        return self.physical_ids.get_att(logical_id, attribute)

    def _sub(self, text: Any) -> str:
        if not isinstance(text, str):  # the template writes only the string form
            raise TemplateError(f"Fn::Sub needs a string, got {text!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # `${!Literal}` escapes the substitution
            if "." in name and not name.startswith("AWS::"):
                return _as_text(self._get_att(name.split(".", 1)))
            return _as_text(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _function(self, key: str, argument: Any) -> Any:
        intrinsic = _INTRINSICS.get(key)
        if intrinsic is None:
            raise TemplateError(f"{key} is not supported by the local stack")
        return intrinsic(self, argument)

    def _if(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError("Fn::If needs [condition, value_if_true, value_if_false]")
        return self.resolve(argument[1] if self.condition(argument[0]) else argument[2])

    def _equals(self, argument: Any) -> bool:
        left, right = self.resolve(argument)
        return _as_text(left) == _as_text(right)

    def _not(self, argument: Any) -> bool:
        (inner,) = self.resolve(argument)
        return not inner

    def _join(self, argument: Any) -> str:
        delimiter, items = self.resolve(argument)
        return str(delimiter).join(_as_text(item) for item in items)

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = self.resolve(argument)
        return str(text).split(str(delimiter))


# Each intrinsic function the local stack resolves, by its key in the template.
_INTRINSICS: dict[str, Callable[[IntrinsicResolver, Any], Any]] = {
    "Fn::GetAtt": IntrinsicResolver._get_att,
    "Fn::Sub": IntrinsicResolver._sub,
    "Fn::If": IntrinsicResolver._if,
    "Fn::Equals": IntrinsicResolver._equals,
    "Fn::Not": IntrinsicResolver._not,
    "Fn::Join": IntrinsicResolver._join,
    "Fn::Split": IntrinsicResolver._split,
}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise TemplateError(f"cannot substitute a {type(value).__name__} into a string: {value!r}")
    return str(value)
