"""The dashboard's JSON documents, built from what the timeline holds (pure functions).

`GET /api/modeldeployments` is a `ModelDeploymentList`; `GET /api/modeldeployments/{ns}/{name}`
a `ModelDeploymentDetail`. The schema, with an example, is in docs/dashboard.md; the pydantic
models here are its source (`api_schema()` prints it as JSON Schema).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from serinus.api.status import (
    MetricResult,
    ModelDeploymentStatus,
    PauseCause,
    Phase,
    RolloutResult,
    Verdict,
)
from serinus.api.types import ApiModel
from serinus.dashboard.timeline import Figures, Marker, Point, Snapshot, rollout_id


class VariantPoint(ApiModel):
    """One variant's figures over one analysis window."""

    requests: int = Field(description="Requests in the window.")
    request_rate: float = Field(description="Requests per second over the window.")
    errors: int = Field(description="5xx answers in the window.")
    error_rate: float | None = Field(description="errors / requests; null without requests.")
    p99_seconds: float | None = Field(
        description="99th percentile latency (histogram_quantile over the window's buckets); "
        "null without latency data."
    )
    prediction_mix: dict[str, float] | None = Field(
        description="Share of the window's predictions per class label (sums to 1); null for "
        "regressors or without predictions."
    )


class TimelinePoint(ApiModel):
    """The deployment at one moment: after a decision that moved something, or a window."""

    at: datetime = Field(description="When (the end of the window, for a measured point).")
    phase: Phase = Field(description="Phase after the decision.")
    weight: int = Field(
        description="Percent of traffic on the rollout's new version: the canary's achieved "
        "weight, 100 on the point where it was promoted, 0 outside a rollout."
    )
    rollout: str | None = Field(
        description="Id of the rollout the point belongs to (`<revision>-<start, unix s>`), "
        "null outside one."
    )
    window_seconds: float | None = Field(
        description="Length of the analysis window measured at this point."
    )
    window_error: str | None = Field(
        description="Why the metrics provider could not read the window."
    )
    stable: VariantPoint | None = Field(description="Stable over the window.")
    canary: VariantPoint | None = Field(description="Canary over the window.")


class VerdictMarker(ApiModel):
    """One analysis check of a rollout, as a marker on the timeline."""

    at: datetime = Field(description="End of the checked window.")
    rollout: str | None = Field(description="Id of the rollout the check belongs to.")
    step: int = Field(description="Rollout step during the check (0-based).")
    weight: int = Field(description="Canary weight during the check.")
    verdict: Verdict = Field(description="Pass, Fail or Inconclusive.")
    reason: str = Field(description="Why: the reasons of the metrics that decided the verdict.")
    canary_requests: int | None = Field(description="Canary requests in the window.")
    metrics: list[MetricResult] = Field(description="Every metric's verdict, values and reason.")


class VariantSummary(ApiModel):
    """A version serving traffic."""

    revision: str = Field(description="Revision hash (model + runtime).")
    version: str | None = Field(description="spec.model.version of that revision.")
    weight: int = Field(description="Percent of traffic it gets now.")


class CanarySummary(VariantSummary):
    """The version being rolled out."""

    desired_weight: int = Field(description="Percent of traffic the current step asks for.")
    step: int = Field(description="Current rollout step (0-based).")
    paused_by: PauseCause | None = Field(description="What holds the rollout, if anything.")
    paused_reason: str | None = Field(description="Why the rollout holds.")


class DeploymentSummary(ApiModel):
    """One ModelDeployment in the list: where it stands."""

    namespace: str = Field(description="Namespace (`local` in local mode).")
    name: str = Field(description="metadata.name.")
    phase: Phase = Field(description="status.phase.")
    message: str = Field(description="status.message: what is happening, in a sentence.")
    stable: VariantSummary | None = Field(description="The stable version; weight 100 - canary.")
    canary: CanarySummary | None = Field(description="The version rolling out, if any.")
    last_verdict: Verdict | None = Field(description="Verdict of the latest analysis check.")
    last_check_at: datetime | None = Field(description="When that check's window ended.")
    updated_at: datetime = Field(description="When the driver last recorded this status.")


class ModelDeploymentList(ApiModel):
    """`GET /api/modeldeployments`."""

    items: list[DeploymentSummary] = Field(description="Every ModelDeployment, by namespace/name.")


class RolloutSummary(ApiModel):
    """One rollout of the deployment: finished (from status.history) or the current one."""

    id: str = Field(description="`<revision>-<start, unix seconds>`; select it with ?rollout=.")
    revision: str = Field(description="Revision rolled out.")
    version: str | None = Field(description="Model version rolled out.")
    started_at: datetime = Field(description="When it began.")
    finished_at: datetime | None = Field(description="When it ended; null while it runs.")
    result: RolloutResult | None = Field(description="How it ended; null while it runs.")
    reason: str | None = Field(description="Why it ended that way (or why it holds).")
    points: int = Field(description="Timeline points the dashboard still holds for it.")
    markers: int = Field(description="Verdict markers the dashboard still holds for it.")


class TimelineDocument(ApiModel):
    """Every point and marker the dashboard holds (bounded), oldest first."""

    points: list[TimelinePoint] = Field(description="Weight, phase and per-variant figures.")
    markers: list[VerdictMarker] = Field(description="Analysis verdicts with their reasons.")


class ModelDeploymentDetail(DeploymentSummary):
    """`GET /api/modeldeployments/{namespace}/{name}`."""

    seq: int = Field(description="Goes up whenever anything below changes (poll on it).")
    rollouts: list[RolloutSummary] = Field(description="Past rollouts and the current one.")
    timeline: TimelineDocument = Field(description="The rollouts over time.")
    status: dict[str, Any] = Field(
        description="The full status as the driver stored it (camelCase, as in the CRD): "
        "analysis.checks with per-metric canary/stable values, history, conditions."
    )


class ApiError(ApiModel):
    """Every error answer: `{"error": "..."}` with the HTTP status."""

    error: str = Field(description="What went wrong, in a sentence.")


def as_json(model: ApiModel) -> dict[str, Any]:
    """A dashboard document on the wire: camelCase, nulls kept (the schema lists every field)."""
    return model.model_dump(mode="json", by_alias=True)


def _figures(figures: Figures | None) -> VariantPoint | None:
    if figures is None:
        return None
    return VariantPoint(
        requests=figures.requests,
        request_rate=figures.request_rate,
        errors=figures.errors,
        error_rate=figures.error_rate,
        p99_seconds=figures.p99_seconds,
        prediction_mix=figures.prediction_mix,
    )


def timeline_point(point: Point) -> TimelinePoint:
    return TimelinePoint(
        at=point.at,
        phase=point.phase,
        weight=point.weight,
        rollout=point.rollout,
        window_seconds=point.window_seconds,
        window_error=point.window_error,
        stable=_figures(point.stable),
        canary=_figures(point.canary),
    )


def verdict_marker(marker: Marker) -> VerdictMarker:
    return VerdictMarker(
        at=marker.at,
        rollout=marker.rollout,
        step=marker.step,
        weight=marker.weight,
        verdict=marker.verdict,
        reason=marker.reason,
        canary_requests=marker.canary_requests,
        metrics=[
            MetricResult(
                name=m.name,
                verdict=m.verdict,
                canary=m.canary,
                stable=m.stable,
                threshold=m.threshold,
                reason=m.reason,
            )
            for m in marker.metrics
        ],
    )


def summary(snapshot: Snapshot) -> DeploymentSummary:
    status = snapshot.status
    canary = status.canary
    canary_weight = canary.weight if canary is not None else 0
    stable = None
    if status.stable is not None:
        stable = VariantSummary(
            revision=status.stable.revision,
            version=status.stable.version,
            weight=100 - canary_weight,
        )
    canary_summary = None
    if canary is not None:
        canary_summary = CanarySummary(
            revision=canary.revision,
            version=canary.version,
            weight=canary.weight,
            desired_weight=canary.desired_weight,
            step=canary.step,
            paused_by=canary.paused_by,
            paused_reason=canary.paused_reason,
        )
    checks = status.analysis.checks
    return DeploymentSummary(
        namespace=snapshot.namespace,
        name=snapshot.name,
        phase=status.phase,
        message=status.message,
        stable=stable,
        canary=canary_summary,
        last_verdict=checks[-1].verdict if checks else None,
        last_check_at=checks[-1].at if checks else None,
        updated_at=snapshot.updated_at,
    )


def list_document(snapshots: list[Snapshot]) -> ModelDeploymentList:
    return ModelDeploymentList(items=[summary(s) for s in snapshots])


def rollouts(snapshot: Snapshot) -> list[RolloutSummary]:
    """The finished rollouts in the status' history and the current one, oldest first."""
    found: dict[str, RolloutSummary] = {}
    status: ModelDeploymentStatus = snapshot.status
    for entry in status.history:
        key = rollout_id(entry.revision, entry.started_at)
        found[key] = RolloutSummary(
            id=key,
            revision=entry.revision,
            version=entry.version,
            started_at=entry.started_at,
            finished_at=entry.finished_at,
            result=entry.result,
            reason=entry.reason,
            points=0,
            markers=0,
        )
    canary = status.canary
    if canary is not None:
        key = rollout_id(canary.revision, canary.started_at)
        found.setdefault(
            key,
            RolloutSummary(
                id=key,
                revision=canary.revision,
                version=canary.version,
                started_at=canary.started_at,
                finished_at=None,
                result=None,
                reason=canary.paused_reason or canary.finish_reason,
                points=0,
                markers=0,
            ),
        )
    for point in snapshot.points:
        if point.rollout in found:
            found[point.rollout].points += 1
    for marker in snapshot.markers:
        if marker.rollout in found:
            found[marker.rollout].markers += 1
    return sorted(found.values(), key=lambda r: r.started_at)


def detail_document(snapshot: Snapshot) -> ModelDeploymentDetail:
    return ModelDeploymentDetail(
        **dict(summary(snapshot)),
        seq=snapshot.seq,
        rollouts=rollouts(snapshot),
        timeline=TimelineDocument(
            points=[timeline_point(p) for p in snapshot.points],
            markers=[verdict_marker(m) for m in snapshot.markers],
        ),
        status=snapshot.status.to_wire(),
    )


def shown_rollout(detail: ModelDeploymentDetail, wanted: str | None) -> RolloutSummary | None:
    """The rollout a page shows: the one asked for, else the latest the timeline has points of,
    else the latest known."""
    if wanted:
        return next((r for r in detail.rollouts if r.id == wanted), None)
    with_points = [r for r in detail.rollouts if r.points]
    if with_points:
        return with_points[-1]
    return detail.rollouts[-1] if detail.rollouts else None


def api_schema() -> dict[str, Any]:
    """JSON Schema of the two documents (for docs and clients)."""
    return {
        "ModelDeploymentList": ModelDeploymentList.model_json_schema(by_alias=True),
        "ModelDeploymentDetail": ModelDeploymentDetail.model_json_schema(by_alias=True),
        "ApiError": ApiError.model_json_schema(by_alias=True),
    }
