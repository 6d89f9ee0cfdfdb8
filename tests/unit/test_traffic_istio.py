"""The `istio` router: DestinationRule subsets, owned or user VirtualService, promotion."""

from __future__ import annotations

import copy

import pytest
from traffic_fakes import OWNER, FakeKubeObjects, assert_all_valid, assert_valid, context, seed

from serinus.traffic.istio import (
    IstioRouter,
    build_destination_rule,
    build_virtual_service,
)
from serinus.traffic.kube_api import RouteError
from serinus.traffic.naming import selector_for

WEIGHTS = (0, 1, 10, 33, 50, 99, 100)
HOST = "iris.default.svc.cluster.local"
OWNED = {"provider": "istio", "istio": {}}
EXPOSED = {
    "provider": "istio",
    "istio": {"hosts": ["iris.example.com"], "gateways": ["istio-system/public", "mesh"]},
}
USERS = {"provider": "istio", "istio": {"virtualService": "public"}}

USER_VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "public", "namespace": "default", "labels": {"team": "ml"}},
    "spec": {
        "hosts": ["api.example.com"],
        "gateways": ["istio-system/public"],
        "http": [
            {
                "name": "docs",
                "match": [{"uri": {"prefix": "/docs"}}],
                "route": [{"destination": {"host": "docs.default.svc.cluster.local"}}],
            },
            {
                "name": "model",
                "match": [{"uri": {"prefix": "/v2/models/iris"}}],
                "route": [
                    {
                        "destination": {"host": "iris"},
                        "headers": {"response": {"set": {"x-served-by": "serinus"}}},
                    }
                ],
                "timeout": "10s",
                "retries": {"attempts": 2, "perTryTimeout": "2s"},
            },
        ],
    },
}


def world(traffic: dict, user_vs: dict | None = None):
    route = context(traffic=traffic)
    kube = FakeKubeObjects()
    seed(kube, route)
    if user_vs is not None:
        kube.put(user_vs)
    return route, kube, IstioRouter(kube)


def subset_weights(virtual_service: dict, index: int = 0) -> dict[str, int]:
    return {
        d["destination"]["subset"]: d["weight"]
        for d in virtual_service["spec"]["http"][index]["route"]
    }


def subsets(destination_rule: dict) -> dict[str, dict[str, str]]:
    return {s["name"]: s["labels"] for s in destination_rule["spec"]["subsets"]}


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("traffic", [OWNED, EXPOSED], ids=["mesh", "gateway"])
def test_owned_virtual_service_builder(weight, traffic):
    built = build_virtual_service(context(traffic=traffic), weight)
    assert_valid(built)
    assert built["metadata"]["ownerReferences"] == [OWNER]
    assert built["spec"]["http"] == [
        {
            "name": "serinus",
            "route": [
                {
                    "destination": {"host": HOST, "subset": "stable", "port": {"number": 80}},
                    "weight": 100 - weight,
                },
                {
                    "destination": {"host": HOST, "subset": "canary", "port": {"number": 80}},
                    "weight": weight,
                },
            ],
        }
    ]
    if traffic is EXPOSED:
        assert built["spec"]["hosts"] == ["iris.example.com"]
        assert built["spec"]["gateways"] == ["istio-system/public", "mesh"]
    else:
        assert built["spec"]["hosts"] == [HOST]
        assert "gateways" not in built["spec"]


def test_destination_rule_builder():
    built = build_destination_rule(context(traffic=OWNED), "a1", "b2")
    assert_valid(built)
    assert built["spec"]["host"] == HOST
    assert subsets(built) == {
        "stable": selector_for("iris", "a1"),
        "canary": selector_for("iris", "b2"),
    }


@pytest.mark.parametrize("weight", WEIGHTS)
def test_set_weight_on_owned_objects(weight):
    route, kube, router = world(OWNED)
    assert router.set_weight(route, weight) == weight
    assert subset_weights(kube.find("VirtualService", "iris")) == {
        "stable": 100 - weight,
        "canary": weight,
    }
    assert subsets(kube.find("DestinationRule", "iris"))["canary"] == selector_for("iris", "b2")
    assert router.observed_weight(route) == weight
    assert_all_valid(kube)


def test_subsets_are_written_before_weights():
    route, kube, router = world(OWNED)
    router.set_weight(route, 10)
    assert [w.kind for w in kube.writes] == ["DestinationRule", "VirtualService"]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_only_the_model_route_of_a_users_virtual_service_changes(weight):
    route, kube, router = world(USERS, copy.deepcopy(USER_VS))
    assert router.set_weight(route, weight) == weight
    stored = kube.find("VirtualService", "public")
    docs, model = stored["spec"]["http"]
    original_docs, original_model = USER_VS["spec"]["http"]
    assert docs == original_docs
    assert {k: v for k, v in model.items() if k != "route"} == {
        k: v for k, v in original_model.items() if k != "route"
    }
    headers = original_model["route"][0]["headers"]
    assert model["route"] == [
        {
            "destination": {"host": HOST, "subset": subset, "port": {"number": 80}},
            "weight": share,
            "headers": headers,
        }
        for subset, share in (("stable", 100 - weight), ("canary", weight))
    ]
    assert stored["spec"]["hosts"] == USER_VS["spec"]["hosts"]
    assert stored["metadata"]["labels"] == {"team": "ml"}
    assert kube.find("DestinationRule", "iris")["metadata"]["ownerReferences"] == [OWNER]
    assert router.observed_weight(route) == weight
    assert_all_valid(kube)


def test_a_missing_users_virtual_service_is_an_error_saying_what_to_do():
    route, _kube, router = world(USERS)
    with pytest.raises(RouteError) as error:
        router.set_weight(route, 10)
    assert str(error.value) == (
        "VirtualService default/public not found: create it or remove traffic.istio.virtualService"
    )
    assert router.observed_weight(route) is None


def test_a_route_mixing_other_hosts_is_refused():
    user_vs = copy.deepcopy(USER_VS)
    user_vs["spec"]["http"][1]["route"].append({"destination": {"host": "legacy"}, "weight": 5})
    route, kube, router = world(USERS, user_vs)
    with pytest.raises(RouteError, match="http route 1 sends traffic to legacy as well as to"):
        router.set_weight(route, 10)
    assert kube.find("VirtualService", "public")["spec"] == user_vs["spec"]


def test_a_virtual_service_without_a_route_to_the_model_is_refused():
    user_vs = copy.deepcopy(USER_VS)
    del user_vs["spec"]["http"][1]
    route, _kube, router = world(USERS, user_vs)
    with pytest.raises(RouteError, match=f"no http route whose destinations point at {HOST}"):
        router.set_weight(route, 10)


def test_a_destination_rule_of_the_same_name_not_made_by_serinus_is_left_alone():
    route, kube, router = world(OWNED)
    theirs = build_destination_rule(route, "x", "y")
    theirs["metadata"]["labels"] = {}
    kube.put(theirs)
    with pytest.raises(RouteError, match="DestinationRule default/iris exists and was not created"):
        router.set_weight(route, 10)


def test_a_concurrent_edit_of_the_users_virtual_service_is_kept():
    route, kube, router = world(USERS, copy.deepcopy(USER_VS))
    kube.before_next_patch = lambda: kube.patch(
        "networking.istio.io/v1",
        "VirtualService",
        "default",
        "public",
        {"metadata": {"annotations": {"edited": "meanwhile"}}},
    )
    router.set_weight(route, 10)
    stored = kube.find("VirtualService", "public")
    assert stored["metadata"]["annotations"] == {"edited": "meanwhile"}
    assert subset_weights(stored, 1) == {"stable": 90, "canary": 10}


@pytest.mark.parametrize("traffic", [OWNED, USERS], ids=["owned", "users"])
def test_promotion_moves_the_stable_subset_then_the_weights(traffic):
    route, kube, router = world(traffic, copy.deepcopy(USER_VS))
    router.set_weight(route, 50)
    kube.writes.clear()

    router.promote(route)
    name, index = ("iris", 0) if traffic is OWNED else ("public", 1)
    assert [w.kind for w in kube.writes] == ["VirtualService", "DestinationRule", "VirtualService"]
    rule = kube.find("DestinationRule", "iris")
    assert subsets(rule) == {
        "stable": selector_for("iris", "b2"),
        "canary": selector_for("iris", "b2"),
    }
    assert subset_weights(kube.find("VirtualService", name), index) == {"stable": 100, "canary": 0}
    assert router.observed_weight(route) == 100
    assert router.observed_weight(context(stable="b2", canary=None, traffic=traffic)) == 0
    assert_all_valid(kube)


def test_the_next_rollout_points_the_subsets_at_its_revisions():
    route, kube, router = world(OWNED)
    router.promote(route)
    following = context(stable="b2", canary="c3", traffic=OWNED)
    router.set_weight(following, 10)
    assert subsets(kube.find("DestinationRule", "iris")) == {
        "stable": selector_for("iris", "b2"),
        "canary": selector_for("iris", "c3"),
    }
    assert router.observed_weight(following) == 10


def test_a_first_version_is_promoted_onto_new_objects():
    route = context(stable=None, traffic={"provider": "istio"})
    kube = FakeKubeObjects()
    seed(kube, route)
    IstioRouter(kube).promote(route)
    assert subset_weights(kube.find("VirtualService", "iris")) == {"stable": 100, "canary": 0}
    assert subsets(kube.find("DestinationRule", "iris"))["stable"] == selector_for("iris", "b2")
    assert_all_valid(kube)


def test_observed_weight_cannot_be_told_before_the_route_has_subsets():
    route, kube, router = world(USERS, copy.deepcopy(USER_VS))
    kube.put(build_destination_rule(route, "a1", "b2"))
    assert router.observed_weight(route) is None
