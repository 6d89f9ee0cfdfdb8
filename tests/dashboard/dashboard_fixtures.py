"""Statuses and windows of one rollout story, as the drivers would record them.

`rollout_story(timeline)` records: v1 Stable; v2 Validating; Progressing at 30 % with a measured
window and a passing check; 60 % with a window and an Inconclusive check; Promoting; v2 Stable
(history: Promoted). Times are seconds after T0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serinus.api.status import (
    CanaryStatus,
    Check,
    HistoryEntry,
    MetricResult,
    ModelDeploymentStatus,
    Phase,
    RolloutResult,
    StableStatus,
    Verdict,
)
from serinus.core.window import AnalysisWindow, VariantWindow
from serinus.dashboard.timeline import Timeline, rollout_id

NS, NAME = "ns1", "iris"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
V1, V2 = "rev-v1", "rev-v2"
V2_STARTED = 10
V2_ROLLOUT = rollout_id(V2, T0 + timedelta(seconds=V2_STARTED))
BUCKETS_5MS = [(0.001, 0.0), (0.005, 0.5), (0.01, 0.95), (0.05, 1.0), (float("inf"), 1.0)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def variant(
    requests: int, errors: int = 0, mix: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> VariantWindow:
    return VariantWindow(
        requests=requests,
        errors=errors,
        latency_buckets=[(le, share * requests) for le, share in BUCKETS_5MS],
        prediction_counts={str(i): share * requests for i, share in enumerate(mix)},
    )


def window(canary: int, stable: int, seconds: float = 10.0, errors: int = 0) -> AnalysisWindow:
    return AnalysisWindow(
        canary=variant(canary, errors), stable=variant(stable), interval_seconds=seconds
    )


def stable(version: str = "1", revision: str = V1) -> ModelDeploymentStatus:
    return ModelDeploymentStatus(
        phase=Phase.STABLE,
        message=f"version {version} is stable",
        stable=StableStatus(revision=revision, version=version, uri=f"file:///m/{version}"),
    )


def with_canary(
    base: ModelDeploymentStatus,
    phase: Phase,
    weight: int,
    *,
    checks: list[Check] | None = None,
    started: float = V2_STARTED,
    revision: str = V2,
    version: str = "2",
) -> ModelDeploymentStatus:
    status = base.model_copy(deep=True)
    status.phase = phase
    status.message = f"{phase.value} at {weight}%"
    status.canary = CanaryStatus(
        revision=revision,
        version=version,
        uri=f"file:///m/{version}",
        started_at=at(started),
        weight=weight,
        desired_weight=weight,
        step=1 if weight else 0,
    )
    status.analysis.checks = list(checks or [])
    return status


def metric(name: str, verdict: Verdict, reason: str) -> MetricResult:
    return MetricResult(name=name, verdict=verdict, canary=0.01, stable=0.01, reason=reason)


def check(seconds: float, weight: int, verdict: Verdict, step: int = 1) -> Check:
    results = [
        metric("error-rate", Verdict.PASS, "error-rate 0.0% within max 5.0% (stable 0.0%)"),
        metric(
            "latency-p99",
            verdict,
            "latency-p99 9 ms is 1.00x stable 9 ms, within 1.25x"
            if verdict == Verdict.PASS
            else "only 12 canary requests, fewer than minRequests 50",
        ),
    ]
    return Check(
        at=at(seconds), step=step, weight=weight, verdict=verdict, canary_requests=120,
        metrics=results,
    )  # fmt: skip


def rollout_story(timeline: Timeline) -> ModelDeploymentStatus:
    """Records the story; returns the final status (v2 Stable)."""
    v1 = stable()
    timeline.record(NS, NAME, v1, None, at(0))
    timeline.record(NS, NAME, with_canary(v1, Phase.VALIDATING, 0), None, at(V2_STARTED))
    timeline.record(NS, NAME, with_canary(v1, Phase.PROGRESSING, 30), None, at(15))
    first = check(25, 30, Verdict.PASS)
    timeline.record(
        NS, NAME, with_canary(v1, Phase.PROGRESSING, 60, checks=[first]), window(300, 700), at(25)
    )
    second = check(35, 60, Verdict.INCONCLUSIVE, step=3)
    timeline.record(
        NS, NAME, with_canary(v1, Phase.PROGRESSING, 60, checks=[first, second]),
        window(600, 400, errors=6), at(35),
    )  # fmt: skip
    promoting = with_canary(v1, Phase.PROMOTING, 100, checks=[first, second])
    timeline.record(NS, NAME, promoting, None, at(40))
    done = stable("2", V2)
    done.analysis.checks = [first, second]
    done.history = [
        HistoryEntry(
            revision=V2, version="2", result=RolloutResult.PROMOTED, reason="all 4 steps passed",
            started_at=at(V2_STARTED), finished_at=at(45),
        )
    ]  # fmt: skip
    timeline.record(NS, NAME, done, None, at(45))
    return done
