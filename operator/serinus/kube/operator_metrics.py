"""The operator's own /metrics: rollouts by result, verdicts by metric, weight and phase,
notifications by target and result, monitoring values and alarms of the stable version, and
retraining Jobs by result. The chart's alert rules read the monitoring alarm gauge, so an alert
fires exactly when the operator's own check (with the ModelDeployment's thresholds) fails."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

from serinus.api.status import ModelDeploymentStatus, Phase

ROLLOUTS_TOTAL = "serinus_operator_rollouts_total"
VERDICTS_TOTAL = "serinus_operator_analysis_verdicts_total"
CANARY_WEIGHT = "serinus_operator_canary_weight"
PHASE = "serinus_operator_phase"
NOTIFICATIONS_TOTAL = "serinus_operator_notifications_total"
MONITOR_ALARM = "serinus_operator_monitoring_alarm"
MONITOR_VALUE = "serinus_operator_monitoring_value"
FEATURE_PSI = "serinus_operator_feature_psi"
RETRAINS_TOTAL = "serinus_operator_retrains_total"
MONITOR_CHECKS = ("input-drift", "prediction-drift", "integrity", "accuracy")


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
        self.alarm = Gauge(
            MONITOR_ALARM,
            "1 while a monitoring check of the stable version has its alarm raised (input-drift, "
            "prediction-drift, integrity, accuracy), else 0.",
            ["namespace", "name", "check"],
            registry=self.registry,
        )
        self.monitored = Gauge(
            MONITOR_VALUE,
            "The last value a monitoring check measured (largest feature PSI, prediction PSI, "
            "worst integrity share, accuracy/F1/MAE/RMSE).",
            ["namespace", "name", "check"],
            registry=self.registry,
        )
        self.feature_psi = Gauge(
            FEATURE_PSI,
            "PSI of the top drifting input features against the reference profile.",
            ["namespace", "name", "feature"],
            registry=self.registry,
        )
        self._features: dict[tuple[str, str], set[str]] = {}
        self.retrains = Counter(
            RETRAINS_TOTAL,
            "Retraining Jobs by result (started, succeeded, failed).",
            ["namespace", "name", "result"],
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
        self._monitoring(namespace, name, before, after)

    def _monitoring(
        self,
        namespace: str,
        name: str,
        before: ModelDeploymentStatus,
        after: ModelDeploymentStatus,
    ) -> None:
        monitoring = after.monitoring
        for check in MONITOR_CHECKS:
            raised = monitoring is not None and check in monitoring.alarms
            self.alarm.labels(namespace, name, check).set(int(raised))
        if monitoring is not None and monitoring != before.monitoring:
            for result in monitoring.results:
                if result.value is not None:
                    self.monitored.labels(namespace, name, result.name).set(result.value)
            shown = {drift.feature for drift in monitoring.top_drifters}
            for gone in self._features.get((namespace, name), set()) - shown:
                self.feature_psi.remove(namespace, name, gone)
            self._features[(namespace, name)] = shown
            for drift in monitoring.top_drifters:
                self.feature_psi.labels(namespace, name, drift.feature).set(drift.psi)
        started_before = before.retrain.started_at if before.retrain else None
        if after.retrain is not None:
            if after.retrain.started_at != started_before and after.retrain.running:
                self.retrains.labels(namespace, name, "started").inc()
            ended_before = before.retrain.last_result if before.retrain else None
            if after.retrain.last_result and after.retrain.last_result != ended_before:
                ended = after.retrain.last_result.split(":", 1)[0]
                result = "succeeded" if ended.endswith(" succeeded") else "failed"
                self.retrains.labels(namespace, name, result).inc()

    def notification(self, target: str, result: str) -> None:
        """One notification's outcome (called from the notifier's worker threads)."""
        self.notifications.labels(target, result).inc()

    def forget(self, namespace: str, name: str) -> None:
        series = [(self.weight, (namespace, name))]
        series += [(self.phase, (namespace, name, phase.value)) for phase in Phase]
        series += [(self.alarm, (namespace, name, check)) for check in MONITOR_CHECKS]
        series += [(self.monitored, (namespace, name, check)) for check in MONITOR_CHECKS]
        series += [
            (self.feature_psi, (namespace, name, feature))
            for feature in self._features.pop((namespace, name), set())
        ]
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
