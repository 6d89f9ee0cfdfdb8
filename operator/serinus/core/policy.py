"""What the verdicts of a rollout's checks add up to: continue, roll back or pause.

A pure function in the manner of Argo Rollouts' `assessMetricStatus`: the engine records the
newest verdict into the counters with `record`, then asks `assess` what to do. Failed checks
count over the whole rollout; inconclusive ones only while they come in a row, because an
inconclusive check says nothing about the canary (too little traffic, a provider outage) and a
streak of them means a person should look, never that the canary is bad.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from serinus.api.spec import AnalysisSpec, OnFailure
from serinus.api.status import Verdict


class Counters(BaseModel):
    """Check counters of the current rollout (mirrors `status.analysis`)."""

    model_config = ConfigDict(frozen=True)

    failed: int = Field(default=0, ge=0, description="Failed checks this rollout.")
    inconclusive: int = Field(default=0, ge=0, description="Inconclusive checks in a row.")
    passed: int = Field(default=0, ge=0, description="Passed checks this rollout.")


class Decision(StrEnum):
    CONTINUE = "Continue"
    ROLLBACK = "Rollback"
    PAUSE = "Pause"


class Assessment(BaseModel):
    """What the engine should do after a check, and a sentence saying why."""

    model_config = ConfigDict(frozen=True)

    decision: Decision
    reason: str


def record(counters: Counters, verdict: Verdict) -> Counters:
    """The counters after one more check with this verdict."""
    if verdict == Verdict.FAIL:
        return counters.model_copy(update={"failed": counters.failed + 1, "inconclusive": 0})
    if verdict == Verdict.INCONCLUSIVE:
        return counters.model_copy(update={"inconclusive": counters.inconclusive + 1})
    return counters.model_copy(update={"passed": counters.passed + 1, "inconclusive": 0})


def assess(
    counters: Counters, analysis_spec: AnalysisSpec, on_failure: OnFailure | str
) -> Assessment:
    """Roll back (or pause, with `onFailure: pause`) once `failureLimit` checks have failed;
    pause after `inconclusiveLimit` inconclusive checks in a row (0: never); else continue."""
    failure_limit = analysis_spec.failure_limit
    if counters.failed >= failure_limit:
        failed = f"analysis failed {_times(counters.failed)} (failureLimit {failure_limit})"
        if OnFailure(on_failure) == OnFailure.ROLLBACK:
            return Assessment(decision=Decision.ROLLBACK, reason=f"{failed}: rolling back")
        return Assessment(
            decision=Decision.PAUSE,
            reason=f"{failed} and onFailure is pause: holding the canary at its weight",
        )
    inconclusive_limit = analysis_spec.inconclusive_limit
    if inconclusive_limit > 0 and counters.inconclusive >= inconclusive_limit:
        return Assessment(
            decision=Decision.PAUSE,
            reason=f"analysis inconclusive {_times(counters.inconclusive)} in a row "
            f"(inconclusiveLimit {inconclusive_limit}): not enough evidence to promote or roll "
            "back",
        )
    return Assessment(
        decision=Decision.CONTINUE,
        reason=f"{counters.failed} of {failure_limit} allowed failed checks, "
        f"{counters.passed} passed, {counters.inconclusive} inconclusive in a row: continuing",
    )


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
