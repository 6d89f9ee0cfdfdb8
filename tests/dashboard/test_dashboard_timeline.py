"""The dashboard's timeline: when points and markers are added, what they hold, the bounds."""

from __future__ import annotations

import pytest
from dashboard_fixtures import (
    NAME,
    NS,
    V2,
    V2_ROLLOUT,
    V2_STARTED,
    at,
    check,
    rollout_story,
    stable,
    window,
    with_canary,
)

from serinus.api.status import HistoryEntry, Phase, RolloutResult, Verdict
from serinus.core.stats import histogram_quantile
from serinus.core.window import AnalysisWindow, VariantWindow
from serinus.dashboard.timeline import Timeline, marker_reason, rollout_id, variant_point


def test_a_status_that_does_not_move_adds_nothing() -> None:
    timeline = Timeline()
    v1 = stable()
    timeline.record(NS, NAME, v1, None, at(0))
    first = timeline.get(NS, NAME)
    assert first is not None and len(first.points) == 1 and first.seq == 1
    for second in range(1, 5):
        timeline.record(NS, NAME, v1, None, at(second))
    again = timeline.get(NS, NAME)
    assert again is not None
    assert len(again.points) == 1 and again.seq == 1
    assert again.updated_at == at(4)
    assert again.points[0].phase == Phase.STABLE and again.points[0].rollout is None


def test_weight_phase_and_windows_add_points() -> None:
    timeline = Timeline()
    v1 = stable()
    timeline.record(NS, NAME, with_canary(v1, Phase.PROGRESSING, 30), None, at(20))
    timeline.record(NS, NAME, with_canary(v1, Phase.PROGRESSING, 30), None, at(21))  # no change
    timeline.record(NS, NAME, with_canary(v1, Phase.PROGRESSING, 60), None, at(22))  # weight
    timeline.record(NS, NAME, with_canary(v1, Phase.PAUSED, 60), None, at(23))  # phase
    timeline.record(NS, NAME, with_canary(v1, Phase.PAUSED, 60), window(100, 200), at(24))
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None
    assert [(p.at, p.phase, p.weight) for p in snapshot.points] == [
        (at(20), Phase.PROGRESSING, 30),
        (at(22), Phase.PROGRESSING, 60),
        (at(23), Phase.PAUSED, 60),
        (at(24), Phase.PAUSED, 60),
    ]
    assert all(p.rollout == V2_ROLLOUT for p in snapshot.points)
    assert [p.canary is not None for p in snapshot.points] == [False, False, False, True]


def test_window_figures_are_the_judges_inputs_per_second_and_per_request() -> None:
    buckets = [(0.01, 0.0), (0.1, 100.0), (float("inf"), 100.0)]
    canary = VariantWindow(
        requests=100,
        errors=7,
        latency_buckets=buckets,
        prediction_counts={"setosa": 30.0, "virginica": 50.0, "versicolor": 20.0},
    )
    point = variant_point(canary, seconds=20.0)
    assert point.requests == 100 and point.errors == 7
    assert point.request_rate == pytest.approx(5.0)
    assert point.error_rate == pytest.approx(0.07)
    # PromQL: rank 99 of 100 inside (0.01, 0.1] → 0.01 + 0.09 * 99/100
    assert point.p99_seconds == pytest.approx(0.0991)
    assert point.p99_seconds == pytest.approx(histogram_quantile(0.99, buckets))
    assert point.prediction_mix == pytest.approx(
        {"setosa": 0.3, "versicolor": 0.2, "virginica": 0.5}
    )
    assert list(point.prediction_mix or {}) == ["setosa", "versicolor", "virginica"]


def test_missing_data_is_null_not_zero() -> None:
    quiet = variant_point(VariantWindow(requests=0), seconds=10.0)
    assert quiet.request_rate == 0.0
    assert quiet.error_rate is None and quiet.p99_seconds is None and quiet.prediction_mix is None
    regressor = VariantWindow(
        requests=10,
        prediction_buckets=[(1.0, 4.0), (float("inf"), 10.0)],
        latency_buckets=[(0.1, 0.0), (float("inf"), 0.0)],  # no observations: NaN in PromQL
    )
    point = variant_point(regressor, seconds=10.0)
    assert point.prediction_mix is None and point.p99_seconds is None


def test_a_window_the_provider_could_not_read_keeps_its_reason() -> None:
    timeline = Timeline()
    status = with_canary(stable(), Phase.PROGRESSING, 30)
    failed = AnalysisWindow(error="Prometheus unreachable: refused", interval_seconds=10.0)
    timeline.record(NS, NAME, status, failed, at(20))
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None
    [point] = snapshot.points
    assert point.window_error == "Prometheus unreachable: refused"
    assert point.window_seconds == 10.0 and point.canary is None and point.stable is None


def test_each_new_check_becomes_one_marker_with_its_reason() -> None:
    timeline = Timeline()
    v1 = stable()
    passed = check(25, 30, Verdict.PASS)
    held = check(35, 60, Verdict.INCONCLUSIVE, step=3)
    timeline.record(NS, NAME, with_canary(v1, Phase.PROGRESSING, 60, checks=[passed]), None, at(25))
    timeline.record(NS, NAME, with_canary(v1, Phase.PROGRESSING, 60, checks=[passed]), None, at(30))
    both = with_canary(v1, Phase.PROGRESSING, 60, checks=[passed, held])
    timeline.record(NS, NAME, both, None, at(35))
    timeline.record(NS, NAME, both, None, at(36))
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None
    assert [(m.at, m.verdict, m.step, m.weight) for m in snapshot.markers] == [
        (at(25), Verdict.PASS, 1, 30),
        (at(35), Verdict.INCONCLUSIVE, 3, 60),
    ]
    assert all(m.rollout == V2_ROLLOUT for m in snapshot.markers)
    first, second = snapshot.markers
    assert first.reason == (
        "error-rate 0.0% within max 5.0% (stable 0.0%); latency-p99 9 ms is 1.00x stable 9 ms, "
        "within 1.25x"
    )
    assert second.reason == (
        "latency-p99: only 12 canary requests, fewer than minRequests 50; error-rate passed"
    )
    assert [m.name for m in second.metrics] == ["error-rate", "latency-p99"]
    assert second.canary_requests == 120


def test_a_failed_check_names_the_failing_metric_first() -> None:
    failed = check(25, 30, Verdict.PASS)
    failed.metrics[0].verdict = Verdict.FAIL
    failed.metrics[0].reason = "error-rate 22.0% > max 5.0%, significantly worse than stable"
    failed.verdict = Verdict.FAIL
    assert marker_reason(failed) == (
        "error-rate 22.0% > max 5.0%, significantly worse than stable; latency-p99 passed"
    )


def test_the_promotion_closes_the_rollout_at_full_weight_once() -> None:
    timeline = Timeline()
    final = rollout_story(timeline)
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None
    story = [(p.phase, p.weight, p.rollout) for p in snapshot.points]
    assert story == [
        (Phase.STABLE, 0, None),
        (Phase.VALIDATING, 0, V2_ROLLOUT),
        (Phase.PROGRESSING, 30, V2_ROLLOUT),
        (Phase.PROGRESSING, 60, V2_ROLLOUT),
        (Phase.PROGRESSING, 60, V2_ROLLOUT),
        (Phase.PROMOTING, 100, V2_ROLLOUT),
        (Phase.STABLE, 100, V2_ROLLOUT),
    ]
    # Settled: further records add no point; a later phase change outside a rollout does.
    seq = snapshot.seq
    timeline.record(NS, NAME, final, None, at(50))
    assert len(timeline.get(NS, NAME).points) == len(story)  # type: ignore[union-attr]
    assert timeline.get(NS, NAME).seq == seq  # type: ignore[union-attr]
    degraded = final.model_copy(update={"phase": Phase.DEGRADED})
    timeline.record(NS, NAME, degraded, None, at(60))
    last = timeline.get(NS, NAME).points[-1]  # type: ignore[union-attr]
    assert (last.phase, last.weight, last.rollout) == (Phase.DEGRADED, 0, None)


def test_a_rollback_ends_at_zero_and_a_return_to_stable_closes_at_zero() -> None:
    timeline = Timeline()
    v1 = stable()
    timeline.record(NS, NAME, with_canary(v1, Phase.PROGRESSING, 30), None, at(20))
    timeline.record(NS, NAME, with_canary(v1, Phase.ROLLED_BACK, 0), None, at(30))
    last = timeline.get(NS, NAME).points[-1]  # type: ignore[union-attr]
    assert (last.phase, last.weight, last.rollout) == (Phase.ROLLED_BACK, 0, V2_ROLLOUT)

    # A third version started and the spec went back to v1 (Superseded): closes at 0.
    third = with_canary(v1, Phase.PROGRESSING, 30, started=40, revision="rev-v3", version="3")
    timeline.record(NS, NAME, third, None, at(41))
    back = stable()
    back.history = [
        HistoryEntry(
            revision="rev-v3", version="3", result=RolloutResult.SUPERSEDED,
            reason="the spec returned to the stable revision", started_at=at(40),
            finished_at=at(50),
        )
    ]  # fmt: skip
    timeline.record(NS, NAME, back, None, at(50))
    closing = timeline.get(NS, NAME).points[-1]  # type: ignore[union-attr]
    assert closing.rollout == rollout_id("rev-v3", at(40)) and closing.weight == 0


def test_checks_of_a_finished_rollout_seen_after_a_restart_belong_to_it() -> None:
    """A new operator reads back a settled status whose checks are the last rollout's."""
    timeline = Timeline()
    final = rollout_story(Timeline())
    timeline.record(NS, NAME, final, None, at(100))
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None
    assert [m.rollout for m in snapshot.markers] == [V2_ROLLOUT, V2_ROLLOUT]
    assert snapshot.points[-1].rollout is None  # nothing of the rollout itself was seen


def test_points_and_markers_are_bounded() -> None:
    timeline = Timeline(max_points=5, max_markers=3)
    v1 = stable()
    checks = []
    for i in range(20):
        checks = [*checks, check(20 + i, 30, Verdict.PASS, step=i)][-10:]
        status = with_canary(v1, Phase.PROGRESSING, 30, checks=checks)
        timeline.record(NS, NAME, status, window(100, 100), at(20 + i))
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None
    assert [p.at for p in snapshot.points] == [at(35 + i) for i in range(5)]
    assert [m.step for m in snapshot.markers] == [17, 18, 19]


def test_the_stored_status_is_a_copy() -> None:
    timeline = Timeline()
    status = with_canary(stable(), Phase.PROGRESSING, 30)
    timeline.record(NS, NAME, status, None, at(20))
    assert status.canary is not None
    status.canary.weight = 99
    status.phase = Phase.FAILED
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None and snapshot.status.phase == Phase.PROGRESSING
    assert snapshot.status.canary is not None and snapshot.status.canary.weight == 30


def test_listing_is_sorted_and_forget_drops_one() -> None:
    timeline = Timeline()
    for ns, name in [("b", "x"), ("a", "z"), ("a", "y")]:
        timeline.record(ns, name, stable(), None, at(0))
    assert [(s.namespace, s.name) for s in timeline.all()] == [("a", "y"), ("a", "z"), ("b", "x")]
    timeline.forget("a", "z")
    assert timeline.get("a", "z") is None
    assert [(s.namespace, s.name) for s in timeline.all()] == [("a", "y"), ("b", "x")]


def test_a_retry_of_the_same_revision_is_a_new_rollout() -> None:
    first = rollout_id(V2, at(V2_STARTED))
    second = rollout_id(V2, at(V2_STARTED + 60))
    assert first != second and first.startswith(V2)


def test_only_the_newest_rollouts_are_kept() -> None:
    """Points and markers of older rollouts go when a new one starts (memory per deployment
    stays bounded however many rollouts an operator sees)."""
    timeline = Timeline(max_rollouts=2)
    base = stable()
    for n in range(4):
        started = 100 * n
        revision = f"rev-{n}"
        passed = check(started + 20, 30, Verdict.PASS)
        status = with_canary(base, Phase.PROGRESSING, 30, started=started, revision=revision,
                             version=str(n), checks=[passed])  # fmt: skip
        timeline.record(NS, NAME, status, window(100, 100), at(started + 20))
        rolled_back = with_canary(base, Phase.ROLLED_BACK, 0, started=started, revision=revision,
                                  version=str(n), checks=[passed])  # fmt: skip
        timeline.record(NS, NAME, rolled_back, None, at(started + 30))
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None
    kept = [rollout_id("rev-2", at(200)), rollout_id("rev-3", at(300))]
    assert sorted({p.rollout for p in snapshot.points}) == kept  # type: ignore[type-var]
    assert [m.rollout for m in snapshot.markers] == kept
    assert len(snapshot.points) == 4
