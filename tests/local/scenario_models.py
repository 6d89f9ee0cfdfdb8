"""A model for the local-mode scenarios that answers correctly but slowly.

It must be importable by the runtime processes that load it: the scenario sets the canary's
`spec.runtime.env` PYTHONPATH to this directory and lists `SlowClassifier` in
`spec.model.trustedTypes` (skops refuses unlisted classes), as a user shipping a custom
estimator class would.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

HERE = Path(__file__).resolve().parent
SLOW_DELAY_S = 0.04
"""Added to every predict call: a few times a local iris request (~1-5 ms end to end), and in
another latency bucket than anything the stable version answers in."""
FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """`estimator`'s predictions after sleeping `delay_s` per predict call: the same answers as
    the stable version, only later (a slow feature lookup, a cold cache...)."""

    def __init__(self, estimator: Any, delay_s: float = SLOW_DELAY_S) -> None:
        self.estimator = estimator
        self.delay_s = delay_s

    def fit(self, x: Any, y: Any) -> SlowClassifier:
        self.estimator_ = clone(self.estimator).fit(x, y)
        self.classes_ = self.estimator_.classes_
        self.n_features_in_ = int(np.asarray(x).shape[1])
        return self

    def predict(self, x: Any) -> np.ndarray:
        time.sleep(self.delay_s)
        return np.asarray(self.estimator_.predict(x))

    def predict_proba(self, x: Any) -> np.ndarray:
        return np.asarray(self.estimator_.predict_proba(x))


def build_slow_bundle(out: Path, version: str = "5") -> tuple[Path, str, list[str]]:
    """Pack a SlowClassifier around the demo's v1 recipe (StandardScaler + LogisticRegression on
    the same 70 % split, so its predictions match v1's). Returns (bundle, sha256, trusted
    types the runtime must be given)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from serinus_runtime.pack import pack

    iris = load_iris()
    x = np.asarray(iris.data, dtype=np.float64)
    y = iris.target_names[iris.target]
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.3, random_state=0)
    recipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model = SlowClassifier(recipe).fit(x_train, y_train)
    bundle = out / f"iris-slow-v{version}"
    manifest = pack(
        model, x_train, bundle, name="iris", version=version, y=y_train,
        feature_names=FEATURES, overwrite=True,
    )  # fmt: skip
    return bundle, manifest.sha256, list(manifest.trusted_types)
