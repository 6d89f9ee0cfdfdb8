"""The analysis judge, rule by rule, as a user reads its verdicts and sentences."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serinus.api.spec import AnalysisMetric, AnalysisSpec
from serinus.api.status import MetricResult, Verdict
from serinus.core.judge import AnalysisOutcome, judge
from serinus.core.window import AnalysisWindow, VariantWindow

INF = math.inf
PASS, FAIL, INCONCLUSIVE = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE
BOUNDS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
          10, INF]  # fmt: skip


def latency(**per_bucket_ms: int) -> list[tuple[float, float]]:
    """Cumulative buckets from counts per bucket, keyed like `ms5=...` (le = 5 ms) or `inf`."""
    counts = {
        (INF if key == "inf" else float(key.removeprefix("ms").replace("_", ".")) / 1000): value
        for key, value in per_bucket_ms.items()
    }
    running, buckets = 0.0, []
    for bound in BOUNDS:
        running += counts.get(bound, 0)
        buckets.append((bound, running))
    return buckets


# Stable: 10 000 requests, p99 = 10 + 15 * 700/750 = 24 ms, 8 % slower than 10 ms.
STABLE_LATENCY = latency(ms5=5000, ms10=4200, ms25=750, ms50=50)
SAME_LATENCY = latency(ms5=500, ms10=420, ms25=75, ms50=5)  # stable's shape at 1 000 requests
SLOW_LATENCY = latency(ms5=200, ms10=400, ms25=300, ms50=90, ms100=10)  # p99 = 50 ms
# 60 requests whose p99 lands in the next bucket by one request: 35 ms, but 5 of 60 (8 %)
# slower than 10 ms just like stable, and 1 of 60 slower than 25 ms is no evidence either.
NOISY_LATENCY = latency(ms5=30, ms10=25, ms25=4, ms50=1)
STALLED_LATENCY = latency(ms5=900, ms10=50, inf=50)  # 5 % beyond the largest bucket (10 s)

STABLE_MIX = {"cat": 5000.0, "dog": 3000.0, "bird": 2000.0}


def variant(
    requests: int,
    errors: int = 0,
    latency_buckets: list[tuple[float, float]] | None = None,
    predictions: dict[str, float] | None = None,
    prediction_buckets: list[tuple[float, float]] | None = None,
    custom: dict[str, float | None] | None = None,
) -> VariantWindow:
    return VariantWindow(
        requests=requests,
        errors=errors,
        latency_buckets=latency_buckets,
        prediction_counts=predictions,
        prediction_buckets=prediction_buckets,
        custom=custom or {},
    )


STABLE = variant(10_000, 40, STABLE_LATENCY, STABLE_MIX)
GOOD = variant(1000, 4, SAME_LATENCY, {"cat": 500, "dog": 300, "bird": 200})


def analysis(*metrics: AnalysisMetric, **settings: object) -> AnalysisSpec:
    return AnalysisSpec(metrics=list(metrics), **settings) if metrics else AnalysisSpec(**settings)


def window(
    canary: VariantWindow | None, stable: VariantWindow | None = STABLE, error: str | None = None
) -> AnalysisWindow:
    return AnalysisWindow(canary=canary, stable=stable, error=error, interval_seconds=60)


@dataclass(frozen=True)
class Case:
    id: str
    metric: AnalysisMetric
    canary: VariantWindow
    verdict: Verdict
    words: tuple[str, ...]
    stable: VariantWindow | None = STABLE
    settings: dict[str, object] = field(default_factory=dict)


def check(case: Case) -> MetricResult:
    outcome = judge(analysis(case.metric, **case.settings), window(case.canary, case.stable))
    [result] = outcome.metrics
    assert result.name == case.metric.name
    assert (result.verdict, outcome.verdict) == (case.verdict, case.verdict), result.reason
    for word in case.words:
        assert word in result.reason
    return result


def cases(*all_cases: Case) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", all_cases, ids=[case.id for case in all_cases])


# --- the window as a whole ---------------------------------------------------------------------


def test_provider_error_makes_every_metric_inconclusive_with_the_reason() -> None:
    error = "Prometheus at http://x:9090 unreachable: connection refused"
    outcome = judge(AnalysisSpec(), window(GOOD, error=error))
    assert [result.verdict for result in outcome.metrics] == [INCONCLUSIVE] * 3
    assert all(error in result.reason for result in outcome.metrics)
    assert outcome.verdict == INCONCLUSIVE
    assert outcome.summary() == (
        f"Inconclusive: no verdict: the metrics provider failed: {error} "
        "(error-rate, latency-p99, prediction-drift)"
    )


def test_a_canary_that_was_not_observed_is_inconclusive() -> None:
    outcome = judge(AnalysisSpec(), window(None))
    assert outcome.verdict == INCONCLUSIVE
    assert outcome.canary_requests is None
    assert "no canary observations" in outcome.metrics[0].reason


@pytest.mark.parametrize(
    ("requests", "verdict"), [(0, INCONCLUSIVE), (12, INCONCLUSIVE), (49, INCONCLUSIVE), (50, FAIL)]
)
def test_low_traffic_is_inconclusive_never_fail(requests: int, verdict: Verdict) -> None:
    broken = variant(requests, errors=requests, latency_buckets=latency(inf=requests))
    outcome = judge(analysis(AnalysisMetric(name="error-rate", max=0.05)), window(broken))
    assert outcome.verdict == verdict
    assert outcome.canary_requests == requests
    if verdict == INCONCLUSIVE:
        assert outcome.metrics[0].reason == (
            f"only {requests} canary request{'' if requests == 1 else 's'} in the 1m window, "
            "need 50"
        )


def test_min_requests_is_the_specs() -> None:
    outcome = judge(AnalysisSpec(min_requests=2000), window(GOOD))
    assert outcome.verdict == INCONCLUSIVE
    assert "only 1000 canary requests in the 1m window, need 2000" in outcome.summary()


def test_missing_stable_is_inconclusive_for_every_builtin_metric() -> None:
    outcome = judge(AnalysisSpec(), window(GOOD, stable=None))
    assert [result.verdict for result in outcome.metrics] == [INCONCLUSIVE] * 3
    assert all("no stable observations" in result.reason for result in outcome.metrics)


def test_a_good_canary_passes_the_defaults() -> None:
    outcome = judge(AnalysisSpec(), window(GOOD))
    assert outcome.verdict == PASS
    assert outcome.summary() == "Pass: error-rate, latency-p99, prediction-drift passed"
    assert outcome.canary_requests == 1000


def test_summary_puts_what_failed_first_and_names_what_passed() -> None:
    bad = variant(1000, 71, SAME_LATENCY, {"cat": 500, "dog": 300, "bird": 200})
    outcome = judge(AnalysisSpec(), window(bad, variant(10_000, 40, STABLE_LATENCY, STABLE_MIX)))
    assert outcome.verdict == FAIL
    assert outcome.summary() == (
        "Fail: error-rate 7.1% > max 5.0%, significantly worse than stable 0.4% (p<0.0001); "
        "latency-p99, prediction-drift passed"
    )


@pytest.mark.parametrize(
    ("verdicts", "overall"),
    [
        ((PASS, PASS), PASS),
        ((PASS, INCONCLUSIVE), INCONCLUSIVE),
        ((INCONCLUSIVE, FAIL), FAIL),
        ((FAIL, PASS), FAIL),
        ((), PASS),
    ],
)
def test_outcome_verdict_is_the_worst(verdicts: tuple[Verdict, ...], overall: Verdict) -> None:
    outcome = AnalysisOutcome(
        metrics=[MetricResult(name=f"m{i}", verdict=v, reason="r") for i, v in enumerate(verdicts)],
        canary_requests=100,
    )
    assert outcome.verdict == overall


def test_outcome_is_frozen() -> None:
    outcome = judge(AnalysisSpec(), window(GOOD))
    with pytest.raises(ValueError, match="frozen"):
        outcome.canary_requests = 3  # type: ignore[misc]


# --- error-rate --------------------------------------------------------------------------------

ERROR_MAX = AnalysisMetric(name="error-rate", max=0.05)
ERROR_RATIO = AnalysisMetric(name="error-rate", max_ratio_to_stable=2)
NO_TRAFFIC = variant(0, 0, latency(), {})


@cases(
    Case("far above max and worse than stable", ERROR_MAX, variant(1000, 71), FAIL,
         ("error-rate 7.1% > max 5.0%", "significantly worse than stable 0.4%", "p<0.0001")),
    Case("above max but stable as bad", ERROR_MAX, variant(1000, 60), PASS,
         ("6.0% > max 5.0% but not significantly worse than stable 5.5%", "99% confidence"),
         stable=variant(10_000, 550)),
    Case("exactly at max passes", ERROR_MAX, variant(1000, 50), PASS, ("5.0% within max 5.0%",)),
    Case("below max", ERROR_MAX, variant(1000, 10), PASS, ("1.0% within max 5.0% (stable 0.4%)",)),
    Case("significant at 90% confidence", ERROR_MAX, variant(1000, 66), FAIL, ("p=0.038",),
         stable=variant(10_000, 520), settings={"confidence": 0.9}),
    Case("not significant at 99% confidence", ERROR_MAX, variant(1000, 66), PASS,
         ("not significantly worse", "99% confidence (p=0.038)"), stable=variant(10_000, 520)),
    Case("stable without traffic: the bound alone", ERROR_MAX, variant(1000, 71), FAIL,
         ("7.1% > max 5.0%", "no stable requests were measured", "bound alone"), stable=NO_TRAFFIC),
    Case("stable without traffic, within the bound", ERROR_MAX, variant(1000, 10), PASS,
         ("within max 5.0%", "bound alone"), stable=NO_TRAFFIC),
    Case("ratio above and significant", ERROR_RATIO, variant(1000, 30), FAIL,
         ("3.0% is 3.00x stable 1.0%, above 2x", "significantly worse"),
         stable=variant(10_000, 100)),
    Case("ratio within", ERROR_RATIO, variant(1000, 15), PASS, ("1.50x stable 1.0%, within 2x",),
         stable=variant(10_000, 100)),
    Case("ratio above on little traffic is not evidence", ERROR_RATIO, variant(100, 3), PASS,
         ("3.00x stable 1.0%, above 2x, but not significantly worse",),
         stable=variant(900, 9)),
    Case("ratio to a stable without errors", ERROR_RATIO, variant(1000, 5), FAIL,
         ("0.5% while stable had no errors in 10000 requests", "significantly worse"),
         stable=variant(10_000, 0)),
    Case("one error against a clean stable is not evidence", ERROR_RATIO, variant(1000, 1), PASS,
         ("stable had no errors", "not significantly worse"), stable=variant(10_000, 0)),
    Case("0% against 0%", ERROR_RATIO, variant(1000, 0), PASS, ("0% like stable",),
         stable=variant(10_000, 0)),
    Case("ratio needs stable traffic", ERROR_RATIO, variant(1000, 30), INCONCLUSIVE,
         ("no stable requests were measured", "maxRatioToStable needs a stable error rate"),
         stable=NO_TRAFFIC),
    Case("min is a plain floor", AnalysisMetric(name="error-rate", min=0.01), variant(1000, 0),
         FAIL, ("error-rate 0% < min 1.0%",)),
    Case("counters that disagree", ERROR_MAX, variant(100, 120), INCONCLUSIVE,
         ("canary reports 120 errors but only 100 requests",)),
)  # fmt: skip
def test_error_rate(case: Case) -> None:
    check(case)


def test_error_rate_reports_values_and_bound() -> None:
    result = check(Case("values", ERROR_MAX, variant(1000, 71), FAIL, ()))
    assert (result.canary, result.stable, result.threshold) == (0.071, 0.004, 0.05)


def test_error_rate_ratio_threshold_is_in_rate_units() -> None:
    result = check(
        Case("ratio", ERROR_RATIO, variant(1000, 30), FAIL, (), stable=variant(10_000, 100))
    )
    assert result.threshold == pytest.approx(0.02)


def test_with_several_bounds_the_failing_one_decides() -> None:
    both = AnalysisMetric(name="error-rate", max=0.05, max_ratio_to_stable=2)
    result = check(Case("both", both, variant(1000, 30), FAIL, ("above 2x",),
                        stable=variant(10_000, 100)))  # fmt: skip
    assert "max" not in result.reason
    assert result.threshold == pytest.approx(0.02)


@settings(max_examples=200, deadline=None)
@given(
    requests=st.integers(50, 20_000),
    error_share=st.floats(0, 1),
    stable_scale=st.integers(1, 20),
    bound=st.floats(0, 1),
)
def test_a_canary_identical_to_stable_never_fails_error_rate(
    requests: int, error_share: float, stable_scale: int, bound: float
) -> None:
    errors = round(requests * error_share)
    canary = variant(requests, errors)
    stable = variant(requests * stable_scale, errors * stable_scale)
    metric = AnalysisMetric(name="error-rate", max=bound, max_ratio_to_stable=1.01)
    outcome = judge(analysis(metric), window(canary, stable))
    assert outcome.verdict == PASS, outcome.summary()


# --- latency-p99 -------------------------------------------------------------------------------

LATENCY_RATIO = AnalysisMetric(name="latency-p99", max_ratio_to_stable=1.25)
LATENCY_MAX = AnalysisMetric(name="latency-p99", max=0.03)


@cases(
    Case("ratio above and slower in the tail", LATENCY_RATIO, variant(1000, 0, SLOW_LATENCY), FAIL,
         ("latency-p99 50 ms is 2.08x stable 24 ms, above 1.25x",
          "40.0% of canary vs 8.0% of stable requests slower than 10 ms", "p<0.0001")),
    Case("same shape", LATENCY_RATIO, variant(1000, 0, SAME_LATENCY), PASS,
         ("24 ms is 1.00x stable 24 ms, within 1.25x",)),
    Case("noisy p99 of a small window", LATENCY_RATIO, variant(60, 0, NOISY_LATENCY), PASS,
         ("35 ms is 1.46x stable 24 ms, above 1.25x but the canary is not significantly slower",
          "1.7% of canary vs 0.5% of stable requests slower than 25 ms")),
    Case("absolute bound, slower than stable", LATENCY_MAX, variant(1000, 0, SLOW_LATENCY), FAIL,
         ("50 ms > max 30 ms, significantly slower than stable 24 ms",)),
    Case("absolute bound, stable as slow", LATENCY_MAX, variant(1000, 0, SLOW_LATENCY), PASS,
         ("50 ms > max 30 ms but not significantly slower than stable 50 ms",),
         stable=variant(10_000, 0, latency(ms5=2000, ms10=4000, ms25=3000, ms50=900, ms100=100))),
    Case("absolute bound met", LATENCY_MAX, variant(1000, 0, SAME_LATENCY), PASS,
         ("24 ms within max 30 ms (stable 24 ms)",)),
    Case("p99 beyond the largest bucket", LATENCY_MAX, variant(1000, 0, STALLED_LATENCY), FAIL,
         (">= 10000 ms (beyond the largest bucket) > max 30 ms",
          "5.0% of canary vs 0% of stable requests slower than 10000 ms")),
    Case("absolute bound without stable traffic", LATENCY_MAX, variant(1000, 0, SLOW_LATENCY),
         FAIL, ("50 ms > max 30 ms", "bound alone"), stable=NO_TRAFFIC),
    Case("ratio without stable traffic", LATENCY_RATIO, variant(1000, 0, SLOW_LATENCY),
         INCONCLUSIVE, ("no stable requests were", "needs a stable p99"), stable=NO_TRAFFIC),
    Case("no canary histogram", LATENCY_RATIO, variant(1000), INCONCLUSIVE,
         ("no latency histogram for the canary",)),
    Case("no stable histogram", LATENCY_RATIO, variant(1000, 0, SAME_LATENCY), INCONCLUSIVE,
         ("no latency histogram for the stable",), stable=variant(10_000)),
    Case("histogram without +Inf", LATENCY_RATIO, variant(1000, 0, SAME_LATENCY[:-1]),
         INCONCLUSIVE, ("canary latency histogram has no +Inf bucket",)),
    Case("histogram with fewer requests than needed", LATENCY_RATIO,
         variant(1000, 0, latency(ms5=20)), INCONCLUSIVE,
         ("only 20 canary requests in the latency histogram, need 50",)),
    Case("min is a plain floor", AnalysisMetric(name="latency-p99", min=0.1),
         variant(1000, 0, SAME_LATENCY), FAIL, ("latency-p99 24 ms < min 100 ms",)),
    Case("garbage buckets", LATENCY_RATIO, variant(1000, 0, [(0.1, -5), (INF, 1000)]),
         INCONCLUSIVE, ("unusable", "negative")),
)  # fmt: skip
def test_latency_p99(case: Case) -> None:
    check(case)


def test_latency_reports_seconds() -> None:
    result = check(Case("values", LATENCY_RATIO, variant(1000, 0, SLOW_LATENCY), FAIL, ()))
    assert result.canary == pytest.approx(0.05)
    assert result.stable == pytest.approx(0.024)
    assert result.threshold == pytest.approx(0.03)  # 1.25 x stable p99


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(st.integers(0, 400), min_size=len(BOUNDS), max_size=len(BOUNDS)).filter(
        lambda counts: sum(counts) >= 50
    ),
    stable_scale=st.integers(1, 20),
)
def test_a_canary_as_fast_as_stable_never_fails_latency(
    counts: list[int], stable_scale: int
) -> None:
    running, canary, stable = 0, [], []
    for bound, count in zip(BOUNDS, counts, strict=True):
        running += count
        canary.append((bound, float(running)))
        stable.append((bound, float(running * stable_scale)))
    metric = AnalysisMetric(name="latency-p99", max=0.0001, max_ratio_to_stable=1.01)
    outcome = judge(
        analysis(metric),
        window(variant(running, 0, canary), variant(running * stable_scale, 0, stable)),
    )
    assert outcome.verdict == PASS, outcome.summary()


# --- prediction-drift --------------------------------------------------------------------------

DRIFT = AnalysisMetric(name="prediction-drift", max=0.1)
VALUES = [0.0, 1.0, 2.0, 5.0, INF]


def value_histogram(*per_bucket: int) -> list[tuple[float, float]]:
    running, buckets = 0, []
    for bound, count in zip(VALUES, per_bucket, strict=True):
        running += count
        buckets.append((bound, float(running)))
    return buckets


REGRESSOR_STABLE = variant(10_000, prediction_buckets=value_histogram(0, 5000, 3000, 2000, 0))


@cases(
    Case("shifted classes", DRIFT, variant(1000, predictions={"cat": 300, "dog": 300, "bird": 400}),
         FAIL, ("prediction-drift PSI 0.241 > max 0.1", "distributed differently",
                "1000 canary vs 10000 stable predictions", "chi-square p<0.0001")),
    Case("same classes", DRIFT, variant(1000, predictions={"cat": 500, "dog": 300, "bird": 200}),
         PASS, ("PSI 0.000 within max 0.1",)),
    Case("small sample above max is noise", DRIFT,
         variant(60, predictions={"cat": 20, "dog": 20, "bird": 20}), PASS,
         ("PSI 0.139 > max 0.1 but within sampling noise", "60 canary vs 10000 stable",
          "identical versions would show PSI about 0.0335", "p=0.012")),
    Case("a class stable never predicted", DRIFT,
         variant(1000, predictions={"cat": 400, "dog": 300, "bird": 200, "fish": 100}), FAIL,
         ("> max 0.1",)),
    Case("regressor shifted", DRIFT,
         variant(1000, prediction_buckets=value_histogram(0, 200, 300, 400, 100)), FAIL,
         ("> max 0.1",), stable=REGRESSOR_STABLE),
    Case("regressor same", DRIFT,
         variant(1000, prediction_buckets=value_histogram(0, 500, 300, 200, 0)), PASS,
         ("within max 0.1",), stable=REGRESSOR_STABLE),
    Case("regressor buckets differ", DRIFT,
         variant(1000, prediction_buckets=[(1.0, 500), (3.0, 800), (INF, 1000)]), INCONCLUSIVE,
         ("different buckets",), stable=REGRESSOR_STABLE),
    Case("no canary predictions", DRIFT, variant(1000), INCONCLUSIVE,
         ("no prediction counts for the canary in the window",)),
    Case("no predictions at all", DRIFT, variant(1000), INCONCLUSIVE,
         ("no prediction counts for the canary and stable",), stable=variant(10_000)),
    Case("classifier vs regressor", DRIFT, variant(1000, predictions={"a": 1000}), INCONCLUSIVE,
         ("same kind of model",), stable=REGRESSOR_STABLE),
    Case("too few canary predictions", DRIFT, variant(1000, predictions={"cat": 30}),
         INCONCLUSIVE, ("only 30 canary predictions in the window, need 50",)),
    Case("too few stable predictions", DRIFT, GOOD, INCONCLUSIVE,
         ("only 10 stable predictions in the window, need 50",),
         stable=variant(10_000, predictions={"cat": 10})),
    Case("ratio makes no sense", AnalysisMetric(name="prediction-drift", max_ratio_to_stable=2),
         GOOD, INCONCLUSIVE, ("use max (a PSI), not maxRatioToStable",)),
    Case("negative counts", DRIFT, variant(1000, predictions={"cat": -100, "dog": 1100}),
         INCONCLUSIVE, ("unusable", "non-negative")),
)  # fmt: skip
def test_prediction_drift(case: Case) -> None:
    check(case)


def test_prediction_drift_reports_psi_and_bound() -> None:
    result = check(Case("values", DRIFT, GOOD, PASS, ()))
    assert result.canary == pytest.approx(0, abs=1e-6)
    assert (result.stable, result.threshold) == (None, 0.1)


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(st.integers(0, 2000), min_size=1, max_size=10).filter(
        lambda counts: sum(counts) >= 50
    ),
    stable_scale=st.integers(1, 20),
)
def test_a_canary_predicting_like_stable_never_fails_drift(
    counts: list[int], stable_scale: int
) -> None:
    canary = {f"class-{i}": float(count) for i, count in enumerate(counts)}
    stable = {label: count * stable_scale for label, count in canary.items()}
    outcome = judge(
        analysis(AnalysisMetric(name="prediction-drift", max=0.01)),
        window(variant(sum(counts), predictions=canary), variant(1, predictions=stable)),
    )
    assert outcome.verdict == PASS, outcome.summary()


# --- custom metrics ----------------------------------------------------------------------------

QUEUE_MAX = AnalysisMetric(name="queue-depth", max=10, query="q")
QUEUE_RATIO = AnalysisMetric(name="queue-depth", max_ratio_to_stable=1.5, query="q")


def with_queue(value: float | None, requests: int = 1000) -> VariantWindow:
    return variant(requests, custom={"queue-depth": value})


@cases(
    Case("above max", QUEUE_MAX, with_queue(12.5), FAIL, ("queue-depth 12.5 > max 10",)),
    Case("at max", QUEUE_MAX, with_queue(10), PASS, ("queue-depth 10 within max 10",)),
    Case("below min", AnalysisMetric(name="accuracy", min=0.9, query="q"),
         variant(1000, custom={"accuracy": 0.85}), FAIL, ("accuracy 0.85 < min 0.9",)),
    Case("query returned nothing", QUEUE_MAX, with_queue(None), INCONCLUSIVE,
         ("the query for queue-depth returned no data for the canary",)),
    Case("query not run", QUEUE_MAX, variant(1000), INCONCLUSIVE, ("returned no data",)),
    Case("NaN is no data", QUEUE_MAX, with_queue(math.nan), INCONCLUSIVE, ("returned no data",)),
    Case("ratio above", QUEUE_RATIO, with_queue(8), FAIL,
         ("queue-depth 8 is 2.00x stable 4, above 1.5x",), stable=with_queue(4, 10_000)),
    Case("ratio within", QUEUE_RATIO, with_queue(5), PASS, ("1.25x stable 4, within 1.5x",),
         stable=with_queue(4, 10_000)),
    Case("ratio without stable value", QUEUE_RATIO, with_queue(5), INCONCLUSIVE,
         ("returned no data for stable",), stable=with_queue(None, 10_000)),
    Case("ratio to a stable of 0", QUEUE_RATIO, with_queue(3), INCONCLUSIVE,
         ("a ratio needs a positive stable value",), stable=with_queue(0, 10_000)),
    Case("0 against 0", QUEUE_RATIO, with_queue(0), PASS, ("0 like stable",),
         stable=with_queue(0, 10_000)),
    Case("bounds alone need no stable", QUEUE_MAX, with_queue(3), PASS, ("within max 10",),
         stable=None),
)  # fmt: skip
def test_custom_metric(case: Case) -> None:
    check(case)


def test_custom_metric_reports_both_values() -> None:
    result = check(Case("values", QUEUE_RATIO, with_queue(8), FAIL, (),
                        stable=with_queue(4, 10_000)))  # fmt: skip
    assert (result.canary, result.stable, result.threshold) == (8, 4, 6)


# --- never a crash, never a silent pass ---------------------------------------------------------

maybe_buckets = st.none() | st.lists(
    st.tuples(st.sampled_from(BOUNDS), st.floats(0, 1e4)), min_size=0, max_size=6
)
variants = st.none() | st.builds(
    VariantWindow,
    requests=st.integers(0, 10_000),
    errors=st.integers(0, 10_000),
    latency_buckets=maybe_buckets,
    prediction_counts=st.none()
    | st.dictionaries(st.sampled_from("abc"), st.floats(0, 1e4), max_size=3),
    prediction_buckets=maybe_buckets,
    custom=st.dictionaries(st.just("queue-depth"), st.none() | st.floats(allow_nan=True)),
)


@settings(max_examples=300, deadline=None)
@given(canary=variants, stable=variants, error=st.none() | st.text(min_size=1))
def test_any_window_gets_a_verdict_and_a_reason_for_every_metric(
    canary: VariantWindow | None, stable: VariantWindow | None, error: str | None
) -> None:
    spec = AnalysisSpec(
        metrics=[*AnalysisSpec().metrics, QUEUE_MAX, QUEUE_RATIO], provider="prometheus",
        prometheus={"address": "http://prometheus:9090"},
    )  # fmt: skip
    outcome = judge(spec, window(canary, stable, error))
    assert [result.name for result in outcome.metrics] == [metric.name for metric in spec.metrics]
    assert all(result.reason for result in outcome.metrics)
    assert outcome.summary().startswith(outcome.verdict.value)
    if error is not None or canary is None or canary.requests < spec.min_requests:
        assert outcome.verdict == INCONCLUSIVE
