"""After promotion: monitoring state, alarms and retraining, driven through `decide`.

The fake world of engine_world promotes version 1.0.0; the tests then hand `decide` scripted
monitoring reports (what `serinus.core.monitor.assess` would say) and retraining outcomes, the
way a driver does when `monitoring_due` says so or a Job finishes.
"""

from __future__ import annotations

from datetime import timedelta

from engine_world import T0, World, spec_for

from serinus.api.spec import ModelDeploymentSpec
from serinus.api.status import (
    Condition,
    FeatureDrift,
    ModelDeploymentStatus,
    MonitorResult,
    Phase,
    StableStatus,
    Verdict,
)
from serinus.core.actions import Decision, EmitEvent, SetModel, StartRetrain
from serinus.core.aftercare import aftercare, monitoring_due
from serinus.core.engine import decide
from serinus.core.monitor import (
    ACCURACY,
    INPUT_DRIFT,
    INTEGRITY,
    PREDICTION_DRIFT,
    MonitoringReport,
)
from serinus.core.observations import MonitorObservation, Observations, RetrainOutcome

INTERVAL = timedelta(minutes=5)
SHA = "ab" * 32
NEW_SHA = "cd" * 32
JOB_TEMPLATE = {"spec": {"template": {"spec": {"containers": [{"name": "train", "image": "t"}]}}}}
RETRAIN_ON_ACCURACY = {"jobTemplate": JOB_TEMPLATE, "triggers": ["accuracy"], "cooldown": "1h"}


# --- the world -------------------------------------------------------------------------------


def model_spec(model: dict | None = None, **overrides) -> ModelDeploymentSpec:
    default = {"uri": "file:///models/v1", "version": "1.0.0", "sha256": SHA}
    return spec_for(model=model or default, **overrides)


def monitored(**overrides) -> World:
    """Version 1.0.0 Stable and monitored; events and actions of the rollout forgotten."""
    world = World(spec=model_spec(**overrides))
    world.run_until(Phase.STABLE)
    world.events.clear()
    world.actions.clear()
    return world


def step(world: World, **observed) -> Decision:
    """One `decide` at world.now with extra observations; actions applied, clock unchanged."""
    decision = decide(
        world.spec, world.status, world.observe().model_copy(update=observed), world.now
    )
    for action in decision.actions:
        world.apply(action)
    world.status = decision.status
    return decision


def result(name: str, verdict: Verdict, why: str = "") -> MonitorResult:
    return MonitorResult(name=name, verdict=verdict, reason=f"{name}: {why or verdict.value}")


def check(world: World, *results: MonitorResult, drifters=()) -> Decision:
    """Move the clock to the next due check and hand `decide` its report."""
    world.now = max(world.now, world.status.monitoring.next_check_at)
    assert monitoring_due(world.spec, world.status, world.now)
    seen = MonitorObservation(
        revision=world.status.stable.revision,
        end=world.now,
        drift_seconds=INTERVAL.total_seconds(),
        report=MonitoringReport(results=list(results), top_drifters=list(drifters), rows=800),
    )
    return step(world, monitoring=seen)


def condition(status: ModelDeploymentStatus, type_: str) -> Condition:
    return next(c for c in status.conditions if c.type == type_)


def events(world: World, reason: str) -> list[EmitEvent]:
    return [e for e in world.events if e.reason == reason]


def of_type(decision: Decision, kind: type) -> list:
    return [a for a in decision.actions if isinstance(a, kind)]


DRIFTED = result(INPUT_DRIFT, Verdict.FAIL, "1 of 6 features drifted: f3 PSI 0.41")
NO_DRIFT = result(INPUT_DRIFT, Verdict.PASS, "no feature drifted")
TOO_LITTLE = result(INPUT_DRIFT, Verdict.INCONCLUSIVE, "too little data: 12 rows; no alarm")
ACCURATE = result(ACCURACY, Verdict.PASS, "accuracy 95.0% within 90.0%")
INACCURATE = result(ACCURACY, Verdict.FAIL, "accuracy 80.0% is below the floor 90.0%")


# --- monitoring starts with a stable version -------------------------------------------------


def test_a_new_stable_version_is_monitored_from_the_tick_it_became_stable():
    world = World(spec=model_spec())
    while world.status.phase != Phase.STABLE:
        promoted_at = world.now
        world.tick()
    monitoring = world.status.monitoring
    assert monitoring.revision == world.status.stable.revision
    assert monitoring.next_check_at == promoted_at + INTERVAL
    assert monitoring.alarms == [] and monitoring.last_check_at is None
    drifted = condition(world.status, "Drifted")
    assert (drifted.status.value, drifted.reason) == ("False", "NotCheckedYet")
    assert "version 1.0.0 is monitored from now" in drifted.message
    assert world.tick().monitoring == monitoring  # later ticks leave it alone


def test_aftercare_on_a_stable_status_starts_monitoring_and_restarts_it_for_a_new_version():
    spec = model_spec()
    stable = StableStatus(revision="r1", uri="file:///models/v1", version="1.0.0", since=T0)
    status = ModelDeploymentStatus(phase=Phase.STABLE, stable=stable)
    assert aftercare(spec, status, Observations(), T0) == []
    assert status.monitoring.next_check_at == T0 + INTERVAL
    assert condition(status, "Drifted").status.value == "False"

    status.monitoring.alarms = [INPUT_DRIFT]
    status.stable = stable.model_copy(update={"revision": "r2", "version": "2.0.0"})
    later = T0 + timedelta(hours=1)
    aftercare(spec, status, Observations(), later)
    assert status.monitoring.revision == "r2"
    assert status.monitoring.alarms == []
    assert status.monitoring.next_check_at == later + INTERVAL


def test_turning_monitoring_off_drops_its_status():
    world = monitored()
    world.spec = model_spec(monitoring={"enabled": False})
    step(world)
    assert world.status.monitoring is None
    assert condition(world.status, "Drifted").reason == "NotMonitored"
    assert step(world).next_tick is None


def test_monitoring_is_due_only_in_stable_after_next_check_at():
    world = monitored()
    due_at = world.status.monitoring.next_check_at
    assert not monitoring_due(world.spec, world.status, due_at - timedelta(seconds=1))
    assert monitoring_due(world.spec, world.status, due_at)
    assert monitoring_due(world.spec, world.status, due_at + timedelta(hours=3))
    assert step(world).next_tick == due_at  # the engine asks to be woken for it

    for phase in (Phase.PROGRESSING, Phase.PAUSED, Phase.DEGRADED, Phase.VALIDATING):
        status = world.status.model_copy(update={"phase": phase})
        assert not monitoring_due(world.spec, status, due_at), phase
    off = model_spec(monitoring={"enabled": False})
    assert not monitoring_due(off, world.status, due_at)


def test_a_rollout_pauses_monitoring_and_a_promotion_restarts_it():
    world = monitored()
    old = world.status.stable.revision
    world.roll_to(model_spec(model={"uri": "file:///models/v2", "version": "2.0.0"}))
    world.tick()
    assert world.status.phase == Phase.VALIDATING
    world.now += timedelta(hours=1)
    assert not monitoring_due(world.spec, world.status, world.now)
    world.run_until(Phase.STABLE)
    assert world.status.stable.revision != old
    assert world.status.monitoring.revision == world.status.stable.revision
    assert world.status.monitoring.next_check_at > world.now - timedelta(seconds=10)


def test_a_report_for_a_version_no_longer_stable_is_ignored():
    world = monitored()
    world.now = world.status.monitoring.next_check_at
    seen = MonitorObservation(
        revision="some-old-revision",
        end=world.now,
        drift_seconds=300,
        report=MonitoringReport(results=[DRIFTED]),
    )
    step(world, monitoring=seen)
    assert world.status.monitoring.alarms == []
    assert world.events == []


# --- alarms ----------------------------------------------------------------------------------


def test_input_drift_raises_drifted_and_one_warning_then_a_pass_clears_it():
    world = monitored()
    drifter = FeatureDrift(feature="f3", psi=0.41, p_value=1e-9, rows=800, drifted=True)
    check(world, DRIFTED, drifters=[drifter])
    monitoring = world.status.monitoring
    assert monitoring.alarms == [INPUT_DRIFT]
    assert monitoring.results == [DRIFTED]
    assert monitoring.top_drifters == [drifter]
    assert monitoring.last_check_at == world.now
    assert monitoring.next_check_at == world.now + INTERVAL
    assert monitoring.rows == 800
    drifted = condition(world.status, "Drifted")
    assert (drifted.status.value, drifted.reason) == ("True", "InputDrift")
    assert drifted.message == DRIFTED.reason
    raised = events(world, "InputDrift")
    assert [(e.type, e.message) for e in raised] == [("Warning", DRIFTED.reason)]
    assert world.status.phase == Phase.STABLE
    assert condition(world.status, "Degraded").status.value == "False"  # drift is no outage

    check(world, DRIFTED)  # still drifted: no second Event
    assert len(events(world, "InputDrift")) == 1
    assert world.status.monitoring.alarms == [INPUT_DRIFT]

    check(world, NO_DRIFT)
    assert world.status.monitoring.alarms == []
    cleared = events(world, "InputDriftCleared")
    assert [(e.type, e.message) for e in cleared] == [("Normal", NO_DRIFT.reason)]
    drifted = condition(world.status, "Drifted")
    assert (drifted.status.value, drifted.reason) == ("False", "NoDrift")


def test_a_check_without_enough_data_keeps_a_raised_alarm():
    world = monitored()
    check(world, DRIFTED)
    check(world, TOO_LITTLE)
    assert world.status.monitoring.alarms == [INPUT_DRIFT]
    assert condition(world.status, "Drifted").status.value == "True"
    assert events(world, "InputDriftCleared") == []
    assert world.status.monitoring.results == [TOO_LITTLE]


def test_a_check_without_enough_data_raises_nothing():
    world = monitored()
    check(world, TOO_LITTLE)
    assert world.status.monitoring.alarms == []
    drifted = condition(world.status, "Drifted")
    assert (drifted.status.value, drifted.reason) == ("False", "TooLittleData")
    assert world.events == []


def test_prediction_drift_is_a_drift_alarm_of_its_own():
    world = monitored()
    fail = result(PREDICTION_DRIFT, Verdict.FAIL, "predictions drifted")
    check(world, NO_DRIFT, fail)
    assert world.status.monitoring.alarms == [PREDICTION_DRIFT]
    drifted = condition(world.status, "Drifted")
    assert (drifted.status.value, drifted.reason) == ("True", "PredictionDrift")
    assert [e.type for e in events(world, "PredictionDrift")] == ["Warning"]


def test_low_accuracy_marks_the_stable_version_degraded_while_it_keeps_serving():
    world = monitored(monitoring={"accuracy": {"min": 0.9}})
    check(world, NO_DRIFT, INACCURATE)
    assert world.status.phase == Phase.STABLE
    degraded = condition(world.status, "Degraded")
    assert (degraded.status.value, degraded.reason) == ("True", "AccuracyLow")
    assert degraded.message == INACCURATE.reason
    assert condition(world.status, "Ready").status.value == "True"
    assert condition(world.status, "Drifted").status.value == "False"
    assert [e.type for e in events(world, "AccuracyLow")] == ["Warning"]
    assert world.status.monitoring.alarms == [ACCURACY]

    check(world, NO_DRIFT, ACCURATE)
    assert condition(world.status, "Degraded").status.value == "False"
    assert [e.type for e in events(world, "AccuracyRecovered")] == ["Normal"]


def test_an_integrity_alarm_also_marks_degraded():
    world = monitored()
    bad = result(INTEGRITY, Verdict.FAIL, "8.0% of requests were rejected as invalid")
    check(world, NO_DRIFT, bad)
    degraded = condition(world.status, "Degraded")
    assert (degraded.status.value, degraded.reason) == ("True", "IntegrityLow")
    assert [e.type for e in events(world, "IntegrityLow")] == ["Warning"]


# --- retraining ------------------------------------------------------------------------------


def retraining(**retrain) -> World:
    return monitored(
        monitoring={"accuracy": {"min": 0.9}}, retrain={**RETRAIN_ON_ACCURACY, **retrain}
    )


def test_an_accuracy_alarm_starts_retraining_from_the_stable_version():
    world = retraining()
    decision = check(world, NO_DRIFT, INACCURATE)
    stable = world.status.stable
    [start] = of_type(decision, StartRetrain)
    assert start.trigger == ACCURACY
    assert start.reason == INACCURATE.reason
    assert (start.model_uri, start.model_sha256, start.model_version) == (
        stable.uri,
        SHA,
        "1.0.0",
    )
    assert (start.window_start, start.window_end) == (world.now - INTERVAL, world.now)
    retrain = world.status.retrain
    assert retrain.running == start.job
    assert (retrain.trigger, retrain.started_at) == (ACCURACY, world.now)
    assert (retrain.window_start, retrain.window_end) == (world.now - INTERVAL, world.now)
    [started] = events(world, "RetrainStarted")
    assert start.job in started.message and INACCURATE.reason in started.message

    again = check(world, NO_DRIFT, INACCURATE)  # the Job still runs: no second one
    assert of_type(again, StartRetrain) == []
    assert world.status.retrain.running == start.job


def test_an_alarm_that_is_no_trigger_starts_nothing():
    world = retraining()
    decision = check(world, DRIFTED, ACCURATE)
    assert of_type(decision, StartRetrain) == []
    assert world.status.retrain is None


def test_a_second_alarm_within_the_cooldown_is_skipped_once():
    world = retraining()
    [start] = of_type(check(world, NO_DRIFT, INACCURATE), StartRetrain)
    started_at = world.now
    step(world, retrain=RetrainOutcome(job=start.job, succeeded=False, message="OOMKilled"))
    check(world, NO_DRIFT, ACCURATE)  # the alarm clears ...
    assert world.now < started_at + timedelta(hours=1)

    raised = check(world, NO_DRIFT, INACCURATE)  # ... and is raised again within the hour
    assert of_type(raised, StartRetrain) == []
    [skipped] = events(world, "RetrainSkipped")
    assert skipped.type == "Normal"
    assert "cooldown 1h lasts until" in skipped.message
    assert of_type(check(world, NO_DRIFT, INACCURATE), StartRetrain) == []
    assert len(events(world, "RetrainSkipped")) == 1

    world.now = started_at + timedelta(hours=1)
    [again] = of_type(check(world, NO_DRIFT, INACCURATE), StartRetrain)
    assert again.job != start.job
    assert len(events(world, "RetrainStarted")) == 2


def test_a_failed_retraining_leaves_the_stable_version_serving():
    world = retraining()
    [start] = of_type(check(world, NO_DRIFT, INACCURATE), StartRetrain)
    before = world.status.stable.model_copy()
    decision = step(
        world, retrain=RetrainOutcome(job=start.job, succeeded=False, message="exit code 1")
    )
    [failed] = events(world, "RetrainFailed")
    assert failed.type == "Warning"
    assert f"retraining {start.job} failed: exit code 1" in failed.message
    assert "version 1.0.0 keeps serving" in failed.message
    assert world.status.stable == before
    assert world.status.phase == Phase.STABLE
    assert of_type(decision, SetModel) == []
    assert world.status.retrain.running is None
    assert world.status.retrain.last_result == f"{start.job} failed: exit code 1"
    assert world.status.retrain.candidate is None


def test_the_outcome_of_a_job_not_running_is_ignored():
    world = retraining()
    check(world, NO_DRIFT, INACCURATE)
    running = world.status.retrain.running
    step(world, retrain=RetrainOutcome(job="retrain-other", succeeded=False, message="gone"))
    assert world.status.retrain.running == running
    assert events(world, "RetrainFailed") == []


def _retrained(world: World, result_: object) -> tuple[Decision, str]:
    [start] = of_type(check(world, NO_DRIFT, INACCURATE), StartRetrain)
    outcome = RetrainOutcome(job=start.job, succeeded=True, message="done", result=result_)
    return step(world, retrain=outcome), start.job


def test_a_retrained_model_is_set_as_spec_model_with_auto_deploy():
    world = retraining(autoDeploy=True)
    result_ = {"uri": "s3://models/iris-v2", "sha256": NEW_SHA, "version": "1.1.0"}
    decision, job = _retrained(world, result_)
    assert of_type(decision, SetModel) == [
        SetModel(uri="s3://models/iris-v2", sha256=NEW_SHA, version="1.1.0")
    ]
    [candidate] = events(world, "RetrainCandidate")
    assert job in candidate.message and "autoDeploy sets it as spec.model" in candidate.message
    assert world.status.retrain.candidate.deployed
    assert world.status.retrain.running is None
    assert world.status.phase == Phase.STABLE  # the rollout follows the spec change


def test_a_retrained_model_waits_without_auto_deploy():
    world = retraining()
    decision, job = _retrained(world, {"uri": "s3://models/iris-v2", "sha256": NEW_SHA})
    assert of_type(decision, SetModel) == []
    [candidate] = events(world, "RetrainCandidate")
    assert "waiting: set spec.model.uri to it" in candidate.message
    waiting = condition(world.status, "RetrainCandidate")
    assert (waiting.status.value, waiting.reason) == ("True", "Waiting")
    assert "s3://models/iris-v2" in waiting.message and job in waiting.message
    assert world.status.retrain.candidate.version is None
    assert (
        world.status.retrain.last_result
        == f"{job} succeeded: retrained model at s3://models/iris-v2"
    )

    world.roll_to(
        model_spec(
            model={"uri": "s3://models/iris-v2", "sha256": NEW_SHA},
            monitoring={"accuracy": {"min": 0.9}},
            retrain=RETRAIN_ON_ACCURACY,
        )
    )
    world.tick()
    deployed = condition(world.status, "RetrainCandidate")
    assert (deployed.status.value, deployed.reason) == ("False", "Deployed")


def test_a_numeric_version_in_the_result_is_taken_as_text():
    world = retraining(autoDeploy=True)
    decision, _ = _retrained(world, {"uri": "s3://m/v3", "version": 3})
    assert of_type(decision, SetModel) == [SetModel(uri="s3://m/v3", sha256=None, version="3")]


def test_a_result_without_a_uri_is_a_failed_retraining():
    world = retraining(autoDeploy=True)
    decision, job = _retrained(world, {"sha256": NEW_SHA})
    assert of_type(decision, SetModel) == []
    [failed] = events(world, "RetrainFailed")
    assert failed.type == "Warning"
    assert f'retraining {job} failed: its result has no "uri"' in failed.message
    assert "SERINUS_RESULT_FILE" in failed.message
    assert world.status.retrain.candidate is None


def test_a_result_with_a_bad_sha256_is_a_failed_retraining():
    world = retraining(autoDeploy=True)
    decision, _ = _retrained(world, {"uri": "s3://models/iris-v2", "sha256": "XYZ"})
    assert of_type(decision, SetModel) == []
    [failed] = events(world, "RetrainFailed")
    assert "\"sha256\" is not 64 lowercase hex digits: 'XYZ'" in failed.message


def test_a_result_that_is_no_json_object_is_a_failed_retraining():
    world = retraining()
    _retrained(world, None)
    [failed] = events(world, "RetrainFailed")
    assert "its result is not a JSON object" in failed.message


def test_switching_the_drift_checks_off_lowers_a_raised_drifted_condition():
    world = monitored()
    check(world, DRIFTED)
    world.spec = model_spec(
        monitoring={"inputDrift": {"enabled": False}, "predictionDrift": {"enabled": False}}
    )
    check(world, result(INTEGRITY, Verdict.PASS))
    assert world.status.monitoring.alarms == []
    drifted = condition(world.status, "Drifted")
    assert (drifted.status.value, drifted.reason) == ("False", "NotChecked")
