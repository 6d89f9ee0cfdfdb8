"""The four iris bundles `serinus demo` rolls out, built from code so the demo is reproducible.

    build_demo_bundles(Path("demo-bundles")) -> DemoBundles

- v1, stable: examples/make_bundles.py's iris model (StandardScaler + LogisticRegression on the
  same fixed 70 % split), so the demo starts from the example everyone has seen.
- v2, good: the same recipe retrained on 80 % of the data (stratified). Its class mix on the
  demo traffic is v1's within a PSI of about 0.001: every gate passes and it is promoted.
- v3, skewed: re-weighted for virginica recall (class_weight 10x, stronger regularisation). It
  never errs and is as fast as v1, but calls most versicolor virginica: only the
  prediction-drift gate (PSI about 0.5 against the default max 0.1) can stop it.
- v4, flaky: v1 behind `PetalAspectClassifier`'s shape table, which raises RuntimeError for
  about a fifth of the demo traffic (HTTP 500) and predicts exactly like v1 otherwise: the
  error-rate gate (default max 5 %) stops it.

The effects are sized for windows of a few hundred requests: at the judge's minimum of 50
canary requests v3's drift and v4's errors are still far past the default bounds and
significant. The numbers above are measured on `serinus.local.load.rows_from_profile` traffic,
which draws each feature independently; tests/local/test_demo_models.py checks them.

Every model is fitted with fixed seeds on scikit-learn's bundled iris data (no download), so two
builds give the same models: the same predictions and probabilities. Not the same bytes: skops
names the arrays in its zip file after object ids and stamps the entries with the time, so each
build has new digests; take them from the returned `DemoModel.sha256`. Building all four takes
about 0.3 s once scikit-learn is imported (the import itself takes longer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MODEL_NAME = "iris"
FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
"""examples/make_bundles.py's `_names` of the iris columns."""

V1_SPLIT_SEED, V1_TEST_SIZE = 0, 0.3
V2_SPLIT_SEED, V2_TEST_SIZE = 7, 0.2
V3_C, V3_VIRGINICA_WEIGHT = 0.1, 10.0


class DemoModel(BaseModel):
    """One version of the demo's model: what a ModelDeployment manifest needs, and why."""

    model_config = ConfigDict(frozen=True)

    version: str = Field(description="Model version in the bundle: 1 to 4.")
    bundle: Path = Field(description="Bundle directory (spec.model.uri).")
    sha256: str = Field(description="Digest of the model file (spec.model.sha256).")
    trusted_types: list[str] = Field(
        description="Types the runtime must trust to load it (spec.model.trustedTypes); "
        "empty for plain scikit-learn models."
    )
    description: str = Field(description="One line for the demo's narration.")
    holdout_accuracy: float = Field(description="Accuracy on the rows its training left out.")
    caught_by: str | None = Field(
        description="The built-in analysis metric that should roll it back (error-rate, "
        "prediction-drift), or None for a version that should pass."
    )


class DemoBundles(BaseModel):
    """The four versions, in rollout order."""

    model_config = ConfigDict(frozen=True)

    v1: DemoModel
    v2: DemoModel
    v3: DemoModel
    v4: DemoModel

    @property
    def versions(self) -> tuple[DemoModel, DemoModel, DemoModel, DemoModel]:
        return (self.v1, self.v2, self.v3, self.v4)


def build_demo_bundles(out: Path) -> DemoBundles:
    """Fit the four versions and pack them as `out`/iris-v1 .. iris-v4 (overwriting those)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from serinus.demo.models import MAX_ASPECT, PetalAspectClassifier

    iris = load_iris()
    x = np.asarray(iris.data, dtype=np.float64)
    y = iris.target_names[iris.target]  # string classes: setosa, versicolor, virginica

    v1_split = _split(x, y, V1_TEST_SIZE, V1_SPLIT_SEED, stratify=False)
    v2_split = _split(x, y, V2_TEST_SIZE, V2_SPLIT_SEED, stratify=True)
    v1 = _fit(_recipe(), v1_split)
    v2 = _fit(_recipe(), v2_split)
    skewed = LogisticRegression(
        C=V3_C, class_weight={"virginica": V3_VIRGINICA_WEIGHT}, max_iter=1000
    )
    v3 = _fit(_recipe(skewed), v1_split)
    v4 = _fit(PetalAspectClassifier(_recipe(), max_aspect=MAX_ASPECT), v1_split)

    return DemoBundles(
        v1=_pack(
            v1, v1_split, out, "1", caught_by=None,
            description=(
                f"LogisticRegression on standardised features, trained on {1 - V1_TEST_SIZE:.0%} "
                f"of iris (hold-out accuracy {v1.accuracy:.3f} on {len(v1_split[3])} rows): "
                "the stable version"
            ),
        ),
        v2=_pack(
            v2, v2_split, out, "2", caught_by=None,
            description=(
                f"v1's recipe retrained on {1 - V2_TEST_SIZE:.0%} of iris, stratified "
                f"(hold-out accuracy {v2.accuracy:.3f} on {len(v2_split[3])} rows); the same "
                "class mix as v1: should be promoted"
            ),
        ),
        v3=_pack(
            v3, v1_split, out, "3", caught_by="prediction-drift",
            description=(
                f"re-weighted for virginica recall (class_weight {V3_VIRGINICA_WEIGHT:g}x, "
                f"C={V3_C:g}): calls most versicolor virginica (hold-out accuracy "
                f"{v3.accuracy:.3f}); no errors, v1's latency: prediction-drift rolls it back"
            ),
        ),
        v4=_pack(
            v4, v1_split, out, "4", caught_by="error-rate",
            description=(
                f"v1 behind a petal-shape table that ends at aspect {MAX_ASPECT:g}: wider "
                "petals raise RuntimeError (HTTP 500, about 1 request in 5 of the demo "
                "traffic), other rows get v1's answer: error-rate rolls it back"
            ),
        ),
    )  # fmt: skip


_Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""x_train, y_train, x_test, y_test."""


@dataclass(frozen=True)
class _Fitted:
    """A fitted model and its accuracy on the rows its split held out."""

    model: Any
    accuracy: float


def _split(x: np.ndarray, y: np.ndarray, test_size: float, seed: int, *, stratify: bool) -> _Split:
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y if stratify else None
    )
    return x_train, y_train, x_test, y_test


def _recipe(classifier: Any = None) -> Any:
    """examples/make_bundles.py's iris pipeline, optionally with another final classifier."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), classifier or LogisticRegression(max_iter=1000))


def _fit(model: Any, split: _Split) -> _Fitted:
    x_train, y_train, x_test, y_test = split
    model.fit(x_train, y_train)
    accuracy = float(np.mean(np.asarray(model.predict(x_test)) == y_test))
    return _Fitted(model, accuracy)


def _pack(
    fitted: _Fitted,
    split: _Split,
    out: Path,
    version: str,
    *,
    description: str,
    caught_by: str | None,
) -> DemoModel:
    """Pack with the model's own training rows as the reference sample, as a user would."""
    from serinus_runtime.pack import pack

    bundle = out / f"{MODEL_NAME}-v{version}"
    x_train, y_train, _, _ = split
    manifest = pack(
        fitted.model,
        x_train,
        bundle,
        name=MODEL_NAME,
        version=version,
        y=y_train,
        feature_names=FEATURES,
        overwrite=True,
    )
    return DemoModel(
        version=version,
        bundle=bundle,
        sha256=manifest.sha256,
        trusted_types=list(manifest.trusted_types),
        description=description,
        holdout_accuracy=fitted.accuracy,
        caught_by=caught_by,
    )
