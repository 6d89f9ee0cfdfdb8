"""The helpers under the routers: paths, merge patches, ownership, conflicts, 404s."""

from __future__ import annotations

import pytest
from traffic_fakes import FakeKubeObjects, merge_patch, service

from serinus.traffic.kube_api import (
    ConflictError,
    RouteError,
    _as_update,
    _kind_not_served,
    apply_owned,
    merge_patch_replacing,
    resource_path,
    resource_plural,
    retry_on_conflict,
    set_service_selector,
)
from serinus.traffic.naming import object_labels


@pytest.mark.parametrize(
    ("kind", "plural"),
    [
        ("Service", "services"),
        ("Deployment", "deployments"),
        ("HTTPRoute", "httproutes"),
        ("VirtualService", "virtualservices"),
        ("DestinationRule", "destinationrules"),
        ("NetworkPolicy", "networkpolicies"),
        ("Ingress", "ingresses"),
        ("Endpoints", "endpoints"),
    ],
)
def test_resource_plural(kind, plural):
    assert resource_plural(kind) == plural


def test_resource_paths():
    assert resource_path("v1", "Service", "ns", "iris") == "/api/v1/namespaces/ns/services/iris"
    assert (
        resource_path("gateway.networking.k8s.io/v1", "HTTPRoute", "ns")
        == "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes"
    )


def test_merge_patch_replacing_deletes_keys_the_new_map_lacks():
    old = {"serinus.dev/name": "iris", "serinus.dev/revision": "a1"}
    new = {"serinus.dev/name": "iris"}
    assert merge_patch(old, merge_patch_replacing(old, new)) == new
    assert merge_patch_replacing(None, new) == new


def test_set_service_selector_writes_only_a_change():
    kube = FakeKubeObjects()
    kube.put(service("iris", {"serinus.dev/name": "iris", "serinus.dev/revision": "a1"}))
    set_service_selector(kube, "default", "iris", {"serinus.dev/name": "iris"})
    assert kube.find("Service", "iris")["spec"]["selector"] == {"serinus.dev/name": "iris"}
    set_service_selector(kube, "default", "iris", {"serinus.dev/name": "iris"})
    assert len(kube.writes) == 1
    with pytest.raises(RouteError, match="Service default/other not found"):
        set_service_selector(kube, "default", "other", {})


def owned(spec: dict) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "iris", "namespace": "default", "labels": object_labels("iris")},
        "spec": spec,
    }


def test_apply_owned_creates_updates_and_skips_no_op_writes():
    kube = FakeKubeObjects()
    apply_owned(kube, owned({"host": "a", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}))
    apply_owned(kube, owned({"host": "b"}))
    assert kube.find("DestinationRule", "iris")["spec"] == {"host": "b"}
    apply_owned(kube, owned({"host": "b"}))
    assert [w.verb for w in kube.writes] == ["create", "patch"]


def test_retry_on_conflict_reads_again_then_gives_up():
    calls = []

    def write() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConflictError("changed")
        return "done"

    assert retry_on_conflict(write) == "done"

    def always() -> None:
        raise ConflictError("changed")

    with pytest.raises(ConflictError):
        retry_on_conflict(always)


@pytest.mark.parametrize(
    ("body", "not_served"),
    [
        ("404 page not found", True),  # unknown API group
        ({"message": "the server could not find the requested resource", "details": {}}, True),
        ({"message": 'httproutes "x" not found', "details": {"name": "x"}}, False),
        ({"message": "The object is not found", "reason": "Object Not Found"}, False),  # kmock
    ],
)
def test_a_404_for_an_unserved_kind_is_told_from_a_missing_object(body, not_served):
    assert _kind_not_served(body) is not_served


def test_create_of_an_existing_object_patches_what_create_would_have_set():
    body = owned({"host": "a"})
    body["metadata"]["ownerReferences"] = [{"uid": "u"}]
    body["status"] = {"ignored": True}
    assert _as_update(body) == {
        "metadata": {"labels": object_labels("iris"), "ownerReferences": [{"uid": "u"}]},
        "spec": {"host": "a"},
    }
