"""What one analysis window observed of each variant: the judge's input.

A metrics provider (Prometheus, scrape) fills these from counter increases over the window;
the judge reads nothing else. Counts are increases, so Prometheus' extrapolated fractions are
rounded by the provider where an integer is asked for.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Bucket = tuple[float, float]
"""(upper bound `le`, cumulative count), the last one with `le = float('inf')`."""


class VariantWindow(BaseModel):
    """One variant's (canary's or stable's) observations over the window."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = Field(ge=0, description="Completed inference requests in the window.")
    errors: int = Field(default=0, ge=0, description="Requests answered with a 5xx status.")
    latency_buckets: list[Bucket] | None = Field(
        default=None,
        description="Cumulative request-duration histogram in seconds, including +Inf: "
        "increase(serinus_request_duration_seconds_bucket[w]) per `le`.",
    )
    prediction_counts: dict[str, float] | None = Field(
        default=None, description="Classifier: predictions per class label."
    )
    prediction_buckets: list[Bucket] | None = Field(
        default=None, description="Regressor: cumulative histogram of predicted values."
    )
    feature_bins: dict[str, list[float]] | None = Field(
        default=None, description="Per feature: row counts per bin of the reference profile."
    )
    custom: dict[str, float | None] = Field(
        default_factory=dict,
        description="Custom metric values by metric name; None when the query returned nothing.",
    )


class AnalysisWindow(BaseModel):
    """Both variants over one analysis interval, or the reason they could not be read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    canary: VariantWindow | None = Field(default=None, description="None: nothing observed.")
    stable: VariantWindow | None = Field(default=None, description="None: nothing observed.")
    error: str | None = Field(
        default=None,
        description="Why the provider could not read the window, e.g. 'Prometheus at "
        "http://x:9090 unreachable: connection refused'. Any error makes every metric "
        "Inconclusive.",
    )
    interval_seconds: float = Field(gt=0, description="Length of the window in seconds.")
