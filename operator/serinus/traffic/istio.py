"""The `istio` router: VirtualService route weights over DestinationRule subsets.

The main Service `{name}` spans every revision; a DestinationRule `{name}` (always owned by
Serinus) defines subsets `stable` and `canary` by the pods' `serinus.dev/revision` label, and
a VirtualService sends 100 - w percent to subset `stable` and w to `canary` of host
`{name}.{ns}.svc.cluster.local` (networking.istio.io/v1).

Which VirtualService:
- `traffic.istio.virtualService` names the user's. It may route other hosts, paths, retries,
  timeouts, fault injection — all of it the user's configuration. Only the http routes whose
  destinations all point at this model's host (`{name}`, `{name}.{ns}`, `{name}.{ns}.svc` or
  the full name) get their destinations replaced by the weighted pair; a route that also sends
  to other hosts is refused (RouteError), because its split belongs to the user. `spec.http` is
  a list, which a merge patch replaces whole, so it is read, changed and written back with
  the resourceVersion read (a concurrent edit fails the write and it is done again).
- Otherwise the router owns a VirtualService `{name}` with the spec's hosts (default: the
  Service's full name) and gateways.

Subsets change before weights (Istio's make-before-break order). Promotion: all traffic to
`canary`, then subset `stable` selects the new revision, then weights return to 100/0.
`observed_weight` is the share of weight whose subset selects the canary's revision: 100 after
a promotion, 0 after a rollback.
"""

from __future__ import annotations

import copy
from typing import Any

from serinus.api.spec import IstioTraffic
from serinus.traffic.kube_api import (
    KubeObjects,
    RouteError,
    apply_owned,
    patch_guarded,
    retry_on_conflict,
)
from serinus.traffic.naming import (
    CANARY,
    LABEL_REVISION,
    SERVICE_PORT,
    STABLE,
    object_labels,
    selector_for,
    service_host,
)
from serinus.traffic.replicas import achieved_weight, check_weight, require_canary
from serinus.traffic.router import RouteContext

API_VERSION = "networking.istio.io/v1"
VIRTUAL_SERVICE = "VirtualService"
DESTINATION_RULE = "DestinationRule"
ROUTE_NAME = "serinus"


def our_hosts(name: str, namespace: str) -> set[str]:
    """Every way a VirtualService in `namespace` can name the main Service."""
    return {name, f"{name}.{namespace}", f"{name}.{namespace}.svc", service_host(name, namespace)}


def build_destinations(
    name: str, namespace: str, weight: int, headers: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The weighted pair of destinations; `headers` are a user's per-destination headers."""
    check_weight(weight)
    host = service_host(name, namespace)
    destinations = [
        {
            "destination": {"host": host, "subset": subset, "port": {"number": SERVICE_PORT}},
            "weight": share,
        }
        for subset, share in ((STABLE, 100 - weight), (CANARY, weight))
    ]
    if headers:
        for destination in destinations:
            destination["headers"] = copy.deepcopy(headers)
    return destinations


def _metadata(route: RouteContext) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": route.name,
        "namespace": route.namespace,
        "labels": object_labels(route.name),
    }
    if route.owner:
        metadata["ownerReferences"] = [route.owner]
    return metadata


def build_destination_rule(
    route: RouteContext, stable_revision: str, canary_revision: str
) -> dict[str, Any]:
    """Subsets `stable` and `canary` of the main Service, by revision."""
    subsets = [
        {"name": STABLE, "labels": selector_for(route.name, stable_revision)},
        {"name": CANARY, "labels": selector_for(route.name, canary_revision)},
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": DESTINATION_RULE,
        "metadata": _metadata(route),
        "spec": {"host": service_host(route.name, route.namespace), "subsets": subsets},
    }


def build_virtual_service(route: RouteContext, weight: int) -> dict[str, Any]:
    """The VirtualService the router owns when the spec names no VirtualService of the user's."""
    settings = _settings(route)
    spec: dict[str, Any] = {
        "hosts": list(settings.hosts) or [service_host(route.name, route.namespace)],
        "http": [
            {"name": ROUTE_NAME, "route": build_destinations(route.name, route.namespace, weight)}
        ],
    }
    if settings.gateways:
        spec["gateways"] = list(settings.gateways)
    return {
        "apiVersion": API_VERSION,
        "kind": VIRTUAL_SERVICE,
        "metadata": _metadata(route),
        "spec": spec,
    }


def managed_routes(virtual_service: dict[str, Any], name: str, namespace: str) -> list[int]:
    """Indexes of the http routes whose destinations are all this model's host."""
    metadata = virtual_service.get("metadata") or {}
    where = f"VirtualService {metadata.get('namespace')}/{metadata.get('name')}"
    hosts = our_hosts(name, namespace)
    indexes = []
    for index, http in enumerate((virtual_service.get("spec") or {}).get("http") or []):
        targets = [(d.get("destination") or {}).get("host") for d in http.get("route") or []]
        ours = [target in hosts for target in targets]
        if targets and all(ours):
            indexes.append(index)
        elif any(ours):
            others = ", ".join(str(t) for t, mine in zip(targets, ours, strict=True) if not mine)
            raise RouteError(
                f"{where} http route {index} sends traffic to {others} as well as to "
                f"{service_host(name, namespace)}: Serinus splits only routes whose destinations "
                "are all this model; move the other destinations to a route of their own"
            )
    if not indexes:
        raise RouteError(
            f"{where} has no http route whose destinations point at "
            f"{service_host(name, namespace)}: add one (destination host {name}) so Serinus "
            "can split it"
        )
    return indexes


def http_with_weight(
    virtual_service: dict[str, Any], name: str, namespace: str, weight: int
) -> list[dict[str, Any]]:
    """The http routes with this model's destinations split at `weight`; the rest unchanged."""
    http = copy.deepcopy((virtual_service.get("spec") or {}).get("http") or [])
    for index in managed_routes(virtual_service, name, namespace):
        headers = http[index]["route"][0].get("headers")
        http[index]["route"] = build_destinations(name, namespace, weight, headers)
    return http


def subset_weights(
    virtual_service: dict[str, Any], name: str, namespace: str
) -> list[dict[str | None, int]]:
    """Per managed route: the weight of each subset (None: a destination without subset)."""
    http = (virtual_service.get("spec") or {}).get("http") or []
    weights = []
    for index in managed_routes(virtual_service, name, namespace):
        destinations = http[index]["route"]
        # Istio: a lone destination takes all traffic whatever its weight says.
        implicit = 100 if len(destinations) == 1 else 0
        per_subset: dict[str | None, int] = {}
        for destination in destinations:
            subset = destination["destination"].get("subset")
            share = implicit or destination.get("weight", 0)
            per_subset[subset] = per_subset.get(subset, 0) + share
        weights.append(per_subset)
    return weights


class IstioRouter:
    """TrafficRouter for `traffic.provider: istio`."""

    def __init__(self, kube: KubeObjects) -> None:
        self.kube = kube

    def set_weight(self, route: RouteContext, weight: int) -> int:
        check_weight(weight)
        canary = require_canary(route)
        apply_owned(self.kube, build_destination_rule(route, route.stable or canary, canary))
        self._write(route, weight)
        return weight

    def promote(self, route: RouteContext) -> None:
        canary = require_canary(route)
        apply_owned(self.kube, build_destination_rule(route, route.stable or canary, canary))
        self._write(route, 100)
        apply_owned(self.kube, build_destination_rule(route, canary, canary))
        self._write(route, 0)

    def observed_weight(self, route: RouteContext) -> int | None:
        if route.canary is None:
            return 0
        rule = self.kube.get(API_VERSION, DESTINATION_RULE, route.namespace, route.name)
        service = self.kube.get(API_VERSION, VIRTUAL_SERVICE, route.namespace, _vs_name(route))
        if rule is None or service is None:
            return None
        revisions: dict[str | None, str | None] = {
            subset.get("name"): (subset.get("labels") or {}).get(LABEL_REVISION)
            for subset in (rule.get("spec") or {}).get("subsets") or []
        }
        try:
            routes = subset_weights(service, route.name, route.namespace)
        except RouteError:
            return None
        shares = set()
        for per_subset in routes:
            total = sum(per_subset.values())
            if total == 0 or any(revisions.get(subset) is None for subset in per_subset):
                return None  # a destination without a known subset: the split cannot be told
            canary = sum(w for s, w in per_subset.items() if revisions[s] == route.canary)
            shares.add(achieved_weight(canary, total - canary))
        return shares.pop() if len(shares) == 1 else None  # routes that disagree

    def _write(self, route: RouteContext, weight: int) -> None:
        if _settings(route).virtual_service is None:
            apply_owned(self.kube, build_virtual_service(route, weight))
            return
        retry_on_conflict(lambda: self._write_user_virtual_service(route, weight))

    def _write_user_virtual_service(self, route: RouteContext, weight: int) -> None:
        name = _vs_name(route)
        found = self.kube.get(API_VERSION, VIRTUAL_SERVICE, route.namespace, name)
        if found is None:
            raise RouteError(
                f"VirtualService {route.namespace}/{name} not found: create it or remove "
                "traffic.istio.virtualService"
            )
        http = http_with_weight(found, route.name, route.namespace, weight)
        if http == found["spec"]["http"]:
            return
        patch_guarded(self.kube, found, API_VERSION, VIRTUAL_SERVICE, {"http": http})


def _settings(route: RouteContext) -> IstioTraffic:
    return route.traffic.istio or IstioTraffic()


def _vs_name(route: RouteContext) -> str:
    return _settings(route).virtual_service or route.name
