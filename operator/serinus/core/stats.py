"""Statistics the analysis judge stands on: proportion tests, histogram quantiles, PSI.

Pure functions of counts. Distributions and tests come from scipy; nothing here re-derives one.
Buckets are Prometheus-style cumulative histograms: `(le, cumulative count)` pairs, the last one
with `le = +Inf`, exactly what `increase(x_bucket[w])` returns per `le`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

Bucket = tuple[float, float]
"""(upper bound `le`, cumulative count of observations <= le)."""

DEFAULT_PSI_PSEUDO_COUNT = 0.5


# --- proportions -------------------------------------------------------------------------------


def worse_proportion_p_value(
    canary_bad: int, canary_total: int, stable_bad: int, stable_total: int
) -> float:
    """One-sided p-value that the canary's share of bad events (errors, slow requests) is
    higher than stable's.

    Fisher's exact test, not the two-proportion z-test: at the traffic a canary window sees
    (a 1 % error rate over 100 requests is one error) the normal approximation is
    anti-conservative and would roll back good versions; Fisher's test keeps the false-alarm
    rate at or below alpha for any counts and costs one hypergeometric tail. Boschloo's test
    would be a little more powerful but is far too slow for tens of thousands of requests.
    """
    for label, bad, total in (
        ("canary", canary_bad, canary_total),
        ("stable", stable_bad, stable_total),
    ):
        if total <= 0:
            raise ValueError(f"{label} has no observations: a proportion needs at least one")
        if not 0 <= bad <= total:
            raise ValueError(f"{label} has {bad} bad events out of {total}: must be 0..{total}")
    return _hypergeom_tail(
        at_least=canary_bad,
        population=canary_total + stable_total,
        drawn=canary_total,
        marked=canary_bad + stable_bad,
    )


def _hypergeom_tail(at_least: int, population: int, drawn: int, marked: int) -> float:
    """P(X >= at_least) for X ~ Hypergeometric: `drawn` items from `population`, of which
    `marked` are marked — Fisher's one-sided p-value (scipy's `fisher_exact(greater)`).

    Computed here from log-gamma terms rather than through scipy.stats, whose import alone
    costs the operator ~70 MiB of memory; scipy.stats is the reference in the tests."""
    low = max(at_least, 0, drawn + marked - population)
    high = min(drawn, marked)
    if low > high:
        return 0.0
    x = np.arange(low, high + 1, dtype=np.float64)
    log_pmf = (
        _log_choose(marked, x)
        + _log_choose(population - marked, drawn - x)
        - _log_choose(population, np.float64(drawn))
    )
    return float(min(1.0, np.exp(special.logsumexp(log_pmf))))


def _log_choose(n: float, k: np.ndarray | np.float64) -> np.ndarray:
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)


# --- histograms --------------------------------------------------------------------------------


def clean_cumulative(buckets: Sequence[Bucket]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted upper bounds and cumulative counts, cleaned the way Prometheus does before a
    quantile: equal bounds merged by summing, decreases (counter resets, float noise) flattened
    to the running maximum."""
    if not buckets:
        raise ValueError("the histogram has no buckets")
    bounds = np.array([float(le) for le, _ in buckets])
    counts = np.array([float(count) for _, count in buckets])
    if np.isnan(bounds).any() or np.isnan(counts).any():
        raise ValueError("the histogram has NaN bucket bounds or counts")
    if (counts < 0).any():
        raise ValueError("the histogram has negative bucket counts")
    order = np.argsort(bounds, kind="stable")
    bounds, counts = bounds[order], counts[order]
    unique_bounds, first_index = np.unique(bounds, return_index=True)
    merged_counts = np.add.reduceat(counts, first_index)
    return unique_bounds, np.maximum.accumulate(merged_counts)


def per_bucket_counts(buckets: Sequence[Bucket]) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative buckets → (upper bounds, observations inside each bucket)."""
    bounds, cumulative = clean_cumulative(buckets)
    return bounds, np.diff(cumulative, prepend=0.0)


def histogram_total(buckets: Sequence[Bucket]) -> float:
    """Observations in the histogram: the +Inf bucket's count (0 when there is no +Inf)."""
    bounds, cumulative = clean_cumulative(buckets)
    return float(cumulative[-1]) if math.isinf(bounds[-1]) and bounds[-1] > 0 else 0.0


def histogram_quantile(q: float, buckets: Sequence[Bucket]) -> float:
    """The q-quantile as PromQL's `histogram_quantile` computes it.

    Linear interpolation inside the bucket holding the rank, with 0 as the lower edge of the
    lowest bucket when its bound is positive. A quantile that lands in the +Inf bucket is the
    highest finite bound. NaN when there is no +Inf bucket, fewer than two buckets or no
    observations; -Inf for q < 0 and +Inf for q > 1.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    bounds, cumulative = clean_cumulative(buckets)
    if not (math.isinf(bounds[-1]) and bounds[-1] > 0) or len(bounds) < 2:
        return math.nan
    observations = cumulative[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = int(np.searchsorted(cumulative[:-1], rank, side="left"))
    if index == len(bounds) - 1:
        return float(bounds[-2])
    if index == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start, end, count = 0.0, float(bounds[index]), float(cumulative[index])
    if index > 0:
        start = float(bounds[index - 1])
        count -= float(cumulative[index - 1])
        rank -= float(cumulative[index - 1])
    if count == 0:
        return math.nan  # q == 0 over an empty lowest bucket: 0/0 in Prometheus too
    return float(start + (end - start) * (rank / count))


def quantile_bucket_edges(q: float, buckets: Sequence[Bucket]) -> tuple[float, float]:
    """(lower edge, upper bound) of the bucket the q-quantile falls into; the lowest bucket's
    lower edge is 0 (or its bound when that is <= 0), as in `histogram_quantile`."""
    bounds, cumulative = clean_cumulative(buckets)
    if cumulative[-1] == 0:
        raise ValueError("the histogram has no observations")
    index = int(np.searchsorted(cumulative[:-1], q * cumulative[-1], side="left"))
    upper = float(bounds[index])
    lower = float(bounds[index - 1]) if index > 0 else min(0.0, upper)
    return lower, upper


def observations_above(buckets: Sequence[Bucket], threshold: float) -> float:
    """Observations certainly greater than `threshold`: those above the smallest bucket bound
    at or over it. When `threshold` is not a bound of this histogram the count errs low, which
    keeps a "canary is slower" test conservative."""
    bounds, cumulative = clean_cumulative(buckets)
    index = int(np.searchsorted(bounds, threshold, side="left"))
    if index >= len(bounds):
        return 0.0
    return float(cumulative[-1] - cumulative[index])


# --- distributions -----------------------------------------------------------------------------


def _count_vectors(expected: Sequence[float], actual: Sequence[float]) -> np.ndarray:
    if len(expected) != len(actual) or len(expected) == 0:
        raise ValueError(
            f"count vectors must have the same, non-zero length (got {len(expected)} and "
            f"{len(actual)})"
        )
    table = np.array([expected, actual], dtype=float)
    if not np.isfinite(table).all() or (table < 0).any():
        raise ValueError("counts must be finite and non-negative")
    if (table.sum(axis=1) == 0).any():
        raise ValueError("each count vector needs at least one observation")
    return table


def psi(
    expected: Sequence[float],
    actual: Sequence[float],
    pseudo_count: float = DEFAULT_PSI_PSEUDO_COUNT,
) -> float:
    """Population stability index of `actual` against `expected` (counts per bin).

    PSI = sum((a - e) * ln(a / e)) over bin shares, i.e. the symmetric Kullback-Leibler
    divergence. An empty bin would make it infinite, so every bin gets `pseudo_count` extra
    observations first (0.5: the Jeffreys prior). That keeps PSI finite and, unlike a fixed
    epsilon share, lets the correction fade as the counts grow. Bins empty on both sides add
    nothing when the two totals are equal.
    """
    if pseudo_count <= 0:
        raise ValueError("pseudo_count must be positive to keep PSI finite")
    table = _count_vectors(expected, actual) + pseudo_count
    shares = table / table.sum(axis=1, keepdims=True)
    expected_shares, actual_shares = shares
    divergence = special.rel_entr(actual_shares, expected_shares) + special.rel_entr(
        expected_shares, actual_shares
    )
    return float(divergence.sum())


def psi_sampling_bias(bins: int, expected_total: float, actual_total: float) -> float:
    """PSI two samples of one distribution show on average: about (k - 1)(1/n1 + 1/n2), since
    n_eff * PSI is close to Pearson's chi-square statistic with k - 1 degrees of freedom."""
    return max(bins - 1, 0) * (1 / expected_total + 1 / actual_total)


def homogeneity_p_value(expected: Sequence[float], actual: Sequence[float]) -> float:
    """p-value of Pearson's chi-square test that both count vectors come from one distribution.
    Bins empty on both sides carry no information and are dropped; with fewer than two bins
    left there is nothing to compare and the p-value is 1. Two bins (a binary classifier) get
    Yates' continuity correction, which errs towards keeping a good canary."""
    table = _count_vectors(expected, actual)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return _chi_square_p_value(table)


def _chi_square_p_value(table: np.ndarray) -> float:
    """Pearson's chi-square test of independence on a contingency table, with Yates'
    correction at one degree of freedom — scipy's `chi2_contingency`, without importing
    scipy.stats (see `_hypergeom_tail`)."""
    total = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    if (expected == 0).any():
        raise ValueError("a row or column sums to zero: the chi-square test needs counts in each")
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    difference = table - expected
    if dof == 1:
        difference = np.sign(difference) * np.maximum(np.abs(difference) - 0.5, 0.0)
    statistic = float((difference**2 / expected).sum())
    return float(special.chdtrc(dof, statistic))


def goodness_of_fit_p_value(
    reference_shares: Sequence[float],
    counts: Sequence[float],
    pseudo_count: float = DEFAULT_PSI_PSEUDO_COUNT,
) -> float:
    """p-value of Pearson's chi-square goodness-of-fit test of `counts` against a reference
    distribution known as shares (the bundle's profile), with k - 1 degrees of freedom.

    A bin the reference never saw would expect zero rows and make any row infinitely
    surprising; like `psi`, every bin's expectation gets `pseudo_count` rows first, so the
    statistic stays finite and the caller's PSI bound decides whether such rows matter."""
    table = _count_vectors(reference_shares, counts)
    shares, observed = table
    total = observed.sum()
    bins = len(shares)
    padded = shares / shares.sum() * total + pseudo_count
    expected = padded * total / padded.sum()
    if bins < 2:
        return 1.0
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return float(special.chdtrc(bins - 1, statistic))


def holm_significant(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm-Bonferroni: which of the hypotheses are rejected at family-wise error `alpha`."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected
