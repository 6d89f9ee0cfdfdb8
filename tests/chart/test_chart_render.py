"""charts/serinus rendered by the real Helm engine: every object valid, every mode as documented."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Callable
from typing import Any

import helm_python
import pytest
import yaml
from chart_helpers import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    ROOT,
    chart,
    env_of,
    notes,
    of_kind,
    one,
    operator_container,
    render,
)

import serinus
from serinus.kube.driver import DEFAULT_OPERATOR_IMAGE

WATCHED = ["ml", "ml-staging"]
MONITORING = {
    "labels": {"release": "kube-prometheus-stack"},
    "serviceMonitor": {"enabled": True},
    "podMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": WATCHED},
    "ha": {"replicaCount": 2},
    "ha-namespaced": {"replicaCount": 2, "watchNamespaces": WATCHED},
    "monitoring": {"monitoring": MONITORING},
    "monitoring-namespaced": {"watchNamespaces": WATCHED, "monitoring": MONITORING},
    "no-metrics-no-rbac": {"metrics": {"enabled": False}, "rbac": {"create": False}},
    "existing-service-account": {"serviceAccount": {"create": False, "name": "ops"}},
    "everything-set": {
        "fullnameOverride": "models-operator",
        "image": {
            "repository": "registry.example.com/serinus",
            "tag": "dev",
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "replicaCount": 3,
        "peering": {"name": "models"},
        "operator": {
            "tickSeconds": 2.5,
            "steadySeconds": 120,
            "healthPort": 9000,
            "verbose": True,
            "extraArgs": ["--example-extra-flag"],
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        },
        "runtime": {"image": "registry.example.com/serinus-runtime:0.1.0"},
        "prometheus": {"address": "http://prometheus-operated.monitoring.svc:9090"},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "pool", "operator": "In", "values": ["system"]}
                            ]
                        }
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/team": "ml"},
        "podLabels": {"team": "ml"},
        "serviceAccount": {"annotations": {"iam.example.com/role": "serinus"}},
        "metrics": {"port": 9100, "serviceAnnotations": {"example.com/scrape": "true"}},
        "dashboard": {"port": 9200},
        "monitoring": MONITORING,
    },
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(VALUE_SETS[request.param])


def test_every_rendered_object_validates(
    rendered: tuple[str, list[dict[str, Any]]],
    validate_object: Callable[[dict[str, Any]], list[str]],
) -> None:
    _, objects = rendered
    assert objects
    problems = {
        f"{obj['kind']}/{obj['metadata']['name']}": errors
        for obj in objects
        if (errors := validate_object(obj))
    }
    assert problems == {}


def test_no_two_objects_share_a_name(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    keys = Counter(
        (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in objects
    )
    assert [key for key, count in keys.items() if count > 1] == []


def test_namespaced_objects_name_their_namespace(rendered: tuple[str, list[dict[str, Any]]]):
    """`helm template | kubectl apply` puts nothing in whatever namespace kubectl defaults to."""
    _, objects = rendered
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    assert [
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in objects
        if obj["kind"] not in cluster_scoped and not obj["metadata"].get("namespace")
    ] == []


def test_helm_lint_finds_nothing_wrong() -> None:
    for values in (VALUE_SETS["default"], VALUE_SETS["everything-set"]):
        report = helm_python.lint(
            CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0"
        )
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_app_version_is_the_package_version() -> None:
    metadata = chart().metadata
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert metadata["apiVersion"] == "v2"
    assert metadata["appVersion"] == project["version"] == serinus.__version__


def test_defaults_are_the_operators_own() -> None:
    """The chart sets every setting explicitly; its defaults must not silently differ."""
    values = chart().values
    handlers = (ROOT / "operator/serinus/kube/handlers.py").read_text()
    cli = (ROOT / "operator/serinus/cli.py").read_text()

    def env_default(name: str) -> float:
        found = re.search(rf'os\.environ\.get\("{name}", "([^"]+)"\)', handlers)
        assert found, f"{name} not read in handlers.py"
        return float(found.group(1))

    assert values["operator"]["tickSeconds"] == env_default("SERINUS_TICK_SECONDS")
    assert values["operator"]["steadySeconds"] == env_default("SERINUS_STEADY_SECONDS")
    assert values["metrics"]["port"] == env_default("SERINUS_METRICS_PORT")
    assert f'"http://0.0.0.0:{values["operator"]["healthPort"]}/healthz"' in cli
    container = operator_container(render())
    assert container["image"] == DEFAULT_OPERATOR_IMAGE


def test_default_is_one_standalone_replica_watching_every_namespace() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    assert of_kind(objects, "StatefulSet") == []
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two standalone at once
    container = operator_container(objects)
    assert container["command"] == ["serinus", "operator"]
    assert container["args"] == ["--liveness=http://0.0.0.0:8080/healthz", "--standalone"]
    env = env_of(container)
    assert env["SERINUS_TICK_SECONDS"] == "5"
    assert env["SERINUS_OPERATOR_IMAGE"] == container["image"]
    assert env["SERINUS_METRICS_PORT"] == "8081"
    assert "SERINUS_RUNTIME_IMAGE" not in env and "SERINUS_PROMETHEUS_ADDRESS" not in env
    assert of_kind(objects, "ClusterKopfPeering") == of_kind(objects, "KopfPeering") == []
    assert of_kind(objects, "PodDisruptionBudget") == []
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]


def test_operator_pod_is_restricted_and_probed_on_healthz() -> None:
    objects = render()
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 8081, "dashboard": 8082}
    assert env_of(container)["SERINUS_DASHBOARD_PORT"] == "8082"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_namespaced_mode_passes_each_namespace() -> None:
    container = operator_container(render({"watchNamespaces": WATCHED}))
    assert container["args"][-2:] == ["--namespace=ml", "--namespace=ml-staging"]
    assert "--standalone" in container["args"]


@pytest.mark.parametrize("watched", [[], WATCHED], ids=["cluster-wide", "namespaced"])
def test_two_replicas_peer_with_a_priority_each(watched: list[str]) -> None:
    """Kopf pauses every peer sharing the top priority, so identical replicas would all wait:
    each replica's priority is its StatefulSet pod index."""
    objects = render({"replicaCount": 2, "watchNamespaces": watched})
    assert of_kind(objects, "Deployment") == []
    statefulset = one(objects, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 2
    container = operator_container(objects)
    peering_name = f"{NAMESPACE}-{RELEASE}"
    assert "--standalone" not in container["args"]
    assert f"--peering={peering_name}" in container["args"]
    assert "--priority=$(POD_INDEX)" in container["args"]
    index = env_of(container)["POD_INDEX"]
    assert index == {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
    assert env_of(container)["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    if watched:
        assert of_kind(objects, "ClusterKopfPeering") == []
        peerings = of_kind(objects, "KopfPeering")
        assert sorted(p["metadata"]["namespace"] for p in peerings) == watched
        assert {p["metadata"]["name"] for p in peerings} == {peering_name}
    else:
        assert of_kind(objects, "KopfPeering") == []
        assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == peering_name
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    affinity = statefulset["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    [term] = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == (statefulset["spec"]["selector"]["matchLabels"])
    )


def test_metrics_off_sets_port_zero_and_drops_the_service() -> None:
    objects = render({"metrics": {"enabled": False}})
    container = operator_container(objects)
    assert env_of(container)["SERINUS_METRICS_PORT"] == "0"
    assert [p["name"] for p in container["ports"]] == ["health", "dashboard"]
    assert of_kind(objects, "Service") == []


def test_dashboard_off_sets_port_zero_and_drops_the_port() -> None:
    container = operator_container(render({"dashboard": {"enabled": False}}))
    assert env_of(container)["SERINUS_DASHBOARD_PORT"] == "0"
    assert "dashboard" not in [p["name"] for p in container["ports"]]


def test_metrics_service_reaches_the_metrics_port() -> None:
    objects = render({"metrics": {"port": 9100}})
    service = one(objects, "Service")
    pod = one(objects, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert env_of(operator_container(objects))["SERINUS_METRICS_PORT"] == "9100"


def test_every_setting_reaches_the_pod() -> None:
    values = VALUE_SETS["everything-set"]
    objects = render(values)
    workload = one(objects, "StatefulSet")
    assert workload["metadata"]["name"] == "models-operator"
    assert workload["spec"]["replicas"] == 3
    pod = workload["spec"]["template"]["spec"]
    container = operator_container(objects)
    assert container["image"] == "registry.example.com/serinus:dev"
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]  # the user's, not the default anti-affinity
    assert pod["priorityClassName"] == "system-cluster-critical"
    template_meta = workload["spec"]["template"]["metadata"]
    assert template_meta["labels"]["team"] == "ml"
    assert template_meta["annotations"] == {"example.com/team": "ml"}
    assert container["resources"] == values["resources"]
    assert container["args"] == [
        "--liveness=http://0.0.0.0:9000/healthz",
        "--peering=models",
        "--priority=$(POD_INDEX)",
        "--verbose",
        "--example-extra-flag",
    ]
    env = env_of(container)
    assert env["SERINUS_TICK_SECONDS"] == "2.5"
    assert env["SERINUS_STEADY_SECONDS"] == "120"
    assert env["SERINUS_OPERATOR_IMAGE"] == "registry.example.com/serinus:dev"
    assert env["SERINUS_METRICS_PORT"] == "9100"
    assert env["SERINUS_RUNTIME_IMAGE"] == "registry.example.com/serinus-runtime:0.1.0"
    assert env["SERINUS_PROMETHEUS_ADDRESS"] == "http://prometheus-operated.monitoring.svc:9090"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 9000,
        "metrics": 9100,
        "dashboard": 9200,
    }
    assert env["SERINUS_DASHBOARD_PORT"] == "9200"
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"iam.example.com/role": "serinus"}
    assert one(objects, "Service")["metadata"]["annotations"] == {"example.com/scrape": "true"}
    assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == "models"


def test_an_existing_service_account_is_used_not_created() -> None:
    objects = render({"serviceAccount": {"create": False, "name": "ops"}})
    assert of_kind(objects, "ServiceAccount") == []
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"
    assert one(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "ops"


def test_objects_come_in_helm_install_order_with_crds_first() -> None:
    objects = render({"replicaCount": 2}, crds=True)
    kinds = [obj["kind"] for obj in objects]
    assert kinds[:3] == ["CustomResourceDefinition"] * 3
    assert kinds.index("ServiceAccount") < kinds.index("ClusterRoleBinding")
    assert kinds.index("ClusterRoleBinding") < kinds.index("StatefulSet")
    assert kinds[-1] == "ClusterKopfPeering"  # a custom resource: after its CRD and the rest


def test_notes_say_what_was_installed_and_how_to_upgrade_crds() -> None:
    text = notes({"replicaCount": 2, "watchNamespaces": WATCHED})
    assert "only these namespaces: ml, ml-staging" in text
    assert "2 replicas (StatefulSet serinus)" in text
    assert "kubectl apply -f charts/serinus/crds/" in text
    default = notes()
    assert "watches every namespace" in default
    assert "One replica (Deployment serinus, --standalone)" in default


def test_only_alert_templates_are_left_unrendered() -> None:
    """What `helm template` prints is what docs/install.md pipes into kubectl apply: the only
    `{{ }}` left are Prometheus' own alert templates ($labels, $value)."""
    text = yaml.safe_dump_all(render(VALUE_SETS["monitoring"]), width=1000)
    leftovers = re.findall(r"\{\{(.*?)\}\}", text)
    assert leftovers
    assert [t for t in leftovers if not re.match(r" \$(labels\.\w+|value)\b", t)] == []
