"""After promotion: monitoring state, alarms and retraining, as one step of `decide`. Pure.

`aftercare(spec, status, observations, now)` updates the status in place and returns the
actions: Events when an alarm is raised or clears, `StartRetrain` when an alarm is one of
`spec.retrain.triggers` and the cooldown has passed, `SetModel` when a retrained model arrives
and `autoDeploy` is on. The stable version is never touched here: a candidate goes through the
normal validation and canary rollout, and a failing Job only leaves an Event and a sentence.

Monitoring runs while the phase is Stable (a rollout pauses it); a new stable version starts
it afresh. Drivers ask `monitoring_due` each tick, run the check (`serinus.core.monitor`) and
hand the report back as an observation; they poll a running Job and hand back its outcome.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from serinus.api.spec import ModelDeploymentSpec, RetrainTrigger
from serinus.api.status import (
    ConditionStatus,
    ModelDeploymentStatus,
    MonitoringStatus,
    MonitorResult,
    Phase,
    RetrainCandidate,
    RetrainStatus,
    Verdict,
)
from serinus.api.types import parse_duration
from serinus.core.actions import Action, EmitEvent, SetModel, StartRetrain
from serinus.core.conditions import DRIFTED, RETRAIN_CANDIDATE, set_condition
from serinus.core.monitor import ACCURACY, INPUT_DRIFT, INTEGRITY, PREDICTION_DRIFT
from serinus.core.observations import MonitorObservation, Observations, RetrainOutcome

TRIGGER_CHECK = {
    RetrainTrigger.INPUT_DRIFT: INPUT_DRIFT,
    RetrainTrigger.PREDICTION_DRIFT: PREDICTION_DRIFT,
    RetrainTrigger.ACCURACY: ACCURACY,
}
ALARM_REASON = {
    INPUT_DRIFT: "InputDrift",
    PREDICTION_DRIFT: "PredictionDrift",
    ACCURACY: "AccuracyLow",
    INTEGRITY: "IntegrityLow",
}
"""The Event reason (and condition reason) of each check's alarm."""
CLEARED_REASON = {
    INPUT_DRIFT: "InputDriftCleared",
    PREDICTION_DRIFT: "PredictionDriftCleared",
    ACCURACY: "AccuracyRecovered",
    INTEGRITY: "IntegrityRecovered",
}
DRIFT_CHECKS = (INPUT_DRIFT, PREDICTION_DRIFT)
_SHA256 = re.compile(r"[0-9a-f]{64}")
RESULT_HELP = (
    'write one JSON object {"uri": ..., "sha256": ..., "version": ...} to the file named by '
    "SERINUS_RESULT_FILE (the termination message)"
)


def monitoring_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
    """A monitoring check of the stable version is due now."""
    monitoring = status.monitoring
    return (
        spec.monitoring.enabled
        and status.phase == Phase.STABLE
        and status.stable is not None
        and monitoring is not None
        and monitoring.revision == status.stable.revision
        and now >= monitoring.next_check_at
    )


def monitoring_windows(spec: ModelDeploymentSpec) -> tuple[int, int]:
    """(drift window, label window) in whole seconds."""
    drift = int(parse_duration(spec.monitoring.interval).total_seconds())
    accuracy = spec.monitoring.accuracy
    labels = int(parse_duration(accuracy.window).total_seconds()) if accuracy else drift
    return max(drift, 1), max(labels, 1)


def retrain_running(status: ModelDeploymentStatus) -> str | None:
    """The id of the retraining Job the driver should watch, if one runs."""
    return status.retrain.running if status.retrain is not None else None


def next_check(status: ModelDeploymentStatus) -> datetime | None:
    """When monitoring next wants a tick (for the engine's `next_tick`)."""
    if status.phase != Phase.STABLE or status.monitoring is None:
        return None
    return status.monitoring.next_check_at


def aftercare(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observations: Observations,
    now: datetime,
) -> list[Action]:
    """Monitoring and retraining for one tick; `status` is updated in place."""
    care = _Care(spec, status, now, observations.generation)
    care.follow_stable()
    if observations.monitoring is not None:
        care.record(observations.monitoring)
    if observations.retrain is not None:
        care.finished(observations.retrain)
    care.candidate_condition()
    return care.actions


class _Care:
    def __init__(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        now: datetime,
        generation: int | None,
    ) -> None:
        self.spec = spec
        self.status = status
        self.now = now
        self.generation = generation
        self.actions: list[Action] = []
        self.interval = parse_duration(spec.monitoring.interval)

    def emit(self, reason: str, message: str, warning: bool = False) -> None:
        self.actions.append(
            EmitEvent(type="Warning" if warning else "Normal", reason=reason, message=message)
        )

    def condition(self, type_: str, truth: bool, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions,
            type_,
            ConditionStatus.TRUE if truth else ConditionStatus.FALSE,
            reason,
            message,
            self.now,
            self.generation,
        )

    # --- monitoring ----------------------------------------------------------------------

    def follow_stable(self) -> None:
        """A new stable version (or monitoring just switched on) starts monitoring afresh."""
        stable = self.status.stable
        if not self.spec.monitoring.enabled or stable is None:
            if self.status.monitoring is not None:
                self.status.monitoring = None
                self.condition(DRIFTED, False, "NotMonitored", "monitoring is off")
            return
        current = self.status.monitoring
        if current is not None and current.revision == stable.revision:
            return
        first = self.now + self.interval
        self.status.monitoring = MonitoringStatus(revision=stable.revision, next_check_at=first)
        name = stable.version or stable.revision
        self.condition(
            DRIFTED, False, "NotCheckedYet",
            f"version {name} is monitored from now; first check at {first:%H:%M:%S} UTC",
        )  # fmt: skip

    def record(self, seen: MonitorObservation) -> None:
        monitoring = self.status.monitoring
        if monitoring is None or seen.revision != monitoring.revision:
            return  # a check of a version that is no longer stable
        report = seen.report
        before = set(monitoring.alarms)
        alarms = [r.name for r in report.results if r.verdict == Verdict.FAIL]
        # Too little data never raises an alarm, and never clears one either.
        kept = [
            r.name for r in report.results if r.verdict == Verdict.INCONCLUSIVE and r.name in before
        ]
        monitoring.alarms = sorted({*alarms, *kept})
        monitoring.results = report.results
        monitoring.top_drifters = report.top_drifters or monitoring.top_drifters
        monitoring.rows = report.rows
        monitoring.last_check_at = seen.end
        monitoring.next_check_at = seen.end + self.interval
        by_name = {r.name: r for r in report.results}
        for name in alarms:
            if name not in before:
                self.emit(ALARM_REASON[name], by_name[name].reason, warning=True)
        for name in sorted(before - set(monitoring.alarms)):
            if name in by_name:
                self.emit(CLEARED_REASON[name], by_name[name].reason)
        self.drifted_condition(by_name, monitoring.alarms)
        self.maybe_retrain(seen, [by_name[n] for n in alarms], newly=set(alarms) - before)

    def drifted_condition(self, by_name: dict[str, MonitorResult], alarms: list[str]) -> None:
        drifts = [by_name[n] for n in DRIFT_CHECKS if n in alarms and n in by_name]
        if drifts:
            reason = ALARM_REASON[drifts[0].name]
            self.condition(DRIFTED, True, reason, "; ".join(r.reason for r in drifts))
            return
        if any(n in alarms for n in DRIFT_CHECKS):
            return  # raised earlier, too little data now: unchanged
        judged = [by_name[n] for n in DRIFT_CHECKS if n in by_name]
        if any(r.verdict == Verdict.PASS for r in judged):
            self.condition(DRIFTED, False, "NoDrift", "; ".join(r.reason for r in judged))
        elif judged:
            self.condition(DRIFTED, False, "TooLittleData", "; ".join(r.reason for r in judged))
        else:  # both drift checks switched off: an alarm raised before is no longer watched
            self.condition(DRIFTED, False, "NotChecked", "no drift check is enabled")

    # --- retraining ----------------------------------------------------------------------

    def maybe_retrain(
        self, seen: MonitorObservation, failed: list[MonitorResult], newly: set[str]
    ) -> None:
        retrain = self.spec.retrain
        stable = self.status.stable
        if retrain is None or stable is None:
            return
        triggers = {TRIGGER_CHECK[t] for t in retrain.triggers}
        firing = [r for r in failed if r.name in triggers]
        if not firing:
            return
        state = self.status.retrain or RetrainStatus()
        self.status.retrain = state
        if state.running is not None:
            return
        cooldown = parse_duration(retrain.cooldown)
        if state.started_at is not None and self.now < state.started_at + cooldown:
            if any(r.name in newly for r in firing):  # said once per alarm, not every check
                until = state.started_at + cooldown
                self.emit(
                    "RetrainSkipped",
                    f"{firing[0].name} alarm, but the last retraining started at "
                    f"{state.started_at:%Y-%m-%d %H:%M:%S} UTC: cooldown "
                    f"{retrain.cooldown} lasts until {until:%Y-%m-%d %H:%M:%S} UTC",
                )
            return
        trigger = firing[0]
        job = f"retrain-{self.now:%Y%m%d-%H%M%S}"
        start = seen.end - timedelta(seconds=seen.drift_seconds)
        state.running, state.trigger, state.reason = job, trigger.name, trigger.reason
        state.started_at, state.window_start, state.window_end = self.now, start, seen.end
        self.actions.append(
            StartRetrain(
                job=job, trigger=trigger.name, reason=trigger.reason, model_uri=stable.uri,
                model_sha256=stable.sha256, model_version=stable.version,
                window_start=start, window_end=seen.end,
            )
        )  # fmt: skip
        self.emit("RetrainStarted", f"started retraining ({job}) on {trigger.reason}")

    def finished(self, outcome: RetrainOutcome) -> None:
        state = self.status.retrain
        if state is None or state.running != outcome.job:
            return
        state.running = None
        if not outcome.succeeded:
            self.retrain_failed(outcome.job, outcome.message)
            return
        candidate = _candidate(outcome.result)
        if isinstance(candidate, str):
            self.retrain_failed(outcome.job, candidate)
            return
        uri, sha256, version = candidate
        state.candidate = RetrainCandidate(
            uri=uri, sha256=sha256, version=version, job=outcome.job, at=self.now
        )
        state.last_result = f"{outcome.job} succeeded: retrained model at {uri}"
        named = f"version {version} at {uri}" if version else uri
        if self.spec.retrain is not None and self.spec.retrain.auto_deploy:
            state.candidate.deployed = True
            self.actions.append(SetModel(uri=uri, sha256=sha256, version=version))
            self.emit(
                "RetrainCandidate",
                f"{outcome.job} produced {named}: autoDeploy sets it as spec.model; it is "
                "validated and rolled out as a canary like any new version",
            )
            return
        self.emit(
            "RetrainCandidate",
            f"{outcome.job} produced {named}, waiting: set spec.model.uri to it (and sha256 "
            f"{sha256 or '-'}) to roll it out, or enable retrain.autoDeploy",
        )

    def retrain_failed(self, job: str, why: str) -> None:
        assert self.status.retrain is not None
        self.status.retrain.last_result = f"{job} failed: {why}"
        stable = self.status.stable
        keeps = f"; version {stable.version or stable.revision} keeps serving" if stable else ""
        self.emit("RetrainFailed", f"retraining {job} failed: {why}{keeps}", warning=True)

    def candidate_condition(self) -> None:
        state = self.status.retrain
        candidate = state.candidate if state is not None else None
        if candidate is None:
            return
        if candidate.uri == self.spec.model.uri:
            self.condition(
                RETRAIN_CANDIDATE, False, "Deployed",
                f"the retrained model from {candidate.job} is spec.model",
            )  # fmt: skip
            return
        if candidate.deployed:
            return  # SetModel is under way; the spec follows
        self.condition(
            RETRAIN_CANDIDATE, True, "Waiting",
            f"{candidate.job} produced {candidate.uri} (sha256 {candidate.sha256 or '-'}): set "
            "spec.model to it to roll it out",
        )  # fmt: skip


def _candidate(result: Any) -> tuple[str, str | None, str | None] | str:
    """(uri, sha256, version) from a Job's result, or why it is not one."""
    if not isinstance(result, dict):
        return f"its result is not a JSON object: {RESULT_HELP}"
    uri, sha256, version = result.get("uri"), result.get("sha256"), result.get("version")
    if not isinstance(uri, str) or not uri.strip():
        return f'its result has no "uri": {RESULT_HELP}'
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.fullmatch(sha256)):
        return f'its result\'s "sha256" is not 64 lowercase hex digits: {sha256!r}'
    if version is not None and not isinstance(version, str | int | float):
        return f'its result\'s "version" is not a string: {version!r}'
    return uri.strip(), sha256, str(version) if version is not None else None
