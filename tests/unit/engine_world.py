"""A fake world for driving the pure engine: pods, a router, a validator and a judge, all scripted.

It follows the driver contract in serinus.core.actions: actions are applied in order, then the
status is kept. Nothing here is patched; it is a plain fake behind the engine's data interfaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from serinus.api.spec import ModelDeploymentSpec
from serinus.api.status import MetricResult, ModelDeploymentStatus, Phase, Verdict
from serinus.core.actions import (
    Action,
    Deploy,
    EmitEvent,
    Promote,
    RunValidation,
    ScaleDown,
    SetWeight,
)
from serinus.core.engine import analysis_due, decide
from serinus.core.judge import AnalysisOutcome
from serinus.core.observations import ManualAction, Observations, ValidationOutcome

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def spec_for(
    uri: str = "file:///models/v1", version: str = "1.0.0", **overrides
) -> ModelDeploymentSpec:
    body = {"model": {"uri": uri, "version": version}, **overrides}
    return ModelDeploymentSpec.model_validate(body)


def outcome(verdict: Verdict, requests: int = 500) -> AnalysisOutcome:
    return AnalysisOutcome(
        metrics=[
            MetricResult(
                name="error-rate",
                verdict=verdict,
                canary=0.01,
                stable=0.01,
                threshold=0.05,
                reason=f"scripted {verdict.value}",
            )
        ],
        canary_requests=requests,
    )


@dataclass
class World:
    """Pods per revision, the router's weight, pending validations; scripted behaviour."""

    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    now: datetime = T0
    pods: dict[str, int] = field(default_factory=dict)
    weight: int = 0
    validations: dict[str, ValidationOutcome] = field(default_factory=dict)
    ready_canaries: bool = True
    validation_passes: bool | None = True  # None: validation never finishes
    verdicts: Callable[[int], Verdict] = lambda _check: Verdict.PASS
    checks_run: int = 0
    actions: list[Action] = field(default_factory=list)
    events: list[EmitEvent] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    pending_action: ManualAction | None = None
    generation: int = 1

    def observe(self) -> Observations:
        analysis = None
        if analysis_due(self.spec, self.status, self.now):
            analysis = outcome(self.verdicts(self.checks_run))
            self.checks_run += 1
        canary = self.status.canary
        validation = self.validations.get(canary.revision) if canary else None
        return Observations(
            generation=self.generation,
            ready_replicas=dict(self.pods),
            weight=self.weight,
            analysis=analysis,
            validation=validation,
            action=self.pending_action,
        )

    def apply(self, action: Action) -> None:
        self.actions.append(action)
        match action:
            case Deploy(revision=revision):
                self.pods[revision] = 1 if self.ready_canaries else 0
            case SetWeight(weight=weight):
                self.weight = weight
            case Promote(revision=revision):
                self.pods[revision] = self.spec.runtime.replicas
                self.weight = 0
            case ScaleDown(revision=revision):
                self.pods.pop(revision, None)
            case RunValidation(revision=revision):
                if self.validation_passes is not None:
                    self.validations[revision] = ValidationOutcome(
                        revision=revision,
                        passed=self.validation_passes,
                        message="2 smoke requests answered"
                        if self.validation_passes
                        else "smoke request 1: expected [0], got [2]",
                    )
            case EmitEvent():
                self.events.append(action)

    def tick(self, seconds: float = 10) -> ModelDeploymentStatus:
        decision = decide(self.spec, self.status, self.observe(), self.now)
        for action in decision.actions:
            self.apply(action)
        self.status = decision.status
        self.phases.append(self.status.phase)
        self.now += timedelta(seconds=seconds)
        return self.status

    def ticks(self, count: int, seconds: float = 10) -> Iterator[ModelDeploymentStatus]:
        for _ in range(count):
            yield self.tick(seconds)

    def run_until(self, *phases: Phase, limit: int = 500, seconds: float = 10) -> Phase:
        for _ in range(limit):
            if self.tick(seconds).phase in phases:
                return self.status.phase
        raise AssertionError(f"never reached {phases}; phases seen: {self.phases[-20:]}")

    def act(self, action: str, nonce: str) -> ModelDeploymentStatus:
        self.pending_action = ManualAction(action=action, nonce=nonce)
        return self.tick()

    def roll_to(self, spec: ModelDeploymentSpec) -> None:
        self.spec = spec
        self.generation += 1

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]


def stable_world(**kwargs) -> World:
    """A world where version 1.0.0 is already Stable."""
    world = World(spec=spec_for(), **kwargs)
    world.run_until(Phase.STABLE)
    world.events.clear()
    world.actions.clear()
    return world


def v2(**overrides) -> ModelDeploymentSpec:
    return spec_for(uri="file:///models/v2", version="2.0.0", **overrides)
