"""The monitor: what one monitoring window says about the stable version. Pure.

`assess(spec, window)` → a `MonitoringReport`: one verdict per check (input drift, prediction
drift, integrity, accuracy) with the values and a sentence, and the features furthest from the
reference. Fail raises the check's alarm; too little data is Inconclusive and never does.

- Input drift: per feature, PSI of the window's bin counts against the bundle's reference
  profile, and a chi-square test of the window against the profile's training rows as two
  samples (`drift_p_value`); the p-values are Holm-corrected over the features so that an
  unshifted model raises the alarm in at most 1 - confidence of windows. A feature drifts
  when its PSI is above the bound *and* its test is significant: PSI alone is noisy on small
  windows, the test alone flags harmless shifts on large ones.
- Prediction drift: the same two numbers for the predicted classes (or value histogram)
  against the reference prediction distribution.
- Integrity: the share of requests rejected as invalid (by reason), of rows missing a feature,
  and of rows with a category the reference never saw (beyond the reference's own share).
- Accuracy: accuracy or macro F1 (classifiers), MAE or RMSE (regressors) from feedback labels
  over the label window, once it holds `minLabels` labels.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from serinus.api.spec import AccuracyCheck, AccuracyMetric, MonitoringSpec
from serinus.api.status import FeatureDrift, MonitorResult, Verdict
from serinus.core import stats
from serinus.core.judge import format_p, format_psi, format_rate
from serinus.core.monitor_window import MonitorWindow

INPUT_DRIFT = "input-drift"
PREDICTION_DRIFT = "prediction-drift"
INTEGRITY = "integrity"
ACCURACY = "accuracy"
TOP_DRIFTERS = 5


class MonitoringReport(BaseModel):
    """Every enabled check's verdict over one window, and the top drifting features."""

    model_config = ConfigDict(frozen=True)

    results: list[MonitorResult] = Field(default_factory=list)
    top_drifters: list[FeatureDrift] = Field(default_factory=list)
    rows: float | None = None

    def result(self, name: str) -> MonitorResult | None:
        return next((r for r in self.results if r.name == name), None)


def assess(spec: MonitoringSpec, window: MonitorWindow) -> MonitoringReport:
    """The verdicts of one monitoring window (see the module docstring)."""
    names = _enabled_checks(spec)
    if window.error is not None:
        reason = f"could not read the window: {window.error}"
        return MonitoringReport(results=[_inconclusive(n, reason) for n in names])
    results: list[MonitorResult] = []
    drifters: list[FeatureDrift] = []
    if INPUT_DRIFT in names:
        result, drifters = _input_drift(spec, window)
        results.append(result)
    if PREDICTION_DRIFT in names:
        results.append(_prediction_drift(spec, window))
    if INTEGRITY in names:
        results.append(_integrity(spec, window))
    if ACCURACY in names and spec.accuracy is not None:
        results.append(_accuracy(spec.accuracy, window))
    top = sorted(drifters, key=lambda d: d.psi, reverse=True)[:TOP_DRIFTERS]
    return MonitoringReport(results=results, top_drifters=top, rows=window.rows)


def _enabled_checks(spec: MonitoringSpec) -> list[str]:
    names = []
    if spec.input_drift.enabled:
        names.append(INPUT_DRIFT)
    if spec.prediction_drift.enabled:
        names.append(PREDICTION_DRIFT)
    if spec.integrity.enabled:
        names.append(INTEGRITY)
    if spec.accuracy is not None:
        names.append(ACCURACY)
    return names


def _inconclusive(name: str, reason: str) -> MonitorResult:
    return MonitorResult(name=name, verdict=Verdict.INCONCLUSIVE, reason=f"{name}: {reason}")


# --- drift -----------------------------------------------------------------------------------


def _aligned(shares: list[float], counts: list[float]) -> tuple[list[float], list[float]]:
    width = max(len(shares), len(counts))
    return (
        [*shares, *[0.0] * (width - len(shares))],
        [*counts, *[0.0] * (width - len(counts))],
    )


def _shift(shares: list[float], counts: list[float], labels: list[str] | None = None) -> str:
    """The bin whose share moved most, e.g. 'bin 9: 41% of rows vs 10% in the reference'."""
    total_ref, total = sum(shares) or 1.0, sum(counts) or 1.0
    moves = [abs(c / total - s / total_ref) for s, c in zip(shares, counts, strict=True)]
    index = moves.index(max(moves))
    name = labels[index] if labels else f"bin {index}"
    now, then = counts[index] / total, shares[index] / total_ref
    return f"{name}: {format_rate(now)} of rows vs {format_rate(then)} in the reference"


def drift_p_value(shares: list[float], counts: list[float], reference_rows: float | None) -> float:
    """p-value that `counts` come from the reference distribution. The shares are estimates
    from the `reference_rows` training rows the profile was computed from: with that count the
    window and the reference are compared as two samples (chi-square test of homogeneity);
    taking them as exact would make the test too sure by about 1 + window/reference rows (a
    10 000-row window against a 10 000-row profile alarmed in most windows of unshifted data).
    Without it (an older runtime), a goodness-of-fit test against the shares."""
    if reference_rows is None or reference_rows <= 0:
        return stats.goodness_of_fit_p_value(shares, counts)
    total = sum(shares)
    return stats.homogeneity_p_value([s / total * reference_rows for s in shares], counts)


def _distance(
    shares: list[float], counts: list[float], reference_rows: float | None
) -> tuple[float, float]:
    """(PSI, p-value) of the window's `counts` against the reference `shares`."""
    rows = sum(counts)
    expected = [s / sum(shares) * rows for s in shares]
    return stats.psi(expected, counts), drift_p_value(shares, counts, reference_rows)


def _feature_drift(
    feature: str,
    shares: list[float],
    counts: list[float],
    min_rows: int,
    reference_rows: float | None,
) -> tuple[FeatureDrift | None, float]:
    """(PSI and p-value of one feature, or None below min_rows; its row count)."""
    shares, counts = _aligned(shares, counts)
    rows = sum(counts)
    if rows < min_rows or sum(shares) <= 0:
        return None, rows
    psi, p_value = _distance(shares, counts, reference_rows)
    return (
        FeatureDrift(
            feature=feature,
            psi=psi,
            p_value=p_value,
            rows=round(rows),
            drifted=False,
            shift=_shift(shares, counts),
        ),
        rows,
    )


def _input_drift(
    spec: MonitoringSpec, window: MonitorWindow
) -> tuple[MonitorResult, list[FeatureDrift]]:
    check = spec.input_drift
    if not window.reference_features:
        return _inconclusive(
            INPUT_DRIFT,
            "the runtime exposes no reference profile (a bundle packed without data?): "
            "pack the model with `serinus pack --data` to monitor its inputs",
        ), []
    measured: list[FeatureDrift] = []
    most_rows = 0.0
    for feature, shares in sorted(window.reference_features.items()):
        drift, rows = _feature_drift(
            feature,
            shares,
            window.feature_bins.get(feature, []),
            check.min_rows,
            window.reference_rows,
        )
        most_rows = max(most_rows, rows)
        if drift is not None:
            measured.append(drift)
    if not measured:
        return _inconclusive(
            INPUT_DRIFT,
            f"too little data: {int(most_rows)} rows in the last "
            f"{_seconds(window.drift_seconds)}, {check.min_rows} needed before drift is judged; "
            "no alarm",
        ), []
    alpha = 1 - spec.confidence
    significant = stats.holm_significant([d.p_value for d in measured], alpha)
    judged = [
        d.model_copy(update={"drifted": sig and d.psi > check.psi})
        for d, sig in zip(measured, significant, strict=True)
    ]
    drifted = sorted((d for d in judged if d.drifted), key=lambda d: d.psi, reverse=True)
    worst = max(judged, key=lambda d: d.psi)
    if drifted:
        listed = "; ".join(
            f"{d.feature} PSI {format_psi(d.psi)} ({format_p(d.p_value)}; {d.shift})"
            for d in drifted
        )
        reason = (
            f"{INPUT_DRIFT}: {len(drifted)} of {len(judged)} features drifted from the reference "
            f"(PSI above {format_psi(check.psi)}, significant at {format_rate(spec.confidence)} "
            f"confidence over all features): {listed}"
        )
        return MonitorResult(
            name=INPUT_DRIFT, verdict=Verdict.FAIL, value=drifted[0].psi,
            threshold=check.psi, reason=reason,
        ), judged  # fmt: skip
    reason = (
        f"{INPUT_DRIFT}: no feature drifted; largest PSI {format_psi(worst.psi)} "
        f"({worst.feature}, {worst.rows} rows) against a bound of {format_psi(check.psi)}"
    )
    if worst.psi > check.psi:
        reason += " but within sampling noise"
    return MonitorResult(
        name=INPUT_DRIFT, verdict=Verdict.PASS, value=worst.psi, threshold=check.psi,
        reason=reason,
    ), judged  # fmt: skip


def _prediction_distributions(window: MonitorWindow) -> tuple[list[float], list[float], list[str]]:
    """(reference shares, window counts, bin names) of the predictions; empty when unknown."""
    if window.reference_predictions and window.prediction_counts is not None:
        classes = sorted(set(window.reference_predictions) | set(window.prediction_counts))
        return (
            [window.reference_predictions.get(c, 0.0) for c in classes],
            [window.prediction_counts.get(c, 0.0) for c in classes],
            [f"class {c}" for c in classes],
        )
    if window.reference_prediction_buckets and window.prediction_buckets:
        _, counts = stats.per_bucket_counts(window.prediction_buckets)
        shares = [share for _, share in sorted(window.reference_prediction_buckets)]
        bounds = [le for le, _ in sorted(window.reference_prediction_buckets)]
        shares, counted = _aligned(shares, [float(c) for c in counts])
        names = [f"values ≤ {le:g}" if math.isfinite(le) else "the top bucket" for le in bounds]
        return shares, counted, names + ["values above"] * (len(shares) - len(names))
    return [], [], []


def _prediction_drift(spec: MonitoringSpec, window: MonitorWindow) -> MonitorResult:
    check = spec.prediction_drift
    shares, counts, names = _prediction_distributions(window)
    if not shares:
        return _inconclusive(
            PREDICTION_DRIFT,
            "the runtime exposes no reference prediction distribution (a bundle packed "
            "without data?); no alarm",
        )
    rows = sum(counts)
    if rows < check.min_rows or sum(shares) <= 0:
        return _inconclusive(
            PREDICTION_DRIFT,
            f"too little data: {int(rows)} predictions in the last "
            f"{_seconds(window.drift_seconds)}, {check.min_rows} needed; no alarm",
        )
    value, p = _distance(shares, counts, window.reference_rows)
    significant = p <= 1 - spec.confidence
    where = _shift(shares, counts, names)
    if value > check.psi and significant:
        return MonitorResult(
            name=PREDICTION_DRIFT, verdict=Verdict.FAIL, value=value, threshold=check.psi,
            reason=f"{PREDICTION_DRIFT}: predictions drifted from the reference: PSI "
            f"{format_psi(value)} > {format_psi(check.psi)} over {int(rows)} predictions "
            f"({format_p(p)}; {where})",
        )  # fmt: skip
    noise = " but within sampling noise" if value > check.psi else ""
    return MonitorResult(
        name=PREDICTION_DRIFT, verdict=Verdict.PASS, value=value, threshold=check.psi,
        reason=f"{PREDICTION_DRIFT}: PSI {format_psi(value)} over {int(rows)} predictions "
        f"against a bound of {format_psi(check.psi)}{noise}",
    )  # fmt: skip


# --- integrity -------------------------------------------------------------------------------


def _integrity(spec: MonitoringSpec, window: MonitorWindow) -> MonitorResult:
    check = spec.integrity
    invalid = sum(window.invalid.values())
    requests = max(window.requests, invalid)
    if requests < check.min_requests:
        return _inconclusive(
            INTEGRITY,
            f"too little data: {int(requests)} requests in the last "
            f"{_seconds(window.drift_seconds)}, {check.min_requests} needed; no alarm",
        )
    problems: list[tuple[float, str]] = []
    invalid_share = invalid / requests
    if invalid_share > check.max_invalid_share:
        reasons = ", ".join(
            f"{reason} {int(n)}"
            for reason, n in sorted(window.invalid.items(), key=lambda r: -r[1])
            if n > 0
        )
        problems.append((
            invalid_share,
            f"{format_rate(invalid_share)} of requests were rejected as invalid (above "
            f"{format_rate(check.max_invalid_share)}; by reason: {reasons})",
        ))  # fmt: skip
    for feature, missing in sorted(window.feature_missing.items()):
        rows = sum(window.feature_bins.get(feature, [])) + missing
        share = missing / rows if rows else 0.0
        if share > check.max_missing_share:
            problems.append((
                share,
                f"{format_rate(share)} of rows miss feature {feature} (above "
                f"{format_rate(check.max_missing_share)})",
            ))  # fmt: skip
    for feature in sorted(window.categorical):
        counts = window.feature_bins.get(feature, [])
        reference = window.reference_features.get(feature, [])
        if not counts or not sum(counts) or not reference or not sum(reference):
            continue
        new = counts[-1] / sum(counts) - reference[-1] / sum(reference)
        if new > check.max_new_category_share:
            problems.append((
                new,
                f"{format_rate(counts[-1] / sum(counts))} of rows bring a category of "
                f"{feature} the reference never saw ({format_rate(reference[-1] / sum(reference))}"
                f" in the reference; allowed {format_rate(check.max_new_category_share)} more)",
            ))  # fmt: skip
    if problems:
        return MonitorResult(
            name=INTEGRITY, verdict=Verdict.FAIL, value=max(v for v, _ in problems),
            reason=f"{INTEGRITY}: " + "; ".join(text for _, text in problems),
        )  # fmt: skip
    return MonitorResult(
        name=INTEGRITY, verdict=Verdict.PASS, value=invalid_share,
        threshold=check.max_invalid_share,
        reason=f"{INTEGRITY}: {format_rate(invalid_share)} of {int(requests)} requests invalid, "
        "no feature often missing, no new categories beyond the bounds",
    )  # fmt: skip


# --- accuracy --------------------------------------------------------------------------------


def macro_f1(confusion: dict[str, dict[str, float]]) -> float:
    """Unweighted mean of per-class F1 over the classes seen as labels or predictions
    (sklearn's `f1_score(average="macro")`). The runtime exposes (label, class) pairs at zero
    before any feedback: a class with no row in the window is not one of its classes."""
    classes = set(confusion) | {p for row in confusion.values() for p in row}
    scores = []
    for cls in sorted(classes):
        tp = confusion.get(cls, {}).get(cls, 0.0)
        fn = sum(confusion.get(cls, {}).values()) - tp
        fp = sum(row.get(cls, 0.0) for label, row in confusion.items() if label != cls)
        if tp + fp + fn > 0:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


def _score(check: AccuracyCheck, window: MonitorWindow) -> tuple[float, float] | str:
    """(score, labels) over the label window, or why there is none."""
    fb = window.feedback
    metric = check.metric
    if metric in (AccuracyMetric.ACCURACY, AccuracyMetric.F1):
        labels = fb.get("correct", 0.0) + fb.get("incorrect", 0.0)
        if labels < check.min_labels:
            return f"{int(labels)} labelled rows"
        if metric == AccuracyMetric.ACCURACY:
            return fb.get("correct", 0.0) / labels, labels
        if not window.confusion:
            return "no per-class feedback counts (a runtime older than this operator?)"
        return macro_f1(window.confusion), labels
    scored = fb.get("scored", 0.0)
    if scored < check.min_labels:
        return f"{int(scored)} scored rows"
    if metric == AccuracyMetric.MAE:
        return window.feedback_absolute_error / scored, scored
    return math.sqrt(window.feedback_squared_error / scored), scored


def _accuracy(check: AccuracyCheck, window: MonitorWindow) -> MonitorResult:
    metric = check.metric.value
    scored = _score(check, window)
    if isinstance(scored, str):
        return _inconclusive(
            ACCURACY,
            f"too little data: {scored} in the last {_seconds(window.label_seconds)}, "
            f"{check.min_labels} labels needed before {metric} is judged; no alarm",
        )
    value, labels = scored
    shown = format_rate(value) if check.metric in _SHARES else f"{value:.4g}"
    if check.min is not None and value < check.min:
        bound, verdict = check.min, Verdict.FAIL
        words = f"{metric} {shown} is below the floor {_bound(check, check.min)}"
    elif check.max is not None and value > check.max:
        bound, verdict = check.max, Verdict.FAIL
        words = f"{metric} {shown} is above the ceiling {_bound(check, check.max)}"
    else:
        bound = check.min if check.min is not None else check.max
        verdict = Verdict.PASS
        words = f"{metric} {shown} within {_bound(check, bound)}"
    return MonitorResult(
        name=ACCURACY, verdict=verdict, value=value, threshold=bound,
        reason=f"{ACCURACY}: {words} over {int(labels)} labels in the last "
        f"{_seconds(window.label_seconds)}",
    )  # fmt: skip


_SHARES = frozenset({AccuracyMetric.ACCURACY, AccuracyMetric.F1})


def _bound(check: AccuracyCheck, bound: float | None) -> str:
    if bound is None:
        return "no bound"
    return format_rate(bound) if check.metric in _SHARES else f"{bound:g}"


def _seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:.0f}s"
