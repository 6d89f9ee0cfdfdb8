"""The CustomResourceDefinition, generated from the pydantic models.

Kubernetes wants a structural OpenAPI v3.0 schema: no `$ref`, no `title`, `nullable` instead of
`anyOf [X, null]`, `x-kubernetes-int-or-string` instead of `anyOf [integer, string]`, and
boolean `exclusiveMinimum`. This module turns pydantic's JSON Schema into that shape.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from serinus.api.resource import (
    API_VERSION,
    CRD_NAME,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from serinus.api.spec import ModelDeploymentSpec
from serinus.api.status import ModelDeploymentStatus

CRD_FILE = "crds/serinus.dev_modeldeployments.yaml"

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stable.version"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canary.version"},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.canary.weight"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

_DROPPED_KEYS = {"title", "$defs", "examples"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node

    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        target.update(node)  # the field's own description and default win over the type's
        node = target

    if "anyOf" in node:
        options = node.pop("anyOf")
        non_null = [option for option in options if option.get("type") != "null"]
        if len(non_null) < len(options):
            node["nullable"] = True
        types = {option.get("type") for option in non_null}
        if types == {"integer", "string"}:
            node["x-kubernetes-int-or-string"] = True
        elif len(non_null) == 1:
            merged = _structural(non_null[0], defs)
            merged.update({key: value for key, value in node.items() if key != "nullable"})
            node = merged
            if len(non_null) < len(options):
                node["nullable"] = True
        else:
            raise ValueError(f"cannot express anyOf {options} in a structural schema")

    if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"] = node["exclusiveMinimum"]
        node["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node and not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"] = node["exclusiveMaximum"]
        node["exclusiveMaximum"] = True
    if node.get("default", 0) in (None, ""):
        del node["default"]  # kube-apiserver reads an empty-string default as null and rejects it
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]  # structural schemas prune unknown fields anyway

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs)
        else:
            out[key] = value
    return _ordered(out)


_LEADING_KEYS = ("type", "description")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """type and description first, then the rest by name: a stable, readable file."""
    leading = {key: node[key] for key in _LEADING_KEYS if key in node}
    rest = {key: node[key] for key in sorted(node) if key not in leading}
    return leading | rest


def structural_schema(model: type) -> dict[str, Any]:
    """A pydantic model's validation schema as a Kubernetes structural schema."""
    schema = model.model_json_schema(by_alias=True, mode="validation")  # type: ignore[attr-defined]
    defs = schema.get("$defs", {})
    return _structural(schema, defs)


def build_crd() -> dict[str, Any]:
    """The complete CustomResourceDefinition for ModelDeployment."""
    spec_schema = structural_schema(ModelDeploymentSpec)
    status_schema = structural_schema(ModelDeploymentStatus)
    root = {
        "type": "object",
        "description": "A scikit-learn model served, rolled out step by step with analysis, and "
        "watched for drift by Serinus.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "serinus.dev/v1alpha1"},
            "kind": {"type": "string", "description": "ModelDeployment"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "serinus", "app.kubernetes.io/part-of": "serinus"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["serinus", "ml"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_crd() -> str:
    header = (
        f"# Generated by `serinus crd` from the pydantic models in serinus.api ({API_VERSION}).\n"
        "# Do not edit by hand: change the models and regenerate.\n"
    )
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
