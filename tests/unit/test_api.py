"""The ModelDeployment API: models, generated CRD, offline rules."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from serinus.api.crd import CRD_FILE, build_crd, render_crd
from serinus.api.resource import ModelDeployment
from serinus.api.rules import check_manifest
from serinus.api.spec import ModelDeploymentSpec
from serinus.api.status import ModelDeploymentStatus
from serinus.api.types import parse_duration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "manifests"


def test_committed_crd_is_the_generated_one():
    committed = (ROOT / CRD_FILE).read_text()
    assert committed == render_crd(), (
        "crds/ is stale: run `serinus crd > crds/serinus.dev_modeldeployments.yaml`"
    )


def test_crd_is_a_valid_apiextensions_v1_object():
    kubernetes_validate.validate(build_crd(), "1.30.0", strict=True)


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, node)]
    for name, child in node.get("properties", {}).items():
        nodes += _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        nodes += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        nodes += _walk(node["additionalProperties"], f"{path}{{}}")
    return nodes


def _root_schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_crd_schema_is_structural():
    for path, node in _walk(_root_schema()):
        assert not {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title"} & node.keys(), path
        typed = "type" in node
        special = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        assert typed or special, f"{path} has no type"
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path
        assert node.get("default", 0) not in (None, ""), f"{path} has a null or empty default"


def test_every_spec_and_status_field_is_described_for_kubectl_explain():
    spec = _root_schema()["properties"]["spec"]
    status = _root_schema()["properties"]["status"]
    for root, prefix in ((spec, ".spec"), (status, ".status")):
        for path, node in _walk(root, prefix):
            if path.endswith("{}") or path.endswith("[]"):
                continue
            assert node.get("description"), f"{path} has no description"


def test_crd_names_columns_and_status_subresource():
    crd = build_crd()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["md", "mdep"] and names["kind"] == "ModelDeployment"
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Phase",
        "Stable",
        "Canary",
        "Weight",
        "Age",
    ]


def _rules(node: dict[str, Any]) -> list[str]:
    return [rule["rule"] for _, n in _walk(node) for rule in n.get("x-kubernetes-validations", [])]


def test_every_cel_rule_compiles():
    rules = _rules(_root_schema())
    assert len(rules) >= 10
    environment = celpy.Environment()
    for rule in rules:
        environment.compile(rule)


def test_bounds_and_defaults_come_from_the_models():
    spec = ModelDeploymentSpec.model_validate({"model": {"uri": "file:///m"}})
    assert spec.model.format == "skops" and not spec.model.trust
    assert [s.set_weight for s in spec.rollout.steps if s.set_weight] == [10, 50]
    assert [m.name for m in spec.rollout.analysis.metrics] == [
        "error-rate",
        "latency-p99",
        "prediction-drift",
    ]
    schema = _root_schema()["properties"]["spec"]["properties"]
    assert schema["runtime"]["properties"]["replicas"]["default"] == 2
    weight = schema["rollout"]["properties"]["steps"]["items"]["properties"]["setWeight"]
    assert (weight["minimum"], weight["maximum"]) == (0, 100)


def _manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serinus.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m"},
        "spec": {"model": {"uri": "file:///m.skops"}, **spec},
    }


INVALID = [
    (
        _manifest(model={"uri": "file:///m.joblib", "format": "joblib"}),
        "spec.model",
        "set model.sha256",
    ),
    (
        _manifest(model={"uri": "f", "format": "joblib", "sha256": "a" * 64}),
        "spec.model",
        "trust: true",
    ),
    (
        _manifest(model={"uri": "f", "format": "onnx", "trustedTypes": ["x.Y"]}),
        "spec.model.trustedTypes",
        "only applies to format skops",
    ),
    (_manifest(model={"uri": "f", "sha256": "XYZ"}), "spec.model.sha256", "should match pattern"),
    (
        _manifest(rollout={"steps": [{"setWeight": 50}, {"setWeight": 20}]}),
        "spec.rollout.steps",
        "strictly increase",
    ),
    (
        _manifest(rollout={"steps": [{"setWeight": 20}, {"setWeight": 20}]}),
        "spec.rollout.steps",
        "strictly increase",
    ),
    (_manifest(rollout={"steps": [{"setWeight": 101}]}), "spec.rollout.steps[0].setWeight", "100"),
    (
        _manifest(rollout={"steps": [{"setWeight": 10, "pause": {}}]}),
        "spec.rollout.steps[0]",
        "exactly one of",
    ),
    (_manifest(rollout={"steps": [{}]}), "spec.rollout.steps[0]", "exactly one of"),
    (_manifest(rollout={"interval": "soon"}), "spec.rollout.interval", "should match pattern"),
    (
        _manifest(rollout={"analysis": {"metrics": [{"name": "queue-depth", "max": 3}]}}),
        "spec.rollout.analysis.metrics[0]",
        "needs a PromQL query",
    ),
    (
        _manifest(rollout={"analysis": {"metrics": [{"name": "error-rate"}]}}),
        "spec.rollout.analysis.metrics[0]",
        "needs a bound",
    ),
    (
        _manifest(
            rollout={
                "analysis": {"metrics": [{"name": "q", "max": 1, "query": "sum(up)"}]},
            }
        ),
        "spec.rollout.analysis",
        "need analysis.provider: prometheus",
    ),
    (_manifest(traffic={"provider": "istio"}), "spec.traffic", "needs traffic.istio"),
    (_manifest(traffic={"provider": "gateway-api"}), "spec.traffic", "needs traffic.gatewayAPI"),
    (
        _manifest(traffic={"provider": "gateway-api", "gatewayAPI": {}}),
        "spec.traffic.gatewayAPI",
        "parentRefs",
    ),
    (_manifest(runtime={"replicas": 0}), "spec.runtime.replicas", "(got 0)"),
    (_manifest(runtime={"replica": 3}), "spec.runtime.replica", "unknown field"),
    (
        _manifest(validation={"dataset": {"uri": "d.csv", "target": "y", "metric": "f1"}}),
        "spec.validation.dataset",
        "needs a bound",
    ),
    (_manifest(monitoring={"accuracy": {"metric": "f1"}}), "spec.monitoring.accuracy", "min"),
]


@pytest.mark.parametrize(("manifest", "path", "words"), INVALID)
def test_invalid_manifests_name_the_field_and_the_fix(manifest, path, words):
    problems = check_manifest(manifest)
    assert any(p.path == path and words in p.message for p in problems), problems


def test_missing_spec_metadata_and_wrong_kind_are_reported():
    problems = {str(p) for p in check_manifest({"apiVersion": "v1", "kind": "Pod"})}
    assert "apiVersion: must be serinus.dev/v1alpha1, got 'v1'" in problems
    assert "kind: must be ModelDeployment, got 'Pod'" in problems
    assert "metadata.name: required: give the ModelDeployment a name" in problems
    assert "spec: required field is missing" in problems


@pytest.mark.parametrize(
    "path", sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("invalid-"))
)
def test_example_manifests_are_valid(path):
    for document in yaml.safe_load_all(path.read_text()):
        assert check_manifest(document) == []
        ModelDeployment.from_wire(document)


def test_joblib_with_sha256_and_trust_is_accepted():
    model = {"uri": "f", "format": "joblib", "sha256": "a" * 64, "trust": True}
    assert check_manifest(_manifest(model=model)) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "1d", "-3s", "5 m"])
def test_parse_duration_rejects_with_an_example(text):
    with pytest.raises(ValueError, match=r"e\.g\. 30s or 1m30s"):
        parse_duration(text)


def _all_models(model: type[BaseModel], seen: set[type]) -> None:
    seen.add(model)
    for field in model.model_fields.values():
        for candidate in _types_in(field.annotation):
            is_model = isinstance(candidate, type) and issubclass(candidate, BaseModel)
            if is_model and candidate not in seen:
                _all_models(candidate, seen)


def _types_in(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    return [t for arg in args for t in _types_in(arg)]


def test_every_pydantic_field_has_a_description():
    models: set[type] = set()
    _all_models(ModelDeploymentSpec, models)
    _all_models(ModelDeploymentStatus, models)
    undocumented = [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undocumented == []
