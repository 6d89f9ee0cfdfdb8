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
