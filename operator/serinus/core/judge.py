"""The analysis judge: one window of canary and stable observations → a verdict per metric.

`judge(spec, window)` is pure: no I/O, no clock. Each metric of `spec.metrics` gets Pass, Fail
or Inconclusive with the canary value, the stable value, the bound and a sentence a person can
act on. The whole check fails if any metric fails, else is Inconclusive if any metric is.

When there is no verdict (Inconclusive, never a silent Pass, never Fail):
- the provider reported an error, or the canary was not observed at all;
- the canary served fewer than `minRequests` requests: low traffic must not roll back;
- data a metric needs is missing: stable not observed, no histogram, no prediction counts, a
  custom query that returned nothing, a ratio to a stable value that is missing or zero.

How each built-in metric decides, and why:
- error-rate = errors / requests. `max` fails only when the canary's rate is above it AND
  significantly higher than stable's (Fisher's exact one-sided test at `confidence`): a bound
  breached by both versions is an incident, not a bad canary. When no stable request was measured
  the rate is held to the bound alone, and the sentence says so. `maxRatioToStable` fails when
  canary rate / stable rate is above the ratio, with the same significance test; against a
  stable rate of 0 the ratio is infinite, so any canary error counts as above the ratio and
  only the significance test decides (0 % against 0 % passes).
- latency-p99 is PromQL's `histogram_quantile(0.99, ...)` of each variant's buckets. `max`
  (seconds) and `maxRatioToStable` (canary p99 / stable p99) are point estimates, and a p99
  from a few hundred requests is a handful of samples. So an exceedance fails only when the
  canary is also significantly slower in the tail: the share of canary requests slower than a
  bucket boundary is compared with stable's share by the same one-sided Fisher test. The
  boundaries are the lower edges of the buckets holding stable's p99 and the canary's p99
  (Bonferroni-corrected when they differ). Stable's edge still has at least 1 % of stable's
  requests above it, which is where a uniformly slower canary shows up first (the upper edge
  usually has almost nothing above it in either variant); the canary's edge catches a canary
  whose bulk is fast but whose tail is not (timeouts beyond the largest bucket).
- prediction-drift is the PSI of canary vs stable predictions: class counts for classifiers,
  per-bucket counts of the value histogram for regressors (bins empty in both are dropped).
  PSI is biased upwards in small samples, by about (k - 1)(1/n_canary + 1/n_stable) for k
  bins, so `max` fails only when PSI is above it AND a chi-square test of homogeneity rejects
  "same distribution" at `confidence`. Each variant needs `minRequests` predictions.
- `min` on any metric is a plain floor on the canary's value, without a significance test
  (there is no "worse than stable" direction for a floor). It is odd for error-rate, latency
  and drift, but it means the same everywhere: fail when the canary's value is below it.
- Custom metrics compare the canary's query value with `max`/`min` as is (a query is already
  an aggregate, there are no counts to test), and `maxRatioToStable` with the stable value's
  query; a stable value of 0 or below makes the ratio undefined (Inconclusive) unless the
  canary is 0 too.

`MetricResult.threshold` is in the metric's own units: for `maxRatioToStable` it is the ratio
times the stable value (e.g. 1.25 x stable p99 in seconds), so canary, stable and threshold can
be plotted together. With several bounds on one metric, the threshold and sentence are those
of the bound that decided.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from serinus.api.spec import AnalysisMetric, AnalysisSpec
from serinus.api.status import MetricResult, Verdict
from serinus.core import stats
from serinus.core.window import AnalysisWindow, Bucket, VariantWindow

ERROR_RATE = "error-rate"
LATENCY_P99 = "latency-p99"
PREDICTION_DRIFT = "prediction-drift"
P99 = 0.99

_SEVERITY = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}


def worst(verdicts: list[Verdict]) -> Verdict:
    """Fail over Inconclusive over Pass; Pass for no verdicts."""
    return max(verdicts, key=_SEVERITY.__getitem__, default=Verdict.PASS)


class AnalysisOutcome(BaseModel):
    """The verdicts of one analysis check."""

    model_config = ConfigDict(frozen=True)

    metrics: list[MetricResult]
    """One per `spec.metrics` entry, same order."""
    canary_requests: int | None = None
    """Canary requests in the window; None when the canary was not observed."""

    @property
    def verdict(self) -> Verdict:
        """Fail if any metric failed, else Inconclusive if any was, else Pass."""
        return worst([result.verdict for result in self.metrics])

    def summary(self) -> str:
        """One line for Events and logs: the verdict, what did not pass and why, what passed."""
        reasons: dict[str, list[str]] = {}
        for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE):
            for result in self.metrics:
                if result.verdict == verdict:
                    reasons.setdefault(result.reason, []).append(result.name)
        parts = [
            reason if _names_itself(reason, names) else f"{reason} ({', '.join(names)})"
            for reason, names in reasons.items()
        ]
        passed = [result.name for result in self.metrics if result.verdict == Verdict.PASS]
        if passed:
            parts.append(f"{', '.join(passed)} passed")
        return f"{self.verdict.value}: {'; '.join(parts) or 'no metrics to check'}"


def _names_itself(reason: str, names: list[str]) -> bool:
    return len(names) == 1 and reason.split(" ", 1)[0].rstrip(":") == names[0]


def judge(spec: AnalysisSpec, window: AnalysisWindow) -> AnalysisOutcome:
    """Judge every metric of `spec` on one window."""
    canary_requests = window.canary.requests if window.canary is not None else None
    problem = _window_problem(spec, window)
    if problem is not None:
        results = [_inconclusive(metric.name, problem) for metric in spec.metrics]
    else:
        assert window.canary is not None  # _window_problem reports a missing canary
        context = _Context(spec, window.canary, window.stable)
        results = [_judge_metric(metric, context) for metric in spec.metrics]
    return AnalysisOutcome(metrics=results, canary_requests=canary_requests)


# --- plumbing ----------------------------------------------------------------------------------


class _NoVerdict(Exception):
    """The data a metric needs is missing: Inconclusive, with this reason."""


@dataclass(frozen=True)
class _Context:
    spec: AnalysisSpec
    canary: VariantWindow
    stable: VariantWindow | None

    @property
    def alpha(self) -> float:
        return 1 - self.spec.confidence

    @property
    def confidence_text(self) -> str:
        return f"{self.spec.confidence * 100:g}% confidence"

    def need_stable(self, what: str) -> VariantWindow:
        if self.stable is None:
            raise _NoVerdict(f"no stable observations in the window, and {what} compares with it")
        return self.stable


@dataclass(frozen=True)
class _Bound:
    """The outcome of one bound (max, min or maxRatioToStable) of a metric."""

    verdict: Verdict
    threshold: float | None
    reason: str


def _window_problem(spec: AnalysisSpec, window: AnalysisWindow) -> str | None:
    if window.error:
        return f"no verdict: the metrics provider failed: {window.error}"
    if window.canary is None:
        return (
            "no canary observations in the window: check that the canary pods are ready and "
            "their metrics are being collected"
        )
    requests = window.canary.requests
    if requests < spec.min_requests:
        return (
            f"only {_count(requests, 'canary request')} in the "
            f"{_format_interval(window.interval_seconds)} window, need {spec.min_requests}"
        )
    return None


def _judge_metric(metric: AnalysisMetric, context: _Context) -> MetricResult:
    builtin: dict[str, Callable[[AnalysisMetric, _Context], MetricResult]] = {
        ERROR_RATE: _judge_error_rate,
        LATENCY_P99: _judge_latency,
        PREDICTION_DRIFT: _judge_prediction_drift,
    }  # the names of spec.BUILTIN_METRICS; any other name is a custom metric
    try:
        return builtin.get(metric.name, _judge_custom)(metric, context)
    except _NoVerdict as missing:
        return _inconclusive(metric.name, str(missing))
    except ValueError as unusable:
        return _inconclusive(metric.name, f"the window's data is unusable: {unusable}")


def _inconclusive(name: str, reason: str) -> MetricResult:
    return MetricResult(name=name, verdict=Verdict.INCONCLUSIVE, reason=reason)


def _combine(
    name: str, canary: float | None, stable: float | None, bounds: list[_Bound]
) -> MetricResult:
    verdict = worst([bound.verdict for bound in bounds])
    deciding = [bound for bound in bounds if bound.verdict == verdict]
    return MetricResult(
        name=name,
        verdict=verdict,
        canary=_finite_or_none(canary),
        stable=_finite_or_none(stable),
        threshold=_finite_or_none(deciding[0].threshold),
        reason="; ".join(bound.reason for bound in deciding),
    )


def _plain_max(name: str, value: float, bound: float, text: Callable[[float], str]) -> _Bound:
    if value > bound:
        return _Bound(Verdict.FAIL, bound, f"{name} {text(value)} > max {text(bound)}")
    return _Bound(Verdict.PASS, bound, f"{name} {text(value)} within max {text(bound)}")


def _plain_min(name: str, value: float, bound: float, text: Callable[[float], str]) -> _Bound:
    if value < bound:
        return _Bound(Verdict.FAIL, bound, f"{name} {text(value)} < min {text(bound)}")
    return _Bound(Verdict.PASS, bound, f"{name} {text(value)} at or above min {text(bound)}")


# --- error-rate --------------------------------------------------------------------------------


def _judge_error_rate(metric: AnalysisMetric, context: _Context) -> MetricResult:
    canary = context.canary
    stable = context.need_stable("error-rate")
    for label, variant in (("canary", canary), ("stable", stable)):
        if variant.errors > variant.requests:
            raise _NoVerdict(
                f"the {label} reports {variant.errors} errors but only "
                f"{_count(variant.requests, 'request')}: its counters disagree"
            )
    canary_rate = canary.errors / canary.requests
    stable_rate = stable.errors / stable.requests if stable.requests else None

    @functools.cache
    def p_worse() -> float:
        return stats.worse_proportion_p_value(
            canary.errors, canary.requests, stable.errors, stable.requests
        )

    name = metric.name
    bounds: list[_Bound] = []
    if metric.max is not None:
        bounds.append(_error_rate_max(name, metric.max, canary_rate, stable_rate, p_worse, context))
    if metric.min is not None:
        bounds.append(_plain_min(name, canary_rate, metric.min, format_rate))
    if metric.max_ratio_to_stable is not None:
        bounds.append(
            _error_rate_ratio(
                name, metric.max_ratio_to_stable, canary_rate, stable, p_worse, context
            )
        )
    return _combine(name, canary_rate, stable_rate, bounds)


def _error_rate_max(
    name: str,
    bound: float,
    canary_rate: float,
    stable_rate: float | None,
    p_worse: Callable[[], float],
    context: _Context,
) -> _Bound:
    canary_text, bound_text = format_rate(canary_rate), format_rate(bound)
    if stable_rate is None:
        alone = "no stable requests were measured in the window, so judged against the bound alone"
        if canary_rate > bound:
            return _Bound(Verdict.FAIL, bound, f"{name} {canary_text} > max {bound_text}; {alone}")
        return _Bound(Verdict.PASS, bound, f"{name} {canary_text} within max {bound_text}; {alone}")
    stable_text = format_rate(stable_rate)
    if canary_rate <= bound:
        return _Bound(
            Verdict.PASS,
            bound,
            f"{name} {canary_text} within max {bound_text} (stable {stable_text})",
        )
    p = p_worse()
    if p < context.alpha:
        return _Bound(
            Verdict.FAIL,
            bound,
            f"{name} {canary_text} > max {bound_text}, significantly worse than stable "
            f"{stable_text} ({format_p(p)})",
        )
    return _Bound(
        Verdict.PASS,
        bound,
        f"{name} {canary_text} > max {bound_text} but not significantly worse than stable "
        f"{stable_text} at {context.confidence_text} ({format_p(p)}): passed",
    )


def _error_rate_ratio(
    name: str,
    ratio: float,
    canary_rate: float,
    stable: VariantWindow,
    p_worse: Callable[[], float],
    context: _Context,
) -> _Bound:
    if stable.requests == 0:
        return _Bound(
            Verdict.INCONCLUSIVE,
            None,
            f"{name}: no stable requests were measured in the window, and maxRatioToStable needs a "
            "stable error rate",
        )
    stable_rate = stable.errors / stable.requests
    threshold = ratio * stable_rate
    canary_text, stable_text = format_rate(canary_rate), format_rate(stable_rate)
    if stable_rate == 0:
        if canary_rate == 0:
            return _Bound(Verdict.PASS, threshold, f"{name} 0% like stable")
        comparison = (
            f"{name} {canary_text} while stable had no errors in "
            f"{_count(stable.requests, 'request')}"
        )
    else:
        measured = canary_rate / stable_rate
        comparison = f"{name} {canary_text} is {measured:.2f}x stable {stable_text}"
        if measured <= ratio:
            return _Bound(Verdict.PASS, threshold, f"{comparison}, within {ratio:g}x")
        comparison += f", above {ratio:g}x"
    p = p_worse()
    if p < context.alpha:
        return _Bound(Verdict.FAIL, threshold, f"{comparison}, significantly worse ({format_p(p)})")
    return _Bound(
        Verdict.PASS,
        threshold,
        f"{comparison}, but not significantly worse at {context.confidence_text} "
        f"({format_p(p)}): passed",
    )


# --- latency-p99 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Latency:
    """One variant's latency histogram and its p99."""

    buckets: list[Bucket]
    total: float
    p99: float
    beyond_last_bucket: bool

    @property
    def p99_text(self) -> str:
        text = format_seconds(self.p99)
        return f">= {text} (beyond the largest bucket)" if self.beyond_last_bucket else text


@dataclass(frozen=True)
class _Tail:
    """Canary vs stable share of requests slower than one bucket boundary."""

    boundary: float
    canary_share: float
    stable_share: float
    p: float

    def __str__(self) -> str:
        return (
            f"{format_rate(self.canary_share)} of canary vs {format_rate(self.stable_share)} "
            f"of stable requests slower than {format_seconds(self.boundary)}, "
            f"{format_p(self.p)}"
        )


def _latency(label: str, variant: VariantWindow) -> _Latency | None:
    """The variant's latency, or None when its histogram holds no requests."""
    buckets = variant.latency_buckets
    if buckets is None:
        raise _NoVerdict(f"no latency histogram for the {label} in the window")
    bounds, _ = stats.clean_cumulative(buckets)
    if not math.isinf(bounds[-1]) or len(bounds) < 2:
        raise _NoVerdict(
            f"the {label} latency histogram has no +Inf bucket, so its p99 is undefined: "
            "check the provider's query"
        )
    total = stats.histogram_total(buckets)
    if round(total) < 1:
        return None
    _, upper = stats.quantile_bucket_edges(P99, buckets)
    return _Latency(buckets, total, stats.histogram_quantile(P99, buckets), math.isinf(upper))


def _tail_edge(latency: _Latency) -> float:
    lower, upper = stats.quantile_bucket_edges(P99, latency.buckets)
    return lower if lower > 0 else upper


def _tail_at(canary: _Latency, stable: _Latency, boundary: float) -> _Tail:
    canary_slow = round(stats.observations_above(canary.buckets, boundary))
    stable_slow = round(stats.observations_above(stable.buckets, boundary))
    canary_total, stable_total = round(canary.total), round(stable.total)
    return _Tail(
        boundary=boundary,
        canary_share=canary_slow / canary_total,
        stable_share=stable_slow / stable_total,
        p=stats.worse_proportion_p_value(canary_slow, canary_total, stable_slow, stable_total),
    )


def _slower_tail(canary: _Latency, stable: _Latency) -> _Tail:
    """Is the canary slower in the tail? Tested at the lower edge of the bucket holding each
    variant's p99 (one boundary when they share a bucket); with two, the smaller p-value is
    doubled (Bonferroni) so that looking twice does not double the false alarms."""
    boundaries = sorted({_tail_edge(stable), _tail_edge(canary)})
    tails = [_tail_at(canary, stable, boundary) for boundary in boundaries]
    strongest = min(tails, key=lambda tail: tail.p)
    return dataclasses.replace(strongest, p=min(1.0, strongest.p * len(tails)))


def _judge_latency(metric: AnalysisMetric, context: _Context) -> MetricResult:
    canary = _latency("canary", context.canary)
    stable = _latency("stable", context.need_stable("latency-p99"))
    needed = context.spec.min_requests
    if canary is None or canary.total < needed:
        observed = 0 if canary is None else round(canary.total)
        raise _NoVerdict(
            f"only {_count(observed, 'canary request')} in the latency histogram, need {needed}"
        )
    tail: Callable[[], _Tail] | None = None
    if stable is not None:
        tail = functools.cache(functools.partial(_slower_tail, canary, stable))
    name = metric.name
    bounds: list[_Bound] = []
    if metric.max is not None:
        bounds.append(_latency_max(name, metric.max, canary, stable, tail, context))
    if metric.min is not None:
        bounds.append(_plain_min(name, canary.p99, metric.min, format_seconds))
    if metric.max_ratio_to_stable is not None:
        bounds.append(
            _latency_ratio(name, metric.max_ratio_to_stable, canary, stable, tail, context)
        )
    return _combine(name, canary.p99, stable.p99 if stable else None, bounds)


def _latency_max(
    name: str,
    bound: float,
    canary: _Latency,
    stable: _Latency | None,
    tail: Callable[[], _Tail] | None,
    context: _Context,
) -> _Bound:
    head = f"{name} {canary.p99_text}"
    bound_text = format_seconds(bound)
    if stable is None or tail is None:
        alone = "no stable requests were measured in the window, so judged against the bound alone"
        verdict, relation = (Verdict.FAIL, ">") if canary.p99 > bound else (Verdict.PASS, "within")
        return _Bound(verdict, bound, f"{head} {relation} max {bound_text}; {alone}")
    if canary.p99 <= bound:
        return _Bound(
            Verdict.PASS, bound, f"{head} within max {bound_text} (stable {stable.p99_text})"
        )
    slower = tail()
    if slower.p < context.alpha:
        return _Bound(
            Verdict.FAIL,
            bound,
            f"{head} > max {bound_text}, significantly slower than stable {stable.p99_text} "
            f"({slower})",
        )
    return _Bound(
        Verdict.PASS,
        bound,
        f"{head} > max {bound_text} but not significantly slower than stable "
        f"{stable.p99_text} at {context.confidence_text} ({slower}): passed",
    )


def _latency_ratio(
    name: str,
    ratio: float,
    canary: _Latency,
    stable: _Latency | None,
    tail: Callable[[], _Tail] | None,
    context: _Context,
) -> _Bound:
    if stable is None or tail is None:
        return _Bound(
            Verdict.INCONCLUSIVE,
            None,
            f"{name}: no stable requests were measured in the window, and maxRatioToStable needs a "
            "stable p99",
        )
    if stable.p99 <= 0:
        return _Bound(
            Verdict.INCONCLUSIVE,
            None,
            f"{name}: stable p99 is {format_seconds(stable.p99)}, so a ratio to it is undefined",
        )
    measured = canary.p99 / stable.p99
    threshold = ratio * stable.p99
    comparison = f"{name} {canary.p99_text} is {measured:.2f}x stable {stable.p99_text}"
    if measured <= ratio:
        return _Bound(Verdict.PASS, threshold, f"{comparison}, within {ratio:g}x")
    slower = tail()
    if slower.p < context.alpha:
        return _Bound(Verdict.FAIL, threshold, f"{comparison}, above {ratio:g}x ({slower})")
    return _Bound(
        Verdict.PASS,
        threshold,
        f"{comparison}, above {ratio:g}x but the canary is not significantly slower at "
        f"{context.confidence_text} ({slower}): passed",
    )


# --- prediction-drift --------------------------------------------------------------------------


def _prediction_histograms(
    canary: VariantWindow, stable: VariantWindow
) -> tuple[np.ndarray, np.ndarray]:
    """(canary counts, stable counts) over the same bins."""
    if canary.prediction_counts is not None and stable.prediction_counts is not None:
        labels = sorted(set(canary.prediction_counts) | set(stable.prediction_counts))
        return (
            np.array([canary.prediction_counts.get(label, 0.0) for label in labels]),
            np.array([stable.prediction_counts.get(label, 0.0) for label in labels]),
        )
    if canary.prediction_buckets is not None and stable.prediction_buckets is not None:
        canary_bounds, canary_counts = stats.per_bucket_counts(canary.prediction_buckets)
        stable_bounds, stable_counts = stats.per_bucket_counts(stable.prediction_buckets)
        if not np.array_equal(canary_bounds, stable_bounds):
            raise _NoVerdict(
                "the canary's and stable's prediction histograms have different buckets, so "
                "they cannot be compared bin by bin"
            )
        return canary_counts, stable_counts
    missing = [
        label
        for label, variant in (("canary", canary), ("stable", stable))
        if variant.prediction_counts is None and variant.prediction_buckets is None
    ]
    if missing:
        raise _NoVerdict(f"no prediction counts for the {' and '.join(missing)} in the window")
    raise _NoVerdict(
        "the canary reports one kind of prediction (class counts or a value histogram) and "
        "stable the other: are both versions the same kind of model?"
    )


def _judge_prediction_drift(metric: AnalysisMetric, context: _Context) -> MetricResult:
    stable = context.need_stable("prediction-drift")
    canary_counts, stable_counts = _prediction_histograms(context.canary, stable)
    needed = context.spec.min_requests
    for label, counts in (("canary", canary_counts), ("stable", stable_counts)):
        if counts.sum() < needed:
            raise _NoVerdict(
                f"only {_count(round(counts.sum()), f'{label} prediction')} in the window, "
                f"need {needed}"
            )
    occupied = (canary_counts + stable_counts) > 0
    canary_counts, stable_counts = canary_counts[occupied], stable_counts[occupied]
    value = stats.psi(stable_counts, canary_counts)
    name = metric.name
    bounds: list[_Bound] = []
    if metric.max is not None:
        bounds.append(_drift_max(name, metric.max, value, canary_counts, stable_counts, context))
    if metric.min is not None:
        bounds.append(_plain_min(name, value, metric.min, format_psi))
    if metric.max_ratio_to_stable is not None:
        bounds.append(
            _Bound(
                Verdict.INCONCLUSIVE,
                None,
                f"{name} already compares the canary with stable: use max (a PSI), not "
                "maxRatioToStable",
            )
        )
    return _combine(name, value, None, bounds)


def _drift_max(
    name: str,
    bound: float,
    value: float,
    canary_counts: np.ndarray,
    stable_counts: np.ndarray,
    context: _Context,
) -> _Bound:
    head = f"{name} PSI {format_psi(value)}"
    if value <= bound:
        return _Bound(Verdict.PASS, bound, f"{head} within max {format_psi(bound)}")
    p = stats.homogeneity_p_value(stable_counts, canary_counts)
    samples = f"{canary_counts.sum():.0f} canary vs {stable_counts.sum():.0f} stable predictions"
    if p < context.alpha:
        return _Bound(
            Verdict.FAIL,
            bound,
            f"{head} > max {format_psi(bound)}: canary predictions are distributed differently "
            f"from stable's ({samples}, chi-square {format_p(p)})",
        )
    noise = stats.psi_sampling_bias(len(canary_counts), stable_counts.sum(), canary_counts.sum())
    return _Bound(
        Verdict.PASS,
        bound,
        f"{head} > max {format_psi(bound)} but within sampling noise at "
        f"{context.confidence_text} ({samples}: identical versions would show PSI about "
        f"{format_psi(noise)}; chi-square {format_p(p)}): passed",
    )


# --- custom metrics ----------------------------------------------------------------------------


def _custom_value(variant: VariantWindow | None, name: str) -> float | None:
    if variant is None:
        return None
    value = variant.custom.get(name)
    return None if value is None or math.isnan(value) else value


def _judge_custom(metric: AnalysisMetric, context: _Context) -> MetricResult:
    name = metric.name
    value = _custom_value(context.canary, name)
    if value is None:
        raise _NoVerdict(
            f"the query for {name} returned no data for the canary: check that it selects the "
            "canary's series over the window"
        )
    stable_value = _custom_value(context.stable, name)
    bounds: list[_Bound] = []
    if metric.max is not None:
        bounds.append(_plain_max(name, value, metric.max, format_number))
    if metric.min is not None:
        bounds.append(_plain_min(name, value, metric.min, format_number))
    if metric.max_ratio_to_stable is not None:
        bounds.append(_custom_ratio(name, metric.max_ratio_to_stable, value, stable_value))
    return _combine(name, value, stable_value, bounds)


def _custom_ratio(name: str, ratio: float, value: float, stable_value: float | None) -> _Bound:
    if stable_value is None:
        return _Bound(
            Verdict.INCONCLUSIVE,
            None,
            f"the query for {name} returned no data for stable, and maxRatioToStable needs it",
        )
    if stable_value == 0 and value == 0:
        return _Bound(Verdict.PASS, 0.0, f"{name} 0 like stable")
    if stable_value <= 0:
        return _Bound(
            Verdict.INCONCLUSIVE,
            None,
            f"{name} {format_number(value)} against stable {format_number(stable_value)}: a "
            "ratio needs a positive stable value; bound this metric with max or min instead",
        )
    measured = value / stable_value
    comparison = (
        f"{name} {format_number(value)} is {measured:.2f}x stable {format_number(stable_value)}"
    )
    if measured > ratio:
        return _Bound(Verdict.FAIL, ratio * stable_value, f"{comparison}, above {ratio:g}x")
    return _Bound(Verdict.PASS, ratio * stable_value, f"{comparison}, within {ratio:g}x")


# --- numbers for people ------------------------------------------------------------------------


def format_rate(rate: float) -> str:
    """0.0712 → '7.1%', 0.00043 → '0.043%', 0 → '0%'."""
    percent = rate * 100
    if percent == 0:
        return "0%"
    if percent >= 0.1:
        return f"{percent:.1f}%"
    return f"{percent:.2g}%"


def format_seconds(seconds: float) -> str:
    """Latency in milliseconds: 0.0123 → '12.3 ms', 0.01 → '10 ms', 0.25 → '250 ms',
    0.00042 → '0.42 ms'."""
    millis = seconds * 1000
    if abs(millis) >= 100:
        return f"{millis:.0f} ms"
    if abs(millis) >= 1:
        return f"{millis:.3g} ms"
    return f"{millis:.2g} ms"


def format_psi(value: float) -> str:
    """0.2534 → '0.253', 0.1 → '0.1', 2.6e-07 → '0.000'."""
    return f"{value:.3g}" if value >= 0.001 else f"{value:.3f}"


def format_number(value: float) -> str:
    return f"{value:.4g}"


def format_p(p: float) -> str:
    return "p<0.0001" if p < 0.0001 else f"p={p:.2g}"


def _format_interval(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
