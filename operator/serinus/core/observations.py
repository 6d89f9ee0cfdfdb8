"""What a driver saw of the world, handed to the engine each tick."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from serinus.api.status import ActionKind
from serinus.core.judge import AnalysisOutcome
from serinus.core.monitor import MonitoringReport


class ManualAction(BaseModel):
    """A request from the `serinus.dev/action` annotation: `<action>/<nonce>`."""

    model_config = ConfigDict(frozen=True)

    action: str
    nonce: str

    @property
    def kind(self) -> ActionKind | None:
        try:
            return ActionKind(self.action)
        except ValueError:
            return None


def parse_action(value: str | None) -> ManualAction | None:
    """`promote/4f2a` → ManualAction. A value without a nonce still acts once, keyed by itself."""
    if not value or not value.strip():
        return None
    action, _, nonce = value.strip().partition("/")
    return ManualAction(action=action.strip().lower(), nonce=nonce.strip() or value.strip())


class ValidationOutcome(BaseModel):
    """The finished pre-traffic validation of one revision."""

    model_config = ConfigDict(frozen=True)

    revision: str
    passed: bool
    message: str


class MonitorObservation(BaseModel):
    """A monitoring check the driver ran because `monitoring_due` said so."""

    model_config = ConfigDict(frozen=True)

    revision: str
    end: datetime
    drift_seconds: float
    report: MonitoringReport


class RetrainOutcome(BaseModel):
    """The retraining Job (or local command) named `job` has finished."""

    model_config = ConfigDict(frozen=True)

    job: str
    succeeded: bool
    message: str
    """Why it failed, or how it ended, in a sentence."""
    result: Any = None
    """The Job's termination message parsed as JSON (None when it wrote none, or no JSON)."""


class Observations(BaseModel):
    """Everything the engine may look at besides spec, status and the clock."""

    model_config = ConfigDict(frozen=True)

    generation: int | None = None
    ready_replicas: Mapping[str, int] = Field(default_factory=dict)
    """Ready pods per revision; a revision missing from the map has none."""
    weight: int | None = None
    """Canary weight the traffic router reports as achieved; None when it cannot tell."""
    analysis: AnalysisOutcome | None = None
    """A check the driver ran this tick because `analysis_due` said so."""
    validation: ValidationOutcome | None = None
    action: ManualAction | None = None
    monitoring: MonitorObservation | None = None
    retrain: RetrainOutcome | None = None
