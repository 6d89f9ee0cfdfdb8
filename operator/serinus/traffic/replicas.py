"""The `replicas` router (the default; no mesh): traffic split by pod counts.

One Service, `{name}`, load-balances over the ready pods it selects, so the canary's share is
its share of the pods: for `runtime.replicas` = T and weight w, the canary Deployment runs
ceil(T * w / 100) pods and the stable one the rest, and the router reports the weight that
split really gives (T=2, w=10 gives 50).

Weight 0 with a canary running (pre-traffic validation, rollback) is done with the Service's
selector, not with pod counts or pod labels: the canary keeps its pod for validation, and the
Service stops selecting it. The selector depends on the weight only:

    weight 0          serinus.dev/name + serinus.dev/revision: <stable>   only stable serves
    0 < weight < 100  serinus.dev/name                                     both serve, by pods
    weight 100        serinus.dev/name + serinus.dev/revision: <canary>   only canary serves

A Service selector change takes effect without restarting anything, whereas relabelling a pod
template (a `serving: "false"` label lifted at the first step) would roll the canary's pods
and throw away the pod that was just validated. So in this mode the router owns
`spec.selector` of the main Service: the operator creates it (preferably already with
`main_service_selector(...)`) and must not reset the selector afterwards. After promotion it
selects the new revision only, so the next canary's validation pod never gets traffic.

Pod counts: the canary's count is left alone at weight 0 (the operator's Deploy gives it
`PRE_TRAFFIC_REPLICAS` pod, its ScaleDown removes it; a repeated SetWeight(0) during a rollback
must not bring a scaled-down canary back). For 0 < w < 100 both sides keep at least one pod; with
T >= 2 the two add up to T, with T = 1 the split needs a second pod (achieved 50 %). Writes go
growing side first, then the selector, then the shrinking side, so pods are added before pods
are taken away. Weight 100 leaves the stable Deployment no pods, so a rollback from 100 serves
from stable pods as they start. At promotion the canary Deployment is scaled to T and the
Service selects it alone; the old stable Deployment keeps its pods (in-flight requests finish)
until the engine's ScaleDown after `rollout.scaleDownDelay`. The new version serves with the
pods it has while the rest start (the engine's Promoting phase waits for all of them); end the
steps with `setWeight: 100` to hand over at full size first.

`observed_weight` reads the Deployments' *ready* replica counts (status.readyReplicas), not
spec.replicas: a Service's endpoints are exactly its selected ready pods, so ready counts are
the split requests really see; spec counts are only what `set_weight` aims at (its return
value).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from serinus.traffic.kube_api import KubeObjects, RouteError, set_service_selector
from serinus.traffic.naming import deployment_name, selector_for, service_names
from serinus.traffic.router import RouteContext

PRE_TRAFFIC_REPLICAS = 1
"""Pods a canary Deployment starts with in replicas mode: enough to validate, no traffic."""


class ReplicaSplit(BaseModel):
    """Pod counts for one weight, and the weight they give."""

    model_config = ConfigDict(frozen=True)

    canary: int | None = Field(
        description="Canary Deployment replicas; None leaves them as they are (weight 0)."
    )
    stable: int = Field(ge=0, description="Stable Deployment replicas.")
    weight: int = Field(ge=0, le=100, description="Canary percent this split achieves.")


def check_weight(weight: int) -> None:
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be a percent between 0 and 100, got {weight}")


def achieved_weight(canary: int, stable: int) -> int:
    """Canary percent of the serving pods, rounded half up."""
    pods = canary + stable
    if pods <= 0:
        raise ValueError("no pods serve: the weight is undefined")
    return (200 * canary + pods) // (2 * pods)


def split_replicas(total: int, weight: int) -> ReplicaSplit:
    """Pods per side for `weight` percent to the canary out of `total` pods."""
    check_weight(weight)
    if total < 1:
        raise ValueError(f"total replicas must be at least 1, got {total}")
    if weight == 0:
        return ReplicaSplit(canary=None, stable=total, weight=0)
    if weight == 100:
        return ReplicaSplit(canary=total, stable=0, weight=100)
    canary = -(-total * weight // 100)
    if total >= 2:
        canary = min(canary, total - 1)  # stable keeps a pod while it still gets traffic
    stable = max(total - canary, 1)
    return ReplicaSplit(canary=canary, stable=stable, weight=achieved_weight(canary, stable))


def main_service_selector(
    name: str, stable: str | None, canary: str | None, weight: int
) -> dict[str, str]:
    """The main Service's selector for a state of the rollout (see the module docstring)."""
    check_weight(weight)
    if canary is None or (weight == 0 and stable is not None):
        return selector_for(name, stable)
    if weight == 100 or stable is None:
        return selector_for(name, canary)
    return selector_for(name)


class ReplicasRouter:
    """TrafficRouter for `traffic.provider: replicas`."""

    def __init__(self, kube: KubeObjects) -> None:
        self.kube = kube

    def set_weight(self, route: RouteContext, weight: int) -> int:
        check_weight(weight)
        canary = require_canary(route)
        if route.stable is None:
            # Nothing to split with: a first version serves alone (or, at 0, not at all yet).
            if weight == 0:
                return 0
            self._resize({canary: route.replicas}, route, selector_for(route.name, canary))
            return 100
        split = split_replicas(route.replicas, weight)
        targets = {route.stable: split.stable}
        if split.canary is not None:
            targets[canary] = split.canary
        selector = main_service_selector(route.name, route.stable, canary, weight)
        self._resize(targets, route, selector)
        return split.weight

    def promote(self, route: RouteContext) -> None:
        canary = require_canary(route)
        self._resize({canary: route.replicas}, route, selector_for(route.name, canary))

    def observed_weight(self, route: RouteContext) -> int | None:
        if route.canary is None:
            return 0
        main, _, _ = service_names(route.name)
        service = self.kube.get("v1", "Service", route.namespace, main)
        if service is None:
            return None
        selector = (service.get("spec") or {}).get("selector") or {}
        if route.stable is not None and selector == selector_for(route.name, route.stable):
            return 0
        if selector == selector_for(route.name, route.canary):
            return 100
        if selector != selector_for(route.name):
            return None  # edited by someone else: the split cannot be told
        canary_ready = self._ready(route, route.canary)
        stable_ready = self._ready(route, route.stable) if route.stable else 0
        if canary_ready + stable_ready == 0:
            return None
        return achieved_weight(canary_ready, stable_ready)

    def _resize(self, targets: dict[str, int], route: RouteContext, selector: dict) -> None:
        """Scale up, switch the selector, then scale down: capacity first, removal last."""
        current = {revision: self._replicas(route, revision) for revision in targets}
        for revision, replicas in targets.items():
            if replicas > current[revision]:
                self.kube.scale(route.namespace, deployment_name(route.name, revision), replicas)
        main, _, _ = service_names(route.name)
        set_service_selector(self.kube, route.namespace, main, selector)
        for revision, replicas in targets.items():
            if replicas < current[revision]:
                self.kube.scale(route.namespace, deployment_name(route.name, revision), replicas)

    def _deployment(self, route: RouteContext, revision: str) -> dict | None:
        name = deployment_name(route.name, revision)
        return self.kube.get("apps/v1", "Deployment", route.namespace, name)

    def _replicas(self, route: RouteContext, revision: str) -> int:
        deployment = self._deployment(route, revision)
        if deployment is None:
            name = deployment_name(route.name, revision)
            raise RouteError(
                f"Deployment {route.namespace}/{name} not found: the operator creates it "
                "before traffic moves; it will be retried"
            )
        return int((deployment.get("spec") or {}).get("replicas", 1))

    def _ready(self, route: RouteContext, revision: str) -> int:
        deployment = self._deployment(route, revision)
        if deployment is None:
            return 0
        return int((deployment.get("status") or {}).get("readyReplicas") or 0)


def require_canary(route: RouteContext) -> str:
    if route.canary is None:
        raise ValueError(f"{route.namespace}/{route.name}: no canary revision to route to")
    return route.canary
