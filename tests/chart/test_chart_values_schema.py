"""values.yaml and values.schema.json: documented, in step, and strict about bad values."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import pytest
import yaml
from chart_helpers import CHART_DIR, chart, render

from serinus.api.status import RolloutResult

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
FREE_FORM = {"resources", "podSecurityContext", "securityContext"}
"""Kubernetes objects passed through as they are (their own schema checks them when rendered)."""


def nested(path: str, value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} from "a.b"."""
    for key in reversed(path.split(".")):
        value = {key: value}
    return value


ALERTS = "monitoring.prometheusRule.alerts"
BAD_VALUES = [
    ("replicaCount", 0, "minimum: got 0, want 1"),
    ("image.pullPolicy", "Sometimes", "must be one of 'Always', 'IfNotPresent', 'Never'"),
    ("image.repository", "", "minLength"),
    ("watchNamespaces", ["ml", "ml"], "are equal"),
    ("operator.tickSeconds", 0, "minimum: got 0"),
    ("operator.tickSeconds", "5s", "want number"),
    ("operator.healthPort", 70000, "maximum"),
    ("metrics.enabled", "yes", "want boolean"),
    ("prometheus.address", "prometheus:9090", "does not match pattern"),
    ("monitoring.serviceMonitor.interval", "30 sec", "does not match pattern"),
    ("nodeSelector.pool", 1, "want string"),
    (f"{ALERTS}.runtimeErrorRate.threshold", 5, "maximum: got 5, want 1"),
    (f"{ALERTS}.inputDrift.severity", "page", "must be one of"),
]


@pytest.mark.parametrize(("path", "value", "problem"), BAD_VALUES)
def test_bad_values_are_refused_naming_the_field(path: str, value: Any, problem: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(nested(path, value))
    message = str(refused.value)
    assert f"at '/{path.replace('.', '/')}'" in message, message  # a JSON pointer
    assert problem in message, message


@pytest.mark.parametrize(
    ("values", "pointer", "problem"),
    [
        ({"replicas": 2}, "", "additional properties 'replicas' not allowed"),
        (nested("monitoring.podMonitor.enable", True), "/monitoring/podMonitor", "'enable'"),
        ({"watchNamespaces": ["ML_Team"]}, "/watchNamespaces/0", "does not match pattern"),
        (
            nested(f"{ALERTS}.rolloutRolledBack.results", ["Oops"]),
            f"/{ALERTS.replace('.', '/')}/rolloutRolledBack/results/0",
            "must be one of 'RolledBack'",
        ),
    ],
)
def test_misspelt_keys_and_list_items_are_refused(
    values: dict[str, Any], pointer: str, problem: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(values)
    message = str(refused.value)
    assert f"at '{pointer}'" in message, message  # '' is the top level
    assert problem in message, message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"monitoring": {"serviceMonitor": {"enabled": True}}, "metrics": {"enabled": False}},
            "monitoring.serviceMonitor.enabled needs metrics.enabled",
        ),
        ({"metrics": {"port": 8080}}, "metrics.port and operator.healthPort are both 8080"),
        (
            {"serviceAccount": {"create": False}},
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
    ],
)
def test_contradicting_values_fail_with_a_sentence(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        render(values)


def test_defaults_pass_the_schema() -> None:
    chart().validate_schema(None)
    chart().validate_schema(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))


def _schema_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        keys.add(path)
        if name not in FREE_FORM and sub.get("type") == "object" and "properties" in sub:
            keys |= _schema_keys(sub, f"{path}.")
    return keys


def _value_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in node.items():
        path = f"{prefix}{name}"
        keys.add(path)
        if name not in FREE_FORM and isinstance(value, dict) and value:
            keys |= _value_keys(value, f"{path}.")
    return keys


def test_schema_and_values_describe_the_same_keys() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert _schema_keys(SCHEMA) - {"global"} == _value_keys(values)


def test_every_schema_property_has_a_description() -> None:
    def walk(node: dict[str, Any], path: str) -> list[str]:
        missing = []
        for name, sub in node.get("properties", {}).items():
            if not sub.get("description"):
                missing.append(f"{path}{name}")
            missing += walk(sub, f"{path}{name}.")
        return missing

    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert walk(SCHEMA, "") == []


def test_every_value_has_a_comment() -> None:
    """Each key in values.yaml sits right under a comment at its own indentation (keys inside
    the Kubernetes objects passed through, e.g. resources.requests, excepted)."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    uncommented = []
    free_form_indent: int | None = None
    for index, line in enumerate(lines):
        key = re.match(r"^( *)([A-Za-z][\w-]*):", line)
        if not key:
            continue
        indent = len(key.group(1))
        if free_form_indent is not None and indent > free_form_indent:
            continue
        free_form_indent = indent if key.group(2) in FREE_FORM else None
        above = lines[index - 1] if index else ""
        if not re.match(rf"^ {{{indent}}}# ", above):
            uncommented.append(f"{index + 1}: {line.strip()}")
    assert uncommented == []


def test_rollout_results_are_the_operators() -> None:
    alert = SCHEMA["properties"]["monitoring"]["properties"]["prometheusRule"]["properties"]
    results = alert["alerts"]["properties"]["rolloutRolledBack"]["properties"]["results"]
    assert sorted(results["items"]["enum"]) == sorted(r.value for r in RolloutResult)
