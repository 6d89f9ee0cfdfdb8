"""The `gateway-api` router: an owned HTTPRoute, a user's HTTPRoute, promotion, errors."""

from __future__ import annotations

import copy

import pytest
from traffic_fakes import OWNER, FakeKubeObjects, assert_all_valid, assert_valid, context, seed

from serinus.traffic.gateway_api import GatewayAPIRouter, build_http_route
from serinus.traffic.kube_api import RouteError
from serinus.traffic.naming import selector_for

WEIGHTS = (0, 1, 10, 33, 50, 99, 100)
OWNED = {
    "provider": "gateway-api",
    "gatewayAPI": {
        "parentRefs": [{"name": "inference", "namespace": "gateway-system", "sectionName": "http"}],
        "hostnames": ["iris.models.example.com"],
    },
}
USERS = {"provider": "gateway-api", "gatewayAPI": {"httpRoute": "public"}}

USER_ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "public", "namespace": "default", "labels": {"team": "ml"}},
    "spec": {
        "parentRefs": [{"name": "edge", "namespace": "gateway-system"}],
        "hostnames": ["api.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/v2/models/iris"}}],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "x-model", "value": "iris"}]},
                    }
                ],
                "backendRefs": [
                    {
                        "name": "iris",
                        "port": 80,
                        "filters": [
                            {
                                "type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"add": [{"name": "x-by", "value": "s"}]},
                            }
                        ],
                    }
                ],
                "timeouts": {"request": "10s"},
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/docs"}}],
                "backendRefs": [{"name": "docs", "port": 8080}],
            },
        ],
    },
}


def world(traffic: dict, user_route: dict | None = None):
    route = context(traffic=traffic)
    kube = FakeKubeObjects()
    seed(kube, route)
    if user_route is not None:
        kube.put(user_route)
    return route, kube, GatewayAPIRouter(kube)


def weights(http_route: dict, rule: int = 0) -> dict[str, int]:
    return {ref["name"]: ref["weight"] for ref in http_route["spec"]["rules"][rule]["backendRefs"]}


@pytest.mark.parametrize("weight", WEIGHTS)
def test_owned_route_builder(weight):
    built = build_http_route(context(traffic=OWNED), weight)
    assert_valid(built)
    assert built["metadata"]["ownerReferences"] == [OWNER]
    assert built["spec"]["parentRefs"] == [
        {"name": "inference", "namespace": "gateway-system", "sectionName": "http"}
    ]
    assert built["spec"]["hostnames"] == ["iris.models.example.com"]
    assert built["spec"]["rules"] == [
        {
            "backendRefs": [
                {"name": "iris-stable", "port": 80, "weight": 100 - weight},
                {"name": "iris-canary", "port": 80, "weight": weight},
            ]
        }
    ]


def test_owned_route_without_hostnames_or_owner():
    traffic = {"provider": "gateway-api", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
    route = context(traffic=traffic).model_copy(update={"owner": None})
    built = build_http_route(route, 10)
    assert_valid(built)
    assert "hostnames" not in built["spec"] and "ownerReferences" not in built["metadata"]
    assert built["spec"]["parentRefs"] == [{"name": "gw"}]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_set_weight_on_an_owned_route(weight):
    route, kube, router = world(OWNED)
    assert router.set_weight(route, weight) == weight
    assert weights(kube.find("HTTPRoute", "iris")) == {
        "iris-stable": 100 - weight,
        "iris-canary": weight,
    }
    assert router.observed_weight(route) == weight
    assert_all_valid(kube)


def test_set_weight_points_the_services_at_the_revisions():
    route, kube, router = world(OWNED)
    kube.patch("v1", "Service", "default", "iris-canary", {"spec": {"selector": {"x": "y"}}})
    router.set_weight(route, 10)
    assert kube.find("Service", "iris-stable")["spec"]["selector"] == selector_for("iris", "a1")
    assert kube.find("Service", "iris-canary")["spec"]["selector"] == selector_for("iris", "b2")


def test_an_owned_route_follows_spec_changes():
    route, kube, router = world(OWNED)
    router.set_weight(route, 10)
    router.set_weight(
        context(traffic={**OWNED, "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}), 20
    )
    stored = kube.find("HTTPRoute", "iris")
    assert "hostnames" not in stored["spec"]
    assert stored["spec"]["parentRefs"] == [{"name": "gw"}]
    assert_all_valid(kube)


def test_a_repeated_weight_writes_nothing():
    route, kube, router = world(OWNED)
    router.set_weight(route, 10)
    count = len(kube.writes)
    router.set_weight(route, 10)
    assert len(kube.writes) == count


@pytest.mark.parametrize("weight", WEIGHTS)
def test_only_the_backends_of_a_users_route_change(weight):
    route, kube, router = world(USERS, copy.deepcopy(USER_ROUTE))
    assert router.set_weight(route, weight) == weight
    stored = kube.find("HTTPRoute", "public")
    ours, docs = stored["spec"]["rules"]
    original_ours, original_docs = USER_ROUTE["spec"]["rules"]
    assert docs == original_docs
    assert {k: v for k, v in ours.items() if k != "backendRefs"} == {
        k: v for k, v in original_ours.items() if k != "backendRefs"
    }
    backend_filters = original_ours["backendRefs"][0]["filters"]
    assert ours["backendRefs"] == [
        {"name": "iris-stable", "port": 80, "weight": 100 - weight, "filters": backend_filters},
        {"name": "iris-canary", "port": 80, "weight": weight, "filters": backend_filters},
    ]
    assert stored["spec"]["parentRefs"] == USER_ROUTE["spec"]["parentRefs"]
    assert stored["spec"]["hostnames"] == USER_ROUTE["spec"]["hostnames"]
    assert stored["metadata"]["labels"] == {"team": "ml"}
    assert "ownerReferences" not in stored["metadata"]
    assert router.observed_weight(route) == weight
    assert_all_valid(kube)


def test_a_missing_users_route_is_an_error_saying_what_to_do():
    route, _kube, router = world(USERS)
    with pytest.raises(RouteError) as error:
        router.set_weight(route, 10)
    assert str(error.value) == (
        "HTTPRoute default/public not found: create it or remove traffic.gatewayAPI.httpRoute"
    )
    assert router.observed_weight(route) is None


def test_a_rule_mixing_other_backends_is_refused():
    user_route = copy.deepcopy(USER_ROUTE)
    user_route["spec"]["rules"][0]["backendRefs"].append({"name": "legacy", "port": 80})
    route, kube, router = world(USERS, user_route)
    with pytest.raises(
        RouteError, match="rule 0 sends traffic to legacy as well as to Service iris"
    ):
        router.set_weight(route, 10)
    assert kube.find("HTTPRoute", "public")["spec"] == user_route["spec"]


def test_a_route_without_a_rule_for_the_model_is_refused():
    user_route = copy.deepcopy(USER_ROUTE)
    del user_route["spec"]["rules"][0]
    route, _kube, router = world(USERS, user_route)
    with pytest.raises(RouteError, match="no rule with a backendRef to Service iris"):
        router.set_weight(route, 10)


def test_a_concurrent_edit_of_the_users_route_is_kept():
    route, kube, router = world(USERS, copy.deepcopy(USER_ROUTE))
    kube.before_next_patch = lambda: kube.patch(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        "default",
        "public",
        {"metadata": {"annotations": {"edited": "meanwhile"}}},
    )
    router.set_weight(route, 10)
    stored = kube.find("HTTPRoute", "public")
    assert stored["metadata"]["annotations"] == {"edited": "meanwhile"}
    assert weights(stored) == {"iris-stable": 90, "iris-canary": 10}


def test_a_route_of_the_same_name_not_made_by_serinus_is_left_alone():
    foreign = copy.deepcopy(USER_ROUTE)
    foreign["metadata"]["name"] = "iris"
    route, kube, router = world(OWNED, foreign)
    with pytest.raises(RouteError, match="HTTPRoute default/iris exists and was not created by"):
        router.set_weight(route, 10)
    assert kube.find("HTTPRoute", "iris")["spec"] == foreign["spec"]


@pytest.mark.parametrize("traffic", [OWNED, USERS], ids=["owned", "users"])
def test_promotion_hands_over_without_sending_traffic_back_to_the_old_version(traffic):
    route, kube, router = world(traffic, copy.deepcopy(USER_ROUTE))
    router.set_weight(route, 50)
    kube.writes.clear()

    router.promote(route)
    name = "iris" if traffic is OWNED else "public"
    route_weights = [
        w.body["spec"]["rules"][0]["backendRefs"] for w in kube.writes if w.kind == "HTTPRoute"
    ]
    stable_service = [w for w in kube.writes if w.name == "iris-stable"]
    assert [[ref["weight"] for ref in refs] for refs in route_weights] == [[0, 100], [100, 0]]
    order = [w.kind for w in kube.writes]
    assert order == ["HTTPRoute", "Service", "HTTPRoute"]
    assert stable_service  # the stable Service was re-pointed, to exactly the new revision:
    assert kube.find("Service", "iris-stable")["spec"]["selector"] == selector_for("iris", "b2")
    assert weights(kube.find("HTTPRoute", name)) == {"iris-stable": 100, "iris-canary": 0}
    assert router.observed_weight(route) == 100  # every request reaches the new revision
    assert router.observed_weight(context(stable="b2", canary=None, traffic=traffic)) == 0
    assert_all_valid(kube)


def test_a_first_version_is_promoted_onto_a_new_route():
    route = context(stable=None, traffic=OWNED)
    kube = FakeKubeObjects()
    seed(kube, route)
    GatewayAPIRouter(kube).promote(route)
    assert weights(kube.find("HTTPRoute", "iris")) == {"iris-stable": 100, "iris-canary": 0}
    assert kube.find("Service", "iris-stable")["spec"]["selector"] == selector_for("iris", "b2")
    assert_all_valid(kube)


def test_rollback_reads_zero():
    route, _kube, router = world(OWNED)
    router.set_weight(route, 50)
    router.set_weight(route, 0)
    assert router.observed_weight(route) == 0


def test_observed_weight_cannot_be_told_while_the_route_points_at_the_main_service():
    route, _kube, router = world(USERS, copy.deepcopy(USER_ROUTE))
    assert router.observed_weight(route) is None


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({"provider": "gateway-api"}, "needs traffic.gatewayAPI"),
        ({"provider": "gateway-api", "gatewayAPI": {"hostnames": ["a.example.com"]}}, "parentRefs"),
    ],
)
def test_incomplete_settings_are_route_errors(traffic, message):
    route, _kube, router = world(OWNED)
    bad = route.model_copy(update={"traffic": context(traffic=traffic).traffic})
    with pytest.raises(RouteError, match=message):
        router.set_weight(bad, 10)
