"""The generated CRD in a real kube-apiserver: accepted as structural, defaults, pruning, status."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from serinus.api.crd import CRD_FILE
from serinus.api.resource import CRD_NAME, GROUP, PLURAL, VERSION

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crd_installed(kube_api: kubernetes.client.ApiClient) -> dict[str, Any]:
    body = yaml.safe_load((ROOT / CRD_FILE).read_text())
    extensions = kubernetes.client.ApiextensionsV1Api(kube_api)
    extensions.create_custom_resource_definition(body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = extensions.read_custom_resource_definition(CRD_NAME).to_dict()
        conditions = {c["type"]: c for c in (crd["status"].get("conditions") or [])}
        if conditions.get("Established", {}).get("status") == "True":
            time.sleep(1)  # discovery catches up
            return conditions
        time.sleep(0.2)
    raise AssertionError(f"CRD never became Established: {conditions}")


def test_crd_is_established_and_structural(crd_installed):
    assert crd_installed["NamesAccepted"]["status"] == "True"
    assert "NonStructuralSchema" not in crd_installed


def _objects(kube_api) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(kube_api)


def test_example_manifest_is_stored_with_defaults_and_unknown_fields_pruned(
    kube_api, crd_installed, namespace
):
    body = yaml.safe_load((ROOT / "examples/manifests/iris.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    body["spec"]["model"]["colour"] = "blue"  # not in the schema: the server prunes it
    created = _objects(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    spec = created["spec"]
    assert "colour" not in spec["model"]
    assert spec["model"]["format"] == "skops"
    assert spec["model"]["trust"] is False  # default from the models
    assert spec["rollout"]["onFailure"] == "rollback"
    assert spec["rollout"]["analysis"]["confidence"] == 0.99


def test_status_subresource_and_printer_columns(kube_api, crd_installed, namespace):
    objects = _objects(kube_api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "cols", "namespace": namespace},
        "spec": {"model": {"uri": "file:///m", "version": "1.0.0"}},
        "status": {"phase": "Stable"},  # ignored on create: status has its own subresource
    }
    created = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert "status" not in created or created["status"] in ({}, None)
    objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "cols",
        {
            "status": {
                "phase": "Progressing",
                "stable": {"revision": "a1", "version": "1.0.0", "uri": "file:///m"},
                "canary": {
                    "revision": "b2",
                    "version": "2.0.0",
                    "uri": "file:///m2",
                    "weight": 10,
                    "startedAt": "2026-11-23T12:00:00Z",
                },
            }
        },
    )
    configuration = kube_api.configuration
    response = kube_api.call_api(
        "GET",
        f"{configuration.host}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/cols",
        header_params={
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io",
            "Authorization": configuration.auth_settings()["BearerToken"]["value"],
        },
    )
    table = json.loads(response.read())
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Phase", "Stable", "Canary", "Weight", "Age"]
    row = table["rows"][0]["cells"]
    assert row[:5] == ["cols", "Progressing", "1.0.0", "2.0.0", 10]


def test_short_names_are_served(kube_api, crd_installed):
    resources = kubernetes.client.CustomObjectsApi(kube_api).get_api_resources(GROUP, VERSION)
    [resource] = [r for r in resources.resources if r.name == PLURAL]
    assert sorted(resource.short_names) == ["md", "mdep"]
    assert "status" not in resource.name
