"""The rollout state machine: `decide(spec, status, observations, now)` → new status + actions.

Pure: no I/O, no clock of its own. Everything it needs to continue lives in the status it is
given, so a restarted operator (or `serinus local`) resumes from status alone. One call is one
idempotent step (Flagger's `advanceCanary`); drivers call it on every tick.

Phases
  Pending      nothing deployed yet
  Validating   the new revision's pods start; pre-traffic validation runs against them
  Progressing  walking the rollout steps: set weights, pauses, analysis
  Paused       holding the current weight (spec.paused, manual pause, pause step, failures)
  Promoting    the canary takes over as stable
  RollingBack  traffic returns to stable, canary pods go away
  RolledBack   the canary failed analysis (or was aborted); stable serves
  Stable       one version serves everything
  Failed       the new revision never got traffic (not ready, validation failed or timed out)
  Degraded     the stable version is short of ready pods
"""

from __future__ import annotations

from datetime import datetime

from serinus.api.spec import ModelDeploymentSpec, RolloutStep, step_kind
from serinus.api.status import (
    CHECKS_LIMIT,
    HISTORY_LIMIT,
    ROLLOUT_PHASES,
    AcknowledgedAction,
    ActionKind,
    AnalysisStatus,
    CanaryStatus,
    Check,
    ConditionStatus,
    HistoryEntry,
    ModelDeploymentStatus,
    PauseCause,
    Phase,
    Retiring,
    RolloutResult,
    StableStatus,
    Verdict,
)
from serinus.api.types import parse_duration
from serinus.core.actions import (
    Action,
    Decision,
    Deploy,
    EmitEvent,
    Promote,
    RunValidation,
    ScaleDown,
    SetWeight,
)
from serinus.core.aftercare import aftercare, next_check
from serinus.core.conditions import READY, SPEC_VALID, set_condition, with_conditions
from serinus.core.judge import AnalysisOutcome
from serinus.core.observations import ManualAction, Observations
from serinus.core.policy import Counters, assess, record
from serinus.core.policy import Decision as PolicyDecision
from serinus.core.revision import revision_of

MAX_TRANSITIONS_PER_TICK = 4
_ACTIONS_HELP = "use promote, promote-full, abort, retry, pause or resume"


def decide(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observations: Observations,
    now: datetime,
) -> Decision:
    """One step of the rollout: the next status and the actions that make it true."""
    tick = _Tick(spec, status.model_copy(deep=True), observations, now)
    tick.run()
    return Decision(
        status=tick.status, actions=tick.actions, next_tick=next_tick(spec, tick.status)
    )


def reject_spec(
    status: ModelDeploymentStatus, problems: list[str], generation: int | None, now: datetime
) -> Decision:
    """An invalid spec changes nothing that serves; it is reported and the last good state kept."""
    status = status.model_copy(deep=True)
    message = "spec is invalid, nothing changed: " + "; ".join(problems)
    status.conditions = set_condition(
        status.conditions,
        SPEC_VALID,
        ConditionStatus.FALSE,
        "InvalidSpec",
        message,
        now,
        generation,
    )
    status.conditions = set_condition(
        status.conditions, READY, ConditionStatus.FALSE, "InvalidSpec", message, now, generation
    )
    status.message = message
    status.observed_generation = generation
    return Decision(
        status=status,
        actions=[EmitEvent(type="Warning", reason="InvalidSpec", message=message)],
    )


def analysis_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
    """True when the driver should measure a window and pass the outcome in observations."""
    window = analysis_window(status)
    return (
        status.phase == Phase.PROGRESSING
        and window is not None
        and now - window >= parse_duration(spec.rollout.interval)
    )


def analysis_window(status: ModelDeploymentStatus) -> datetime | None:
    """Start of the window the next check covers (it ends at the time of the check)."""
    canary = status.canary
    if canary is None or canary.desired_weight == 0:
        return None
    return status.analysis.window_start


def serving_revisions(status: ModelDeploymentStatus) -> dict[str, str]:
    """Revisions whose processes or pods should exist now, by variant ("stable", "canary"):
    what a driver puts back when something deleted or killed them."""
    wanted: dict[str, str] = {}
    if status.stable is not None and status.phase != Phase.PENDING:
        wanted[status.stable.revision] = "stable"
    if status.canary is not None and status.phase in ROLLOUT_PHASES:
        wanted[status.canary.revision] = "canary"
    return wanted


def window_needs_baseline(
    before: ModelDeploymentStatus, after: ModelDeploymentStatus, checked: bool
) -> bool:
    """A window that starts without a check ending (first traffic, a resume) needs the
    provider to take a baseline now; after a check, the provider's end sample already is one."""
    start = after.analysis.window_start
    moved = start is not None and start != before.analysis.window_start
    return moved and not checked and after.stable is not None and after.canary is not None


def next_tick(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """The latest time by which the engine should be asked again."""
    rollout = spec.rollout
    deadline = parse_duration(rollout.progress_deadline)
    moments: list[datetime] = [retiring.at for retiring in status.retiring]
    canary = status.canary
    if canary is not None and status.phase == Phase.VALIDATING:
        moments.append(canary.started_at + deadline)
        if canary.validation_started_at is not None:
            moments.append(canary.validation_started_at + parse_duration(spec.validation.timeout))
    if canary is not None and status.phase == Phase.PROGRESSING:
        window = analysis_window(status)
        if window is not None:
            moments.append(window + parse_duration(rollout.interval))
        step = _step_at(spec, canary.step)
        if step is not None and step.pause and step.pause.duration and canary.step_started_at:
            moments.append(canary.step_started_at + parse_duration(step.pause.duration))
        if canary.unready_since is not None:
            moments.append(canary.unready_since + deadline)
    monitoring = next_check(status)
    if monitoring is not None and spec.monitoring.enabled:
        moments.append(monitoring)
    return min(moments, default=None)


def _step_at(spec: ModelDeploymentSpec, index: int) -> RolloutStep | None:
    steps = spec.rollout.steps
    return steps[index] if index < len(steps) else None


def _pct(weight: int) -> str:
    return f"{weight}%"


class _Tick:
    """The working state of one `decide` call."""

    def __init__(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        observations: Observations,
        now: datetime,
    ) -> None:
        self.spec = spec
        self.status = status
        self.obs = observations
        self.now = now
        self.actions: list[Action] = []
        self.desired = revision_of(spec)
        self.deadline = parse_duration(spec.rollout.progress_deadline)

    # --- the tick ------------------------------------------------------------------------

    def run(self) -> None:
        self._repair()
        self._retire_due()
        self._follow_revision()
        self._manual_action()
        for _ in range(MAX_TRANSITIONS_PER_TICK):
            before = self.status.phase
            self._handle_phase()
            if self.status.phase == before:
                break
        canary = self.status.canary
        weight = self._weight_now()
        if canary is not None and weight is not None:
            canary.weight = weight
        self.status.revision = self.desired
        self.status.observed_generation = self.obs.generation
        self.actions += aftercare(self.spec, self.status, self.obs, self.now)
        self.status.conditions = with_conditions(self.status, self.now, self.obs.generation)

    def _handle_phase(self) -> None:
        handlers = {
            Phase.PENDING: self._pending,
            Phase.VALIDATING: self._validating,
            Phase.PROGRESSING: self._progressing,
            Phase.PAUSED: self._paused,
            Phase.PROMOTING: self._promoting,
            Phase.ROLLING_BACK: self._rolling_back,
            Phase.STABLE: self._steady,
            Phase.DEGRADED: self._steady,
        }
        handler = handlers.get(self.status.phase)
        if handler is not None:
            handler()

    # --- helpers -------------------------------------------------------------------------

    @property
    def canary(self) -> CanaryStatus:
        assert self.status.canary is not None
        return self.status.canary

    def _emit(self, reason: str, message: str, warning: bool = False) -> None:
        self.actions.append(
            EmitEvent(type="Warning" if warning else "Normal", reason=reason, message=message)
        )

    def _enter(self, phase: Phase, message: str, warning: bool = False) -> None:
        self.status.phase = phase
        self.status.message = message
        self._emit(phase.value, message, warning)

    def _weight_now(self) -> int | None:
        """The router's weight, or the weight this tick already asked for (the observation of
        the router predates this tick's actions)."""
        asked = [action.weight for action in self.actions if isinstance(action, SetWeight)]
        return asked[-1] if asked else self.obs.weight

    def _ready(self, revision: str) -> int:
        return self.obs.ready_replicas.get(revision, 0)

    def _label(self, canary: CanaryStatus | StableStatus) -> str:
        if canary.version and canary.version != canary.revision:
            return f"{canary.version} (revision {canary.revision})"
        return f"revision {canary.revision}"

    def _remember(self, result: RolloutResult, reason: str) -> None:
        canary = self.canary
        entry = HistoryEntry(
            revision=canary.revision,
            version=canary.version,
            result=result,
            reason=reason,
            started_at=canary.started_at,
            finished_at=self.now,
        )
        self.status.history = [*self.status.history, entry][-HISTORY_LIMIT:]

    def _withdraw_canary(self) -> None:
        """Traffic back to stable and the canary's pods gone."""
        canary = self.canary
        if canary.desired_weight > 0 or (self._weight_now() or 0) > 0:
            stable = self.status.stable.revision if self.status.stable else None
            self.actions.append(SetWeight(canary=canary.revision, stable=stable, weight=0))
        canary.desired_weight = 0
        self.actions.append(ScaleDown(revision=canary.revision))

    # --- bookkeeping before the phase handlers ------------------------------------------

    def _repair(self) -> None:
        """Make a persisted status consistent (a hand-edited or truncated status must not wedge)."""
        status = self.status
        needs_canary = status.phase in ROLLOUT_PHASES or status.phase in (
            Phase.ROLLED_BACK,
            Phase.FAILED,
        )
        if needs_canary and status.canary is None:
            status.phase = Phase.STABLE if status.stable else Phase.PENDING
        if status.phase in (Phase.STABLE, Phase.DEGRADED) and status.stable is None:
            status.phase = Phase.PENDING
        if status.phase == Phase.PAUSED and status.canary and status.canary.paused_by is None:
            status.canary.paused_by = PauseCause.MANUAL
        if status.phase in (Phase.PROGRESSING, Phase.PAUSED) and status.stable is None:
            status.phase = Phase.VALIDATING  # a first version is never canaried

    def _retire_due(self) -> None:
        live = {ref.revision for ref in (self.status.stable, self.status.canary) if ref}
        keep = []
        for retiring in self.status.retiring:
            if retiring.revision in live:
                continue  # the spec came back to it: it serves again
            if retiring.at <= self.now:
                self.actions.append(ScaleDown(revision=retiring.revision))
            else:
                keep.append(retiring)
        self.status.retiring = keep

    def _follow_revision(self) -> None:
        """Start, supersede or drop the canary so that it matches the spec's revision."""
        status, desired = self.status, self.desired
        canary, stable = status.canary, status.stable
        if canary is None:
            if stable is None or stable.revision != desired:
                self._start_rollout()
            return
        if canary.revision == desired:
            return
        in_flight = status.phase in ROLLOUT_PHASES
        if stable is not None and stable.revision == desired:
            if in_flight:
                self._remember(RolloutResult.SUPERSEDED, "the spec returned to the stable revision")
                self._withdraw_canary()
            status.canary = None
            self._enter(Phase.STABLE, f"the spec is back at the stable {self._label(stable)}")
            return
        if in_flight:
            self._remember(RolloutResult.SUPERSEDED, f"superseded by revision {desired}")
            self._withdraw_canary()
        self._start_rollout()

    def _start_rollout(self) -> None:
        model = self.spec.model
        self.status.canary = CanaryStatus(
            revision=self.desired,
            version=model.version or self.desired,
            uri=model.uri,
            sha256=model.sha256,
            started_at=self.now,
            step_started_at=self.now,
        )
        self.status.analysis = AnalysisStatus()
        self.actions.append(Deploy(revision=self.desired))
        target = "the first version" if self.status.stable is None else "a canary"
        self._enter(
            Phase.VALIDATING,
            f"starting {self._label(self.canary)} as {target}; validating it before it gets "
            "traffic",
        )

    # --- manual actions ------------------------------------------------------------------

    def _manual_action(self) -> None:
        asked = self.obs.action
        last = self.status.last_action
        if asked is None or (last and (last.action, last.nonce) == (asked.action, asked.nonce)):
            return
        result, done = self._apply(asked)
        self.status.last_action = AcknowledgedAction(
            action=asked.action, nonce=asked.nonce, at=self.now, result=result
        )
        self._emit("ManualAction", f"{asked.action}: {result}", warning=not done)

    def _apply(self, asked: ManualAction) -> tuple[str, bool]:
        kind = asked.kind
        phase = self.status.phase
        if kind is None:
            return f"unknown action {asked.action!r}: {_ACTIONS_HELP}", False
        if kind == ActionKind.RETRY:
            return self._retry()
        if kind == ActionKind.ABORT:
            return self._abort()
        if phase not in (Phase.VALIDATING, Phase.PROGRESSING, Phase.PAUSED):
            return f"nothing to {kind.value}: phase is {phase.value}", False
        if kind == ActionKind.PAUSE:
            if phase == Phase.PAUSED:
                return "already paused", False
            self._pause(PauseCause.MANUAL, "paused by hand; resume to continue")
            return "paused", True
        if kind == ActionKind.RESUME:
            if phase != Phase.PAUSED:
                return "not paused", False
            if self.spec.paused:
                return "spec.paused is true: set it to false to resume", False
            self._resume("resumed by hand")
            return "resumed", True
        if not self.canary.validated:
            return "validation has not passed yet: wait for it, or abort", False
        if kind == ActionKind.PROMOTE_FULL:
            self._start_promotion("promoted by hand (promote-full), remaining steps skipped")
            return "promoting now", True
        skipped = self.canary.step + 1
        if phase == Phase.PAUSED:
            if self.spec.paused:
                return "spec.paused is true: set it to false first", False
            self._unpause()
            self._enter(Phase.PROGRESSING, f"resumed by promote; step {skipped} skipped")
        self._next_step()
        return f"step {skipped} skipped", True

    def _retry(self) -> tuple[str, bool]:
        phase, canary = self.status.phase, self.status.canary
        if phase not in (Phase.ROLLED_BACK, Phase.FAILED) or canary is None:
            return f"nothing to retry: phase is {phase.value}", False
        if canary.revision != self.desired:
            return "the spec has moved on to another revision", False
        self._start_rollout()
        return f"retrying revision {self.desired}", True

    def _abort(self) -> tuple[str, bool]:
        phase = self.status.phase
        if phase not in (Phase.VALIDATING, Phase.PROGRESSING, Phase.PAUSED):
            return f"nothing to abort: phase is {phase.value}", False
        if self.status.stable is None:
            self._fail("aborted by hand", RolloutResult.ABORTED)
        else:
            self._roll_back("aborted by hand", aborted=True)
        return "aborted", True

    # --- transitions ---------------------------------------------------------------------

    def _fail(self, reason: str, result: RolloutResult = RolloutResult.FAILED) -> None:
        self._remember(result, reason)
        self._withdraw_canary()
        still = f"; {self._label(self.status.stable)} keeps serving" if self.status.stable else ""
        self._enter(Phase.FAILED, f"{self._label(self.canary)} failed: {reason}{still}", True)

    def _roll_back(self, reason: str, aborted: bool = False) -> None:
        canary = self.canary
        canary.finish_reason = reason
        canary.paused_by = None
        canary.paused_reason = None
        self._remember(RolloutResult.ABORTED if aborted else RolloutResult.ROLLED_BACK, reason)
        self._withdraw_canary()
        self._enter(Phase.ROLLING_BACK, f"rolling back {self._label(canary)}: {reason}", True)

    def _start_promotion(self, reason: str) -> None:
        canary = self.canary
        canary.finish_reason = reason
        canary.paused_by = None
        canary.paused_reason = None
        canary.step_started_at = self.now
        previous = self.status.stable.revision if self.status.stable else None
        self.actions.append(Promote(revision=canary.revision, previous=previous))
        self._enter(Phase.PROMOTING, f"promoting {self._label(canary)}: {reason}")

    def _pause(self, cause: PauseCause, reason: str) -> None:
        canary = self.canary
        canary.paused_by = cause
        canary.paused_reason = reason
        warning = cause in (PauseCause.FAILURES, PauseCause.INCONCLUSIVE)
        self._enter(Phase.PAUSED, f"paused at {_pct(canary.desired_weight)}: {reason}", warning)

    def _unpause(self) -> None:
        canary = self.canary
        if canary.paused_by == PauseCause.FAILURES:
            self.status.analysis.failed_checks = 0
        if canary.paused_by == PauseCause.INCONCLUSIVE:
            self.status.analysis.inconclusive_checks = 0
        canary.paused_by = None
        canary.paused_reason = None
        if canary.desired_weight > 0:
            self.status.analysis.window_start = self.now  # a fresh window after the hold

    def _resume(self, why: str) -> None:
        cause = self.canary.paused_by
        self._unpause()
        if not self.canary.validated:
            self._enter(Phase.VALIDATING, f"{why}; validation continues")
            return
        self._enter(Phase.PROGRESSING, why)
        if cause == PauseCause.STEP:
            self._next_step()

    def _next_step(self) -> None:
        canary = self.canary
        canary.step += 1
        canary.step_started_at = self.now
        canary.passes_in_step = 0

    # --- phase handlers ------------------------------------------------------------------

    def _pending(self) -> None:
        if self.status.canary is None:
            self._start_rollout()

    def _validating(self) -> None:
        canary = self.canary
        if self.spec.paused:
            self._pause(PauseCause.SPEC, "spec.paused is true: set it to false to continue")
            return
        if canary.validated:
            self._after_validation()
            return
        if self._ready(canary.revision) == 0:
            if self.now - canary.started_at > self.deadline:
                self._fail(
                    f"no pod became ready within progressDeadline "
                    f"{self.spec.rollout.progress_deadline}: check the pods' events and logs "
                    "(image, model URI, sha256, format)"
                )
            return
        canary.ready_since = canary.ready_since or self.now
        if canary.validation_started_at is None:
            canary.validation_started_at = self.now
            self.actions.append(RunValidation(revision=canary.revision))
            return
        outcome = self.obs.validation
        if outcome is None or outcome.revision != canary.revision:
            timeout = self.spec.validation.timeout
            if self.now - canary.validation_started_at > parse_duration(timeout):
                self._fail(f"validation did not finish within validation.timeout {timeout}")
            return
        if not outcome.passed:
            self._fail(f"validation failed: {outcome.message}")
            return
        canary.validated = True
        self._emit("ValidationPassed", f"{self._label(canary)}: {outcome.message}")
        self._after_validation()

    def _after_validation(self) -> None:
        canary = self.canary
        if self.status.stable is None:
            self._start_promotion("first version, validated")
            return
        canary.step_started_at = self.now
        steps = len(self.spec.rollout.steps)
        self._enter(Phase.PROGRESSING, f"validated; {self._label(canary)} starts its {steps} steps")

    def _progressing(self) -> None:
        canary = self.canary
        if self.spec.paused:
            self._pause(PauseCause.SPEC, "spec.paused is true: set it to false to continue")
            return
        if self._ready(canary.revision) == 0:
            canary.unready_since = canary.unready_since or self.now
            if self.now - canary.unready_since > self.deadline:
                self._roll_back(
                    f"the canary has had no ready pod for progressDeadline "
                    f"{self.spec.rollout.progress_deadline}"
                )
                return
        else:
            canary.unready_since = None
        if self.obs.analysis is not None:
            self._record_check(self.obs.analysis)
            if self.status.phase != Phase.PROGRESSING:
                return
        self._walk_steps()

    def _record_check(self, outcome: AnalysisOutcome) -> None:
        canary, analysis = self.canary, self.status.analysis
        verdict = outcome.verdict
        check = Check(
            at=self.now,
            step=canary.step,
            weight=canary.weight,
            verdict=verdict,
            canary_requests=outcome.canary_requests,
            metrics=list(outcome.metrics),
        )
        analysis.checks = [*analysis.checks, check][-CHECKS_LIMIT:]
        analysis.window_start = self.now
        counters = record(
            Counters(
                failed=analysis.failed_checks,
                inconclusive=analysis.inconclusive_checks,
                passed=analysis.passed_checks,
            ),
            verdict,
        )
        analysis.failed_checks = counters.failed
        analysis.inconclusive_checks = counters.inconclusive
        analysis.passed_checks = counters.passed
        step = _step_at(self.spec, canary.step)
        if verdict == Verdict.PASS and step is not None and step.analysis is not None:
            canary.passes_in_step += 1
        self._emit(f"Analysis{verdict.value}", outcome.summary(), warning=verdict == Verdict.FAIL)
        assessment = assess(counters, self.spec.rollout.analysis, self.spec.rollout.on_failure)
        if assessment.decision == PolicyDecision.ROLLBACK:
            self._roll_back(f"{assessment.reason} — {outcome.summary()}")
        elif assessment.decision == PolicyDecision.PAUSE:
            limit_hit = counters.failed >= self.spec.rollout.analysis.failure_limit
            cause = PauseCause.FAILURES if limit_hit else PauseCause.INCONCLUSIVE
            self._pause(cause, f"{assessment.reason}; resume, promote or abort")

    def _walk_steps(self) -> None:
        canary, steps = self.canary, self.spec.rollout.steps
        for _ in range(len(steps) + 1):
            if canary.step >= len(steps):
                self._start_promotion(f"all {len(steps)} steps passed")
                return
            step = steps[canary.step]
            kind = step_kind(step)
            if kind == "setWeight":
                assert step.set_weight is not None
                self._set_weight(step.set_weight)
            elif kind == "pause":
                assert step.pause is not None
                if step.pause.duration is None:
                    self._pause(
                        PauseCause.STEP, f"step {canary.step + 1} waits for a manual promote"
                    )
                    return
                started = canary.step_started_at or self.now
                if self.now - started < parse_duration(step.pause.duration):
                    return
            else:
                assert step.analysis is not None
                if canary.desired_weight == 0:
                    self._emit(
                        "StepSkipped",
                        f"step {canary.step + 1} (analysis) skipped: the canary has no traffic "
                        "yet; put a setWeight step before it",
                        warning=True,
                    )
                elif canary.passes_in_step < step.analysis.passes:
                    return
            self._next_step()

    def _set_weight(self, weight: int) -> None:
        canary = self.canary
        if canary.desired_weight == weight:
            return
        stable = self.status.stable.revision if self.status.stable else None
        self.actions.append(SetWeight(canary=canary.revision, stable=stable, weight=weight))
        if canary.desired_weight == 0 and weight > 0:
            self.status.analysis.window_start = self.now
        self._emit(
            "TrafficShifted",
            f"canary {self._label(canary)} weight {_pct(canary.desired_weight)} → {_pct(weight)}",
        )
        canary.desired_weight = weight
        self.status.message = f"canary at {_pct(weight)} (step {canary.step + 1})"

    def _paused(self) -> None:
        canary = self.canary
        if self.spec.paused:
            if canary.paused_by is None:
                canary.paused_by = PauseCause.SPEC
            return
        if canary.paused_by == PauseCause.SPEC:
            self._resume("spec.paused is false")

    def _promoting(self) -> None:
        canary = self.canary
        started = canary.step_started_at or self.now
        full = self._ready(canary.revision) >= self.spec.runtime.replicas
        if not full and self.now - started <= self.deadline:
            return
        previous = self.status.stable
        reason = canary.finish_reason or "promoted"
        self._remember(RolloutResult.PROMOTED, reason)
        self.status.stable = StableStatus(
            revision=canary.revision,
            version=canary.version,
            uri=canary.uri,
            sha256=canary.sha256,
            since=self.now,
        )
        if previous is not None and previous.revision != canary.revision:
            delay = parse_duration(self.spec.rollout.scale_down_delay)
            self.status.retiring.append(Retiring(revision=previous.revision, at=self.now + delay))
        self.status.canary = None
        self._enter(Phase.STABLE, f"{self._label(self.status.stable)} is stable: {reason}")

    def _rolling_back(self) -> None:
        canary = self.canary
        if any(isinstance(action, SetWeight) for action in self.actions):
            return  # asked this tick: wait to see the router at 0
        if self.obs.weight not in (None, 0):
            stable = self.status.stable.revision if self.status.stable else None
            self.actions.append(SetWeight(canary=canary.revision, stable=stable, weight=0))
            return
        canary.weight = 0
        reason = canary.finish_reason or "rolled back"
        stable = self.status.stable
        serving = f"; {self._label(stable)} serves all traffic" if stable else ""
        self._enter(
            Phase.ROLLED_BACK, f"{self._label(canary)} rolled back: {reason}{serving}", True
        )

    def _steady(self) -> None:
        stable = self.status.stable
        if stable is None:
            return
        want = self.spec.runtime.replicas
        ready = self._ready(stable.revision)
        if ready >= want:
            self.status.degraded_since = None
            if self.status.phase == Phase.DEGRADED:
                self._enter(Phase.STABLE, f"all {want} pods of {self._label(stable)} are ready")
            return
        since = self.status.degraded_since or self.now
        self.status.degraded_since = since
        short_too_long = self.now - since > self.deadline
        if self.status.phase == Phase.STABLE and (ready == 0 or short_too_long):
            self._enter(
                Phase.DEGRADED,
                f"{ready}/{want} pods of {self._label(stable)} ready",
                warning=True,
            )
