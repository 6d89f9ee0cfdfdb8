"""Objects the operator writes: valid against the Kubernetes 1.30 schemas, secure by default."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import kubernetes_validate
import pytest

from serinus.api.spec import ModelDeploymentSpec
from serinus.core.actions import EmitEvent, StartRetrain
from serinus.kube import builders
from serinus.traffic import naming

SPEC = ModelDeploymentSpec.model_validate(
    {
        "model": {
            "uri": "s3://models/iris/1.1.0/",
            "version": "1.1.0",
            "format": "skops",
            "sha256": "a" * 64,
            "trustedTypes": ["numpy.float64"],
        },
        "runtime": {
            "replicas": 3,
            "env": [
                {"name": "AWS_REGION", "value": "eu-west-1"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
            "serviceAccountName": "model-reader",
        },
        "validation": {"smoke": [{"inputs": [[5.1, 3.5, 1.4, 0.2]], "expect": [0]}]},
    }
)


def valid(obj: dict) -> None:
    kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_runtime_deployment_is_valid_and_restricted():
    deployment = builders.build_deployment(SPEC, "iris", "ml", "uid-1", "abc123", "canary", 1)
    valid(deployment)
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    env = {e["name"]: e for e in container["env"]}
    assert env["SERINUS_MODEL_SHA256"]["value"] == "a" * 64
    assert env["SERINUS_MODEL_TRUSTED_TYPES"]["value"] == "numpy.float64"
    assert env["SERINUS_VARIANT"]["value"] == "canary"
    assert env["TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "s"
    assert deployment["spec"]["selector"]["matchLabels"] == naming.selector_for("iris", "abc123")
    assert pod["serviceAccountName"] == "model-reader"
    [owner] = deployment["metadata"]["ownerReferences"]
    assert owner["controller"] is True and owner["uid"] == "uid-1"


def test_services_are_valid():
    for service in naming.service_names("iris"):
        valid(builders.build_service(service, "iris", "ml", "uid-1", naming.selector_for("iris")))


def test_validation_job_is_valid_and_carries_the_plan():
    job = builders.build_validation_job(
        SPEC, "iris", "ml", "uid-1", "abc123", "serinus-operator:1", "http://iris-stable.ml.svc:80"
    )
    valid(job)
    [container] = job["spec"]["template"]["spec"]["containers"]
    plan = json.loads(container["command"][3])
    assert plan["url"] == "http://iris-canary.ml.svc:80"
    assert plan["validation"]["smoke"][0]["expect"] == [0]
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("kind", ["Normal", "Warning"])
def test_events_are_valid_and_uniquely_named(kind):
    involved = {
        "apiVersion": "serinus.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "iris",
        "namespace": "ml",
        "uid": "uid-1",
    }
    event = EmitEvent(type=kind, reason="Progressing", message="x" * 5000)
    first = builders.build_event(involved, event, datetime(2026, 11, 23, tzinfo=UTC))
    second = builders.build_event(involved, event, datetime(2026, 11, 23, tzinfo=UTC))
    valid(first)
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert len(first["message"]) == 1024


def test_retrain_job_is_the_template_plus_what_the_job_needs_to_know():
    template = {
        "metadata": {"labels": {"team": "ml"}, "annotations": {"a": "b"}},
        "spec": {
            "activeDeadlineSeconds": 3600,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "train",
                            "image": "registry.example/train:1",
                            "command": ["python", "/app/retrain.py"],
                            "env": [{"name": "SERINUS_MODEL_URI", "value": "stale"}],
                            "terminationMessagePath": "/tmp/result",
                        }
                    ]
                }
            },
        },
    }
    spec = ModelDeploymentSpec.model_validate(
        {"model": {"uri": "s3://m/iris-v1", "version": "1"}, "retrain": {"jobTemplate": template}}
    )
    action = StartRetrain(
        job="retrain-20261123-120000", trigger="input-drift", reason="input-drift: x drifted",
        model_uri="s3://m/iris-v1", model_sha256=None, model_version="1",
        window_start=datetime(2026, 11, 23, 11, 55, tzinfo=UTC),
        window_end=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
    )  # fmt: skip
    job = builders.build_retrain_job(spec, "iris", "ml", "uid-1", action)
    valid(job)
    assert job["metadata"]["name"] == "iris-retrain-20261123-120000"
    assert job["metadata"]["labels"]["team"] == "ml"
    assert job["metadata"]["labels"]["serinus.dev/role"] == "retrain"
    assert job["metadata"]["annotations"] == {"a": "b"}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 3600
    pod = job["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"]["serinus.dev/role"] == "retrain"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["SERINUS_MODEL_URI"] == "s3://m/iris-v1"  # ours, not the template's stale one
    assert env["SERINUS_MODEL_SHA256"] == ""
    assert env["SERINUS_WINDOW_START"] == "2026-11-23T11:55:00Z"
    assert env["SERINUS_RESULT_FILE"] == "/tmp/result"  # where this container's message goes
    assert template["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "SERINUS_MODEL_URI", "value": "stale"}
    ]  # the spec's template itself is not changed


def test_retrain_job_names_fit_a_label_value():
    name = builders.retrain_job_name("m" * 80, "retrain-20261123-120000")
    assert len(name) <= 63 and name.endswith("-retrain-20261123-120000")
