"""Local mode end to end: real runtime processes, the local router, the real metrics backend
(Prometheus when the binary is on PATH, as `serinus local up` does), client traffic through the
router, and the same engine deciding.

Each test is one rollout story, told with the demo's iris versions (v1 stable, v2 good, v3
skewed predictions, v4 errors on ~22 % of the traffic) and a slow copy of v1
(scenario_models.py). Each asserts the final phase, the verdicts the controller recorded (status
checks, history, Events) and that clients never got a 5xx from the stable version. Intervals
are 3 s and minRequests 40-50 at 80-100 requests/s, so a rollout takes ~10-20 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from local_helpers import free_port
from scenario_helpers import (
    Children,
    Scenario,
    Traffic,
    UpProcess,
    alive,
    describe,
    last_rollout,
    metric_verdicts,
    progressing_at,
    reasons,
    scenario_manifest,
    settled_on,
    stable_on,
    write_manifest,
)
from scenario_models import HERE, build_slow_bundle

from serinus.api.status import (
    ModelDeploymentStatus,
    PauseCause,
    Phase,
    RolloutResult,
    Verdict,
)
from serinus.demo.bundles import DemoModel, build_demo_bundles

pytestmark = pytest.mark.slow

RATE = 80.0
"""Client requests per second: at 30 % canary weight, ~70 canary requests per 3 s window."""
ROLLOUT_S = 90.0
"""Generous bound for one rollout (a few seconds each on an idle machine)."""
FIRST_S = 60.0
"""Bound for the first version (processes start, validation, promotion)."""
WITH_PROMETHEUS = shutil.which("prometheus") is not None
"""Controllers left to choose (`prometheus=None`, `serinus local up`) run Prometheus then."""

ALL_PASS = {
    "error-rate": Verdict.PASS,
    "latency-p99": Verdict.PASS,
    "prediction-drift": Verdict.PASS,
}


@dataclass(frozen=True)
class Models:
    v1: DemoModel
    v2: DemoModel
    v3: DemoModel
    v4: DemoModel
    slow: DemoModel


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    out = tmp_path_factory.mktemp("scenario-bundles")
    demo = build_demo_bundles(out)
    bundle, sha256, trusted = build_slow_bundle(out)
    slow = DemoModel(
        version="5",
        bundle=bundle,
        sha256=sha256,
        trusted_types=trusted,
        description="v1's predictions, 40 ms later",
        holdout_accuracy=demo.v1.holdout_accuracy,
        caught_by="latency-p99",
    )
    return Models(demo.v1, demo.v2, demo.v3, demo.v4, slow)


@pytest.fixture(scope="module")
def children() -> Iterator[Children]:
    """Every runtime and Prometheus pid the module's controllers started: none may outlive it."""
    registry = Children()
    yield registry
    left = registry.wait_gone(timeout=15.0)
    assert not left, f"child processes outlived their controllers: {left}"
    assert registry.groups, "no child process was ever noted: the pid bookkeeping is broken"


@pytest.fixture
def scenario(tmp_path: Path, children: Children) -> Iterator[Callable[..., Scenario]]:
    """Start a controller on a fresh state directory with `manifest` applied; closed (traffic,
    ticks, children) at teardown, which also checks that its children are gone."""
    made: list[Scenario] = []

    def start(manifest: dict[str, Any], *, prometheus: bool | None = None) -> Scenario:
        started = Scenario(tmp_path / f"state-{len(made)}", children, prometheus=prometheus)
        made.append(started)
        return started.start(manifest)

    yield start
    for made_one in made:
        pids = made_one.close()
        left = children.wait_gone(pids, timeout=10.0)
        assert not left, f"children left after LocalController.close(): {left}"


def prometheus_binary() -> str:
    """The `prometheus` executable; fails in CI without it, skips elsewhere (as
    tests/metrics/conftest.py)."""
    found = shutil.which("prometheus")
    if found:
        return found
    message = (
        "the prometheus binary is not installed: apt-get install -y --no-install-recommends "
        "prometheus (Debian), or put it on PATH"
    )
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must run the Prometheus integration tests, but {message}")
    pytest.skip(message)


def the_failing_check(status: ModelDeploymentStatus, text: str) -> dict[str, Any]:
    """The check that ended the rollout (the last one, failed), as {metric: result}."""
    assert status.analysis.checks, f"no check\n  {text}"
    last = status.analysis.checks[-1]
    assert last.verdict == Verdict.FAIL, f"the last check did not fail\n  {text}"
    return {m.name: m for m in last.metrics}


def assert_rolled_back(
    s: Scenario, status: ModelDeploymentStatus, model: DemoModel, failure_limit: int = 1
) -> None:
    """Ended RolledBack by analysis after `failure_limit` failed checks, v1 still stable, the
    canary's processes gone."""
    text = s.describe()
    assert status.phase == Phase.ROLLED_BACK, text
    assert status.stable is not None and status.stable.version == "1", text
    entry = last_rollout(status)
    assert entry.version == model.version and entry.result == RolloutResult.ROLLED_BACK, text
    times = "once" if failure_limit == 1 else f"{failure_limit} times"
    expected = f"analysis failed {times} (failureLimit {failure_limit}): rolling back"
    assert entry.reason.startswith(expected), text
    failed = [c for c in status.analysis.checks if c.verdict == Verdict.FAIL]
    assert len(failed) == status.analysis.failed_checks == failure_limit, text
    assert status.canary is not None and status.canary.weight == 0, text
    assert status.canary.revision not in s.ctl.fleet.revisions(), "canary processes still run"
    assert reasons(s.events)[-3:] == ["AnalysisFail", "RollingBack", "RolledBack"], text


# ---------------------------------------------------------------------- 1. promoted


def test_good_version_is_promoted(models: Models, scenario: Callable[..., Scenario]) -> None:
    s = scenario(scenario_manifest(models.v1))
    s.serve_first(models.v1, RATE)
    s.apply(scenario_manifest(models.v2))

    status = s.wait_for(settled_on("2"), ROLLOUT_S, "v2's rollout ends")
    text = s.describe()
    assert status.phase == Phase.STABLE, text
    assert status.stable is not None and status.stable.version == "2", text
    assert status.canary is None, text
    entry = last_rollout(status)
    assert (entry.version, entry.result, entry.reason) == (
        "2", RolloutResult.PROMOTED, "all 4 steps passed"
    ), text  # fmt: skip
    # One check per analysis step, each passing every metric, at the weights of the steps.
    checks = status.analysis.checks
    assert [(c.step, c.weight, c.verdict) for c in checks] == [
        (1, 30, Verdict.PASS), (3, 60, Verdict.PASS)
    ], text  # fmt: skip
    assert metric_verdicts(status) == [ALL_PASS, ALL_PASS], text
    assert all((c.canary_requests or 0) >= 40 for c in checks), text
    assert status.analysis.failed_checks == 0 and status.analysis.passed_checks == 2, text

    events = s.events
    rollout = reasons(events)[reasons(events).index("Stable") + 1 :]  # after v1's
    assert rollout == [
        "Validating", "ValidationPassed", "Progressing", "TrafficShifted", "AnalysisPass",
        "TrafficShifted", "AnalysisPass", "Promoting", "Stable",
    ], text  # fmt: skip
    assert not [e for e in events if e.type == "Warning"], text

    traffic = s.traffic
    assert traffic is not None
    traffic.assert_stable_never_5xx()
    canary = traffic.by_variant("canary")
    assert canary.get(200, 0) > 50 and not {c for c in canary if c >= 500}, canary


# ---------------------------------------------------------------------- 2. error rate


def test_error_rate_regression_is_rolled_back(
    models: Models, scenario: Callable[..., Scenario]
) -> None:
    """failureLimit 2: in v4's first window Prometheus misses the first errors (the 5xx
    counter series is born with them, and increase() cannot count a series' first sample), so
    that check may pass error-rate, or fail on prediction-drift alone (the rows v4 answers are
    not a random subset); the check after it sees every error."""
    s = scenario(scenario_manifest(models.v1))
    s.serve_first(models.v1, RATE)
    s.apply(scenario_manifest(models.v4, failure_limit=2))

    status = s.wait_for(settled_on("4"), ROLLOUT_S, "v4's rollout ends")
    assert_rolled_back(s, status, models.v4, failure_limit=2)
    text = s.describe()
    failed = the_failing_check(status, text)
    error_rate = failed["error-rate"]
    assert error_rate.verdict == Verdict.FAIL, text
    assert error_rate.canary is not None and error_rate.canary > 0.05, text
    assert error_rate.stable == 0.0, text
    assert "significantly worse than stable" in error_rate.reason, text
    assert "error-rate" in last_rollout(status).reason, text

    traffic = s.traffic
    assert traffic is not None
    traffic.assert_stable_never_5xx()
    assert traffic.by_variant("canary").get(500, 0) > 0, "v4 never failed a client request"


# ---------------------------------------------------------------------- 3. latency


def test_latency_regression_is_rolled_back(
    models: Models, scenario: Callable[..., Scenario]
) -> None:
    metrics = [
        {"name": "error-rate", "max": 0.05},
        {"name": "latency-p99", "maxRatioToStable": 1.5},
        {"name": "prediction-drift", "max": 0.1},
    ]
    s = scenario(scenario_manifest(models.v1, metrics=metrics))
    s.serve_first(models.v1, RATE)
    # The runtime must import SlowClassifier to load the bundle: PYTHONPATH, as a user ships
    # a custom estimator class with the image.
    slow = scenario_manifest(models.slow, metrics=metrics, env={"PYTHONPATH": str(HERE)})
    assert slow["spec"]["model"]["trustedTypes"] == ["scenario_models.SlowClassifier"]
    s.apply(slow)

    status = s.wait_for(settled_on("5"), ROLLOUT_S, "the slow version's rollout ends")
    assert_rolled_back(s, status, models.slow)
    text = s.describe()
    failed = the_failing_check(status, text)
    latency = failed["latency-p99"]
    assert latency.verdict == Verdict.FAIL, text
    assert latency.canary is not None and latency.stable is not None, text
    assert latency.canary > 1.5 * latency.stable, text
    assert latency.canary >= 0.04, text  # the sleep alone
    assert "above 1.5x" in latency.reason, text
    # Correct answers, no errors: only latency stopped it.
    assert failed["error-rate"].verdict == Verdict.PASS, text
    assert failed["prediction-drift"].verdict == Verdict.PASS, text
    assert "latency-p99" in last_rollout(status).reason, text

    traffic = s.traffic
    assert traffic is not None
    traffic.assert_stable_never_5xx()
    canary = traffic.by_variant("canary")
    assert canary.get(200, 0) > 0 and not {c for c in canary if c >= 500}, canary


# ---------------------------------------------------------------------- 4. prediction drift


def test_prediction_drift_is_rolled_back(models: Models, scenario: Callable[..., Scenario]) -> None:
    # v3's class mix differs from v1's by PSI ~0.25: at RATE a 3 s window holds ~70 canary
    # predictions, which put chi-square near p=0.003 (seen in CI: both checks passed at 99.99 %
    # confidence). 10 s windows give ~3x the evidence, p far below 0.0001.
    s = scenario(scenario_manifest(models.v1, interval="10s"))
    s.serve_first(models.v1, RATE)
    s.apply(scenario_manifest(models.v3, interval="10s"))

    status = s.wait_for(settled_on("3"), ROLLOUT_S, "v3's rollout ends")
    assert_rolled_back(s, status, models.v3)
    text = s.describe()
    failed = the_failing_check(status, text)
    drift = failed["prediction-drift"]
    assert drift.verdict == Verdict.FAIL, text
    assert drift.canary is not None and drift.canary > 0.1, text
    assert "canary predictions are distributed differently from stable's" in drift.reason, text
    assert failed["error-rate"].verdict == Verdict.PASS, text
    assert failed["error-rate"].canary == 0.0, text
    assert "prediction-drift" in last_rollout(status).reason, text

    traffic = s.traffic
    assert traffic is not None
    traffic.assert_stable_never_5xx()
    canary = traffic.by_variant("canary")
    assert canary.get(200, 0) > 0 and not {c for c in canary if c >= 500}, canary


# ---------------------------------------------------------------------- 5. too little traffic


def test_too_little_traffic_is_inconclusive_until_traffic_comes(
    models: Models, scenario: Callable[..., Scenario]
) -> None:
    """minRequests 50 at 2 requests/s: every check is Inconclusive, never a failure. With
    inconclusiveLimit 3 the rollout keeps its step and weight for two such checks and pauses
    at the third; nothing ends it. With traffic back, `resume` continues and v2 is promoted."""
    limits = {"min_requests": 50, "inconclusive_limit": 3}
    s = scenario(scenario_manifest(models.v1, **limits))
    s.serve_first(models.v1, 2.0)
    s.apply(scenario_manifest(models.v2, **limits))

    paused = s.wait_for(
        lambda st: (
            st.canary is not None
            and st.canary.version == "2"
            and st.phase not in (Phase.VALIDATING, Phase.PROGRESSING)
        ),
        ROLLOUT_S,
        "the starved rollout stops progressing",
    )
    text = s.describe()
    assert paused.phase == Phase.PAUSED, text
    assert paused.canary is not None and paused.canary.version == "2", text
    assert paused.canary.paused_by == PauseCause.INCONCLUSIVE, text
    assert (paused.canary.step, paused.canary.desired_weight) == (1, 30), text
    checks = paused.analysis.checks
    assert [(c.step, c.weight, c.verdict) for c in checks] == [(1, 30, Verdict.INCONCLUSIVE)] * 3, (
        text
    )
    for check in checks:
        assert check.canary_requests is not None and check.canary_requests < 50, text
        for metric in check.metrics:
            assert "canary request" in metric.reason and "need 50" in metric.reason, text
    assert paused.analysis.failed_checks == 0 and paused.analysis.inconclusive_checks == 3, text
    # Neither promoted nor rolled back: the only rollout that ended is v1's first one.
    assert [h.version for h in paused.history] == ["1"], text
    # Progressing through the first two inconclusive checks, paused at the third.
    events = reasons(s.events)
    started = events.index("TrafficShifted")
    assert events[started:] == [
        "TrafficShifted", "AnalysisInconclusive", "AnalysisInconclusive",
        "AnalysisInconclusive", "Paused",
    ], text  # fmt: skip
    assert "inconclusiveLimit 3" in s.events[-1].message, text

    # Paused means no more checks and no decision, however long it waits.
    time.sleep(4.0)
    held = s.status
    assert held.phase == Phase.PAUSED and len(held.analysis.checks) == 3, s.describe()

    traffic = s.start_traffic(models.v1, 100.0)
    s.state.request_action("resume")
    status = s.wait_for(settled_on("2"), ROLLOUT_S, "v2's rollout ends after the resume")
    text = s.describe()
    assert status.phase == Phase.STABLE and status.stable is not None, text
    assert status.stable.version == "2", text
    assert last_rollout(status).result == RolloutResult.PROMOTED, text
    assert status.last_action is not None and status.last_action.result == "resumed", text
    after = status.analysis.checks[3:]
    assert [(c.step, c.weight, c.verdict) for c in after] == [
        (1, 30, Verdict.PASS), (3, 60, Verdict.PASS)
    ], text  # fmt: skip
    traffic.assert_stable_never_5xx()


# ---------------------------------------------------------------------- 6. Prometheus down


def test_prometheus_outage_is_inconclusive_then_promoted(
    models: Models, scenario: Callable[..., Scenario]
) -> None:
    prometheus_binary()
    s = scenario(scenario_manifest(models.v1), prometheus=True)
    assert s.ctl.record.provider == "prometheus"
    prometheus = s.ctl.prometheus
    assert prometheus is not None
    s.serve_first(models.v1, RATE)
    s.apply(scenario_manifest(models.v2))

    # Mid-analysis: the first check passed at 30 %, the 60 % step's check is under way.
    s.wait_for(
        lambda st: progressing_at(3)(st) and st.analysis.passed_checks == 1,
        ROLLOUT_S,
        "v2 at its second analysis step",
    )
    first_pid = prometheus.pid
    assert first_pid is not None
    prometheus.kill()
    assert not alive(first_pid)
    checks_before = len(s.status.analysis.checks)

    outage = s.wait_for(
        lambda st: len(st.analysis.checks) > checks_before, 30.0, "a check without Prometheus"
    )
    text = s.describe()
    check = outage.analysis.checks[-1]
    assert check.verdict == Verdict.INCONCLUSIVE, text
    for metric in check.metrics:
        assert metric.reason.startswith("no verdict: the metrics provider failed: Prometheus at"), (
            text
        )
        assert "unreachable" in metric.reason, text
    assert outage.phase == Phase.PROGRESSING and outage.canary is not None, text
    assert outage.canary.step == 3, text  # held, not advanced and not rolled back

    prometheus.restart()
    assert prometheus.pid is not None and prometheus.pid != first_pid
    status = s.wait_for(settled_on("2"), ROLLOUT_S, "v2's rollout ends after the restart")
    text = s.describe()
    assert status.phase == Phase.STABLE and status.stable is not None, text
    assert status.stable.version == "2", text
    assert last_rollout(status).result == RolloutResult.PROMOTED, text
    # The 30 % check passed; at 60 % the outage, then the restarted Prometheus' first windows
    # (no samples yet, or too few across the gap) were Inconclusive, the step held, and the
    # first passing check promoted. Nothing failed.
    checks = status.analysis.checks
    assert [(c.step, c.verdict) for c in checks] == [
        (1, Verdict.PASS),
        *[(3, Verdict.INCONCLUSIVE)] * (len(checks) - 2),
        (3, Verdict.PASS),
    ], text
    assert s.ctl.record.prometheus_pid == prometheus.pid
    assert s.traffic is not None
    s.traffic.assert_stable_never_5xx()


# ---------------------------------------------------------------------- 7. canary crash


def test_killed_canary_is_restarted_and_promoted(
    models: Models, scenario: Callable[..., Scenario]
) -> None:
    """failureLimit 2 (the default): the first window of the restarted process can fail on its
    own (seen: latency-p99 6.6x stable, 16 % of its requests slower than 3 ms against 2 %,
    p<0.0001), and one failed check is what the policy tolerates."""
    s = scenario(scenario_manifest(models.v1))
    s.serve_first(models.v1, RATE)
    s.apply(scenario_manifest(models.v2, failure_limit=2))

    at_30 = s.wait_for(progressing_at(1), ROLLOUT_S, "v2 takes traffic")
    assert at_30.canary is not None
    revision = at_30.canary.revision
    fleet = s.ctl.fleet
    before = fleet.status(revision)
    assert before is not None and [p.restarts for p in before.processes] == [0]
    old_pid = before.processes[0].pid
    assert old_pid is not None

    assert fleet.kill(revision) == [old_pid]
    assert not alive(old_pid)

    def restarted() -> bool:
        now = fleet.status(revision)
        return now is not None and now.ready == 1 and now.processes[0].pid not in (None, old_pid)

    deadline = time.monotonic() + 30.0
    while not restarted():
        assert time.monotonic() < deadline, f"canary not restarted\n  {s.describe()}"
        time.sleep(0.1)
    after = fleet.status(revision)
    assert after is not None
    assert after.processes[0].restarts == 1
    assert after.processes[0].exit_code == -signal.SIGKILL

    status = s.wait_for(settled_on("2"), ROLLOUT_S, "v2's rollout ends")
    text = s.describe()
    assert status.phase == Phase.STABLE and status.stable is not None, text
    assert status.stable.version == "2", text
    assert last_rollout(status).result == RolloutResult.PROMOTED, text
    failed = [c for c in status.analysis.checks if c.verdict == Verdict.FAIL]
    assert len(failed) == status.analysis.failed_checks <= 1, text
    assert [c.verdict for c in status.analysis.checks][-1] == Verdict.PASS, text
    # The restarted process is the one promoted: stable now is the new pid.
    assert fleet.status(revision) is not None
    assert fleet.status(revision).processes[0].pid == after.processes[0].pid  # type: ignore[union-attr]
    assert s.traffic is not None
    s.traffic.assert_stable_never_5xx()


# ---------------------------------------------------------------------- 8. controller crash


def test_killed_controller_resumes_the_rollout(
    models: Models, tmp_path: Path, children: Children
) -> None:
    """`serinus local up` SIGKILLed mid-rollout: its children live on as orphans; the next `up`
    reaps them, restarts the processes and continues at the same step (no second validation),
    and Ctrl-C then stops everything it started."""
    state_dir = tmp_path / "state"
    port = free_port()
    v1_file = write_manifest(tmp_path / "v1.yaml", scenario_manifest(models.v1))
    v2_manifest = scenario_manifest(models.v2, failure_limit=2)  # fresh processes: see 7.
    v2_file = write_manifest(tmp_path / "v2.yaml", v2_manifest)
    traffic = Traffic(models.v1)
    processes: list[UpProcess] = []

    def up(manifest_file: Path) -> UpProcess:
        log = tmp_path / f"up-{len(processes)}.log"
        started = UpProcess(manifest_file, state_dir, port, log, children=children)
        processes.append(started)
        return started

    try:
        first = up(v1_file)
        first.wait_status(stable_on("1"), FIRST_S, "v1 stable")
        traffic.start(f"http://127.0.0.1:{port}", RATE)
        first.state.apply(v2_manifest)  # what `serinus local apply -f v2.yaml` stores
        first.wait_status(progressing_at(1, version="2"), ROLLOUT_S, "v2 at step 1")

        first.signal(signal.SIGKILL)
        assert first.wait_exit() == -signal.SIGKILL
        left = first.record()  # what the dead controller wrote last
        killed = ModelDeploymentStatus.model_validate(left.status)
        text = describe(killed, left.events)
        assert killed.phase == Phase.PROGRESSING and killed.canary is not None, text
        step_at_kill, revision = killed.canary.step, killed.canary.revision
        assert step_at_kill >= 1, text
        orphaned = [*left.runtime_pids, left.prometheus_pid]
        assert len(left.runtime_pids) == 2, left
        assert (left.prometheus_pid is not None) == WITH_PROMETHEUS, left
        assert all(alive(pid) for pid in orphaned if pid), "children died with the controller"

        second = up(v2_file)
        resumed = second.wait_for(
            lambda r: r.controller_pid == second.pid, 60.0, "the second `up` takes over"
        )
        # start() reaps before it writes anything.
        assert not [pid for pid in orphaned if pid and alive(pid)], "orphans not reaped"
        first_look = ModelDeploymentStatus.model_validate(resumed.status)
        text = describe(first_look, resumed.events)
        assert first_look.phase == Phase.PROGRESSING and first_look.canary is not None, text
        assert first_look.canary.step >= step_at_kill, text

        final = second.wait_status(settled_on("2"), ROLLOUT_S, "v2's rollout ends")
        status = ModelDeploymentStatus.model_validate(final.status)
        text = describe(status, final.events)
        assert status.phase == Phase.STABLE and status.stable is not None, text
        assert status.stable.version == "2" and status.stable.revision == revision, text
        assert last_rollout(status).result == RolloutResult.PROMOTED, text
        assert status.analysis.failed_checks <= 1, text
        # Resumed, not restarted: one validation and one 0 % → 30 % shift for v2.
        for_v2 = [e.reason for e in final.events if revision in e.message]
        assert for_v2.count("Validating") == 1, text
        assert for_v2.count("ValidationPassed") == 1, text
        shifts = [e.message for e in final.events if e.reason == "TrafficShifted"]
        assert sum("0% → 30%" in m for m in shifts) == 1, text
        recreated = [e.message for e in final.events if e.reason == "DeploymentRecreated"]
        assert len(recreated) == 2, text  # stable and canary processes started again
        assert "(unchanged)" in second.output(), second.output()

        second.record()
        # v1's process (started again, stopped after the promotion), v2's, Prometheus.
        assert len(second.started) >= 2 + WITH_PROMETHEUS, second.started
        second.signal(signal.SIGINT)
        assert second.wait_exit() == 0, second.output()
        assert "stopping: every child process is stopped" in second.output()
        gone = children.wait_gone(second.started, timeout=5.0)
        assert not gone, f"`serinus local up` left children after Ctrl-C: {gone}"
        stopped = second.record()
        assert stopped.controller_pid is None and stopped.runtime_pids == [], stopped
        traffic.stop()
        traffic.assert_stable_never_5xx()
    finally:
        traffic.stop()
        for process in processes:
            process.stop()


# ---------------------------------------------------------------------- 9. manual actions


def test_abort_then_promote_full(models: Models, scenario: Callable[..., Scenario]) -> None:
    """A 60 s interval: no check can decide anything before the actions do."""
    s = scenario(scenario_manifest(models.v1, interval="60s"))
    s.serve_first(models.v1, RATE)
    traffic = s.traffic
    assert traffic is not None

    s.apply(scenario_manifest(models.v3, interval="60s"))
    s.wait_for(progressing_at(1, version="3"), ROLLOUT_S, "v3 takes traffic")
    deadline = time.monotonic() + 10.0
    while traffic.by_variant("canary").get(200, 0) < 20:
        assert time.monotonic() < deadline, "the canary gets no traffic"
        time.sleep(0.1)
    s.state.request_action("abort")
    status = s.wait_for(settled_on("3"), 30.0, "v3 aborted")
    text = s.describe()
    assert status.phase == Phase.ROLLED_BACK, text
    entry = last_rollout(status)
    assert (entry.result, entry.reason) == (RolloutResult.ABORTED, "aborted by hand"), text
    assert status.last_action is not None and status.last_action.result == "aborted", text
    assert status.analysis.checks == [], text  # the abort decided, no check did
    assert status.canary is not None and status.canary.revision not in s.ctl.fleet.revisions()
    assert status.stable is not None and status.stable.version == "1", text
    manual = s.events_for("ManualAction")
    assert [e.message for e in manual] == ["abort: aborted"], text

    # Stable keeps serving everything.
    served = traffic.by_variant("stable").get(200, 0)
    canary_before = sum(traffic.by_variant("canary").values())
    time.sleep(1.5)
    assert traffic.by_variant("stable").get(200, 0) > served + 50
    assert sum(traffic.by_variant("canary").values()) == canary_before

    s.apply(scenario_manifest(models.v2, interval="60s"))
    s.wait_for(progressing_at(1, version="2"), ROLLOUT_S, "v2 validated and at 30 %")
    asked = time.monotonic()
    s.state.request_action("promote-full")
    status = s.wait_for(stable_on("2"), 30.0, "v2 promoted by hand")
    took = time.monotonic() - asked
    text = s.describe()
    assert took < 10.0, f"promote-full took {took:.1f}s\n  {text}"
    entry = last_rollout(status)
    assert (entry.version, entry.result) == ("2", RolloutResult.PROMOTED), text
    assert entry.reason == "promoted by hand (promote-full), remaining steps skipped", text
    assert status.last_action is not None and status.last_action.result == "promoting now"
    assert status.analysis.checks == [], text  # the steps' checks were skipped
    assert [h.version for h in status.history] == ["1", "3", "2"], text
    traffic.assert_stable_never_5xx()
