"""Conditions derived from the phase, readable by kstatus, Flux, Argo CD and humans.

- Ready: the spec's revision is the stable version and serves all traffic.
- Progressing: a rollout is under way (Deployment-style).
- Degraded: something needs a person: the stable version is short of pods, or the last rollout
  was rolled back or failed.
  Monitoring raises it too while an accuracy or integrity alarm of the stable version is up.
- Reconciling / Stalled: the kstatus conventions (Flux health checks, `kstatus` in CI).
Conditions of other types (Drifted, RetrainCandidate: written by serinus.core.aftercare) are left
as they are.
"""

from __future__ import annotations

from datetime import datetime

from serinus.api.status import (
    ROLLOUT_PHASES,
    Condition,
    ConditionStatus,
    ModelDeploymentStatus,
    Phase,
)

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
RECONCILING = "Reconciling"
STALLED = "Stalled"
DRIFTED = "Drifted"
RETRAIN_CANDIDATE = "RetrainCandidate"
SPEC_VALID = "SpecValid"

_SETTLED_BADLY = frozenset({Phase.ROLLED_BACK, Phase.FAILED})


def _truth(value: bool) -> ConditionStatus:
    return ConditionStatus.TRUE if value else ConditionStatus.FALSE


def _wanted(status: ModelDeploymentStatus) -> dict[str, ConditionStatus]:
    phase = status.phase
    return {
        READY: _truth(phase == Phase.STABLE),
        PROGRESSING: _truth(phase in ROLLOUT_PHASES),
        DEGRADED: _truth(phase == Phase.DEGRADED or phase in _SETTLED_BADLY),
        RECONCILING: _truth(phase in ROLLOUT_PHASES or phase == Phase.PENDING),
        STALLED: _truth(phase in _SETTLED_BADLY),
    }


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """The list with one condition set; lastTransitionTime moves only when status flips."""
    previous = next((c for c in conditions if c.type == type_), None)
    changed = previous is None or previous.status != status
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
        observed_generation=generation,
    )
    return (
        [updated if c.type == type_ else c for c in conditions]
        if previous
        else [
            *conditions,
            updated,
        ]
    )


def with_conditions(
    status: ModelDeploymentStatus, now: datetime, generation: int | None
) -> list[Condition]:
    """The status's conditions brought in line with its phase."""
    conditions = [c for c in status.conditions if c.type != SPEC_VALID]  # decide() ran: valid
    for type_, truth in _wanted(status).items():
        reason, message = status.phase.value, status.message
        alarm = _quality_alarm(status)
        if type_ == DEGRADED and truth == ConditionStatus.FALSE and alarm is not None:
            truth, reason, message = ConditionStatus.TRUE, *alarm
        conditions = set_condition(conditions, type_, truth, reason, message, now, generation)
    return conditions


_QUALITY_ALARMS = {"accuracy": "AccuracyLow", "integrity": "IntegrityLow"}


def _quality_alarm(status: ModelDeploymentStatus) -> tuple[str, str] | None:
    """(reason, message) of a raised accuracy or integrity alarm of the stable version."""
    monitoring = status.monitoring
    if monitoring is None or status.phase != Phase.STABLE:
        return None
    for name, reason in _QUALITY_ALARMS.items():
        if name in monitoring.alarms:
            said = next((r.reason for r in monitoring.results if r.name == name), name)
            return reason, said
    return None
