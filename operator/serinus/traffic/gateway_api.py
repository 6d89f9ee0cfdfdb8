"""The `gateway-api` router: weights on an HTTPRoute (gateway.networking.k8s.io/v1).

Every rule that sends traffic to this model gets two backendRefs, the Services `{name}-stable`
(weight 100 - w) and `{name}-canary` (weight w), port 80. Which route:
- `traffic.gatewayAPI.httpRoute` names the user's route. Only the backendRefs of the rules that
  point at this model's Services (`{name}`, `{name}-stable` or `{name}-canary`) change; their
  matches, filters, timeouts and every other rule stay as the user wrote them. A rule mixing
  this model's Services with other backends is refused (RouteError): its split is the user's.
  Merge patches replace lists whole, so the rules are read, changed and written back with the
  resourceVersion read (a concurrent edit makes the write fail and it is done again).
- Otherwise the router owns an HTTPRoute named `{name}` with the spec's parentRefs and
  hostnames, owned by the ModelDeployment (garbage-collected with it).

The router also keeps the two Services' selectors on the right revisions (the operator sets
the same values; writing them here makes a weight always mean the intended pods). Promotion
hands over without touching the old version: all traffic to `{name}-canary`, then
`{name}-stable` selects the new revision, then weights return to 100/0.

`observed_weight` is the share of the route's weight whose Service selects the canary's
revision, so it reads 100 after a promotion and 0 after a rollback.
"""

from __future__ import annotations

import copy
from typing import Any

from serinus.api.spec import GatewayAPITraffic, ParentRef
from serinus.traffic.kube_api import (
    KubeObjects,
    RouteError,
    apply_owned,
    patch_guarded,
    retry_on_conflict,
    set_service_selector,
)
from serinus.traffic.naming import (
    LABEL_REVISION,
    SERVICE_PORT,
    object_labels,
    selector_for,
    service_names,
)
from serinus.traffic.replicas import achieved_weight, check_weight, require_canary
from serinus.traffic.router import RouteContext

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
DEFAULT_BACKEND_WEIGHT = 1  # Gateway API's default for a backendRef without weight


def build_backend_refs(
    name: str, weight: int, filters: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The two weighted backends of a rule; `filters` are a user's per-backend filters."""
    check_weight(weight)
    _, stable, canary = service_names(name)
    refs = [
        {"name": stable, "port": SERVICE_PORT, "weight": 100 - weight},
        {"name": canary, "port": SERVICE_PORT, "weight": weight},
    ]
    if filters:
        for ref in refs:
            ref["filters"] = copy.deepcopy(filters)
    return refs


def build_parent_ref(parent: ParentRef) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": parent.name}
    if parent.namespace:
        ref["namespace"] = parent.namespace
    if parent.section_name:
        ref["sectionName"] = parent.section_name
    return ref


def build_http_route(route: RouteContext, weight: int) -> dict[str, Any]:
    """The HTTPRoute the router owns when the spec names no route of the user's."""
    settings = _settings(route)
    if not settings.parent_refs:
        raise RouteError(
            f"{route.namespace}/{route.name}: spec.traffic.gatewayAPI needs parentRefs (the "
            "Gateway to attach a route to) or httpRoute (an existing route to manage)"
        )
    metadata: dict[str, Any] = {
        "name": route.name,
        "namespace": route.namespace,
        "labels": object_labels(route.name),
    }
    if route.owner:
        metadata["ownerReferences"] = [route.owner]
    spec: dict[str, Any] = {
        "parentRefs": [build_parent_ref(parent) for parent in settings.parent_refs],
        "rules": [{"backendRefs": build_backend_refs(route.name, weight)}],
    }
    if settings.hostnames:
        spec["hostnames"] = list(settings.hostnames)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def managed_rules(http_route: dict[str, Any], name: str, namespace: str) -> list[int]:
    """Indexes of the rules whose backends are all this model's Services."""
    where = _describe(http_route)
    indexes = []
    for index, rule in enumerate((http_route.get("spec") or {}).get("rules") or []):
        refs = rule.get("backendRefs") or []
        ours = [_is_ours(ref, name, namespace) for ref in refs]
        if refs and all(ours):
            indexes.append(index)
        elif any(ours):
            foreign = [ref for ref, mine in zip(refs, ours, strict=True) if not mine]
            others = ", ".join(str(ref.get("name")) for ref in foreign)
            raise RouteError(
                f"{where} rule {index} sends traffic to {others} as well as to Service "
                f"{name}: Serinus splits only rules whose backends are all {name}; move the "
                "other backends to a rule of their own"
            )
    if not indexes:
        raise RouteError(
            f"{where} has no rule with a backendRef to Service {name}: point a rule's "
            f"backendRefs at Service {name}, port {SERVICE_PORT}, so Serinus can split it"
        )
    return indexes


def rules_with_weight(
    http_route: dict[str, Any], name: str, namespace: str, weight: int
) -> list[dict[str, Any]]:
    """The route's rules with this model's backends split at `weight`; the rest unchanged."""
    rules = copy.deepcopy((http_route.get("spec") or {}).get("rules") or [])
    for index in managed_rules(http_route, name, namespace):
        filters = rules[index]["backendRefs"][0].get("filters")
        rules[index]["backendRefs"] = build_backend_refs(name, weight, filters)
    return rules


def backend_weights(http_route: dict[str, Any], name: str, namespace: str) -> list[dict[str, int]]:
    """Per managed rule: the weight of each backend Service."""
    rules = (http_route.get("spec") or {}).get("rules") or []
    weights = []
    for index in managed_rules(http_route, name, namespace):
        per_service: dict[str, int] = {}
        for ref in rules[index]["backendRefs"]:
            weight = ref.get("weight", DEFAULT_BACKEND_WEIGHT)
            per_service[ref["name"]] = per_service.get(ref["name"], 0) + weight
        weights.append(per_service)
    return weights


class GatewayAPIRouter:
    """TrafficRouter for `traffic.provider: gateway-api`."""

    def __init__(self, kube: KubeObjects) -> None:
        self.kube = kube

    def set_weight(self, route: RouteContext, weight: int) -> int:
        check_weight(weight)
        canary = require_canary(route)
        _, stable_service, canary_service = service_names(route.name)
        if route.stable is not None:
            self._select(route, stable_service, route.stable)
        self._select(route, canary_service, canary)
        self._write(route, weight)
        return weight

    def promote(self, route: RouteContext) -> None:
        canary = require_canary(route)
        _, stable_service, canary_service = service_names(route.name)
        self._select(route, canary_service, canary)
        self._write(route, 100)
        self._select(route, stable_service, canary)
        self._write(route, 0)

    def observed_weight(self, route: RouteContext) -> int | None:
        if route.canary is None:
            return 0
        http_route = self.kube.get(API_VERSION, KIND, route.namespace, self._route_name(route))
        if http_route is None:
            return None
        try:
            rules = backend_weights(http_route, route.name, route.namespace)
        except RouteError:
            return None
        services = {service for per_service in rules for service in per_service}
        revisions = {service: self._revision(route, service) for service in services}
        if None in revisions.values():
            return None  # e.g. still pointing at Service {name}, which spans both revisions
        shares = set()
        for per_service in rules:
            total = sum(per_service.values())
            if total == 0:
                return None
            canary = sum(w for s, w in per_service.items() if revisions[s] == route.canary)
            shares.add(achieved_weight(canary, total - canary))
        return shares.pop() if len(shares) == 1 else None  # rules that disagree: no one weight

    def _write(self, route: RouteContext, weight: int) -> None:
        if _settings(route).http_route is None:
            apply_owned(self.kube, build_http_route(route, weight))
            return
        retry_on_conflict(lambda: self._write_user_route(route, weight))

    def _write_user_route(self, route: RouteContext, weight: int) -> None:
        name = self._route_name(route)
        http_route = self.kube.get(API_VERSION, KIND, route.namespace, name)
        if http_route is None:
            raise RouteError(
                f"HTTPRoute {route.namespace}/{name} not found: create it or remove "
                "traffic.gatewayAPI.httpRoute"
            )
        rules = rules_with_weight(http_route, route.name, route.namespace, weight)
        if rules == http_route["spec"]["rules"]:
            return
        patch_guarded(self.kube, http_route, API_VERSION, KIND, {"rules": rules})

    def _select(self, route: RouteContext, service: str, revision: str) -> None:
        selector = selector_for(route.name, revision)
        set_service_selector(self.kube, route.namespace, service, selector)

    def _revision(self, route: RouteContext, service: str) -> str | None:
        """The revision a Service selects; None when it selects no single revision."""
        found = self.kube.get("v1", "Service", route.namespace, service)
        selector = ((found or {}).get("spec") or {}).get("selector") or {}
        return selector.get(LABEL_REVISION)

    @staticmethod
    def _route_name(route: RouteContext) -> str:
        return _settings(route).http_route or route.name


def _settings(route: RouteContext) -> GatewayAPITraffic:
    settings = route.traffic.gateway_api
    if settings is None:
        raise RouteError(
            f"{route.namespace}/{route.name}: traffic.provider gateway-api needs "
            "traffic.gatewayAPI (httpRoute, or parentRefs for a route Serinus creates)"
        )
    return settings


def _is_ours(ref: dict[str, Any], name: str, namespace: str) -> bool:
    return (
        ref.get("kind", "Service") == "Service"
        and ref.get("group", "") in ("", "core")
        and ref.get("namespace", namespace) == namespace
        and ref.get("name") in service_names(name)
    )


def _describe(http_route: dict[str, Any]) -> str:
    metadata = http_route.get("metadata") or {}
    return f"HTTPRoute {metadata.get('namespace')}/{metadata.get('name')}"
