"""Render charts/serinus with the real Helm engine (helm-python-sdk: Helm v4 as a library).

`render(values)` returns the chart's objects as dicts, in Helm's install order, ready to be
validated or created in an API server (tests/e2e can import this module after putting
tests/chart on sys.path). Nothing here talks to a cluster.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "serinus"
RBAC_RULES_FILE = CHART_DIR / "files" / "rbac-rules.yaml"
SHARED_SCHEMAS = ROOT.parent / "shared" / "schemas"

RELEASE = "serinus"
NAMESPACE = "serinus-system"

# Helm's own install order (pkg/release/util/kind_sorter.go); kinds not listed go last.
INSTALL_ORDER = (
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
)  # fmt: skip

NOTES = "NOTES.txt"


@functools.cache
def chart() -> helm_python.Chart:
    """The chart, loaded once per process (a loaded chart is immutable and thread-safe)."""
    return helm_python.Chart.load(CHART_DIR)


def render_templates(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm template` renders them.

    Raises helm_python.HelmValuesError when values.schema.json rejects the values and
    helm_python.HelmRenderError when a template fails (e.g. one of the chart's `fail` checks).
    """
    return chart().render(values or {}, name=release, namespace=namespace, is_install=True)


def parse(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a rendered manifest."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    crds: bool = False,
) -> list[dict[str, Any]]:
    """Every object the chart installs for `values`, in Helm's install order.

    With crds=True the chart's crds/ come first, as `helm install` creates them before the
    templates (they are not templated: values never change them).
    """
    rendered = render_templates(values, release=release, namespace=namespace)
    objects = [
        obj
        for path, text in sorted(rendered.items())
        if not path.endswith(NOTES)
        for obj in parse(text)
    ]
    objects.sort(key=_install_rank)
    return (chart_crds() if crds else []) + objects


def notes(values: dict[str, Any] | None = None, **kwargs: str) -> str:
    """The rendered NOTES.txt."""
    rendered = render_templates(values, **kwargs)
    return next(text for path, text in rendered.items() if path.endswith(NOTES))


def chart_crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in the chart's crds/, as Helm loads them."""
    return [obj for crd in chart().crds for obj in parse(crd["data"])]


def chart_crd_files() -> dict[str, str]:
    """crds/ file name -> its exact text, as Helm loaded it."""
    return {Path(crd["filename"]).name: crd["data"] for crd in chart().crds}


def rbac_rules() -> dict[str, list[dict[str, Any]]]:
    """files/rbac-rules.yaml: {"namespaced": [...], "clusterwide": [...]}."""
    return yaml.safe_load(RBAC_RULES_FILE.read_text())


def of_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: Iterable[dict[str, Any]], kind: str, namespace: str | None = None) -> dict:
    """The single object of `kind` (in `namespace` when given); fails if there are 0 or 2+."""
    found = [
        obj
        for obj in of_kind(objects, kind)
        if namespace is None or obj["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def operator_container(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The operator container of the Deployment (one replica) or StatefulSet (several)."""
    workloads = [obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 1, [obj["kind"] for obj in workloads]
    containers = workloads[0]["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """Container env as name -> value (or the valueFrom mapping)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _install_rank(obj: dict[str, Any]) -> int:
    kind = obj.get("kind")
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)
