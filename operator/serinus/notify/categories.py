"""Which notification categories an Event of the engine belongs to: one table, by reason.

Every reason the engine (or a driver) emits is listed, `None` for those never sent, so a new
reason cannot be forgotten silently (a unit test reads the engine's source for reasons). A
phase Event's reason is the phase it enters; each of them is also a `phase-change`.
"""

from __future__ import annotations

from serinus.api.spec import NotificationCategory
from serinus.api.status import ModelDeploymentStatus, Phase, RolloutResult

Category = NotificationCategory

CATEGORY_BY_REASON: dict[str, Category | None] = {
    # Phases entered (engine `_enter`); each is a phase-change as well.
    Phase.PENDING.value: None,
    Phase.VALIDATING.value: None,
    Phase.PROGRESSING.value: None,
    Phase.PAUSED.value: None,
    Phase.PROMOTING.value: None,
    Phase.ROLLING_BACK.value: None,
    Phase.ROLLED_BACK.value: Category.ROLLED_BACK,
    Phase.STABLE.value: None,  # `promoted` when it ends a promotion (see categories_of)
    Phase.FAILED.value: Category.FAILED,
    Phase.DEGRADED.value: None,
    # Monitoring of the stable version and retraining: the reasons their Events use.
    "Drifted": Category.DRIFT,
    "InputDrift": Category.DRIFT,
    "PredictionDrift": Category.DRIFT,
    "AccuracyLow": Category.ACCURACY,
    "RetrainCandidate": Category.RETRAIN_CANDIDATE,
    "InputDriftCleared": None,
    "PredictionDriftCleared": None,
    "AccuracyRecovered": None,
    "IntegrityLow": None,
    "IntegrityRecovered": None,
    "RetrainStarted": None,
    "RetrainSkipped": None,
    "RetrainFailed": None,
    # Events that are not sent.
    "ValidationPassed": None,
    "TrafficShifted": None,
    "StepSkipped": None,
    "AnalysisPass": None,
    "AnalysisFail": None,  # the rollback it causes is sent, with the failing verdicts
    "AnalysisInconclusive": None,
    "ManualAction": None,
    "InvalidSpec": None,
    "ActionFailed": None,
    "DeploymentMissing": None,
    "DeploymentRecreated": None,
    "NotificationFailed": None,
}

PHASE_REASONS = frozenset(phase.value for phase in Phase)


def categories_of(
    reason: str, before: ModelDeploymentStatus, after: ModelDeploymentStatus
) -> tuple[Category, frozenset[Category]] | None:
    """(the most specific category, all of them) of one Event of a tick from `before` to
    `after`; None when it is not sent. `Stable` is `promoted` when this tick ended a rollout
    with a promotion (not when a Degraded version recovers or the spec returns to stable)."""
    specific = CATEGORY_BY_REASON.get(reason)
    if reason == Phase.STABLE.value and _promoted_now(before, after):
        specific = Category.PROMOTED
    found = {specific} if specific is not None else set()
    if reason in PHASE_REASONS:
        found.add(Category.PHASE_CHANGE)
    if not found:
        return None
    return specific or Category.PHASE_CHANGE, frozenset(found)


def _promoted_now(before: ModelDeploymentStatus, after: ModelDeploymentStatus) -> bool:
    if not after.history or after.history[-1].result != RolloutResult.PROMOTED:
        return False
    return not before.history or before.history[-1] != after.history[-1]
