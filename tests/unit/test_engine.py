"""The rollout state machine, transition by transition, driven through a fake world."""

from __future__ import annotations

from datetime import timedelta

import pytest
from engine_world import T0, World, outcome, spec_for, stable_world, v2

from serinus.api.status import (
    CanaryStatus,
    ModelDeploymentStatus,
    PauseCause,
    Phase,
    RolloutResult,
    Verdict,
)
from serinus.core.actions import Deploy, Promote, RunValidation, ScaleDown, SetWeight
from serinus.core.engine import decide, next_tick, reject_spec
from serinus.core.observations import Observations, parse_action
from serinus.core.revision import revision_of


def conditions(status: ModelDeploymentStatus) -> dict[str, str]:
    return {c.type: c.status.value for c in status.conditions}


def weights_set(world: World) -> list[int]:
    return [a.weight for a in world.actions if isinstance(a, SetWeight)]


# --- first version --------------------------------------------------------------------------


def test_first_version_is_validated_then_becomes_stable_without_a_canary():
    world = World(spec=spec_for())
    assert world.tick().phase == Phase.VALIDATING
    revision = revision_of(world.spec)
    assert world.actions[0] == Deploy(revision=revision)
    assert world.run_until(Phase.STABLE) == Phase.STABLE
    assert world.status.stable.revision == revision
    assert world.status.stable.version == "1.0.0"
    assert world.status.canary is None
    assert [a for a in world.actions if isinstance(a, RunValidation)] == [
        RunValidation(revision=revision)
    ]
    assert [a for a in world.actions if isinstance(a, Promote)] == [
        Promote(revision=revision, previous=None)
    ]
    assert weights_set(world) == []  # no stable to split with: no canary steps
    assert world.status.history[-1].result == RolloutResult.PROMOTED
    assert conditions(world.status) == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
        "Reconciling": "False",
        "Stalled": "False",
        "Drifted": "False",  # monitored from now on; nothing checked yet
    }


def test_first_version_failing_validation_is_failed_and_nothing_serves():
    world = World(spec=spec_for(), validation_passes=False)
    assert world.run_until(Phase.FAILED) == Phase.FAILED
    assert world.status.stable is None
    assert "smoke request 1: expected [0], got [2]" in world.status.message
    assert conditions(world.status)["Ready"] == "False"
    assert conditions(world.status)["Stalled"] == "True"
    assert ScaleDown(revision=revision_of(world.spec)) in world.actions


# --- canary rollouts ------------------------------------------------------------------------


def test_good_canary_walks_every_step_and_is_promoted():
    world = stable_world()
    old = world.status.stable.revision
    world.roll_to(v2())
    new = revision_of(world.spec)
    assert world.run_until(Phase.STABLE) == Phase.STABLE
    assert weights_set(world) == [10, 50]
    assert world.status.stable.revision == new
    assert world.status.stable.version == "2.0.0"
    assert world.status.analysis.passed_checks == 2
    assert Promote(revision=new, previous=old) in world.actions
    assert world.status.history[-1].result == RolloutResult.PROMOTED
    assert "all 4 steps passed" in world.status.history[-1].reason
    assert world.phases.count(Phase.PROGRESSING) > 0 and Phase.PROMOTING in world.phases
    # the old version keeps its pods for scaleDownDelay (30s), then they go
    assert world.status.retiring[0].revision == old
    assert ScaleDown(revision=old) not in world.actions
    list(world.ticks(4))
    assert ScaleDown(revision=old) in world.actions
    assert world.status.retiring == []
    assert "AnalysisPass" in world.reasons() and "TrafficShifted" in world.reasons()


def test_failed_checks_reaching_failure_limit_roll_back():
    world = stable_world(verdicts=lambda _n: Verdict.FAIL)
    stable = world.status.stable.revision
    world.roll_to(v2())
    assert world.run_until(Phase.ROLLED_BACK) == Phase.ROLLED_BACK
    canary = world.status.canary
    assert world.status.analysis.failed_checks == 2  # default failureLimit
    assert weights_set(world) == [10, 0]
    assert ScaleDown(revision=canary.revision) in world.actions
    assert world.status.stable.revision == stable
    assert canary.weight == 0
    assert Phase.ROLLING_BACK in world.phases
    assert world.status.history[-1].result == RolloutResult.ROLLED_BACK
    assert "analysis failed 2 times (failureLimit 2)" in world.status.history[-1].reason
    assert {"Ready": "False", "Degraded": "True", "Stalled": "True"}.items() <= conditions(
        world.status
    ).items()
    assert [e.type for e in world.events if e.reason == "AnalysisFail"] == ["Warning", "Warning"]
    # it stays rolled back: no new attempt without a new revision or retry
    list(world.ticks(20))
    assert world.status.phase == Phase.ROLLED_BACK
    assert weights_set(world) == [10, 0]


def test_one_failure_below_the_limit_does_not_roll_back():
    world = stable_world(verdicts=lambda n: Verdict.FAIL if n == 0 else Verdict.PASS)
    world.roll_to(v2())
    assert world.run_until(Phase.STABLE, Phase.ROLLED_BACK) == Phase.STABLE
    assert world.status.analysis.failed_checks == 1


def test_on_failure_pause_holds_the_weight_and_resume_gives_a_fresh_count():
    verdicts = iter([Verdict.FAIL, Verdict.FAIL, Verdict.PASS, Verdict.PASS, Verdict.PASS])
    world = stable_world(verdicts=lambda _n: next(verdicts))
    world.roll_to(v2(rollout={"onFailure": "pause"}))
    assert world.run_until(Phase.PAUSED) == Phase.PAUSED
    assert world.status.canary.paused_by == PauseCause.FAILURES
    assert world.weight == 10
    list(world.ticks(12))
    assert world.status.phase == Phase.PAUSED and world.checks_run == 2  # a hold runs no checks
    world.act("resume", "n1")
    assert world.status.analysis.failed_checks == 0
    assert world.run_until(Phase.STABLE) == Phase.STABLE


def test_inconclusive_checks_wait_for_traffic_forever_by_default():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2())
    list(world.ticks(200))
    assert world.status.phase == Phase.PROGRESSING
    assert world.status.canary.desired_weight == 10
    assert world.status.analysis.inconclusive_checks > 20
    assert world.status.analysis.failed_checks == 0


def test_inconclusive_limit_pauses_and_never_rolls_back():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2(rollout={"analysis": {"inconclusiveLimit": 3}}))
    assert world.run_until(Phase.PAUSED, Phase.ROLLED_BACK) == Phase.PAUSED
    assert world.status.canary.paused_by == PauseCause.INCONCLUSIVE
    assert world.status.analysis.inconclusive_checks == 3


def test_traffic_arriving_after_inconclusive_checks_lets_the_rollout_finish():
    world = stable_world(verdicts=lambda n: Verdict.INCONCLUSIVE if n < 5 else Verdict.PASS)
    world.roll_to(v2())
    assert world.run_until(Phase.STABLE, Phase.ROLLED_BACK) == Phase.STABLE


# --- validation and readiness ---------------------------------------------------------------


def test_canary_failing_validation_never_gets_traffic():
    world = stable_world()
    stable = world.status.stable
    world.validation_passes = False
    world.roll_to(v2())
    assert world.run_until(Phase.FAILED) == Phase.FAILED
    assert weights_set(world) == []
    assert world.status.stable == stable
    assert world.status.history[-1].result == RolloutResult.FAILED
    assert "keeps serving" in world.status.message


def test_validation_that_never_finishes_times_out():
    world = stable_world()
    world.validation_passes = None
    world.roll_to(v2(validation={"timeout": "2m"}))
    assert world.run_until(Phase.FAILED) == Phase.FAILED
    assert "validation did not finish within validation.timeout 2m" in world.status.message
    started = world.status.canary.validation_started_at
    assert world.now - started > timedelta(minutes=2)


def test_canary_that_never_becomes_ready_fails_at_the_progress_deadline():
    world = stable_world()
    world.ready_canaries = False
    world.roll_to(v2(rollout={"progressDeadline": "3m"}))
    assert world.run_until(Phase.FAILED) == Phase.FAILED
    assert "no pod became ready within progressDeadline 3m" in world.status.message
    assert world.now - world.status.canary.started_at >= timedelta(minutes=3)


def test_canary_losing_all_pods_mid_rollout_is_rolled_back_after_the_deadline():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2(rollout={"progressDeadline": "2m"}))
    world.run_until(Phase.PROGRESSING)
    world.tick()
    world.pods.pop(world.status.canary.revision)
    assert world.run_until(Phase.ROLLED_BACK) == Phase.ROLLED_BACK
    assert "no ready pod" in world.status.history[-1].reason


# --- revisions ------------------------------------------------------------------------------


def test_revision_ignores_rollout_settings_and_replicas_but_not_model_or_runtime():
    base = spec_for()
    assert revision_of(base) == revision_of(
        spec_for(rollout={"interval": "5s", "steps": [{"setWeight": 50}]}, paused=True)
    )
    assert revision_of(base) == revision_of(spec_for(runtime={"replicas": 7}))
    assert revision_of(base) != revision_of(spec_for(runtime={"workers": 2}))
    assert revision_of(base) != revision_of(spec_for(uri="file:///models/v1b"))


def test_rollout_only_edit_mid_rollout_does_not_restart_it():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    list(world.ticks(3))
    before = world.status.canary.model_copy()
    world.roll_to(v2(rollout={"interval": "30s", "analysis": {"minRequests": 10}}))
    world.tick()
    after = world.status.canary
    assert (after.revision, after.started_at, after.step) == (
        before.revision,
        before.started_at,
        before.step,
    )
    assert world.status.phase == Phase.PROGRESSING


def test_new_revision_mid_rollout_supersedes_the_canary():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    list(world.ticks(2))
    first_canary = world.status.canary.revision
    world.roll_to(spec_for(uri="file:///models/v3", version="3.0.0"))
    world.tick()
    assert world.status.phase == Phase.VALIDATING
    assert world.status.canary.version == "3.0.0"
    assert world.status.history[-1].result == RolloutResult.SUPERSEDED
    assert world.status.history[-1].revision == first_canary
    assert ScaleDown(revision=first_canary) in world.actions
    assert world.weight == 0


def test_spec_returning_to_the_stable_revision_drops_the_canary():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    world.roll_to(spec_for())
    world.tick()
    assert world.status.phase == Phase.STABLE
    assert world.status.canary is None
    assert world.weight == 0
    assert world.status.history[-1].reason == "the spec returned to the stable revision"


def test_new_revision_after_a_rollback_starts_a_new_rollout():
    world = stable_world(verdicts=lambda n: Verdict.FAIL if n < 2 else Verdict.PASS)
    world.roll_to(v2())
    world.run_until(Phase.ROLLED_BACK)
    world.roll_to(spec_for(uri="file:///models/v3", version="3.0.0"))
    assert world.run_until(Phase.STABLE) == Phase.STABLE
    assert world.status.stable.version == "3.0.0"


# --- pauses ---------------------------------------------------------------------------------


def test_spec_paused_holds_and_unpausing_continues():
    world = stable_world()
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    world.roll_to(v2(paused=True))
    world.tick()
    assert world.status.phase == Phase.PAUSED
    assert world.status.canary.paused_by == PauseCause.SPEC
    list(world.ticks(30))
    assert world.status.phase == Phase.PAUSED
    assert world.act("resume", "r1").last_action.result == (
        "spec.paused is true: set it to false to resume"
    )
    world.roll_to(v2(paused=False))
    assert world.run_until(Phase.STABLE) == Phase.STABLE


def test_pause_step_without_duration_waits_for_promote():
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]
    world = stable_world()
    world.roll_to(v2(rollout={"steps": steps}))
    assert world.run_until(Phase.PAUSED) == Phase.PAUSED
    assert world.status.canary.paused_by == PauseCause.STEP
    assert world.status.canary.step == 1
    list(world.ticks(30))
    assert world.status.phase == Phase.PAUSED
    status = world.act("promote", "p1")
    assert status.last_action.result == "step 2 skipped"
    assert world.run_until(Phase.STABLE) == Phase.STABLE
    assert weights_set(world) == [20, 60]


def test_pause_step_with_duration_waits_that_long():
    steps = [{"setWeight": 20}, {"pause": {"duration": "2m"}}, {"setWeight": 60}]
    world = stable_world()
    world.roll_to(v2(rollout={"steps": steps}))
    world.run_until(Phase.PROGRESSING)
    while world.status.canary.step < 1:
        world.tick()
    paused_at = world.status.canary.step_started_at
    while world.status.canary.step == 1:
        world.tick()
    assert world.now - paused_at >= timedelta(minutes=2)
    assert world.run_until(Phase.STABLE) == Phase.STABLE


# --- manual actions -------------------------------------------------------------------------


def test_promote_skips_one_step_and_promote_full_skips_the_rest():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    world.tick()
    assert world.status.canary.step == 1  # waiting on analysis at 10 %
    world.act("promote", "a")
    assert world.status.canary.desired_weight == 50
    world.act("promote-full", "b")
    assert world.status.phase in (Phase.PROMOTING, Phase.STABLE)
    assert world.run_until(Phase.STABLE) == Phase.STABLE
    assert "promote-full" in world.status.history[-1].reason


def test_abort_rolls_back_and_retry_starts_again():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    world.act("abort", "x1")
    assert world.run_until(Phase.ROLLED_BACK) == Phase.ROLLED_BACK
    assert world.status.history[-1].result == RolloutResult.ABORTED
    assert world.weight == 0
    world.verdicts = lambda _n: Verdict.PASS
    status = world.act("retry", "x2")
    assert status.phase == Phase.VALIDATING
    assert status.last_action.result.startswith("retrying revision")
    assert world.run_until(Phase.STABLE) == Phase.STABLE


def test_pause_and_resume_by_hand():
    world = stable_world()
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    assert world.act("pause", "p").phase == Phase.PAUSED
    assert world.status.canary.paused_by == PauseCause.MANUAL
    list(world.ticks(20))
    assert world.status.phase == Phase.PAUSED
    assert world.act("resume", "r").phase == Phase.PROGRESSING
    assert world.run_until(Phase.STABLE) == Phase.STABLE


def test_an_action_is_acknowledged_exactly_once():
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    world.tick()
    world.act("promote", "same")
    step = world.status.canary.step
    acknowledged = world.status.last_action
    list(world.ticks(5))  # the annotation is still there
    assert world.status.canary.step == step
    assert world.status.last_action == acknowledged
    assert world.reasons().count("ManualAction") == 1
    world.act("promote", "fresh")
    assert world.status.canary.step == step + 1


@pytest.mark.parametrize(
    ("phase_setup", "action", "result"),
    [
        ("stable", "promote", "nothing to promote: phase is Stable"),
        ("stable", "promote-full", "nothing to promote-full: phase is Stable"),
        ("stable", "abort", "nothing to abort: phase is Stable"),
        ("stable", "retry", "nothing to retry: phase is Stable"),
        ("stable", "pause", "nothing to pause: phase is Stable"),
        ("stable", "resume", "nothing to resume: phase is Stable"),
        ("progressing", "resume", "not paused"),
        ("progressing", "retry", "nothing to retry: phase is Progressing"),
        ("validating", "promote", "validation has not passed yet: wait for it, or abort"),
        (
            "stable",
            "rollout",
            "unknown action 'rollout': use promote, promote-full, abort, retry, pause or resume",
        ),
    ],
)
def test_actions_that_do_not_apply_change_nothing_and_say_why(phase_setup, action, result):
    world = stable_world(verdicts=lambda _n: Verdict.INCONCLUSIVE)
    if phase_setup == "validating":
        world.validation_passes = None
        world.roll_to(v2())
        world.tick()
    elif phase_setup == "progressing":
        world.roll_to(v2())
        world.run_until(Phase.PROGRESSING)
    before = world.status.model_copy(deep=True)
    after = world.act(action, "n")
    assert after.last_action.result == result
    assert after.phase == before.phase
    assert after.stable == before.stable
    assert world.events[-1].type == "Warning"


def test_parse_action_reads_the_annotation():
    assert parse_action("promote/4f2a").nonce == "4f2a"
    assert parse_action("Promote-Full/x").action == "promote-full"
    assert parse_action("abort").nonce == "abort"
    assert parse_action("") is None and parse_action(None) is None


# --- degraded and repair --------------------------------------------------------------------


def test_stable_losing_every_pod_is_degraded_until_they_return():
    world = stable_world()
    revision = world.status.stable.revision
    world.pods[revision] = 0
    assert world.tick().phase == Phase.DEGRADED
    assert "0/2 pods" in world.status.message
    assert conditions(world.status)["Degraded"] == "True"
    world.pods[revision] = 2
    assert world.tick().phase == Phase.STABLE


def test_stable_short_of_pods_is_degraded_only_after_the_deadline():
    world = stable_world()
    world.pods[world.status.stable.revision] = 1
    list(world.ticks(6))
    assert world.status.phase == Phase.STABLE
    assert world.run_until(Phase.DEGRADED) == Phase.DEGRADED


@pytest.mark.parametrize("phase", [Phase.PROGRESSING, Phase.PAUSED, Phase.ROLLED_BACK])
def test_a_status_claiming_a_rollout_without_a_canary_is_repaired(phase):
    world = stable_world()
    world.status.phase = phase
    assert world.tick().phase == Phase.STABLE


def test_invalid_spec_is_reported_without_touching_what_serves():
    world = stable_world()
    decision = reject_spec(world.status, ["spec.model: bad"], 3, T0)
    assert decision.status.stable == world.status.stable
    assert decision.status.phase == Phase.STABLE
    assert conditions(decision.status)["SpecValid"] == "False"
    assert conditions(decision.status)["Ready"] == "False"
    assert decision.actions[0].type == "Warning"
    assert "spec.model: bad" in decision.status.message


def test_conditions_keep_their_transition_time_while_unchanged():
    world = stable_world()
    ready = next(c for c in world.status.conditions if c.type == "Ready")
    list(world.ticks(3))
    again = next(c for c in world.status.conditions if c.type == "Ready")
    assert again.last_transition_time == ready.last_transition_time


def test_next_tick_asks_for_the_next_analysis_window():
    world = stable_world()
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    window = world.status.analysis.window_start
    assert next_tick(world.spec, world.status) == window + timedelta(minutes=1)


def test_analysis_outcome_is_recorded_with_its_sentence():
    world = stable_world()
    world.roll_to(v2())
    world.run_until(Phase.PROGRESSING)
    status = world.status
    decision = decide(
        world.spec,
        status,
        Observations(
            ready_replicas=dict(world.pods),
            weight=10,
            analysis=outcome(Verdict.FAIL, requests=321),
        ),
        world.now,
    )
    check = decision.status.analysis.checks[-1]
    assert check.verdict == Verdict.FAIL and check.canary_requests == 321
    assert check.metrics[0].reason == "scripted Fail"
    assert check.weight == 10


def test_status_dict_round_trip_keeps_canary():
    canary = CanaryStatus(revision="abc", uri="file:///m", started_at=T0)
    status = ModelDeploymentStatus(phase=Phase.PROGRESSING, canary=canary)
    again = ModelDeploymentStatus.model_validate(status.to_wire())
    assert again == status
