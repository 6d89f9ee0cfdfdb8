"""The monitor: one monitoring window of the stable version → a verdict per check.

The drift checks are tested as a detector should be: how often an unshifted window raises the
alarm (false alarms, against the 1 % goal) and how often a real shift is caught, over many
windows sampled with a fixed seed. The rest pins each check's verdict and the sentence it says.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import f1_score

from serinus.api.spec import MonitoringSpec
from serinus.api.status import Verdict
from serinus.core import monitor, stats
from serinus.core.monitor import (
    ACCURACY,
    INPUT_DRIFT,
    INTEGRITY,
    PREDICTION_DRIFT,
    assess,
    macro_f1,
)
from serinus.core.monitor_window import MonitorWindow

FEATURES = [f"f{i}" for i in range(6)]
ROWS = 500
CLASSES = {"setosa": 0.5, "versicolor": 0.3, "virginica": 0.2}


def _reference() -> dict[str, list[float]]:
    """6 features x 10 bins: two flat (quantile bins of a continuous feature), four uneven
    (ties, a low-cardinality feature), none below 1 % of rows."""
    rng = np.random.default_rng(7)
    reference = {}
    for i, feature in enumerate(FEATURES):
        shares = np.full(10, 0.1) if i < 2 else np.maximum(rng.dirichlet(np.full(10, 3.0)), 0.01)
        reference[feature] = (shares / shares.sum()).tolist()
    return reference


REFERENCE = _reference()


def window(**fields) -> MonitorWindow:
    return MonitorWindow(drift_seconds=300, label_seconds=3600, **fields)


def spec(**fields) -> MonitoringSpec:
    return MonitoringSpec.model_validate(fields)


def sample_window(
    rng: np.random.Generator, rows: int = ROWS, shifted: str | None = None, moved: float = 0.0
) -> MonitorWindow:
    """Rows drawn from the reference itself; with `shifted`, a share `moved` of that feature's
    rows is moved into its top bin (a covariate shift)."""
    bins = {}
    for feature, shares in REFERENCE.items():
        counts = rng.multinomial(rows, shares).astype(float)
        if feature == shifted:
            kept = rng.binomial(rows, 1 - moved)
            counts = rng.multinomial(kept, shares).astype(float)
            counts[-1] += rows - kept
        bins[feature] = counts.tolist()
    predicted = rng.multinomial(rows, list(CLASSES.values())).astype(float).tolist()
    return window(
        rows=rows,
        requests=rows,
        feature_bins=bins,
        reference_features=REFERENCE,
        prediction_counts=dict(zip(CLASSES, predicted, strict=True)),
        reference_predictions=CLASSES,
    )


def fail_rate(monitoring: MonitoringSpec, windows: list[MonitorWindow], name: str) -> float:
    verdicts = [assess(monitoring, w).result(name).verdict for w in windows]
    return sum(v == Verdict.FAIL for v in verdicts) / len(verdicts)


# --- drift: false alarms and detection -------------------------------------------------------


@pytest.fixture(scope="module")
def unshifted() -> list[MonitorWindow]:
    rng = np.random.default_rng(20_261_123)
    return [sample_window(rng) for _ in range(2000)]


def test_unshifted_windows_raise_at_most_one_percent_false_alarms(unshifted):
    monitoring = spec()
    assert fail_rate(monitoring, unshifted, INPUT_DRIFT) <= 0.01
    assert fail_rate(monitoring, unshifted, PREDICTION_DRIFT) <= 0.01


def test_the_significance_test_alone_holds_its_confidence(unshifted):
    """With a PSI bound too low to matter, the Holm-corrected chi-square tests decide alone: the
    family-wise false-alarm rate is then 1 - confidence (1 %) up to sampling error. Measured
    with 20 000 windows per case it is 0.99-1.07 %; 2 000 windows bound it to 1 % + 3 standard
    errors."""
    monitoring = spec(inputDrift={"psi": 1e-6}, predictionDrift={"psi": 1e-6})
    allowed = 0.01 + 3 * math.sqrt(0.01 * 0.99 / len(unshifted))
    assert fail_rate(monitoring, unshifted, INPUT_DRIFT) <= allowed
    assert fail_rate(monitoring, unshifted, PREDICTION_DRIFT) <= allowed


def test_a_covariate_shift_on_one_feature_is_caught_and_named():
    rng = np.random.default_rng(31)
    monitoring = spec()
    caught = 0
    for _ in range(200):
        report = assess(monitoring, sample_window(rng, shifted="f3", moved=0.3))
        result = report.result(INPUT_DRIFT)
        drifted = [d.feature for d in report.top_drifters if d.drifted]
        psis = [d.psi for d in report.top_drifters]
        assert psis == sorted(psis, reverse=True)
        assert report.top_drifters[0].feature == "f3"
        if result.verdict == Verdict.FAIL and drifted == ["f3"]:
            caught += 1
            assert "1 of 6 features drifted" in result.reason
            assert "f3 PSI" in result.reason
            assert "bin 9:" in result.reason  # the bin the rows moved into
            assert result.value == report.top_drifters[0].psi
    assert caught / 200 >= 0.99


def test_top_drifters_are_the_five_largest_psi_first():
    rng = np.random.default_rng(5)
    report = assess(spec(), sample_window(rng, shifted="f0", moved=0.5))
    assert len(report.top_drifters) == 5
    assert report.top_drifters[0].feature == "f0"
    assert report.top_drifters[0].drifted
    assert report.top_drifters[0].rows == ROWS
    assert "of rows vs 10.0% in the reference" in report.top_drifters[0].shift
    assert [d.psi for d in report.top_drifters] == sorted(
        (d.psi for d in report.top_drifters), reverse=True
    )


def test_a_drift_within_sampling_noise_passes():
    """PSI above the bound on a handful of rows, but not significant: no alarm."""
    counts = [8, 2, 2, 2, 2, 2, 2, 2, 2, 2]  # 26 rows, 31 % in bin 0: PSI 0.21, p = 0.19
    monitoring = spec(inputDrift={"minRows": 20})
    result = assess(
        monitoring, window(feature_bins={"f0": counts}, reference_features={"f0": [0.1] * 10})
    ).result(INPUT_DRIFT)
    assert result.verdict == Verdict.PASS
    assert result.value > 0.2
    assert "within sampling noise" in result.reason


# --- drift: no verdict -----------------------------------------------------------------------


def test_too_little_data_is_inconclusive_and_raises_no_alarm():
    rng = np.random.default_rng(1)
    small = sample_window(rng, rows=120, shifted="f3", moved=0.9)  # a huge shift, few rows
    report = assess(spec(), small)
    for name in (INPUT_DRIFT, PREDICTION_DRIFT):
        result = report.result(name)
        assert result.verdict == Verdict.INCONCLUSIVE
        assert "too little data" in result.reason
        assert "no alarm" in result.reason
    assert "120 rows in the last 5m, 500 needed" in report.result(INPUT_DRIFT).reason
    assert "120 predictions in the last 5m, 500 needed" in report.result(PREDICTION_DRIFT).reason
    assert report.top_drifters == []


def test_features_below_min_rows_are_left_out_of_the_judgement():
    """A feature with too few rows (mostly missing) is not judged; the others are."""
    rng = np.random.default_rng(2)
    full = sample_window(rng)
    bins = {**full.feature_bins, "f5": [1.0] * 10}
    report = assess(spec(), full.model_copy(update={"feature_bins": bins}))
    assert report.result(INPUT_DRIFT).verdict == Verdict.PASS
    assert "f5" not in {d.feature for d in report.top_drifters}


def test_no_reference_profile_is_inconclusive_and_says_so():
    report = assess(spec(), window(rows=1000, feature_bins={"f0": [100.0] * 10}))
    result = report.result(INPUT_DRIFT)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "no reference profile" in result.reason
    assert "serinus pack --data" in result.reason
    predictions = report.result(PREDICTION_DRIFT)
    assert predictions.verdict == Verdict.INCONCLUSIVE
    assert "no reference prediction distribution" in predictions.reason


def test_a_provider_error_makes_every_check_inconclusive_with_the_error():
    monitoring = spec(accuracy={"min": 0.9})
    report = assess(monitoring, window(error="prometheus: connection refused"))
    assert [r.name for r in report.results] == [INPUT_DRIFT, PREDICTION_DRIFT, INTEGRITY, ACCURACY]
    for result in report.results:
        assert result.verdict == Verdict.INCONCLUSIVE
        assert "could not read the window: prometheus: connection refused" in result.reason


def test_disabled_checks_are_not_run():
    monitoring = spec(inputDrift={"enabled": False}, integrity={"enabled": False})
    report = assess(monitoring, sample_window(np.random.default_rng(3)))
    assert [r.name for r in report.results] == [PREDICTION_DRIFT]


# --- prediction drift ------------------------------------------------------------------------


def test_classifier_prediction_drift_against_reference_shares():
    same = window(
        prediction_counts={"setosa": 500.0, "versicolor": 310.0, "virginica": 190.0},
        reference_predictions=CLASSES,
    )
    assert assess(spec(), same).result(PREDICTION_DRIFT).verdict == Verdict.PASS

    skewed = same.model_copy(
        update={"prediction_counts": {"setosa": 300.0, "versicolor": 100.0, "virginica": 600.0}}
    )
    result = assess(spec(), skewed).result(PREDICTION_DRIFT)
    assert result.verdict == Verdict.FAIL
    expected = [500.0, 300.0, 200.0]
    assert result.value == pytest.approx(stats.psi(expected, [300.0, 100.0, 600.0]))
    assert result.threshold == 0.2
    assert "over 1000 predictions" in result.reason
    assert "class virginica: 60.0% of rows vs 20.0% in the reference" in result.reason


def test_a_class_the_reference_never_predicted_counts_as_drift():
    counts = {"setosa": 250.0, "versicolor": 150.0, "virginica": 100.0, "unknown": 500.0}
    result = assess(spec(), window(prediction_counts=counts, reference_predictions=CLASSES)).result(
        PREDICTION_DRIFT
    )
    assert result.verdict == Verdict.FAIL
    assert "class unknown: 50.0% of rows vs 0% in the reference" in result.reason


def test_regressor_prediction_drift_from_cumulative_buckets():
    reference = [(0.0, 0.25), (1.0, 0.5), (math.inf, 0.25)]  # shares per bucket
    same = window(
        prediction_buckets=[(0.0, 260.0), (1.0, 750.0), (math.inf, 1000.0)],  # cumulative
        reference_prediction_buckets=reference,
    )
    result = assess(spec(), same).result(PREDICTION_DRIFT)
    assert result.verdict == Verdict.PASS
    assert result.value < 0.01

    higher = same.model_copy(
        update={"prediction_buckets": [(0.0, 100.0), (1.0, 400.0), (math.inf, 1000.0)]}
    )
    result = assess(spec(), higher).result(PREDICTION_DRIFT)
    assert result.verdict == Verdict.FAIL
    assert result.value == pytest.approx(stats.psi([250.0, 500.0, 250.0], [100.0, 300.0, 600.0]))
    assert "the top bucket: 60.0% of rows vs 25.0% in the reference" in result.reason


def test_regressor_too_few_predictions_is_inconclusive():
    few = window(
        prediction_buckets=[(0.0, 10.0), (1.0, 20.0), (math.inf, 30.0)],
        reference_prediction_buckets=[(0.0, 0.25), (1.0, 0.5), (math.inf, 0.25)],
    )
    result = assess(spec(), few).result(PREDICTION_DRIFT)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "30 predictions" in result.reason


# --- integrity -------------------------------------------------------------------------------


def test_invalid_share_above_the_bound_fails_and_lists_the_reasons():
    result = assess(
        spec(), window(requests=1000, invalid={"shape": 50.0, "dtype": 30.0, "nan": 0.0})
    ).result(INTEGRITY)
    assert result.verdict == Verdict.FAIL
    assert result.value == pytest.approx(0.08)
    assert "8.0% of requests were rejected as invalid (above 5.0%" in result.reason
    assert "by reason: shape 50, dtype 30)" in result.reason
    assert "nan" not in result.reason


def test_invalid_share_within_the_bound_passes():
    result = assess(spec(), window(requests=1000, invalid={"shape": 20.0})).result(INTEGRITY)
    assert result.verdict == Verdict.PASS
    assert result.value == pytest.approx(0.02)


def test_missing_values_per_feature_above_the_bound_fail_and_name_the_feature():
    bins = {"f0": [90.0] * 10, "f1": [99.0] * 10}
    missing = {"f0": 100.0, "f1": 10.0}  # 10 % and 1 % of the rows
    result = assess(
        spec(), window(requests=1000, feature_bins=bins, feature_missing=missing)
    ).result(INTEGRITY)
    assert result.verdict == Verdict.FAIL
    assert "10.0% of rows miss feature f0 (above 5.0%)" in result.reason
    assert "f1" not in result.reason
    assert result.value == pytest.approx(0.1)


def test_new_categories_beyond_the_reference_share_fail():
    reference = {"colour": [0.5, 0.45, 0.05]}  # red, blue, then "other"
    window_ = window(
        requests=1000,
        feature_bins={"colour": [400.0, 300.0, 300.0]},
        reference_features=reference,
        categorical=frozenset({"colour"}),
    )
    result = assess(spec(inputDrift={"enabled": False}), window_).result(INTEGRITY)
    assert result.verdict == Verdict.FAIL
    assert result.value == pytest.approx(0.25)
    assert (
        "30.0% of rows bring a category of colour the reference never saw "
        "(5.0% in the reference; allowed 5.0% more)" in result.reason
    )


def test_new_categories_within_the_allowance_pass():
    window_ = window(
        requests=1000,
        feature_bins={"colour": [500.0, 410.0, 90.0]},  # 9 % other vs 5 %: 4 points more
        reference_features={"colour": [0.5, 0.45, 0.05]},
        categorical=frozenset({"colour"}),
    )
    assert assess(spec(), window_).result(INTEGRITY).verdict == Verdict.PASS


def test_a_numeric_feature_top_bin_is_not_taken_for_new_categories():
    window_ = window(
        requests=1000,
        feature_bins={"f0": [50.0] * 9 + [550.0]},
        reference_features={"f0": [0.1] * 10},
    )
    assert assess(spec(), window_).result(INTEGRITY).verdict == Verdict.PASS


def test_integrity_under_min_requests_is_inconclusive():
    result = assess(spec(), window(requests=40, invalid={"shape": 30.0})).result(INTEGRITY)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "too little data: 40 requests in the last 5m, 100 needed; no alarm" in result.reason


# --- accuracy --------------------------------------------------------------------------------


def test_accuracy_below_the_floor_fails():
    labelled = window(feedback={"correct": 160.0, "incorrect": 40.0})
    result = assess(spec(accuracy={"min": 0.9}), labelled).result(ACCURACY)
    assert result.verdict == Verdict.FAIL
    assert result.value == pytest.approx(0.8)
    assert result.threshold == 0.9
    assert "accuracy 80.0% is below the floor 90.0% over 200 labels in the last 1h" in (
        result.reason
    )
    assert assess(spec(accuracy={"min": 0.75}), labelled).result(ACCURACY).verdict == Verdict.PASS


def test_accuracy_under_min_labels_is_inconclusive():
    few = window(feedback={"correct": 10.0, "incorrect": 40.0})
    result = assess(spec(accuracy={"min": 0.9}), few).result(ACCURACY)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "too little data: 50 labelled rows in the last 1h, 100 labels needed" in result.reason


def _confusion(y_true: list[str], y_pred: list[str], classes: list[str]) -> dict:
    """The runtime's counters: every (label, class) pair, zero ones included."""
    confusion = {a: dict.fromkeys(classes, 0.0) for a in classes}
    for a, b in zip(y_true, y_pred, strict=True):
        confusion[a][b] += 1
    return confusion


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c", "d"]
    y_true = rng.choice(classes[:3], size=300, p=[0.6, 0.3, 0.1]).tolist()
    noise = rng.random(300) < 0.3
    y_pred = [
        str(rng.choice(classes)) if wrong else label
        for label, wrong in zip(y_true, noise, strict=True)
    ]
    expected = f1_score(y_true, y_pred, average="macro")
    assert macro_f1(_confusion(y_true, y_pred, classes)) == pytest.approx(expected)


def test_macro_f1_ignores_classes_absent_from_the_window():
    """The runtime exposes every (label, class) pair from start-up, at zero; a class neither
    labelled nor predicted in the label window is no class of that window's score."""
    y_true = ["a", "a", "b", "b", "a"]
    y_pred = ["a", "b", "b", "b", "a"]
    confusion = _confusion(y_true, y_pred, ["a", "b", "c"])
    assert macro_f1(confusion) == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_f1_from_the_confusion_counts_against_the_floor():
    rng = np.random.default_rng(9)
    y_true = rng.choice(["x", "y", "z"], size=400).tolist()
    y_pred = [label if rng.random() < 0.6 else "x" for label in y_true]
    correct = sum(a == b for a, b in zip(y_true, y_pred, strict=True))
    labelled = window(
        feedback={"correct": float(correct), "incorrect": float(400 - correct)},
        confusion=_confusion(y_true, y_pred, ["x", "y", "z"]),
    )
    result = assess(spec(accuracy={"metric": "f1", "min": 0.8}), labelled).result(ACCURACY)
    assert result.verdict == Verdict.FAIL
    assert result.value == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert "f1 " in result.reason and "below the floor 80.0%" in result.reason


def test_f1_without_per_class_counts_is_inconclusive():
    labelled = window(feedback={"correct": 300.0, "incorrect": 100.0})
    result = assess(spec(accuracy={"metric": "f1", "min": 0.8}), labelled).result(ACCURACY)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "no per-class feedback counts" in result.reason


def test_mae_and_rmse_against_the_ceiling():
    errors = np.array([0.5, -1.5, 0.0, 2.0] * 50)  # 200 scored rows
    scored = window(
        feedback={"scored": 200.0},
        feedback_absolute_error=float(np.abs(errors).sum()),
        feedback_squared_error=float((errors**2).sum()),
    )
    mae, rmse = float(np.abs(errors).mean()), float(np.sqrt((errors**2).mean()))
    result = assess(spec(accuracy={"metric": "mae", "max": 1.0}), scored).result(ACCURACY)
    assert (result.verdict, result.value) == (Verdict.PASS, pytest.approx(mae))
    result = assess(spec(accuracy={"metric": "rmse", "max": 1.0}), scored).result(ACCURACY)
    assert (result.verdict, result.value) == (Verdict.FAIL, pytest.approx(rmse))
    assert f"rmse {rmse:.4g} is above the ceiling 1 over 200 labels" in result.reason


def test_regression_error_under_min_labels_is_inconclusive():
    few = window(feedback={"scored": 99.0}, feedback_absolute_error=500.0)
    result = assess(spec(accuracy={"metric": "mae", "max": 1.0}), few).result(ACCURACY)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "99 scored rows" in result.reason


# --- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_goodness_of_fit_agrees_with_scipy_chisquare(seed):
    rng = np.random.default_rng(seed)
    bins = int(rng.integers(2, 15))
    shares = rng.dirichlet(np.ones(bins))
    truth = rng.dirichlet(np.ones(bins)) if seed % 2 else shares
    counts = rng.multinomial(int(rng.integers(50, 5000)), truth).astype(float)
    expected = scipy_stats.chisquare(counts, f_exp=shares * counts.sum()).pvalue
    got = stats.goodness_of_fit_p_value(shares.tolist(), counts.tolist(), pseudo_count=1e-9)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_goodness_of_fit_stays_finite_on_a_bin_the_reference_never_saw():
    p = stats.goodness_of_fit_p_value([0.5, 0.5, 0.0], [250.0, 240.0, 10.0])
    assert 0.0 <= p < 1e-6
    assert stats.goodness_of_fit_p_value([0.5, 0.5, 0.0], [250.0, 250.0, 0.0]) > 0.5


def test_holm_on_the_textbook_example():
    """Holm (1979) as Wikipedia tells it: p = 0.01, 0.04, 0.03, 0.005 at alpha 0.05. Sorted,
    0.005 <= 0.05/4 and 0.01 <= 0.05/3 are rejected; 0.03 > 0.05/2 stops the procedure, so
    0.04 is kept although it is below alpha."""
    assert stats.holm_significant([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]


def test_holm_edge_cases():
    assert stats.holm_significant([], 0.05) == []
    assert stats.holm_significant([0.04], 0.05) == [True]
    assert stats.holm_significant([0.02, 0.02], 0.05) == [True, True]  # 0.02 <= 0.025, <= 0.05
    assert stats.holm_significant([0.03, 0.03], 0.05) == [False, False]


def test_a_reference_profile_of_finite_rows_keeps_the_tests_confidence():
    """The shares are a sample of the profile's rows (serinus_reference_rows): compared as two
    samples, a window as large as the reference keeps the test's confidence."""
    rng = np.random.default_rng(8)
    monitoring = spec(inputDrift={"psi": 1e-6})
    truth, rows, windows = [0.1] * 10, 10_000, []
    for _ in range(10):  # 10 reference profiles of 10 000 rows, 20 windows of 10 000 rows each
        reference = {f: (rng.multinomial(rows, truth) / rows).tolist() for f in FEATURES}
        for _ in range(20):
            bins = {f: rng.multinomial(rows, truth).astype(float).tolist() for f in FEATURES}
            windows.append(
                window(feature_bins=bins, reference_features=reference, reference_rows=rows)
            )
    assert fail_rate(monitoring, windows, INPUT_DRIFT) <= 0.01 + 3 * math.sqrt(0.0099 / 200)


def test_without_the_reference_rows_the_shares_are_taken_as_exact():
    """An older runtime exposes no serinus_reference_rows: goodness of fit against the shares
    (too sure with large windows, which the PSI bound then has to catch)."""
    shares, counts = [0.25, 0.25, 0.5], [30.0, 20.0, 50.0]
    exact = monitor.drift_p_value(shares, counts, None)
    assert exact == pytest.approx(stats.goodness_of_fit_p_value(shares, counts))
    assert monitor.drift_p_value(shares, counts, 100.0) > exact  # less sure with 100 rows
