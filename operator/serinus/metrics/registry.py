"""`provider_for(analysis, source)`: the metrics provider named by `analysis.provider`.

One factory per provider name, like Flagger's pkg/metrics/providers. A driver keeps the provider
it gets for as long as the analysis settings stay the same: the scrape provider's kept samples
are the baselines of its next windows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from serinus.api.spec import AnalysisProvider, AnalysisSpec
from serinus.core.monitor_window import MonitorWindow
from serinus.core.window import AnalysisWindow
from serinus.metrics.prometheus import PrometheusProvider
from serinus.metrics.provider import (
    AnalysisTarget,
    MetricsProvider,
    MetricsSource,
    MonitorTarget,
)
from serinus.metrics.scrape import ScrapeProvider

ProviderFactory = Callable[[AnalysisSpec, MetricsSource | None], MetricsProvider]


NO_PROMETHEUS = (
    "analysis.provider is prometheus but no address is known: set "
    "spec.rollout.analysis.prometheus.address, or the operator's default (chart value "
    "prometheus.address, environment SERINUS_PROMETHEUS_ADDRESS)"
)


class UnconfiguredProvider:
    """A provider that cannot measure: every window is an error, so every check is
    Inconclusive with the reason — never a Pass, and the stable version keeps serving; every
    monitoring window too, so monitoring raises no alarm."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def mark(self, target: AnalysisTarget) -> None:
        pass

    def window(self, target: AnalysisTarget, start: datetime, end: datetime) -> AnalysisWindow:
        seconds = max((end - start).total_seconds(), 0.001)
        return AnalysisWindow(error=self.reason, interval_seconds=seconds)

    def monitor(
        self, target: MonitorTarget, end: datetime, drift_seconds: int, label_seconds: int
    ) -> MonitorWindow:
        return MonitorWindow(
            error=self.reason,
            drift_seconds=max(drift_seconds, 0.001),
            label_seconds=max(label_seconds, 0.001),
        )

    def close(self) -> None:
        pass


def _prometheus(analysis: AnalysisSpec, _source: MetricsSource | None) -> MetricsProvider:
    if analysis.prometheus is None:
        return UnconfiguredProvider(NO_PROMETHEUS)
    return PrometheusProvider(analysis.prometheus.address)


def _scrape(_analysis: AnalysisSpec, source: MetricsSource | None) -> MetricsProvider:
    if source is None:
        raise ValueError(
            "analysis.provider scrape needs a metrics source (the runtime pods or processes) "
            "to read from"
        )
    return ScrapeProvider(source)


PROVIDERS: dict[str, ProviderFactory] = {
    AnalysisProvider.PROMETHEUS.value: _prometheus,
    AnalysisProvider.SCRAPE.value: _scrape,
}


def provider_for(analysis: AnalysisSpec, source: MetricsSource | None) -> MetricsProvider:
    """A new provider for `analysis`. Raises ValueError when its settings are incomplete
    (which the CRD's rules already reject)."""
    factory = PROVIDERS.get(str(analysis.provider))
    if factory is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown analysis.provider {analysis.provider!r}; known: {known}")
    return factory(analysis, source)
