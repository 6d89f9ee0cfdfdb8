"""An estimator for the metrics tests, importable by the test process and runtime subprocesses."""

from __future__ import annotations

import numpy as np

CLASSES = ("setosa", "versicolor", "virginica")


class PetalRule:
    """Iris classes from petal length alone (< 2.5 setosa, < 4.9 versicolor, else virginica).

    A negative sepal length makes it raise RuntimeError — a bug, not a bad input — so the
    runtime answers 500: the canary's errors in the metrics tests."""

    def __init__(self) -> None:
        self.classes_ = np.array(CLASSES)
        self.n_features_in_ = 4

    def fit(self, x: np.ndarray, y: np.ndarray) -> PetalRule:
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        if (x[:, 0] < 0).any():
            raise RuntimeError("simulated bug: negative sepal length")
        return self.classes_[np.digitize(x[:, 2], [2.5, 4.9])]
