"""Routers by provider, and the naming conventions the operator shares with them."""

from __future__ import annotations

import pytest
from traffic_fakes import FakeKubeObjects

from serinus.api.spec import TrafficSpec
from serinus.traffic import naming
from serinus.traffic.gateway_api import GatewayAPIRouter
from serinus.traffic.istio import IstioRouter
from serinus.traffic.registry import router_for
from serinus.traffic.replicas import ReplicasRouter


@pytest.mark.parametrize(
    ("traffic", "router"),
    [
        ({}, ReplicasRouter),
        ({"provider": "replicas"}, ReplicasRouter),
        ({"provider": "gateway-api", "gatewayAPI": {"httpRoute": "r"}}, GatewayAPIRouter),
        ({"provider": "istio", "istio": {}}, IstioRouter),
    ],
)
def test_router_for_provider(traffic, router):
    kube = FakeKubeObjects()
    found = router_for(TrafficSpec.model_validate(traffic), kube)
    assert type(found) is router
    assert found.kube is kube


def test_an_unknown_provider_names_the_known_ones():
    traffic = TrafficSpec.model_construct(provider="linkerd")
    with pytest.raises(ValueError, match="'linkerd': use one of gateway-api, istio, replicas"):
        router_for(traffic, FakeKubeObjects())


def test_names_and_labels():
    assert naming.deployment_name("iris", "a1b2") == "iris-a1b2"
    assert naming.service_names("iris") == ("iris", "iris-stable", "iris-canary")
    assert naming.selector_for("iris") == {"serinus.dev/name": "iris"}
    assert naming.selector_for("iris", "a1") == {
        "serinus.dev/name": "iris",
        "serinus.dev/revision": "a1",
    }
    labels = naming.pod_labels("iris", "a1")
    assert labels == {
        "app.kubernetes.io/name": "serinus-runtime",
        "app.kubernetes.io/instance": "iris",
        "serinus.dev/name": "iris",
        "serinus.dev/revision": "a1",
    }
    assert naming.selector_for("iris", "a1").items() <= labels.items()
    assert naming.service_host("iris", "models") == "iris.models.svc.cluster.local"
