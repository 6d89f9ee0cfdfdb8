"""Estimators for tests, importable by the test process and by runtime subprocesses alike."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


class SlowClassifier:
    """Predicts 1 for every row, taking `delay` seconds per call (a long prediction). With
    `marker`, each call first creates that file, so a test can see a prediction has started."""

    def __init__(self, delay: float = 0.5, marker: str | None = None) -> None:
        self.delay = delay
        self.marker = marker
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = 2

    def predict(self, x: np.ndarray) -> np.ndarray:
        if getattr(self, "marker", None):
            Path(self.marker).touch()  # type: ignore[arg-type]
        time.sleep(self.delay)
        return np.ones(len(x), dtype=np.int64)


class Unpredictable:
    """Has no predict method: not a model."""

    n_features_in_ = 2
