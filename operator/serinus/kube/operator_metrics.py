"""The operator's own /metrics: rollouts by result, verdicts by metric, weight and phase,
notifications by target and result."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

from serinus.api.status import ModelDeploymentStatus, Phase

ROLLOUTS_TOTAL = "serinus_operator_rollouts_total"
VERDICTS_TOTAL = "serinus_operator_analysis_verdicts_total"
CANARY_WEIGHT = "serinus_operator_canary_weight"
PHASE = "serinus_operator_phase"
NOTIFICATIONS_TOTAL = "serinus_operator_notifications_total"


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rollouts = Counter(
            ROLLOUTS_TOTAL,
            "Finished rollouts by result (Promoted, RolledBack, Failed, Aborted, Superseded).",
            ["namespace", "name", "result"],
            registry=self.registry,
        )
        self.verdicts = Counter(
            VERDICTS_TOTAL,
            "Analysis verdicts by metric and verdict (Pass, Fail, Inconclusive).",
            ["namespace", "name", "metric", "verdict"],
            registry=self.registry,
        )
        self.weight = Gauge(
            CANARY_WEIGHT,
            "Canary traffic percent in effect (0 outside a rollout).",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.phase = Gauge(
            PHASE,
            "1 for the ModelDeployment's current phase, 0 for the others.",
            ["namespace", "name", "phase"],
            registry=self.registry,
        )
        self.notifications = Counter(
            NOTIFICATIONS_TOTAL,
            "Notifications by target name and result (delivered, failed, rejected, unresolved, "
            "dropped).",
            ["target", "result"],
            registry=self.registry,
        )

    def record(
        self,
        namespace: str,
        name: str,
        before: ModelDeploymentStatus,
        after: ModelDeploymentStatus,
    ) -> None:
        """Count what this tick added (new history entries, new checks) and set the gauges."""
        for entry in _new(before.history, after.history):
            self.rollouts.labels(namespace, name, entry.result.value).inc()
        for check in _new(before.analysis.checks, after.analysis.checks):
            for metric in check.metrics:
                self.verdicts.labels(namespace, name, metric.name, metric.verdict.value).inc()
        self.weight.labels(namespace, name).set(after.canary.weight if after.canary else 0)
        for phase in Phase:
            self.phase.labels(namespace, name, phase.value).set(int(after.phase == phase))

    def notification(self, target: str, result: str) -> None:
        """One notification's outcome (called from the notifier's worker threads)."""
        self.notifications.labels(target, result).inc()

    def forget(self, namespace: str, name: str) -> None:
        series = [(self.weight, (namespace, name))]
        series += [(self.phase, (namespace, name, phase.value)) for phase in Phase]
        for gauge, labels in series:
            with contextlib.suppress(KeyError):  # a series never set
                gauge.remove(*labels)


def _new(before: list, after: list) -> list:
    """Entries of `after` (a capped, append-only list) that `before` did not have."""
    if not before:
        return list(after)
    last = before[-1]
    for index in range(len(after) - 1, -1, -1):
        if after[index] == last:
            return after[index + 1 :]
    return list(after)
