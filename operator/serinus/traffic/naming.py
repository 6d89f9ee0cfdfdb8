"""Names and labels shared by the operator (which creates Deployments and Services) and the
traffic routers (which point traffic at them). One place, so the two can never disagree.

Per ModelDeployment `name` and revision `rev`:
- Deployment `{name}-{rev}`; its pods carry `pod_labels(name, rev)`.
- Service `{name}`: what clients call. It selects `serinus.dev/name` only, so it spans every
  revision (Istio's subsets need that) — except in `replicas` mode, where the replicas router
  narrows it to one revision whenever only one may serve (see `serinus.traffic.replicas`).
- Services `{name}-stable` and `{name}-canary`: select one revision each (the backends of a
  Gateway API HTTPRoute).
All Services expose port 80 to the pods' container port named `http` (8080).
"""

from __future__ import annotations

LABEL_APP_NAME = "app.kubernetes.io/name"
LABEL_APP_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "serinus.dev/name"
LABEL_REVISION = "serinus.dev/revision"

RUNTIME_APP = "serinus-runtime"
MANAGED_BY = "serinus"

CONTAINER_PORT_NAME = "http"
CONTAINER_PORT = 8080
SERVICE_PORT = 80

STABLE = "stable"
CANARY = "canary"
"""Variant names: Service suffixes and Istio DestinationRule subset names."""


def deployment_name(name: str, revision: str) -> str:
    return f"{name}-{revision}"


def service_names(name: str) -> tuple[str, str, str]:
    """(main, stable, canary) Service names."""
    return name, f"{name}-{STABLE}", f"{name}-{CANARY}"


def pod_labels(name: str, revision: str) -> dict[str, str]:
    """Labels on the pod template of the Deployment of one revision."""
    return {
        LABEL_APP_NAME: RUNTIME_APP,
        LABEL_APP_INSTANCE: name,
        LABEL_NAME: name,
        LABEL_REVISION: revision,
    }


def selector_for(name: str, revision: str | None = None) -> dict[str, str]:
    """Pods of every revision of `name`, or of one revision."""
    selector = {LABEL_NAME: name}
    if revision is not None:
        selector[LABEL_REVISION] = revision
    return selector


def object_labels(name: str) -> dict[str, str]:
    """Labels on objects a router creates (HTTPRoute, VirtualService, DestinationRule)."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NAME: name}


def service_host(name: str, namespace: str) -> str:
    """The fully qualified DNS name of the main Service (Istio hosts)."""
    return f"{name}.{namespace}.svc.cluster.local"
