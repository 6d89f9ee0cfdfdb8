"""What monitoring observed of the stable version: the monitor's input (serinus.core.monitor).

A metrics provider fills it from the runtime's counters (increases over the window, summed over
pods) and from the reference gauges the runtime exposes from its bundle's profile. Two windows:
inputs, predictions and integrity over the drift window (`monitoring.interval`), feedback labels
over the longer label window (`monitoring.accuracy.window`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from serinus.core.window import Bucket


class MonitorWindow(BaseModel):
    """The stable revision over one monitoring check, or the reason it could not be read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    drift_seconds: float = Field(gt=0, description="Length of the drift window actually covered.")
    label_seconds: float = Field(gt=0, description="Length of the label window actually covered.")
    error: str | None = Field(
        default=None, description="Why the provider could not read the window; no alarm then."
    )
    requests: float = Field(
        default=0, ge=0, description="Inference requests answered (any status) in the window."
    )
    rows: float = Field(default=0, ge=0, description="Rows predicted in the window.")
    invalid: dict[str, float] = Field(
        default_factory=dict, description="Rejected requests by reason (INVALID_REASONS)."
    )
    feature_bins: dict[str, list[float]] = Field(
        default_factory=dict,
        description="Per feature: input rows per reference-profile bin (index = bin).",
    )
    feature_missing: dict[str, float] = Field(
        default_factory=dict, description="Per feature: rows where the value was missing."
    )
    reference_features: dict[str, list[float]] = Field(
        default_factory=dict,
        description="Per feature: the reference profile's share of rows per bin (index = bin).",
    )
    reference_rows: float | None = Field(
        default=None,
        description="Rows the reference profile was computed from; None when unknown (the "
        "shares are then taken as exact).",
    )
    categorical: frozenset[str] = Field(
        default_factory=frozenset,
        description="Features whose last bin is 'other' (a category the profile never saw).",
    )
    prediction_counts: dict[str, float] | None = Field(
        default=None, description="Classifier: predicted rows per class."
    )
    reference_predictions: dict[str, float] | None = Field(
        default=None, description="Classifier: the reference share of each class."
    )
    prediction_buckets: list[Bucket] | None = Field(
        default=None, description="Regressor: cumulative histogram of predicted values."
    )
    reference_prediction_buckets: list[Bucket] | None = Field(
        default=None,
        description="Regressor: reference share per bucket (not cumulative), by upper bound.",
    )
    feedback: dict[str, float] = Field(
        default_factory=dict, description="Feedback rows by outcome over the label window."
    )
    feedback_absolute_error: float = Field(
        default=0.0, ge=0, description="Regressor: sum of |label - prediction| (label window)."
    )
    feedback_squared_error: float = Field(
        default=0.0, ge=0, description="Regressor: sum of squared errors (label window)."
    )
    confusion: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Classifier: feedback rows by true label, then predicted class (label window).",
    )
