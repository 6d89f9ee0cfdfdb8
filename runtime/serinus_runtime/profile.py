"""Reference-profile statistics: quantile bin edges and frequencies, and the runtime's binning.

A numeric feature's bins are defined by its edges e[0] < ... < e[k]: bin i is [e[i], e[i+1]),
except that bin 0 also takes everything below e[1] and bin k-1 everything at or above e[k-1]
(so live values outside the training range land in the end bins, where drift shows). Only the
interior edges e[1..k-1] matter for binning; e[0] and e[k] record the training min and max.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_BINS = 10
MAX_CATEGORIES = 20


def numeric_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Quantile-based edges for one numeric column (NaN ignored); at least two edges."""
    col = np.asarray(values, dtype=np.float64)
    col = col[np.isfinite(col)]
    if col.size == 0:
        return [0.0, 1.0]
    uniq = np.unique(col)
    if uniq.size <= bins:
        # Low-cardinality feature: one bin per distinct value, split at the midpoints.
        if uniq.size == 1:
            return [float(uniq[0]), float(uniq[0])]
        mids = (uniq[:-1] + uniq[1:]) / 2.0
        return [float(uniq[0]), *map(float, mids), float(uniq[-1])]
    qs = np.quantile(col, np.linspace(0.0, 1.0, bins + 1))
    interior = np.unique(qs[1:-1])
    interior = interior[(interior > uniq[0]) & (interior <= uniq[-1])]
    return [float(uniq[0]), *map(float, interior), float(uniq[-1])]


def numeric_bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index of each value for the given edges (see module docstring); NaN → -1."""
    interior = np.asarray(edges[1:-1], dtype=np.float64)
    idx = np.searchsorted(interior, values, side="right")
    nbins = max(len(edges) - 1, 1)
    idx = np.minimum(idx, nbins - 1)
    if values.dtype.kind == "f":
        idx = np.where(np.isnan(values), -1, idx)
    return idx


def numeric_frequencies(values: np.ndarray, edges: Sequence[float]) -> tuple[list[float], float]:
    """(frequency per bin, fraction missing) of a numeric column for the given edges."""
    col = np.asarray(values, dtype=np.float64)
    nbins = max(len(edges) - 1, 1)
    idx = numeric_bin_index(col, edges)
    present = idx[idx >= 0]
    n = max(col.size, 1)
    counts = np.bincount(present, minlength=nbins)[:nbins]
    return [float(c) / n for c in counts], float((idx < 0).sum()) / n


def categories_of(values: Sequence[object], limit: int = MAX_CATEGORIES) -> list[str]:
    """The most frequent categories (as strings), up to `limit`; the rest count as "other"."""
    uniq, counts = np.unique(np.asarray([str(v) for v in values], dtype=object), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [str(uniq[i]) for i in order[:limit]]


def categorical_frequencies(values: Sequence[object], categories: Sequence[str]) -> list[float]:
    """Frequency of each category, then of "other" (len(categories) + 1 numbers)."""
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 1)
    other = len(categories)
    for v in values:
        counts[index.get(str(v), other)] += 1
    n = max(len(values), 1)
    return [float(c) / n for c in counts]


def class_frequencies(predictions: np.ndarray, classes: Sequence[object]) -> list[float]:
    """Frequency of each class among predictions, in `classes` order."""
    index = {str(c): i for i, c in enumerate(classes)}
    counts = np.zeros(len(classes))
    for p in predictions.tolist():
        i = index.get(str(p))
        if i is not None:
            counts[i] += 1
    n = max(len(predictions), 1)
    return [float(c) / n for c in counts]
