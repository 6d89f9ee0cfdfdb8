"""One monitoring check through a provider, for both drivers: read the window, assess it."""

from __future__ import annotations

from datetime import datetime

from serinus.api.spec import ModelDeploymentSpec
from serinus.core.aftercare import monitoring_windows
from serinus.core.monitor import assess
from serinus.core.observations import MonitorObservation
from serinus.metrics.provider import MetricsProvider, MonitorTarget


def observe_monitoring(
    provider: MetricsProvider, target: MonitorTarget, spec: ModelDeploymentSpec, now: datetime
) -> MonitorObservation:
    """The stable revision's monitoring window ending `now`, judged by the monitor."""
    drift_seconds, label_seconds = monitoring_windows(spec)
    window = provider.monitor(target, now, drift_seconds, label_seconds)
    return MonitorObservation(
        revision=target.revision,
        end=now,
        drift_seconds=window.drift_seconds,
        report=assess(spec.monitoring, window),
    )
