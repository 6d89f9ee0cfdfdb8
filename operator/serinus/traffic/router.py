"""The `TrafficRouter` interface: one implementation per `spec.traffic.provider`.

Routers carry out the engine's SetWeight and Promote actions. Each reports the weight it
actually achieved (the `replicas` router can only split by whole pods), which the engine records
in `status.canary.weight`.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from serinus.api.spec import TrafficSpec


class RouteContext(BaseModel):
    """What a router needs to know about one deployment."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str = Field(description="ModelDeployment name.")
    namespace: str = Field(default="default", description="Namespace of the deployment.")
    stable: str | None = Field(description="Stable revision; None before the first promotion.")
    canary: str | None = Field(description="Canary revision; None outside a rollout.")
    replicas: int = Field(ge=1, description="spec.runtime.replicas: total pods to serve with.")
    traffic: TrafficSpec = Field(description="spec.traffic.")
    owner: dict[str, Any] | None = Field(
        default=None, description="ownerReference to the ModelDeployment for created objects."
    )


class TrafficRouter(Protocol):
    def set_weight(self, route: RouteContext, weight: int) -> int:
        """Send `weight` percent to the canary; returns the weight achieved."""

    def promote(self, route: RouteContext) -> None:
        """All traffic to `route.canary`, which becomes the stable version."""

    def observed_weight(self, route: RouteContext) -> int | None:
        """The canary weight in effect now, or None when it cannot be told."""
