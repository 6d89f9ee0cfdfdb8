"""The `MetricsProvider` interface, what it measures, and where the runtime's metrics come from.

Drivers (the Kubernetes operator, local mode) ask a provider for an `AnalysisWindow` when the
engine says a check is due, and hand it to the judge. A provider never raises for a problem of
the world (unreachable Prometheus, a pod that does not answer, an empty result): it returns a
window with `error` set, which the judge turns into Inconclusive with that reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from serinus.api.spec import AnalysisMetric
from serinus.core.monitor_window import MonitorWindow
from serinus.core.window import AnalysisWindow


class AnalysisTarget(BaseModel):
    """Which runtime series belong to the canary and the stable version of one deployment."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="ModelDeployment name; the runtime's `model` label.")
    namespace: str | None = Field(
        default=None, description="Kubernetes namespace; None in local mode."
    )
    stable: str = Field(description="Stable revision (the runtime's `revision` label).")
    canary: str = Field(description="Canary revision.")
    custom: tuple[AnalysisMetric, ...] = Field(
        default=(), description="Metrics with a PromQL query, evaluated per variant."
    )


class MonitorTarget(BaseModel):
    """The stable revision of one deployment, as monitoring watches it."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="ModelDeployment name; the runtime's `model` label.")
    namespace: str | None = Field(
        default=None, description="Kubernetes namespace; None in local mode."
    )
    revision: str = Field(description="Stable revision (the runtime's `revision` label).")


class MetricsProvider(Protocol):
    def mark(self, target: AnalysisTarget) -> None:
        """A window starts now (the scrape provider takes its baseline sample)."""

    def window(self, target: AnalysisTarget, start: datetime, end: datetime) -> AnalysisWindow:
        """Both variants' increases between start and end. Never raises for a world problem."""

    def monitor(
        self, target: MonitorTarget, end: datetime, drift_seconds: int, label_seconds: int
    ) -> MonitorWindow:
        """The stable revision's inputs, predictions and integrity counters over the
        `drift_seconds` before `end`, feedback over the `label_seconds` before it, and the
        reference shares its runtime exposes. Never raises for a world problem."""

    def close(self) -> None:
        """Release connections."""


class ScrapeError(Exception):
    """A runtime's /metrics could not be read; the message says which and why."""


class MetricsSource(Protocol):
    """Where the scrape provider reads runtime /metrics from (pods via the API, or processes)."""

    def scrape(self, revision: str) -> dict[str, str]:
        """Exposition text of every ready pod (or process) of a revision, by a stable id
        (pod name, process port). Raises ScrapeError when none can be read."""
