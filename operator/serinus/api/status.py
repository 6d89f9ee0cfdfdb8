"""The observed state of a ModelDeployment: what the engine writes.

The engine is resumable from this alone: everything a rollout needs to continue after a restart
(step, weights, timers, counters, acknowledged actions) lives here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from serinus.api.types import ApiModel

HISTORY_LIMIT = 10
CHECKS_LIMIT = 10


class Phase(StrEnum):
    PENDING = "Pending"
    VALIDATING = "Validating"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    STABLE = "Stable"
    FAILED = "Failed"
    DEGRADED = "Degraded"


ROLLOUT_PHASES = frozenset(
    {Phase.VALIDATING, Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING, Phase.ROLLING_BACK}
)
"""Phases in which a canary exists and the engine is moving traffic."""


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


class RevisionRef(ApiModel):
    """One version of the model as deployed: its revision hash and model identity."""

    revision: str = Field(description="Hash of the pod-affecting fields (model, runtime).")
    version: str | None = Field(default=None, description="spec.model.version of the revision.")
    uri: str = Field(description="Model URI of the revision.")
    sha256: str | None = Field(default=None, description="Expected model digest, if given.")


class StableStatus(RevisionRef):
    """The version serving traffic outside a rollout."""

    since: datetime | None = Field(default=None, description="When it became stable.")


class PauseCause(StrEnum):
    SPEC = "Spec"
    MANUAL = "Manual"
    STEP = "Step"
    FAILURES = "Failures"
    INCONCLUSIVE = "Inconclusive"


class CanaryStatus(RevisionRef):
    """The version being rolled out."""

    weight: int = Field(default=0, ge=0, le=100, description="Canary traffic percent, achieved.")
    desired_weight: int = Field(
        default=0, ge=0, le=100, description="Canary traffic percent the steps ask for."
    )
    step: int = Field(default=0, ge=0, description="Index of the current rollout step.")
    step_started_at: datetime | None = Field(
        default=None, description="When the current step began."
    )
    started_at: datetime = Field(description="When this rollout began.")
    ready_since: datetime | None = Field(
        default=None, description="When the canary pods were first seen ready."
    )
    validation_started_at: datetime | None = Field(
        default=None, description="When pre-traffic validation was started."
    )
    passes_in_step: int = Field(
        default=0, ge=0, description="Passing checks counted in the current analysis step."
    )
    validated: bool = Field(default=False, description="Pre-traffic validation passed.")
    unready_since: datetime | None = Field(
        default=None, description="When the canary was last seen without ready pods."
    )
    paused_by: PauseCause | None = Field(
        default=None,
        description="What holds the rollout: Spec, Manual, Step, Failures, Inconclusive.",
    )
    paused_reason: str | None = Field(
        default=None, description="Why the rollout holds, when it does."
    )
    finish_reason: str | None = Field(
        default=None, description="Why the rollout is ending (promotion or rollback)."
    )


class MetricResult(ApiModel):
    """The judge's verdict on one metric in one check."""

    name: str = Field(description="Metric name.")
    verdict: Verdict = Field(description="Pass, Fail or Inconclusive.")
    canary: float | None = Field(default=None, description="Canary value over the window.")
    stable: float | None = Field(default=None, description="Stable value over the window.")
    threshold: float | None = Field(default=None, description="Bound the value was held to.")
    reason: str = Field(description="A sentence saying why.")


class Check(ApiModel):
    """One analysis check: all metrics over one interval."""

    at: datetime = Field(description="End of the window.")
    step: int = Field(ge=0, description="Rollout step during the check.")
    weight: int = Field(ge=0, le=100, description="Canary weight during the check.")
    verdict: Verdict = Field(
        description="Fail if any metric failed, else Inconclusive if any was, else Pass."
    )
    canary_requests: int | None = Field(default=None, description="Canary requests in window.")
    metrics: list[MetricResult] = Field(default_factory=list, description="Per-metric verdicts.")


class AnalysisStatus(ApiModel):
    """Counters of the current rollout's checks and the latest verdicts."""

    failed_checks: int = Field(default=0, ge=0, description="Failed checks this rollout.")
    inconclusive_checks: int = Field(default=0, ge=0, description="Inconclusive checks in a row.")
    passed_checks: int = Field(default=0, ge=0, description="Passed checks this rollout.")
    window_start: datetime | None = Field(
        default=None, description="Start of the current analysis window."
    )
    checks: list[Check] = Field(
        default_factory=list,
        max_length=CHECKS_LIMIT,
        description=f"The last {CHECKS_LIMIT} checks, newest last.",
    )


class RolloutResult(StrEnum):
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    ABORTED = "Aborted"
    SUPERSEDED = "Superseded"


class Retiring(ApiModel):
    """An old revision kept for in-flight requests until its scale-down time."""

    revision: str = Field(description="Revision to scale down.")
    at: datetime = Field(description="When to scale it down.")


class HistoryEntry(ApiModel):
    """A finished rollout."""

    revision: str = Field(description="Revision rolled out.")
    version: str | None = Field(default=None, description="Model version rolled out.")
    result: RolloutResult = Field(description="How it ended.")
    reason: str = Field(description="Why it ended that way.")
    started_at: datetime = Field(description="When it began.")
    finished_at: datetime = Field(description="When it ended.")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A Kubernetes-style condition (kstatus-compatible)."""

    type: str = Field(description="Ready, Progressing, Degraded, Drifted, Reconciling, Stalled.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason.")
    message: str = Field(default="", description="Human sentence.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int | None = Field(
        default=None, description="Generation the condition was computed from."
    )


class ActionKind(StrEnum):
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    RETRY = "retry"
    PAUSE = "pause"
    RESUME = "resume"


class AcknowledgedAction(ApiModel):
    """The last manual action taken from the `serinus.dev/action` annotation."""

    action: str = Field(description="What was asked (the annotation's action part).")
    nonce: str = Field(description="The annotation's fresh value; acted on once.")
    at: datetime = Field(description="When it was acted on.")
    result: str = Field(description="What it did, or why it did nothing.")


class FeatureDrift(ApiModel):
    """How far one input feature's live distribution is from the reference profile."""

    feature: str = Field(description="Feature name.")
    psi: float = Field(description="Population stability index against the reference.")
    p_value: float = Field(
        description="Chi-square p-value of the window against the reference, before the "
        "multiple-testing correction."
    )
    rows: int = Field(ge=0, description="Rows with a value for this feature in the window.")
    drifted: bool = Field(description="PSI above the bound and significant after correction.")
    shift: str = Field(default="", description="Which bin moved most, in words.")


class MonitorResult(ApiModel):
    """One monitoring check's verdict: Fail raises the alarm, Inconclusive never does."""

    name: str = Field(description="input-drift, prediction-drift, integrity or accuracy.")
    verdict: Verdict = Field(description="Pass, Fail (alarm) or Inconclusive (too little data).")
    value: float | None = Field(default=None, description="The measured value.")
    threshold: float | None = Field(default=None, description="Bound the value was held to.")
    reason: str = Field(description="A sentence saying why.")


class MonitoringStatus(ApiModel):
    """The latest monitoring check of the stable version."""

    revision: str = Field(description="Stable revision these results belong to.")
    next_check_at: datetime = Field(description="When the next check is due.")
    last_check_at: datetime | None = Field(default=None, description="End of the last window.")
    rows: float | None = Field(default=None, description="Rows predicted in the last window.")
    results: list[MonitorResult] = Field(
        default_factory=list, description="The last check's verdicts, one per check."
    )
    top_drifters: list[FeatureDrift] = Field(
        default_factory=list,
        max_length=5,
        description="The features furthest from the reference (largest PSI first).",
    )
    alarms: list[str] = Field(
        default_factory=list, description="Checks whose alarm is raised (their last verdict Fail)."
    )


class RetrainCandidate(ApiModel):
    """A model a retraining Job produced."""

    uri: str = Field(description="Bundle URI of the retrained model.")
    sha256: str | None = Field(default=None, description="Digest of its model file.")
    version: str | None = Field(default=None, description="Its version.")
    job: str = Field(description="The Job (or local command) that produced it.")
    at: datetime = Field(description="When it was reported.")
    deployed: bool = Field(
        default=False, description="Set as spec.model (autoDeploy); a rollout follows."
    )


class RetrainStatus(ApiModel):
    """Retraining: the running Job, the last one's outcome, and a candidate if any."""

    running: str | None = Field(default=None, description="Name of the Job now running.")
    trigger: str | None = Field(default=None, description="Alarm that started the last Job.")
    reason: str | None = Field(default=None, description="Why the last Job was started.")
    started_at: datetime | None = Field(default=None, description="When the last Job started.")
    window_start: datetime | None = Field(
        default=None, description="Start of the monitoring window that raised the alarm."
    )
    window_end: datetime | None = Field(
        default=None, description="End of the monitoring window that raised the alarm."
    )
    last_result: str | None = Field(
        default=None, description="How the last finished Job ended, in a sentence."
    )
    candidate: RetrainCandidate | None = Field(
        default=None, description="The latest retrained model."
    )


class ModelDeploymentStatus(ApiModel):
    """Observed state, written by the operator only."""

    phase: Phase = Field(default=Phase.PENDING, description="Where the deployment stands.")
    message: str = Field(default="", description="What is happening, in a sentence.")
    observed_generation: int | None = Field(
        default=None, description="metadata.generation last acted on."
    )
    revision: str | None = Field(
        default=None, description="Revision the spec asks for (hash of model + runtime)."
    )
    stable: StableStatus | None = Field(default=None, description="The stable version.")
    canary: CanaryStatus | None = Field(default=None, description="The version rolling out.")
    analysis: AnalysisStatus = Field(
        default_factory=AnalysisStatus, description="Analysis of the current rollout."
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"The last {HISTORY_LIMIT} rollouts, newest last.",
    )
    retiring: list[Retiring] = Field(
        default_factory=list, description="Old revisions waiting for their scale-down time."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Conditions.")
    last_action: AcknowledgedAction | None = Field(
        default=None, description="The last manual action acknowledged."
    )
    degraded_since: datetime | None = Field(
        default=None, description="When the stable version was first seen short of ready pods."
    )
    monitoring: MonitoringStatus | None = Field(
        default=None, description="Monitoring of the stable version."
    )
    retrain: RetrainStatus | None = Field(default=None, description="Retraining.")
