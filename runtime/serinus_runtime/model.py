"""The served model: a predictor (scikit-learn or ONNX), its signature, outputs and costs.

`describe_estimator` is shared with `serinus pack`: what a fitted object tells about itself.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serinus_runtime.bundle import Feature, Manifest, ReferenceProfile
from serinus_runtime.errors import ModelLoadError
from serinus_runtime.protocol import OUTPUT_PREDICT, OUTPUT_PROBA, datatype_of
from serinus_runtime.signature import Signature

# Rows of the warm-up batch used to measure how predict cost grows with rows.
WARMUP_BATCH_ROWS = 64


def configure_sklearn() -> None:
    """Skip sklearn's own finiteness scan: the signature already applied the NaN/inf policy.
    sklearn's config is per thread, so this also runs in the predict thread's initializer."""
    try:
        import sklearn

        sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    except Exception:  # an older sklearn without one of the options: keep its defaults
        pass


class SklearnPredictor:
    """A fitted scikit-learn estimator (or pipeline)."""

    platform = "sklearn"

    def __init__(self, est: Any) -> None:
        if not callable(getattr(est, "predict", None)):
            raise ModelLoadError(
                f"the loaded object ({type(est).__module__}.{type(est).__qualname__}) has no "
                "predict method: it is not a fitted model"
            )
        self.est = est
        self.has_proba = callable(getattr(est, "predict_proba", None)) and _is_classifier(est)
        self.as_frame: list[str] | None = None  # column names when the model needs a DataFrame

    def _input(self, x: np.ndarray) -> Any:
        if self.as_frame is None:
            return x
        import pandas as pd

        return pd.DataFrame(x, columns=self.as_frame)

    def run(self, x: np.ndarray, want_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        xi = self._input(x)
        y = np.asarray(self.est.predict(xi))
        proba = np.asarray(self.est.predict_proba(xi), dtype=np.float64) if want_proba else None
        return y, proba


class OnnxPredictor:
    """An onnxruntime session: first output = labels/values, a second output = probabilities."""

    platform = "onnxruntime"

    def __init__(self, session: Any) -> None:
        self.session = session
        inp = session.get_inputs()
        if len(inp) != 1:
            raise ModelLoadError(
                f"ONNX model has {len(inp)} inputs; serinus serves models with one input tensor"
            )
        self.input_name = inp[0].name
        self.input_type = inp[0].type
        shape = inp[0].shape
        self.n_features = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        self.dtype = {
            "tensor(float)": np.float32,
            "tensor(double)": np.float64,
            "tensor(int64)": np.int64,
            "tensor(string)": object,
        }.get(self.input_type)
        if self.dtype is None:
            raise ModelLoadError(f"ONNX input type {self.input_type} is not supported")
        outs = session.get_outputs()
        self.output_names = [o.name for o in outs]
        self.has_proba = len(outs) >= 2 and outs[1].type.startswith("tensor(")

    def run(self, x: np.ndarray, want_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        names = self.output_names[:2] if want_proba else self.output_names[:1]
        res = self.session.run(names, {self.input_name: x.astype(self.dtype, copy=False)})
        y = np.asarray(res[0])
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        proba = np.asarray(res[1], dtype=np.float64) if want_proba else None
        return y, proba


def _is_classifier(est: Any) -> bool:
    try:
        from sklearn.base import is_classifier

        return bool(is_classifier(est))
    except Exception:
        return hasattr(est, "classes_")


@dataclass
class EstimatorFacts:
    """What a fitted estimator says about itself (used when there is no bundle, and by pack)."""

    kind: str  # classification | regression
    classes: list[Any] | None
    n_features: int | None
    feature_names: list[str] | None
    allow_nan: bool
    has_proba: bool
    estimator: str
    text: bool = False


def describe_estimator(est: Any) -> EstimatorFacts:
    classifier = _is_classifier(est)
    classes = getattr(est, "classes_", None)
    n = getattr(est, "n_features_in_", None)
    names = getattr(est, "feature_names_in_", None)
    allow_nan = False
    text = False
    try:
        tags = est.__sklearn_tags__()
        allow_nan = bool(tags.input_tags.allow_nan)
        text = bool(tags.input_tags.string) and not tags.input_tags.two_d_array
    except Exception:
        pass
    if n is None and hasattr(est, "steps"):  # a Pipeline whose first step has no n_features_in_
        first = est.steps[0][1]
        text = text or hasattr(first, "vocabulary_") or type(first).__name__.endswith("Vectorizer")
    return EstimatorFacts(
        kind="classification" if classifier else "regression",
        classes=[_py(c) for c in classes] if classifier and classes is not None else None,
        n_features=int(n) if n is not None else None,
        feature_names=[str(v) for v in names] if names is not None else None,
        allow_nan=allow_nan,
        has_proba=classifier and callable(getattr(est, "predict_proba", None)),
        estimator=f"{type(est).__module__}.{type(est).__qualname__}",
        text=text,
    )


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


@dataclass
class ServedModel:
    """Everything the server needs about the loaded model, prepared once at load."""

    name: str
    version: str
    format: str
    sha256: str
    predictor: Any
    signature: Signature
    kind: str
    classes: np.ndarray | None
    has_proba: bool
    manifest: Manifest | None = None
    profile: ReferenceProfile | None = None
    source: str = ""
    # cost model from warm-up: seconds for one call of 1 row, and per extra row
    cost_call_s: float = 0.0
    cost_row_s: float = 0.0
    output_names: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        self.output_names = (OUTPUT_PREDICT, OUTPUT_PROBA) if self.has_proba else (OUTPUT_PREDICT,)

    @property
    def platform(self) -> str:
        return str(self.predictor.platform)

    def run(self, x: np.ndarray, want_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return self.predictor.run(x, want_proba)

    def estimate_s(self, rows: int) -> float:
        return self.cost_call_s + self.cost_row_s * max(rows - 1, 0)

    def observe_call(self, rows: int, seconds: float) -> None:
        """Correct the per-call estimate with a real call: it only goes down (to the fastest
        small call seen), so a start-up measurement inflated by a busy CPU heals itself."""
        if rows <= 4:
            self.cost_call_s = min(self.cost_call_s, seconds)

    def sample_rows(self, rows: int) -> np.ndarray:
        """Plausible input rows (profile medians, else zeros / "a") for warm-up and smoke tests."""
        sig = self.signature
        if sig.layout == "text":
            return np.array(["warm up"] * rows, dtype=object)
        row: list[Any] = []
        prof = {f.name: f for f in self.profile.features} if self.profile else {}
        for f in sig.features:
            p = prof.get(f.name)
            if f.dtype == "string":
                row.append(p.categories[0] if p and p.categories else "a")
            elif p is not None and p.edges:
                row.append(p.edges[len(p.edges) // 2])
            else:
                row.append(0.0)
        x = np.array([row] * rows, dtype=sig.dtype if sig.numeric else object)
        return x

    def warm_up(self) -> None:
        """Call the model as requests will (raises ModelLoadError), and measure its cost."""
        one = self.sample_rows(1)
        many = self.sample_rows(WARMUP_BATCH_ROWS)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                y, p = self.run(one, self.has_proba)
                first = time.perf_counter() - t0
                self._check_outputs(y, p, 1)
                # The best of many calls, within a small time budget: a busy CPU at start-up
                # must not make a fast model look slow (the estimate picks inline vs thread).
                fast = first < 0.05
                t1 = min(first, _best_of(lambda: self.run(one, False), 30, 0.3)) if fast else first
                tn = _best_of(lambda: self.run(many, False), 10 if fast else 1, 0.3)
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(
                f"the model failed its warm-up prediction on a sample row: {type(e).__name__}: {e}"
            ) from e
        self.cost_call_s = t1
        self.cost_row_s = max(tn - t1, 0.0) / (WARMUP_BATCH_ROWS - 1)

    def _check_outputs(self, y: np.ndarray, p: np.ndarray | None, rows: int) -> None:
        if y.shape[:1] != (rows,):
            raise ModelLoadError(f"predict returned shape {y.shape} for {rows} row(s)")
        if p is not None and (p.ndim != 2 or p.shape[0] != rows):
            raise ModelLoadError(f"predict_proba returned shape {p.shape} for {rows} row(s)")
        if self.kind == "regression" and y.dtype.kind not in "fiub":
            raise ModelLoadError(f"a regression model returned non-numeric predictions ({y.dtype})")

    def outputs_metadata(self) -> list[dict[str, Any]]:
        if self.kind == "classification" and self.classes is not None:
            dt = datatype_of(self.classes.dtype)
        else:
            dt = "FP64"
        outs: list[dict[str, Any]] = [{"name": OUTPUT_PREDICT, "datatype": dt, "shape": [-1]}]
        if self.has_proba and self.classes is not None:
            outs.append(
                {"name": OUTPUT_PROBA, "datatype": "FP64", "shape": [-1, len(self.classes)]}
            )
        elif self.has_proba:
            outs.append({"name": OUTPUT_PROBA, "datatype": "FP64", "shape": [-1, -1]})
        return outs


def _best_of(fn: Any, n: int, budget_s: float = float("inf")) -> float:
    best = float("inf")
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        if t - start > budget_s:
            break
    return best


def signature_for(
    facts: EstimatorFacts | None, manifest: Manifest | None, onnx: OnnxPredictor | None
) -> Signature:
    """The signature from the bundle when there is one, else from the model itself."""
    if manifest is not None:
        dtype = None
        if onnx is not None and onnx.dtype is not object:
            dtype = np.dtype(onnx.dtype)
        return Signature(
            manifest.features,
            layout=manifest.input,
            allow_nan=manifest.allow_nan,
            input_dtype=dtype,
        )
    if onnx is not None:
        if onnx.dtype is object:
            return Signature([Feature(name="text", dtype="string")], layout="text")
        if onnx.n_features is None:
            raise ModelLoadError(
                "the ONNX model's input has no fixed feature count; serve it as a bundle "
                "(serinus pack) so the signature is known"
            )
        dt = "float32" if onnx.dtype is np.float32 else "float64"
        return Signature(
            [Feature(name=f"x{i}", dtype=dt) for i in range(onnx.n_features)],  # type: ignore[arg-type]
            input_dtype=np.dtype(onnx.dtype),
        )
    assert facts is not None
    if facts.text:
        return Signature([Feature(name="text", dtype="string")], layout="text")
    if facts.n_features is None:
        raise ModelLoadError(
            f"cannot tell how many features {facts.estimator} takes (no n_features_in_); "
            "serve it as a bundle (serinus pack) so the signature is known"
        )
    names: Sequence[str] = facts.feature_names or [f"x{i}" for i in range(facts.n_features)]
    return Signature([Feature(name=n, dtype="float64") for n in names], allow_nan=facts.allow_nan)
