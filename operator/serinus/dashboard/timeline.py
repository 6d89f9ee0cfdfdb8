"""What the dashboard knows: the latest status of each ModelDeployment and a bounded timeline.

Both drivers call `Timeline.record(namespace, name, status, window, now)` where they persist a
decision (the Kubernetes driver in `_outcome`, the local controller after each tick), with the
analysis window measured in that tick, if any. A point is appended when the canary weight, the
phase or the rollout changed, or when a window was measured; each new analysis check in the
status becomes a verdict marker. Everything is bounded (points and markers per deployment), kept
in memory only (a restarted operator starts an empty timeline; the status it reads back still
carries the last checks and the history), and safe to read from the server's threads while the
drivers write.

Per-variant figures of a point come from the same `AnalysisWindow` the judge read: request rate
is requests / window length, error rate is 5xx / requests, p99 is PromQL's `histogram_quantile`
over the window's latency buckets, and the prediction mix is each class's share of the window's
predictions (classifiers only).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from serinus.api.status import (
    Check,
    MetricResult,
    ModelDeploymentStatus,
    Phase,
    RolloutResult,
    Verdict,
)
from serinus.core.stats import histogram_quantile
from serinus.core.window import AnalysisWindow, VariantWindow

MAX_POINTS = 300
"""Points kept per ModelDeployment (a few hours of 1-minute checks; the oldest go first)."""
MAX_MARKERS = 100
"""Verdict markers kept per ModelDeployment."""
MAX_ROLLOUTS = 3
"""Rollouts whose points and markers are kept per ModelDeployment (the newest)."""


# Stored compactly (slotted, no pydantic): an operator keeps one timeline per ModelDeployment,
# and a point is ~0.5 KB this way against ~4.5 KB as models. api.py turns them into documents.


@dataclass(frozen=True, slots=True)
class Figures:
    """One variant over one analysis window (see api.VariantPoint)."""

    requests: int
    request_rate: float
    errors: int
    error_rate: float | None
    p99_seconds: float | None
    prediction_mix: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class Point:
    """The deployment at one moment (see api.TimelinePoint)."""

    at: datetime
    phase: Phase
    weight: int
    rollout: str | None
    window_seconds: float | None = None
    window_error: str | None = None
    stable: Figures | None = None
    canary: Figures | None = None


@dataclass(frozen=True, slots=True)
class MetricFigures:
    """One metric's verdict in one check (see serinus.api.status.MetricResult)."""

    name: str
    verdict: Verdict
    canary: float | None
    stable: float | None
    threshold: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class Marker:
    """One analysis check (see api.VerdictMarker)."""

    at: datetime
    rollout: str | None
    step: int
    weight: int
    verdict: Verdict
    reason: str
    canary_requests: int | None
    metrics: tuple[MetricFigures, ...]


@dataclass
class Track:
    """One ModelDeployment as the dashboard knows it."""

    namespace: str
    name: str
    status: ModelDeploymentStatus
    updated_at: datetime
    points: deque[Point]
    markers: deque[Marker]
    seq: int = 0
    """Goes up whenever the status, a point or a marker changes (pages poll on it)."""
    rollout: str | None = None
    """The rollout the last point belonged to."""
    seen_checks: set[tuple[datetime, int]] = field(default_factory=set)


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of one Track, safe to read while the drivers write."""

    namespace: str
    name: str
    status: ModelDeploymentStatus
    updated_at: datetime
    points: tuple[Point, ...]
    markers: tuple[Marker, ...]
    seq: int


def rollout_id(revision: str, started_at: datetime) -> str:
    """The id of one rollout: a retry of the same revision is a new rollout."""
    return f"{revision}-{int(started_at.timestamp())}"


class Timeline:
    """Latest status and bounded timeline per ModelDeployment, keyed by (namespace, name)."""

    def __init__(
        self,
        max_points: int = MAX_POINTS,
        max_markers: int = MAX_MARKERS,
        max_rollouts: int = MAX_ROLLOUTS,
    ) -> None:
        self.max_points = max_points
        self.max_markers = max_markers
        self.max_rollouts = max_rollouts
        self._tracks: dict[tuple[str, str], Track] = {}
        self._lock = threading.Lock()

    def record(
        self,
        namespace: str,
        name: str,
        status: ModelDeploymentStatus,
        window: AnalysisWindow | None,
        now: datetime,
    ) -> None:
        """The status a driver just persisted, and the window it measured in that tick."""
        with self._lock:
            track = self._tracks.get((namespace, name))
            changed = track is None or track.status != status
            if changed:
                status = status.model_copy(deep=True)  # the driver may build on its object
            if track is None:
                track = Track(
                    namespace, name, status, now,
                    deque(maxlen=self.max_points), deque(maxlen=self.max_markers),
                )  # fmt: skip
                self._tracks[(namespace, name)] = track
            elif changed:
                track.status = status
            else:
                status = track.status
            track.updated_at = now
            rollout, weight, closing = self._rollout_of(track, status)
            if closing or window is not None or _moved(track, status.phase, weight, rollout):
                if rollout is not None and rollout != track.rollout:
                    self._prune(track, rollout)
                track.points.append(_point(now, status, weight, rollout, window))
                changed = True
            track.rollout = None if closing else rollout
            for check in status.analysis.checks:
                key = (check.at, check.step)
                if key in track.seen_checks:
                    continue
                track.seen_checks.add(key)
                track.markers.append(_marker(check, _rollout_of_check(status, check)))
                changed = True
            if len(track.seen_checks) > 4 * self.max_markers:
                track.seen_checks = {(m.at, m.step) for m in track.markers} | {
                    (c.at, c.step) for c in status.analysis.checks
                }
            if changed:
                track.seq += 1

    def forget(self, namespace: str, name: str) -> None:
        """The ModelDeployment is gone."""
        with self._lock:
            self._tracks.pop((namespace, name), None)

    def get(self, namespace: str, name: str) -> Snapshot | None:
        with self._lock:
            track = self._tracks.get((namespace, name))
            return _snapshot(track) if track is not None else None

    def all(self) -> list[Snapshot]:
        """Every ModelDeployment, by namespace then name."""
        with self._lock:
            return [_snapshot(self._tracks[key]) for key in sorted(self._tracks)]

    def _prune(self, track: Track, starting: str) -> None:
        """A rollout starts: keep the points and markers of the newest `max_rollouts - 1`
        others (and nothing older than the oldest of them)."""
        kept: list[str] = []
        for point in reversed(track.points):
            if (
                point.rollout is not None
                and point.rollout != starting
                and point.rollout not in kept
            ):
                kept.append(point.rollout)
        if len(kept) < self.max_rollouts:
            return
        keep = set(kept[: self.max_rollouts - 1]) | {starting}
        first = next((p.at for p in track.points if p.rollout in keep), None)

        def wanted(rollout: str | None, at: datetime) -> bool:
            if rollout is not None:
                return rollout in keep
            return first is not None and at >= first

        track.points = deque(
            (p for p in track.points if wanted(p.rollout, p.at)), maxlen=self.max_points
        )
        track.markers = deque(
            (m for m in track.markers if wanted(m.rollout, m.at)), maxlen=self.max_markers
        )

    @staticmethod
    def _rollout_of(track: Track, status: ModelDeploymentStatus) -> tuple[str | None, int, bool]:
        """The rollout a new point belongs to, the new version's share of traffic, and whether
        the point closes the rollout (the canary has just left the status: promoted, or the
        spec went back to the stable revision)."""
        canary = status.canary
        if canary is not None:
            return rollout_id(canary.revision, canary.started_at), canary.weight, False
        ended = track.rollout
        if ended is None:
            return None, 0, False
        last = status.history[-1] if status.history else None
        promoted = (
            last is not None
            and last.result == RolloutResult.PROMOTED
            and rollout_id(last.revision, last.started_at) == ended
        )
        return ended, 100 if promoted else 0, True


def _moved(track: Track, phase: Phase, weight: int, rollout: str | None) -> bool:
    """Whether a point is due without a window: in a rollout, its phase or weight changed (or
    it began); outside one, the phase changed (e.g. Stable → Degraded)."""
    last = track.points[-1] if track.points else None
    if last is None:
        return True
    if rollout is None:
        return last.phase != phase
    return (last.phase, last.weight, last.rollout) != (phase, weight, rollout)


def _rollout_of_check(status: ModelDeploymentStatus, check: Check) -> str | None:
    """The rollout a check was made in: the canary's, or a finished one's from the history."""
    canary = status.canary
    if canary is not None and check.at >= canary.started_at:
        return rollout_id(canary.revision, canary.started_at)
    for entry in reversed(status.history):
        if entry.started_at <= check.at <= entry.finished_at:
            return rollout_id(entry.revision, entry.started_at)
    return None


def _snapshot(track: Track) -> Snapshot:
    return Snapshot(
        namespace=track.namespace,
        name=track.name,
        status=track.status,
        updated_at=track.updated_at,
        points=tuple(track.points),
        markers=tuple(track.markers),
        seq=track.seq,
    )


def _point(
    now: datetime,
    status: ModelDeploymentStatus,
    weight: int,
    rollout: str | None,
    window: AnalysisWindow | None,
) -> Point:
    if window is None:
        return Point(at=now, phase=status.phase, weight=weight, rollout=rollout)
    seconds = window.interval_seconds
    return Point(
        at=now,
        phase=status.phase,
        weight=weight,
        rollout=rollout,
        window_seconds=seconds,
        window_error=window.error,
        stable=variant_point(window.stable, seconds) if window.stable else None,
        canary=variant_point(window.canary, seconds) if window.canary else None,
    )


def variant_point(variant: VariantWindow, seconds: float) -> Figures:
    """The dashboard's figures of one variant over a window of `seconds`."""
    requests = variant.requests
    return Figures(
        requests=requests,
        request_rate=requests / seconds,
        errors=variant.errors,
        error_rate=variant.errors / requests if requests else None,
        p99_seconds=_p99(variant),
        prediction_mix=_mix(variant.prediction_counts),
    )


def _p99(variant: VariantWindow) -> float | None:
    if not variant.latency_buckets:
        return None
    try:
        value = histogram_quantile(0.99, variant.latency_buckets)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _mix(counts: dict[str, float] | None) -> dict[str, float] | None:
    if not counts:
        return None
    total = sum(max(count, 0.0) for count in counts.values())
    if total <= 0:
        return None
    return {label: max(count, 0.0) / total for label, count in sorted(counts.items())}


def _marker(check: Check, rollout: str | None) -> Marker:
    return Marker(
        at=check.at,
        rollout=rollout,
        step=check.step,
        weight=check.weight,
        verdict=check.verdict,
        reason=marker_reason(check),
        canary_requests=check.canary_requests,
        metrics=tuple(
            MetricFigures(m.name, m.verdict, m.canary, m.stable, m.threshold, m.reason)
            for m in check.metrics
        ),
    )


def marker_reason(check: Check) -> str:
    """The reasons that decided the verdict (failed, then inconclusive metrics, then the names
    of those that passed); for a pass, every metric's reason."""
    if not check.metrics:
        return "no metrics to check"
    if check.verdict == Verdict.PASS:
        return "; ".join(_named(m) for m in check.metrics)
    parts = [_named(m) for v in (Verdict.FAIL, Verdict.INCONCLUSIVE) for m in check.metrics
             if m.verdict == v]  # fmt: skip
    passed = [m.name for m in check.metrics if m.verdict == Verdict.PASS]
    if passed:
        parts.append(f"{', '.join(passed)} passed")
    return "; ".join(parts)


def _named(result: MetricResult) -> str:
    first = result.reason.split(" ", 1)[0].rstrip(":")
    return result.reason if first == result.name else f"{result.name}: {result.reason}"
