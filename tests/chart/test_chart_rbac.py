"""The chart's RBAC is files/rbac-rules.yaml, exactly: no drift, no wildcard, least privilege."""

from __future__ import annotations

from typing import Any

import pytest
from chart_helpers import NAMESPACE, RELEASE, of_kind, one, rbac_rules, render

WATCHED = ["ml", "ml-staging"]
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
GROUPS = {
    "namespaced",
    "clusterwide",
    "watchedNamespaces",
    "peeringClusterwide",
    "peeringNamespaced",
}


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in [key, *strings(value)]]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def test_rules_file_is_well_formed_and_has_no_wildcard() -> None:
    rules = rbac_rules()
    assert set(rules) == GROUPS
    for rule in (rule for group in rules.values() for rule in group):
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        assert all(rule[key] for key in rule), rule
    assert not any("*" in s for s in strings(rules))


def test_cluster_wide_mode_grants_exactly_the_file() -> None:
    objects = render()
    rules = rbac_rules()
    role = one(objects, "ClusterRole")
    assert role["rules"] == rules["namespaced"] + rules["clusterwide"]
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
    ]
    assert of_kind(objects, "Role") == of_kind(objects, "RoleBinding") == []


def test_peering_rights_only_with_two_replicas() -> None:
    """A single replica runs --standalone and never touches a peering object."""
    rules = rbac_rules()
    cluster_ha = one(render({"replicaCount": 2}), "ClusterRole")["rules"]
    assert cluster_ha == rules["namespaced"] + rules["clusterwide"] + rules["peeringClusterwide"]
    namespaced_ha = render({"replicaCount": 2, "watchNamespaces": WATCHED})
    for role in of_kind(namespaced_ha, "Role"):
        assert role["rules"] == rules["namespaced"] + rules["peeringNamespaced"]
    single = [r for obj in render() if obj["kind"] in RBAC_KINDS for r in strings(obj)]
    assert "clusterkopfpeerings" not in single and "kopfpeerings" not in single


def test_namespaced_mode_grants_namespaced_rules_only_where_watched() -> None:
    objects = render({"watchNamespaces": WATCHED})
    rules = rbac_rules()
    roles = of_kind(objects, "Role")
    bindings = of_kind(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == WATCHED
    assert sorted(b["metadata"]["namespace"] for b in bindings) == WATCHED
    for role in roles:
        assert role["rules"] == rules["namespaced"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == roles[0]["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
        ]


def test_namespaced_mode_keeps_only_the_cluster_scoped_reads_kopf_needs() -> None:
    """CRD list/watch (Kopf's resource discovery) and namespaces (Kopf's namespace observer,
    which runs only with -n); no peering, no namespaced rule."""
    objects = render({"watchNamespaces": WATCHED})
    rules = rbac_rules()
    cluster_rules = one(objects, "ClusterRole")["rules"]
    assert cluster_rules == rules["clusterwide"] + rules["watchedNamespaces"]
    assert {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    } in cluster_rules
    granted = {r for rule in cluster_rules for r in rule["resources"]}
    assert "clusterkopfpeerings" not in granted
    assert granted.isdisjoint(r for rule in rules["namespaced"] for r in rule["resources"])
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in cluster_rules)


@pytest.mark.parametrize(
    "values",
    [{}, {"watchNamespaces": WATCHED}, {"replicaCount": 2, "watchNamespaces": WATCHED}],
    ids=["cluster-wide", "namespaced", "ha-namespaced"],
)
def test_no_rendered_rbac_object_holds_a_wildcard(values: dict[str, Any]) -> None:
    rbac = [obj for obj in render(values) if obj["kind"] in RBAC_KINDS]
    assert rbac
    assert [s for obj in rbac for s in strings(obj) if "*" in s] == []


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    objects = render({"rbac": {"create": False}, "watchNamespaces": WATCHED})
    assert [obj for obj in objects if obj["kind"] in RBAC_KINDS] == []


def test_two_releases_in_two_namespaces_do_not_share_cluster_objects() -> None:
    first = render({"replicaCount": 2}, namespace="team-a")
    second = render({"replicaCount": 2}, namespace="team-b")
    for kind in ("ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"):
        assert one(first, kind)["metadata"]["name"] != one(second, kind)["metadata"]["name"]
