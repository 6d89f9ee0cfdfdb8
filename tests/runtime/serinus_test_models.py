"""Estimators for tests, importable by the test process and by runtime subprocesses alike."""

from __future__ import annotations

import time

import numpy as np


class SlowClassifier:
    """Predicts 1 for every row, taking `delay` seconds per call (a long prediction)."""

    def __init__(self, delay: float = 0.5) -> None:
        self.delay = delay
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = 2

    def predict(self, x: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return np.ones(len(x), dtype=np.int64)


class Unpredictable:
    """Has no predict method: not a model."""

    n_features_in_ = 2
