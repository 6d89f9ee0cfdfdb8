"""Properties of the engine over many generated rollouts, and resuming from persisted status."""

from __future__ import annotations

import json

from engine_world import World, spec_for, stable_world, v2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serinus.api.status import ModelDeploymentStatus, Phase, Verdict
from serinus.core.actions import SetWeight
from serinus.core.engine import decide

verdicts = st.sampled_from([Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE])
weights = st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5, unique=True)


@st.composite
def rollout_specs(draw):
    step_weights = sorted(draw(weights))
    steps = []
    for weight in step_weights:
        steps.append({"setWeight": weight})
        if draw(st.booleans()):
            steps.append({"analysis": {"passes": draw(st.integers(1, 3))}})
        if draw(st.booleans()):
            steps.append({"pause": {"duration": f"{draw(st.integers(1, 90))}s"}})
    return v2(
        rollout={
            "steps": steps,
            "interval": f"{draw(st.integers(5, 60))}s",
            "analysis": {
                "failureLimit": draw(st.integers(1, 3)),
                "inconclusiveLimit": draw(st.integers(0, 4)),
            },
            "onFailure": draw(st.sampled_from(["rollback", "pause"])),
        }
    )


actions = st.lists(
    st.tuples(
        st.integers(0, 60),
        st.sampled_from(["promote", "promote-full", "abort", "retry", "pause", "resume", "junk"]),
    ),
    max_size=4,
)

SLOW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(spec=rollout_specs(), script=st.lists(verdicts, min_size=1, max_size=30), manual=actions)
def test_weights_stay_in_bounds_and_only_fall_on_rollback(spec, script, manual):
    world = stable_world(verdicts=lambda n: script[n % len(script)])
    world.roll_to(spec)
    planned = dict(manual)
    previous_weight = 0
    for tick in range(120):
        if tick in planned:
            world.act(planned[tick], f"n{tick}")
        status = world.tick()
        canary = status.canary
        for action in world.actions:
            if isinstance(action, SetWeight):
                assert 0 <= action.weight <= 100
        if canary is not None:
            assert 0 <= canary.desired_weight <= 100
            if canary.desired_weight < previous_weight:
                assert status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.FAILED)
            previous_weight = canary.desired_weight
        else:
            previous_weight = 0
        world.actions.clear()


@SLOW
@given(
    spec=rollout_specs(),
    final=st.sampled_from([Verdict.PASS, Verdict.FAIL]),
    noise=st.lists(verdicts, max_size=6),
)
def test_a_rollout_always_ends_once_observations_stop_changing(spec, final, noise):
    """Decisive verdicts (Pass or Fail) after any noise: the rollout ends by itself.

    Inconclusive forever is the one exception, by design: low traffic waits (or pauses at
    inconclusiveLimit) instead of guessing; so the steady observation here is decisive.
    """
    spec = spec.model_copy(
        update={"rollout": spec.rollout.model_copy(update={"on_failure": "rollback"})}
    )
    world = stable_world(verdicts=lambda n: noise[n] if n < len(noise) else final)
    world.roll_to(spec)
    ended = world.run_until(Phase.STABLE, Phase.ROLLED_BACK, Phase.FAILED, Phase.PAUSED, limit=2000)
    resumes = 0
    while ended == Phase.PAUSED and resumes <= len(noise):  # only inconclusiveLimit holds it
        assert world.status.canary.paused_by.value == "Inconclusive"
        resumes += 1
        world.act("resume", f"go{resumes}")
        ended = world.run_until(
            Phase.STABLE, Phase.ROLLED_BACK, Phase.FAILED, Phase.PAUSED, limit=2000
        )
    assert ended in (Phase.STABLE, Phase.ROLLED_BACK)
    if final == Verdict.PASS and world.status.analysis.failed_checks == 0:
        assert ended == Phase.STABLE


def _snapshots(world: World, limit: int = 200) -> list[tuple[ModelDeploymentStatus, World]]:
    seen = []
    for _ in range(limit):
        seen.append((world.status.model_copy(deep=True), world.observe()))
        world.tick()
        if world.status.phase in (Phase.STABLE, Phase.ROLLED_BACK) and len(seen) > 3:
            break
    return seen


def test_every_persisted_status_resumes_to_the_same_decision():
    """A restarted operator reads status back from the API server as JSON: same decision."""
    for verdict in (Verdict.PASS, Verdict.FAIL):
        world = stable_world(verdicts=lambda _n, v=verdict: v)
        world.roll_to(v2())
        for status, observed in _snapshots(world):
            stored = json.loads(json.dumps(status.to_wire()))
            restored = ModelDeploymentStatus.model_validate(stored)
            at = world.now
            original = decide(world.spec, status, observed, at)
            resumed = decide(world.spec, restored, observed, at)
            assert resumed.actions == original.actions
            assert resumed.status.to_wire() == original.status.to_wire()


def test_restart_mid_rollout_continues_at_the_same_step():
    world = stable_world(verdicts=lambda _n: Verdict.PASS)
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    world.tick()
    world.tick()
    step = world.status.canary.step
    stored = json.loads(json.dumps(world.status.to_wire()))
    restarted = World(
        spec=world.spec,
        status=ModelDeploymentStatus.model_validate(stored),
        now=world.now,
        pods=dict(world.pods),
        weight=world.weight,
        validations=dict(world.validations),
    )
    restarted.tick()
    assert restarted.status.canary.step >= step
    assert restarted.status.canary.started_at == world.status.canary.started_at
    assert restarted.run_until(Phase.STABLE) == Phase.STABLE


def test_first_deploy_spec_round_trips_through_the_world():
    world = World(spec=spec_for())
    assert world.run_until(Phase.STABLE) == Phase.STABLE
