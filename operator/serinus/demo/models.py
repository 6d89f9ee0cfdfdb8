"""Estimator classes of the demo's model versions that scikit-learn does not have.

They live in the `serinus` package so that a runtime started from the same environment (local
mode runs `python -m serinus_runtime` from this venv) can import them when it loads a bundle;
skops refuses them unless the runtime lists them in --trusted-types (spec.model.trustedTypes),
which is why the demo's manifests carry `DemoModel.trusted_types`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

MAX_ASPECT = 0.6
"""Where v4's petal-shape table ends. Every flower in the iris data set has a petal at most 0.48
times as wide as it is long, so the table looks generous on training and hold-out data."""


class PetalAspectClassifier(ClassifierMixin, BaseEstimator):
    """v4 of the demo: `estimator`'s predictions, behind a petal-shape lookup with a bug.

    The story: v4 adds a petal aspect ratio (petal width / petal length) and looks it up in a
    table that only goes up to `max_aspect`. Its author sized the table on the iris data, where
    no petal is even half as wide as long, and wrote no branch for wider shapes: they raise
    RuntimeError. The demo's traffic (`serinus.local.load.rows_from_profile`) draws each feature
    on its own, so about a fifth of its rows pair a short petal with a wide one and fail, while
    the training sample, the hold-out set and any smoke request made of real flowers pass.
    That is the point of the demo: a bug only production-like traffic finds, which the
    error-rate gate catches (the runtime answers 500 to RuntimeError, a bug, but 400 to
    ValueError, a bad input: see `serinus_runtime.batcher`).

    The failure depends on the rows only, never on chance: a call fails when any of its rows is
    past the table, and a call without such rows gets exactly `estimator`'s answers.
    """

    def __init__(
        self,
        estimator: Any,
        max_aspect: float = MAX_ASPECT,
        width_column: int = 3,
        length_column: int = 2,
    ) -> None:
        self.estimator = estimator
        self.max_aspect = max_aspect
        self.width_column = width_column
        self.length_column = length_column

    def fit(self, x: Any, y: Any) -> PetalAspectClassifier:
        """Fit a clone of `estimator`; the shape table is fixed, so fitting cannot hide the bug."""
        self.estimator_ = clone(self.estimator).fit(x, y)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = int(np.asarray(x).shape[1])
        return self

    def predict(self, x: Any) -> np.ndarray:
        rows = self._rows(x)
        return np.asarray(self.estimator_.predict(rows))

    def predict_proba(self, x: Any) -> np.ndarray:
        rows = self._rows(x)
        return np.asarray(self.estimator_.predict_proba(rows))

    def past_table(self, x: Any) -> np.ndarray:
        """Which rows the shape table has no entry for (True: predicting on them raises)."""
        return self._past(self._aspect(self._shaped(x)))

    def _shaped(self, x: Any) -> np.ndarray:
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features_in_:
            # A malformed input is the client's to fix (ValueError: HTTP 400), not the bug.
            raise ValueError(
                f"expected rows of {self.n_features_in_} features, got shape {rows.shape}"
            )
        return rows

    def _aspect(self, rows: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(rows[:, self.width_column] / rows[:, self.length_column])

    def _past(self, aspect: np.ndarray) -> np.ndarray:
        # NaN (0 / 0) is past the table too: `not <=` catches it, `>` would not.
        return np.asarray(~(aspect <= self.max_aspect))

    def _rows(self, x: Any) -> np.ndarray:
        rows = self._shaped(x)
        aspect = self._aspect(rows)
        bad = np.flatnonzero(self._past(aspect))
        if bad.size:
            raise RuntimeError(
                f"petal aspect ratio {aspect[bad[0]]:.3g} (width / length) is past the end of "
                f"the shape table (max {self.max_aspect:g}); {bad.size} of {len(rows)} row(s) "
                "hit it"
            )
        return rows
