"""What the engine asks the world to do. Drivers (Kubernetes, local mode) carry these out.

Contract for drivers: apply every action of a decision, in order, before persisting the new
status; if an action fails, persist nothing and decide again on the next tick. Every action is
idempotent, so repeating a decision after a crash is safe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from serinus.api.status import ModelDeploymentStatus


class _Action(BaseModel):
    model_config = ConfigDict(frozen=True)


class Deploy(_Action):
    """Start (or keep) the pods of the spec's current revision, as the canary."""

    kind: Literal["deploy"] = "deploy"
    revision: str


class SetWeight(_Action):
    """Send `weight` percent of requests to the canary revision, the rest to stable."""

    kind: Literal["setWeight"] = "setWeight"
    canary: str
    stable: str | None
    weight: int


class RunValidation(_Action):
    """Run pre-traffic validation (smoke requests, dataset gate) against the revision."""

    kind: Literal["runValidation"] = "runValidation"
    revision: str


class Promote(_Action):
    """Make `revision` the stable version: it takes all traffic and the full replica count."""

    kind: Literal["promote"] = "promote"
    revision: str
    previous: str | None


class ScaleDown(_Action):
    """Remove the pods of a revision (canary after rollback, old stable after promotion)."""

    kind: Literal["scaleDown"] = "scaleDown"
    revision: str


class EmitEvent(_Action):
    """A Kubernetes Event (or a line in local mode's log)."""

    kind: Literal["event"] = "event"
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


class StartRetrain(_Action):
    """Start the retraining Job (`spec.retrain.jobTemplate`) named after `job`, with these
    facts in its environment."""

    kind: Literal["startRetrain"] = "startRetrain"
    job: str
    trigger: str
    reason: str
    model_uri: str
    model_sha256: str | None
    model_version: str | None
    window_start: datetime
    window_end: datetime


class SetModel(_Action):
    """Set spec.model to a retrained model (autoDeploy): the normal rollout follows."""

    kind: Literal["setModel"] = "setModel"
    uri: str
    sha256: str | None
    version: str | None


Action = (
    Deploy | SetWeight | RunValidation | Promote | ScaleDown | EmitEvent | StartRetrain | SetModel
)


class Decision(BaseModel):
    """The engine's answer for one tick."""

    status: ModelDeploymentStatus
    actions: list[Action]
    next_tick: datetime | None = None
    """The latest time the engine wants to be asked again (a due check, a pause's end...)."""
