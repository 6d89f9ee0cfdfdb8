"""Statistics under the judge: Prometheus quantiles, proportion tests, PSI."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serinus.core import stats

INF = math.inf
# The runtime's latency buckets (seconds), as `increase(..._bucket[w])` returns them.
RUNTIME_BOUNDS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                  2.5, 5, 10, INF]  # fmt: skip


def cumulative(bounds: list[float], counts: list[float]) -> list[tuple[float, float]]:
    """Per-bucket counts → cumulative (le, count) pairs."""
    running, buckets = 0.0, []
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        buckets.append((bound, running))
    return buckets


# --- histogram_quantile ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        # interpolation inside a bucket: rank 50 of 100, 40 below 0.1, 20 in (0.1, 0.2]
        (0.5, [(0.1, 40), (0.2, 60), (INF, 100)], 0.15),
        # lowest bucket starts at 0
        (0.25, [(0.1, 50), (0.2, 100), (INF, 100)], 0.05),
        # rank in the +Inf bucket: the highest finite bound, like Prometheus
        (0.99, [(0.1, 50), (0.2, 90), (INF, 100)], 0.2),
        # exactly on a bucket's cumulative count: that bucket's upper bound
        (0.5, [(0.1, 50), (0.2, 100), (INF, 100)], 0.1),
        # lowest bound <= 0 is returned as is
        (0.1, [(-1.0, 20), (1.0, 100), (INF, 100)], -1.0),
        # unsorted input and duplicate bounds are merged as Prometheus does
        (0.5, [(INF, 100), (0.2, 30), (0.1, 40), (0.2, 30)], 0.15),
        # a decreasing count (counter reset noise) is flattened to the running maximum
        (0.5, [(0.1, 40), (0.2, 35), (0.5, 100), (INF, 100)], 0.2 + 0.3 * (10 / 60)),
        # q outside [0, 1]
        (-0.1, [(0.1, 1), (INF, 1)], -INF),
        (1.5, [(0.1, 1), (INF, 1)], INF),
        (1.0, [(0.1, 10), (0.2, 20), (INF, 20)], 0.2),
    ],
)
def test_histogram_quantile_matches_prometheus(
    q: float, buckets: list[tuple[float, float]], expected: float
) -> None:
    assert stats.histogram_quantile(q, buckets) == pytest.approx(expected)


@pytest.mark.parametrize(
    "buckets",
    [
        [(0.1, 5), (0.2, 10)],  # no +Inf bucket
        [(INF, 10)],  # only +Inf
        [(0.1, 0), (INF, 0)],  # no observations
    ],
    ids=["no +Inf bucket", "single bucket", "empty"],
)
def test_histogram_quantile_is_nan_where_prometheus_is(buckets: list[tuple[float, float]]) -> None:
    assert math.isnan(stats.histogram_quantile(0.99, buckets))


def test_histogram_quantile_rejects_garbage_with_a_reason() -> None:
    with pytest.raises(ValueError, match="negative"):
        stats.histogram_quantile(0.5, [(0.1, -1), (INF, 3)])
    with pytest.raises(ValueError, match="no buckets"):
        stats.histogram_quantile(0.5, [])


bucket_counts = st.lists(
    st.integers(min_value=0, max_value=10_000), min_size=len(RUNTIME_BOUNDS),
    max_size=len(RUNTIME_BOUNDS),
).filter(lambda counts: sum(counts) > 0)  # fmt: skip


@given(counts=bucket_counts, q1=st.floats(0.001, 1), q2=st.floats(0.001, 1))
def test_histogram_quantile_is_monotone_in_q(counts: list[int], q1: float, q2: float) -> None:
    buckets = cumulative(RUNTIME_BOUNDS, counts)
    low, high = sorted((q1, q2))
    assert stats.histogram_quantile(low, buckets) <= stats.histogram_quantile(high, buckets)


@given(counts=bucket_counts, q=st.floats(0.001, 1))
def test_histogram_quantile_stays_within_finite_bounds(counts: list[int], q: float) -> None:
    value = stats.histogram_quantile(q, cumulative(RUNTIME_BOUNDS, counts))
    assert 0 <= value <= RUNTIME_BOUNDS[-2]


def test_quantile_bucket_edges_name_the_bucket_holding_the_rank() -> None:
    buckets = cumulative(RUNTIME_BOUNDS, [0, 0, 0, 0, 50, 40, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert stats.quantile_bucket_edges(0.99, buckets) == (0.01, 0.025)
    assert stats.quantile_bucket_edges(0.1, buckets) == (0.0025, 0.005)
    overflow = [(0.1, 1), (INF, 100)]
    assert stats.quantile_bucket_edges(0.99, overflow) == (0.1, INF)


def test_per_bucket_counts_undo_the_cumulative_sum() -> None:
    bounds, counts = stats.per_bucket_counts([(0.1, 3), (0.5, 3), (1.0, 10), (INF, 12)])
    assert bounds.tolist() == [0.1, 0.5, 1.0, INF]
    assert counts.tolist() == [3, 0, 7, 2]


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(0.01, 10), (0.025, 1), (0.02, 1), (0.0, 100), (100.0, 0)],
    ids=["on a bound", "next bound", "between bounds errs low", "below all", "above all"],
)
def test_observations_above(threshold: float, expected: float) -> None:
    buckets = cumulative(RUNTIME_BOUNDS, [0, 0, 0, 0, 50, 40, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert stats.observations_above(buckets, threshold) == expected


def test_histogram_total_is_the_inf_bucket() -> None:
    assert stats.histogram_total([(0.1, 4), (INF, 9)]) == 9
    assert stats.histogram_total([(0.1, 4), (0.2, 9)]) == 0


# --- proportion test ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("canary", "stable", "significant"),
    [
        ((71, 1000), (40, 10000), True),  # 7.1 % vs 0.4 %
        ((30, 1000), (90, 9000), True),  # 3 % vs 1 %
        ((3, 100), (9, 900), False),  # 3 % vs 1 % but only 100 canary requests
        ((1, 100), (10, 900), False),  # same rate
        ((0, 1000), (90, 9000), False),  # canary better
        ((5, 1000), (0, 9000), True),  # stable had no errors at all
        ((1, 1000), (0, 9000), False),  # one error is not evidence
    ],
)
def test_worse_proportion_p_value(
    canary: tuple[int, int], stable: tuple[int, int], significant: bool
) -> None:
    assert (stats.worse_proportion_p_value(*canary, *stable) < 0.01) is significant


def test_worse_proportion_is_one_sided() -> None:
    worse = stats.worse_proportion_p_value(30, 1000, 10, 1000)
    better = stats.worse_proportion_p_value(10, 1000, 30, 1000)
    assert worse < 0.01 < 0.99 < better


@pytest.mark.parametrize(
    ("args", "message"),
    [((1, 0, 1, 10), "canary has no observations"), ((11, 10, 1, 10), "canary has 11 bad")],
)
def test_worse_proportion_rejects_impossible_counts(
    args: tuple[int, int, int, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        stats.worse_proportion_p_value(*args)


@given(total=st.integers(1, 5000), bad_share=st.floats(0, 1), scale=st.integers(1, 20))
def test_identical_rates_are_never_significant(total: int, bad_share: float, scale: int) -> None:
    bad = round(total * bad_share)
    assert stats.worse_proportion_p_value(bad, total, bad * scale, total * scale) > 0.4


# --- PSI ---------------------------------------------------------------------------------------


def test_psi_of_a_known_shift() -> None:
    # 50/30/20 → 30/30/40: sum((a - e) ln(a / e)) = -0.2 ln 0.6 + 0.2 ln 2 = 0.2408
    assert stats.psi([5000, 3000, 2000], [3000, 3000, 4000], pseudo_count=1e-9) == (
        pytest.approx(0.2408, abs=1e-4)
    )


def test_psi_stays_finite_with_empty_bins() -> None:
    value = stats.psi([100, 0, 0], [0, 0, 100])
    assert math.isfinite(value)
    assert value > 5  # all mass moved: huge, but a number a person can read


def test_psi_smoothing_fades_with_more_data() -> None:
    few = stats.psi([50, 50, 0], [50, 49, 1])
    many = stats.psi([5000, 5000, 0], [5000, 4900, 100])
    assert few < many  # the same 1 % shift: the pseudo-count hides it at 100 rows only


def test_psi_rejects_mismatched_or_empty_vectors() -> None:
    with pytest.raises(ValueError, match="same, non-zero length"):
        stats.psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="at least one observation"):
        stats.psi([0, 0], [1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        stats.psi([1, -2], [1, 2])


count_vectors = st.lists(st.integers(0, 10_000), min_size=1, max_size=12).filter(
    lambda counts: sum(counts) > 0
)


@given(counts=count_vectors)
def test_psi_of_a_distribution_with_itself_is_zero(counts: list[int]) -> None:
    assert stats.psi(counts, counts) == pytest.approx(0, abs=1e-12)


@given(data=st.data(), bins=st.integers(1, 12))
def test_psi_is_non_negative_and_symmetric(data: st.DataObject, bins: int) -> None:
    vector = st.lists(st.integers(0, 10_000), min_size=bins, max_size=bins).filter(
        lambda counts: sum(counts) > 0
    )
    first, second = data.draw(vector), data.draw(vector)
    value = stats.psi(first, second)
    assert value >= 0
    assert math.isfinite(value)
    assert value == pytest.approx(stats.psi(second, first))


def test_psi_sampling_bias() -> None:
    assert stats.psi_sampling_bias(3, 900, 100) == pytest.approx(2 * (1 / 900 + 1 / 100))


@pytest.mark.parametrize(
    ("expected", "actual", "significant"),
    [
        ([5000, 3000, 2000], [300, 300, 400], True),
        ([5000, 3000, 2000], [52, 29, 19], False),
        ([5000, 0, 5000], [50, 0, 50], False),  # empty in both: dropped, not an error
        ([100, 0], [100, 0], False),  # one occupied bin: nothing to compare
    ],
)
def test_homogeneity_p_value(expected: list[float], actual: list[float], significant: bool) -> None:
    assert (stats.homogeneity_p_value(expected, actual) < 0.01) is significant
