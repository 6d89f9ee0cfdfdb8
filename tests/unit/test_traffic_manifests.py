"""The schema checks the traffic tests rely on: they pass what is valid and catch what is not."""

from __future__ import annotations

import copy

import pytest
from traffic_fakes import (
    SCHEMAS,
    context,
    deployment,
    schema_errors,
    service,
    validate_cr_module,
)

from serinus.traffic.gateway_api import build_http_route
from serinus.traffic.istio import build_destination_rule, build_virtual_service
from serinus.traffic.naming import selector_for

GATEWAY = {"provider": "gateway-api", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}}


def sample_documents(pattern: str) -> list[tuple[str, dict]]:
    load_yaml_documents = validate_cr_module().load_yaml_documents
    files = sorted((SCHEMAS / "samples").glob(pattern))
    assert files, f"no {pattern} in {SCHEMAS / 'samples'}"
    return [(f.name, doc) for f in files for doc in load_yaml_documents(f.read_text())]


def test_published_valid_samples_pass():
    for name, document in sample_documents("valid-*.yaml"):
        assert schema_errors(document) == [], name


def test_published_invalid_samples_fail():
    for name, document in sample_documents("invalid-*.yaml"):
        assert schema_errors(document), f"{name} should be invalid"


def _broken_route() -> dict:
    route = build_http_route(context(traffic=GATEWAY), 10)
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    return route


def _broken_virtual_service() -> dict:
    virtual_service = build_virtual_service(context(traffic={"provider": "istio"}), 10)
    virtual_service["spec"]["http"][0]["route"][0]["weight"] = "ninety"
    return virtual_service


def _broken_destination_rule() -> dict:
    rule = build_destination_rule(context(), "a1", "b2")
    rule["spec"]["subsets"][0]["selector"] = rule["spec"]["subsets"][0].pop("labels")
    return rule


def _broken_service() -> dict:
    broken = service("iris", selector_for("iris"))
    broken["spec"]["ports"][0]["port"] = "eighty"
    return broken


def _broken_deployment() -> dict:
    broken = deployment("iris", "a1", 2)
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    return broken


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_broken_route, "less than the minimum of 0"),
        (_broken_virtual_service, "ninety"),
        (_broken_destination_rule, "unknown field 'selector'"),
        (_broken_service, "eighty"),
        (_broken_deployment, "replica"),
    ],
    ids=["httproute", "virtualservice", "destinationrule", "service", "deployment"],
)
def test_a_broken_object_is_caught(make, problem):
    errors = schema_errors(make())
    assert errors and problem in " ".join(errors), errors


def test_the_operators_objects_as_seeded_are_valid():
    for obj in (deployment("iris", "a1", 3), service("iris-canary", selector_for("iris", "b2"))):
        assert schema_errors(copy.deepcopy(obj)) == []
