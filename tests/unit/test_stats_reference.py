"""The judge's tests computed without scipy.stats (whose import costs the operator ~70 MiB)
agree with scipy.stats itself."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from serinus.core.stats import homogeneity_p_value, worse_proportion_p_value


@st.composite
def two_proportions(draw: st.DrawFn) -> tuple[int, int, int, int]:
    canary_total = draw(st.integers(1, 5000))
    stable_total = draw(st.integers(1, 50000))
    canary_bad = draw(st.integers(0, canary_total))
    stable_bad = draw(st.integers(0, stable_total))
    return canary_bad, canary_total, stable_bad, stable_total


@settings(max_examples=400, deadline=None)
@given(two_proportions())
def test_fisher_one_sided_matches_scipy(counts):
    canary_bad, canary_total, stable_bad, stable_total = counts
    table = [[canary_bad, canary_total - canary_bad], [stable_bad, stable_total - stable_bad]]
    expected = stats.fisher_exact(table, alternative="greater").pvalue
    got = worse_proportion_p_value(*counts)
    assert np.isclose(got, expected, rtol=1e-8, atol=1e-300)


_count = st.floats(0, 500).map(lambda value: round(value, 3))
"""Window counts: increases, fractional when Prometheus extrapolates, never denormal."""


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_count, _count), min_size=2, max_size=15).filter(
        lambda rows: sum(a for a, _ in rows) > 0 and sum(b for _, b in rows) > 0
    )
)
def test_chi_square_homogeneity_matches_scipy(pairs):
    expected_counts = [a for a, _ in pairs]
    actual_counts = [b for _, b in pairs]
    table = np.array([expected_counts, actual_counts])
    table = table[:, table.sum(axis=0) > 0]
    reference = 1.0 if table.shape[1] < 2 else stats.chi2_contingency(table).pvalue
    assert np.isclose(homogeneity_p_value(expected_counts, actual_counts), reference, atol=1e-12)


def test_the_operator_does_not_import_scipy_stats():
    code = "import sys, serinus.kube.handlers; print('scipy.stats' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
