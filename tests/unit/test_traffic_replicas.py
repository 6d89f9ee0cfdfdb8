"""The `replicas` router: the pod-count split, the main Service's selector, promotion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from traffic_fakes import FakeKubeObjects, assert_all_valid, context, deployment, seed

from serinus.traffic.kube_api import RouteError
from serinus.traffic.naming import selector_for
from serinus.traffic.replicas import (
    ReplicaSplit,
    ReplicasRouter,
    achieved_weight,
    main_service_selector,
    split_replicas,
)

WEIGHTS = (0, 1, 10, 33, 50, 99, 100)
TOTALS = (1, 2, 3, 10)

# (total, weight) -> (canary pods, stable pods, achieved weight); canary None: left as it is
SPLITS = {
    (1, 0): (None, 1, 0),
    (1, 1): (1, 1, 50),
    (1, 10): (1, 1, 50),
    (1, 33): (1, 1, 50),
    (1, 50): (1, 1, 50),
    (1, 99): (1, 1, 50),
    (1, 100): (1, 0, 100),
    (2, 0): (None, 2, 0),
    (2, 1): (1, 1, 50),
    (2, 10): (1, 1, 50),
    (2, 33): (1, 1, 50),
    (2, 50): (1, 1, 50),
    (2, 99): (1, 1, 50),
    (2, 100): (2, 0, 100),
    (3, 0): (None, 3, 0),
    (3, 1): (1, 2, 33),
    (3, 10): (1, 2, 33),
    (3, 33): (1, 2, 33),
    (3, 50): (2, 1, 67),
    (3, 99): (2, 1, 67),
    (3, 100): (3, 0, 100),
    (10, 0): (None, 10, 0),
    (10, 1): (1, 9, 10),
    (10, 10): (1, 9, 10),
    (10, 33): (4, 6, 40),
    (10, 50): (5, 5, 50),
    (10, 99): (9, 1, 90),
    (10, 100): (10, 0, 100),
}


def test_the_table_covers_every_total_and_weight():
    assert set(SPLITS) == {(total, weight) for total in TOTALS for weight in WEIGHTS}


@pytest.mark.parametrize(("total", "weight"), sorted(SPLITS))
def test_split(total, weight):
    canary, stable, achieved = SPLITS[total, weight]
    assert split_replicas(total, weight) == ReplicaSplit(
        canary=canary, stable=stable, weight=achieved
    )


@settings(max_examples=300, deadline=None)
@given(total=st.integers(1, 300), weight=st.integers(0, 100), other=st.integers(0, 100))
def test_split_properties(total, weight, other):
    split = split_replicas(total, weight)
    assert split.stable >= 0
    assert split.canary is None or split.canary >= 0
    serving = (split.canary or 0, split.stable) if weight else (0, split.stable)
    exact_share = 100 * serving[0] / sum(serving)
    assert abs(exact_share - weight) <= 100 / total  # a pod is 100/total percent
    assert abs(split.weight - weight) <= 100 / total + 0.5  # reported as a whole percent
    if weight == 0:
        assert (split.canary, split.stable) == (None, total)
    elif total >= 2 or weight == 100:
        assert split.canary + split.stable == total
    else:  # one replica cannot be split: the canary runs one extra pod
        assert (split.canary, split.stable) == (1, 1)
    if 0 < weight < 100:
        assert split.canary >= 1 and split.stable >= 1
    low, high = sorted((weight, other))
    assert split_replicas(total, low).weight <= split_replicas(total, high).weight


@pytest.mark.parametrize(
    ("canary", "stable", "weight"), [(1, 1, 50), (1, 2, 33), (2, 1, 67), (1, 7, 13), (0, 3, 0)]
)
def test_achieved_weight_rounds_half_up(canary, stable, weight):
    assert achieved_weight(canary, stable) == weight


@pytest.mark.parametrize("weight", [-1, 101])
def test_a_weight_outside_0_to_100_is_refused(weight):
    with pytest.raises(ValueError, match="between 0 and 100"):
        split_replicas(3, weight)


@pytest.mark.parametrize(
    ("stable", "canary", "weight", "revision"),
    [
        ("a1", "b2", 0, "a1"),
        ("a1", "b2", 1, None),
        ("a1", "b2", 99, None),
        ("a1", "b2", 100, "b2"),
        ("a1", None, 0, "a1"),
        (None, "b2", 0, "b2"),  # a first version: there is nothing else to serve
    ],
)
def test_main_service_selector(stable, canary, weight, revision):
    assert main_service_selector("iris", stable, canary, weight) == selector_for("iris", revision)


# --- the router against the fake API ------------------------------------------------------


def pre_traffic(total: int, canary_pods: int = 1) -> tuple[FakeKubeObjects, ReplicasRouter]:
    """Stable serving everything, the canary's validation pod running without traffic."""
    route = context(replicas=total)
    kube = FakeKubeObjects()
    seed(kube, route, canary_pods=canary_pods, main_selector=selector_for("iris", "a1"))
    return kube, ReplicasRouter(kube)


def replicas_of(kube: FakeKubeObjects, revision: str) -> int:
    return kube.find("Deployment", f"iris-{revision}")["spec"]["replicas"]


def main_selector(kube: FakeKubeObjects) -> dict[str, str]:
    return kube.find("Service", "iris")["spec"]["selector"]


@pytest.mark.parametrize(("total", "weight"), sorted(SPLITS))
def test_set_weight_splits_pods_and_reports_the_achieved_weight(total, weight):
    kube, router = pre_traffic(total)
    route = context(replicas=total)
    canary, stable, achieved = SPLITS[total, weight]

    assert router.set_weight(route, weight) == achieved
    assert replicas_of(kube, "a1") == stable
    assert replicas_of(kube, "b2") == (1 if canary is None else canary)
    expected = {0: "a1", 100: "b2"}.get(weight)
    assert main_selector(kube) == selector_for("iris", expected)
    kube.mark_ready()
    assert router.observed_weight(route) == achieved
    assert_all_valid(kube)


def test_the_validation_pod_gets_no_traffic():
    _kube, router = pre_traffic(10)
    assert router.observed_weight(context()) == 0


def test_pods_are_added_before_the_selector_moves_and_removed_after():
    kube, router = pre_traffic(10)
    router.set_weight(context(), 50)
    writes = [(w.verb, w.name) for w in kube.writes]
    assert writes == [("scale", "iris-b2"), ("patch", "iris"), ("scale", "iris-a1")]


def test_rollback_to_zero_stops_canary_traffic_at_once_and_refills_stable():
    kube, router = pre_traffic(10)
    route = context()
    router.set_weight(route, 50)
    kube.mark_ready()

    assert router.set_weight(route, 0) == 0
    assert main_selector(kube) == selector_for("iris", "a1")
    assert replicas_of(kube, "a1") == 10
    assert replicas_of(kube, "b2") == 5  # the engine's ScaleDown removes them
    assert router.observed_weight(route) == 0  # before any pod moved


def test_repeating_weight_zero_never_brings_back_a_scaled_down_canary():
    kube, router = pre_traffic(10)
    route = context()
    router.set_weight(route, 0)
    kube.scale("default", "iris-b2", 0)  # the engine's ScaleDown
    router.set_weight(route, 0)
    assert replicas_of(kube, "b2") == 0


def test_observed_weight_follows_ready_pods_not_the_target():
    kube, router = pre_traffic(10)
    route = context()
    assert router.set_weight(route, 50) == 50
    # the canary still has its 1 ready pod, stable has not yet lost any
    assert router.observed_weight(route) == 9
    kube.mark_ready()
    assert router.observed_weight(route) == 50


def test_observed_weight_cannot_be_told_when_no_pod_is_ready_or_the_selector_was_edited():
    kube, router = pre_traffic(10)
    route = context()
    router.set_weight(route, 50)
    for name in ("iris-a1", "iris-b2"):
        kube.patch("apps/v1", "Deployment", "default", name, {"status": {"readyReplicas": 0}})
    assert router.observed_weight(route) is None
    kube.patch("v1", "Service", "default", "iris", {"spec": {"selector": {"app": "other"}}})
    assert router.observed_weight(route) is None


def test_promotion_scales_the_canary_to_full_size_and_leaves_the_old_pods_to_scale_down():
    kube, router = pre_traffic(10)
    route = context()
    router.set_weight(route, 50)
    kube.mark_ready()

    router.promote(route)
    assert replicas_of(kube, "b2") == 10
    assert replicas_of(kube, "a1") == 5  # in-flight requests finish; ScaleDown comes later
    assert main_selector(kube) == selector_for("iris", "b2")
    kube.mark_ready()
    assert router.observed_weight(route) == 100
    assert_all_valid(kube)


def test_the_next_canary_gets_no_traffic_after_a_promotion():
    kube, router = pre_traffic(4)
    router.promote(context(replicas=4))
    kube.put(deployment("iris", "c3", 1))  # the next rollout's validation pod
    kube.mark_ready()
    assert router.observed_weight(context(stable="b2", canary="c3", replicas=4)) == 0


def test_first_version_promotion():
    route = context(stable=None, replicas=3)
    kube = FakeKubeObjects()
    seed(kube, route, main_selector=selector_for("iris", "b2"))
    router = ReplicasRouter(kube)
    router.promote(route)
    assert replicas_of(kube, "b2") == 3
    assert main_selector(kube) == selector_for("iris", "b2")
    assert_all_valid(kube)


def test_a_missing_deployment_is_a_route_error_naming_it():
    _kube, router = pre_traffic(10)
    with pytest.raises(RouteError, match="Deployment default/iris-c3 not found"):
        router.set_weight(context(canary="c3"), 10)


def test_a_missing_main_service_is_a_route_error_naming_it():
    kube = FakeKubeObjects()
    route = context()
    seed(kube, route)
    del kube.objects["v1", "Service", "default", "iris"]
    with pytest.raises(RouteError, match="Service default/iris not found"):
        ReplicasRouter(kube).set_weight(route, 10)


def test_no_canary_means_weight_zero_and_set_weight_needs_one():
    _kube, router = pre_traffic(3)
    assert router.observed_weight(context(canary=None)) == 0
    with pytest.raises(ValueError, match="no canary"):
        router.set_weight(context(canary=None), 10)
