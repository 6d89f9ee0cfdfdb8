"""DynamicKubeObjects and the traffic routers against a real kube-apiserver.

The Gateway API and Istio CRDs are the published ones from ../shared/schemas, so the API server
checks every route the routers write against the real structural schemas (CEL rules aside:
the v1.20 server drops them) and prunes whatever they do not declare.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from serinus.api.spec import TrafficSpec
from serinus.traffic.gateway_api import GatewayAPIRouter
from serinus.traffic.istio import IstioRouter
from serinus.traffic.kube_api import (
    ConflictError,
    DynamicKubeObjects,
    KubeError,
    NotServedError,
    RouteError,
)
from serinus.traffic.naming import (
    CONTAINER_PORT,
    CONTAINER_PORT_NAME,
    SERVICE_PORT,
    deployment_name,
    pod_labels,
    selector_for,
    service_names,
)
from serinus.traffic.replicas import ReplicasRouter, main_service_selector
from serinus.traffic.router import RouteContext

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "schemas"
CRD_FILES = (
    "gateway.networking.k8s.io_httproutes.yaml",
    "networking.istio.io_virtualservices.yaml",
    "networking.istio.io_destinationrules.yaml",
)


def without_empty_defaults(node: Any) -> Any:
    """The v1.20 API server reads `default: ""` as null and refuses the CRD; Gateway API's
    schemas default `group` to "" (our routers never rely on that default)."""
    if isinstance(node, dict):
        return {
            key: without_empty_defaults(value)
            for key, value in node.items()
            if not (key == "default" and value == "")
        }
    if isinstance(node, list):
        return [without_empty_defaults(item) for item in node]
    return node


def install_crd(kube_api: kubernetes.client.ApiClient, body: dict[str, Any]) -> None:
    request = kube_api.param_serialize(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = kube_api.call_api(*request)
    if response.status not in (201, 409):  # 409: installed by another module of the session
        raise AssertionError(f"CRD {body['metadata']['name']}: {response.read()[:500]!r}")


@pytest.fixture(scope="module")
def route_crds(kube_api: kubernetes.client.ApiClient) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(kube_api)
    names = []
    for file in CRD_FILES:
        path = SCHEMAS / file
        if not path.is_file():
            pytest.fail(f"{path} is missing: these tests install the published CRDs from there")
        body = yaml.safe_load(path.read_text())
        names.append(body["metadata"]["name"])
        install_crd(kube_api, without_empty_defaults(body))
    deadline = time.monotonic() + 30
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            crd = extensions.read_custom_resource_definition(name).to_dict()
            conditions = {c["type"]: c["status"] for c in crd["status"].get("conditions") or []}
            if conditions.get("Established") == "True":
                pending.discard(name)
        time.sleep(0.2)
    assert not pending, f"CRDs never became Established: {pending}"
    time.sleep(1)  # discovery catches up


@pytest.fixture
def kube(kube_api: kubernetes.client.ApiClient) -> DynamicKubeObjects:
    return DynamicKubeObjects(kube_api)


def deployment(name: str, revision: str, replicas: int, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name(name, revision), "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_for(name, revision)},
            "template": {
                "metadata": {"labels": pod_labels(name, revision)},
                "spec": {
                    "containers": [
                        {
                            "name": "runtime",
                            "image": "ghcr.io/serinus-dev/serinus-runtime:0.1.0",
                            "ports": [
                                {"name": CONTAINER_PORT_NAME, "containerPort": CONTAINER_PORT}
                            ],
                        }
                    ]
                },
            },
        },
    }


def service(name: str, selector: dict[str, str], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": CONTAINER_PORT_NAME}],
        },
    }


def context(namespace: str, traffic: dict, stable: str | None = "a1") -> RouteContext:
    return RouteContext(
        name="iris",
        namespace=namespace,
        stable=stable,
        canary="b2",
        replicas=4,
        traffic=TrafficSpec.model_validate(traffic),
    )


def seed(kube: DynamicKubeObjects, route: RouteContext) -> None:
    """What the operator creates before traffic moves."""
    ns = route.namespace
    kube.create(deployment("iris", "a1", 4, ns))
    kube.create(deployment("iris", "b2", 1, ns))
    main, stable, canary = service_names("iris")
    kube.create(service(main, main_service_selector("iris", "a1", "b2", 0), ns))
    kube.create(service(stable, selector_for("iris", "a1"), ns))
    kube.create(service(canary, selector_for("iris", "b2"), ns))


# --- DynamicKubeObjects ----------------------------------------------------------------------


def test_get_create_patch_scale(kube, namespace):
    assert kube.get("v1", "Service", namespace, "iris") is None
    created = kube.create(service("iris", selector_for("iris", "a1"), namespace))
    assert created["metadata"]["uid"]

    again = service("iris", selector_for("iris", "a1"), namespace)
    again["metadata"]["labels"] = {"serinus.dev/name": "iris"}
    assert kube.create(again)["metadata"]["labels"] == {"serinus.dev/name": "iris"}  # 409 → patch

    patched = kube.patch(
        "v1", "Service", namespace, "iris", {"spec": {"selector": {"serinus.dev/revision": None}}}
    )
    assert patched["spec"]["selector"] == selector_for("iris")  # None deletes: merge patch

    kube.create(deployment("iris", "a1", 1, namespace))
    kube.scale(namespace, "iris-a1", 3)
    assert kube.get("apps/v1", "Deployment", namespace, "iris-a1")["spec"]["replicas"] == 3


def test_a_stale_resource_version_is_a_conflict(kube, namespace):
    created = kube.create(service("iris", selector_for("iris"), namespace))
    stale = created["metadata"]["resourceVersion"]
    kube.patch("v1", "Service", namespace, "iris", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ConflictError):
        kube.patch("v1", "Service", namespace, "iris", {"metadata": {"resourceVersion": stale}})


def test_missing_objects_and_unserved_kinds_are_told_apart(kube, namespace):
    with pytest.raises(KubeError, match="does not exist"):
        kube.patch("v1", "Service", namespace, "nothing", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(NotServedError, match="install its CustomResourceDefinition"):
        kube.get("example.invalid/v1", "Widget", namespace, "w")
    with pytest.raises(NotServedError):
        kube.get("apps/v1", "Widget", namespace, "w")


# --- routers -------------------------------------------------------------------------------


def test_replicas_router(kube, namespace):
    route = context(namespace, {})
    seed(kube, route)
    router = ReplicasRouter(kube)
    assert router.set_weight(route, 50) == 50
    replicas = {
        revision: kube.get("apps/v1", "Deployment", namespace, f"iris-{revision}")["spec"][
            "replicas"
        ]
        for revision in ("a1", "b2")
    }
    assert replicas == {"a1": 2, "b2": 2}
    assert kube.get("v1", "Service", namespace, "iris")["spec"]["selector"] == selector_for("iris")
    router.promote(route)
    assert kube.get("v1", "Service", namespace, "iris")["spec"]["selector"] == selector_for(
        "iris", "b2"
    )
    assert router.observed_weight(route) == 100


OWNED_ROUTE = {"provider": "gateway-api", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


def test_gateway_api_router_on_an_owned_route(kube, namespace, route_crds):
    route = context(namespace, OWNED_ROUTE)
    seed(kube, route)
    router = GatewayAPIRouter(kube)
    assert router.set_weight(route, 10) == 10
    stored = kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", namespace, "iris")
    refs = stored["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["port"], r["weight"]) for r in refs] == [
        ("iris-stable", 80, 90),
        ("iris-canary", 80, 10),
    ]
    assert router.observed_weight(route) == 10
    router.promote(route)
    assert router.observed_weight(route) == 100


def test_gateway_api_router_on_a_users_route(kube, namespace, route_crds):
    route = context(namespace, {"provider": "gateway-api", "gatewayAPI": {"httpRoute": "public"}})
    seed(kube, route)
    router = GatewayAPIRouter(kube)
    with pytest.raises(RouteError, match=f"HTTPRoute {namespace}/public not found"):
        router.set_weight(route, 10)
    match = [{"path": {"type": "PathPrefix", "value": "/v2/models/iris"}}]
    kube.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "public", "namespace": namespace},
            "spec": {
                "parentRefs": [{"name": "edge"}],
                "rules": [{"matches": match, "backendRefs": [{"name": "iris", "port": 80}]}],
            },
        }
    )
    router.set_weight(route, 33)
    rule = kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", namespace, "public")["spec"][
        "rules"
    ][0]
    assert rule["matches"] == match
    assert [r["weight"] for r in rule["backendRefs"]] == [67, 33]


def test_istio_router(kube, namespace, route_crds):
    route = context(namespace, {"provider": "istio", "istio": {}})
    seed(kube, route)
    router = IstioRouter(kube)
    assert router.set_weight(route, 10) == 10
    stored = kube.get("networking.istio.io/v1", "VirtualService", namespace, "iris")
    assert [d["weight"] for d in stored["spec"]["http"][0]["route"]] == [90, 10]
    rule = kube.get("networking.istio.io/v1", "DestinationRule", namespace, "iris")
    assert rule["spec"]["subsets"][1]["labels"] == selector_for("iris", "b2")
    assert router.observed_weight(route) == 10
    router.promote(route)
    assert router.observed_weight(route) == 100


def test_a_route_the_api_server_refuses_is_an_error_naming_the_field(kube, namespace, route_crds):
    traffic = {"provider": "gateway-api", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
    traffic["gatewayAPI"]["hostnames"] = ["Not_A_Host"]
    route = context(namespace, traffic)
    seed(kube, route)
    with pytest.raises(KubeError, match=r"HTTPRoute .*/iris .*hostnames"):
        GatewayAPIRouter(kube).set_weight(route, 10)
