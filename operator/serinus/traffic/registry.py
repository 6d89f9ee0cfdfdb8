"""Routers by `spec.traffic.provider` (the shape of Flagger's pkg/router factory)."""

from __future__ import annotations

from collections.abc import Callable

from serinus.api.spec import TrafficProvider, TrafficSpec
from serinus.traffic.gateway_api import GatewayAPIRouter
from serinus.traffic.istio import IstioRouter
from serinus.traffic.kube_api import KubeObjects
from serinus.traffic.replicas import ReplicasRouter
from serinus.traffic.router import TrafficRouter

ROUTERS: dict[str, Callable[[KubeObjects], TrafficRouter]] = {
    TrafficProvider.REPLICAS.value: ReplicasRouter,
    TrafficProvider.GATEWAY_API.value: GatewayAPIRouter,
    TrafficProvider.ISTIO.value: IstioRouter,
}


def router_for(traffic: TrafficSpec, kube: KubeObjects) -> TrafficRouter:
    """The router for `traffic.provider`, talking to Kubernetes through `kube`."""
    provider = str(traffic.provider)
    try:
        make = ROUTERS[provider]
    except KeyError:
        known = ", ".join(sorted(ROUTERS))
        raise ValueError(f"unknown traffic.provider {provider!r}: use one of {known}") from None
    return make(kube)
