"""`serinus pack`: fitted estimator (or model file) + a training sample → a bundle directory.

    serinus pack model.joblib --trust --sample train.csv --target label \\
        --name churn --version 3 --out bundles/churn-3

Writes model.skops (or .onnx / .joblib), serinus.json and profile.json (see serinus_runtime.bundle).
`pack()` is the Python API; `pack_main(argv)` the command line, wired into the `serinus` CLI.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from serinus_runtime import __version__
from serinus_runtime import profile as prof
from serinus_runtime.bundle import (
    MANIFEST_FILE,
    PROFILE_FILE,
    Feature,
    FeatureProfile,
    Manifest,
    PredictionProfile,
    ReferenceProfile,
    is_valid_name,
    write_json,
)
from serinus_runtime.errors import ModelLoadError, PackError
from serinus_runtime.formats import (
    FILE_NAMES,
    Format,
    deserialize,
    format_from_name,
    normalize_format,
    serialize,
    sha256_hex,
    untrusted_types,
)
from serinus_runtime.model import OnnxPredictor, describe_estimator

MAX_SAMPLE_ROWS = 100_000


def read_csv(
    path: str | Path, target: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str], list[str]]:
    """(X, y or None, feature names, feature dtypes) from a CSV file with a header row.

    Columns whose every non-empty value is a number are numeric (float64; empty = NaN), the
    others are strings (dtype "string").
    """
    p = Path(path)
    try:
        with p.open(newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise PackError(f"cannot read sample {p}: {e.strerror or e}") from e
    if len(rows) < 2:
        raise PackError(f"sample {p} needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    data = [r for r in rows[1 : MAX_SAMPLE_ROWS + 1] if r]
    width = len(header)
    for i, r in enumerate(data):
        if len(r) != width:
            raise PackError(f"{p}: line {i + 2} has {len(r)} fields, the header has {width}")
    cols = list(zip(*data, strict=True))
    y = None
    if target is not None:
        if target not in header:
            raise PackError(f"target column {target!r} not in {p}; columns: {', '.join(header)}")
        t = header.index(target)
        y = _label_column(cols[t])
        cols = cols[:t] + cols[t + 1 :]
        header = header[:t] + header[t + 1 :]
    parsed: list[np.ndarray] = []
    dtypes: list[str] = []
    for c in cols:
        num = _numeric_column(c)
        if num is not None:
            parsed.append(num)
            dtypes.append("float64")
        else:
            parsed.append(np.array([v if v != "" else None for v in c], dtype=object))
            dtypes.append("string")
    if all(d == "float64" for d in dtypes):
        x = np.column_stack(parsed).astype(np.float64)
    else:
        x = np.empty((len(data), len(parsed)), dtype=object)
        for j, c in enumerate(parsed):
            x[:, j] = c
    return x, y, header, dtypes


def _numeric_column(values: Sequence[str]) -> np.ndarray | None:
    out = np.empty(len(values))
    for i, v in enumerate(values):
        v = v.strip()
        if v == "":
            out[i] = math.nan
            continue
        try:
            out[i] = float(v)
        except ValueError:
            return None
    return out


def _label_column(values: Sequence[str]) -> np.ndarray:
    try:
        return np.array([int(v) for v in values])
    except ValueError:
        pass
    try:
        return np.array([float(v) for v in values])
    except ValueError:
        return np.array(list(values), dtype=object)


def _load_model_file(
    path: Path, fmt: Format | None, trust: bool, trusted_types: Sequence[str]
) -> tuple[Any, Format, bytes]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PackError(f"cannot read model file {path}: {e.strerror or e}") from e
    fmt = fmt or format_from_name(path.name)
    if fmt is None:
        raise PackError(
            f"cannot tell the format of {path.name}: pass --model-format skops|onnx|joblib"
        )
    obj = deserialize(
        data, fmt, source=str(path), sha256=sha256_hex(data) if trust else None, trust=trust,
        trusted_types=trusted_types,
    )  # fmt: skip
    return obj, fmt, data


def pack(
    model: Any,
    sample: str | Path | np.ndarray | Any,
    out_dir: str | Path,
    *,
    name: str,
    version: str,
    format: str = "skops",
    target: str | None = None,
    y: Sequence[Any] | np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
    model_format: str | None = None,
    trust: bool = False,
    trusted_types: Sequence[str] = (),
    bins: int = prof.DEFAULT_BINS,
    overwrite: bool = False,
) -> Manifest:
    """Build a bundle in `out_dir` and return its manifest.

    model: a fitted estimator, or a path to a model file (.skops/.onnx/.joblib; joblib/pickle
      files need `trust=True`, skops files may need `trusted_types`).
    sample: training rows — a CSV path (header row; `target` names the label column) or an array
      (then `y` gives the labels, optional). It defines the reference profile; with labels it
      also gives the training metrics.
    format: the bundle's model format, skops (default), onnx (needs serinus[onnx]) or joblib.
    """
    if not is_valid_name(name):
        raise PackError(
            f"name {name!r} must be lower-case letters, digits, '.', '_' or '-' (max 63), "
            "starting and ending with a letter or digit"
        )
    out_fmt = normalize_format(format)
    assert out_fmt is not None
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise PackError(f"{out} exists and is not empty; choose another --out or pass --force")

    # ---------------------------------------------------------------- model
    onnx_bytes: bytes | None = None
    if isinstance(model, (str, Path)):
        est, in_fmt, raw = _load_model_file(
            Path(model), normalize_format(model_format), trust, trusted_types
        )
        if in_fmt == "onnx":
            if out_fmt != "onnx":
                raise PackError("an ONNX file can only be packed as format onnx")
            onnx_bytes = raw
    else:
        est = model
    onnx_pred = OnnxPredictor(est) if onnx_bytes is not None else None
    if onnx_pred is None and not callable(getattr(est, "predict", None)):
        raise PackError(f"{type(est).__name__} has no predict method: not a fitted model")

    # ---------------------------------------------------------------- sample
    labels: np.ndarray | None = None
    if isinstance(sample, (str, Path)):
        x, labels, names, dtypes = read_csv(sample, target)
    else:
        x = np.asarray(sample)
        if x.ndim == 1 and x.dtype.kind in "OUS":
            x = x.astype(object)
        elif x.ndim != 2:
            raise PackError(f"sample must be 2-D (rows x features), got shape {x.shape}")
        names = []
        if x.dtype.kind == "O" and x.ndim == 2:
            dtypes = [_object_column_dtype(x[:, j]) for j in range(x.shape[1])]
        else:
            dtypes = [_dtype_name(x.dtype)] * (x.shape[1] if x.ndim == 2 else 1)
    if y is not None:
        labels = np.asarray(y)
    if x.shape[0] == 0:
        raise PackError("the sample has no rows")

    facts = describe_estimator(est) if onnx_pred is None else None
    text = bool(facts and facts.text) or x.ndim == 1
    if text:
        if x.ndim == 2:
            if x.shape[1] != 1:
                raise PackError("a text model's sample needs exactly one (string) column")
            x = x[:, 0]
        x = x.astype(object)
        names = list(feature_names or names or ["text"])[:1]
        dtypes = ["string"]
    else:
        width = x.shape[1]
        if facts is not None and facts.n_features is not None and facts.n_features != width:
            raise PackError(f"the model takes {facts.n_features} features, the sample has {width}")
        if feature_names is not None:
            names = list(feature_names)
        elif facts is not None and facts.feature_names:
            names = facts.feature_names
        if not names:
            names = [f"x{i}" for i in range(width)]
        if len(names) != width:
            raise PackError(f"{len(names)} feature names for {width} sample columns")
    features = [Feature(name=n, dtype=d) for n, d in zip(names, dtypes, strict=True)]  # type: ignore[arg-type]

    # ---------------------------------------------------------------- predictions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if onnx_pred is not None:
                pred, _ = onnx_pred.run(x, False)
                has_proba = onnx_pred.has_proba
                kind = "classification" if has_proba else "regression"
                classes = sorted(set(pred.tolist())) if kind == "classification" else None
            else:
                assert facts is not None
                pred = np.asarray(est.predict(x))
                kind, classes, has_proba = facts.kind, facts.classes, facts.has_proba
            proba = est.predict_proba(x) if has_proba and onnx_pred is None else None
        except Exception as e:
            raise PackError(
                f"the model cannot predict on the sample: {type(e).__name__}: {e}"
            ) from e

    profile = ReferenceProfile(
        rows=int(x.shape[0]),
        features=[] if text else _feature_profiles(x, features, bins),
        predictions=_prediction_profile(pred, kind, classes, bins),
    )
    metrics = _metrics(kind, labels, pred, proba, classes) if labels is not None else {}

    # ---------------------------------------------------------------- serialise + verify
    trusted: list[str] = []
    if onnx_bytes is not None:
        data = onnx_bytes
    else:
        try:
            data = serialize(est, out_fmt, sample=x)
        except ModelLoadError as e:
            raise PackError(str(e)) from e
        if out_fmt == "skops":
            trusted = untrusted_types(data, "packed model")
        check = deserialize(
            data,
            out_fmt,
            source="packed model",
            sha256=sha256_hex(data),
            trust=True,
            trusted_types=trusted,
        )
        _verify_round_trip(est, check, out_fmt, x[:200])

    manifest = Manifest(
        name=name,
        version=version,
        format=out_fmt,
        model_file=FILE_NAMES[out_fmt],
        sha256=sha256_hex(data),
        profile_file=PROFILE_FILE,
        output_kind=kind,  # type: ignore[arg-type]
        classes=classes,
        has_predict_proba=has_proba,
        input="text" if text else "table",
        features=features,
        allow_nan=bool(facts.allow_nan) if facts else False,
        estimator=facts.estimator if facts else "onnx",
        training_metrics=metrics,
        trusted_types=trusted,
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        serinus_version=__version__,
        sklearn_version=_sklearn_version(),
    )
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.name.startswith("model.") and old.name != manifest.model_file:
            old.unlink()
    (out / manifest.model_file).write_bytes(data)
    write_json(out / PROFILE_FILE, profile)
    write_json(out / MANIFEST_FILE, manifest)
    return manifest


def _dtype_name(d: np.dtype) -> str:
    if d.kind == "f":
        return "float32" if d.itemsize == 4 else "float64"
    if d.kind in "iu":
        return "int32" if d.itemsize <= 4 else "int64"
    if d.kind == "b":
        return "bool"
    return "string"


def _object_column_dtype(col: np.ndarray) -> str:
    """A column of an object array is numeric when every present value is a number."""
    present = [v for v in col.tolist() if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float64"
    return "string"


def _feature_profiles(x: np.ndarray, features: list[Feature], bins: int) -> list[FeatureProfile]:
    out = []
    for j, f in enumerate(features):
        col = x[:, j]
        if f.dtype == "string":
            present = [v for v in col.tolist() if v is not None]
            cats = prof.categories_of(present) if present else []
            out.append(FeatureProfile(
                name=f.name, kind="categorical", categories=cats,
                frequencies=prof.categorical_frequencies(present, cats),
                missing=1.0 - len(present) / max(len(col), 1),
            ))  # fmt: skip
        else:
            c = col.astype(np.float64)
            edges = prof.numeric_edges(c, bins)
            freqs, missing = prof.numeric_frequencies(c, edges)
            out.append(FeatureProfile(
                name=f.name, kind="numeric", edges=edges, frequencies=freqs, missing=missing
            ))  # fmt: skip
    return out


def _prediction_profile(
    pred: np.ndarray, kind: str, classes: list[Any] | None, bins: int
) -> PredictionProfile:
    if kind == "classification" and classes is not None:
        return PredictionProfile(
            kind="classes", classes=classes, frequencies=prof.class_frequencies(pred, classes)
        )
    vals = pred.astype(np.float64).ravel()
    edges = prof.numeric_edges(vals, bins)
    freqs, _ = prof.numeric_frequencies(vals, edges)
    return PredictionProfile(kind="values", edges=edges, frequencies=freqs)


def _metrics(
    kind: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, classes: list[Any] | None
) -> dict[str, float]:
    from sklearn import metrics as skm

    if kind == "classification":
        yt = y.astype(pred.dtype) if pred.dtype.kind != "O" else y.astype(str)
        yp = pred if pred.dtype.kind != "O" else pred.astype(str)
        out = {
            "accuracy": float(skm.accuracy_score(yt, yp)),
            "f1_macro": float(skm.f1_score(yt, yp, average="macro")),
        }
        if proba is not None and classes is not None and len(set(yt.tolist())) > 1:
            try:
                if proba.shape[1] == 2:
                    out["roc_auc"] = float(skm.roc_auc_score(yt == classes[1], proba[:, 1]))
                else:
                    out["roc_auc_ovr"] = float(
                        skm.roc_auc_score(yt, proba, multi_class="ovr", labels=classes)
                    )
            except ValueError:
                pass
        return out
    yt = y.astype(np.float64)
    yp = pred.astype(np.float64)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(yt, yp))),
        "mae": float(skm.mean_absolute_error(yt, yp)),
        "r2": float(skm.r2_score(yt, yp)),
    }


def _verify_round_trip(original: Any, loaded: Any, fmt: Format, x: np.ndarray) -> None:
    """The written file must predict what the fitted object predicts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = np.asarray(original.predict(x))
        if fmt == "onnx":
            b, _ = OnnxPredictor(loaded).run(x, False)
            agree = (
                float(np.mean(a.astype(str) == b.astype(str)))
                if a.dtype.kind in "OUSbi"
                else (
                    float(
                        np.mean(
                            np.isclose(
                                a.astype(np.float64), b.astype(np.float64), rtol=1e-3, atol=1e-4
                            )
                        )
                    )
                )
            )
            if agree < 0.99:
                raise PackError(
                    f"the ONNX conversion agrees with the model on only {agree:.1%} of the sample"
                )
            return
        b = np.asarray(loaded.predict(x))
    if a.shape != b.shape or not (np.array_equal(a, b) or np.allclose(a, b, equal_nan=True)):
        raise PackError(f"the {fmt} file does not reproduce the model's predictions on the sample")


def _sklearn_version() -> str:
    try:
        import sklearn

        return str(sklearn.__version__)
    except ImportError:
        return ""


def build_parser(prog: str = "serinus pack") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Build a Serinus model bundle: model file, serinus.json, reference profile.",
    )
    p.add_argument("model", help="fitted model file: .skops, .joblib/.pkl (needs --trust) or .onnx")
    p.add_argument(
        "--sample",
        required=True,
        help="training sample, CSV with a header row (the reference for drift)",
    )
    p.add_argument("--target", help="label column in the sample (gives training metrics)")
    p.add_argument("--name", required=True, help="model name (lower-case, used in URLs)")
    p.add_argument("--version", required=True, help="model version, e.g. 3 or 2024-06-01")
    p.add_argument("--out", "-o", required=True, help="bundle directory to write")
    p.add_argument(
        "--format",
        default="skops",
        choices=["skops", "onnx", "joblib"],
        help="model format inside the bundle (default skops)",
    )
    p.add_argument(
        "--model-format",
        choices=["skops", "onnx", "joblib", "pickle"],
        help="format of the input file when its extension does not tell",
    )
    p.add_argument(
        "--trust",
        action="store_true",
        help="allow reading a joblib/pickle input file (it can run code)",
    )
    p.add_argument(
        "--trusted-types",
        nargs="*",
        default=[],
        metavar="TYPE",
        help="extra types allowed when reading a skops input file",
    )
    p.add_argument(
        "--feature-names",
        help="comma-separated feature names (default: from the model or the sample header)",
    )
    p.add_argument("--bins", type=int, default=prof.DEFAULT_BINS, help="profile bins per feature")
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out directory")
    return p  # fmt: skip


def pack_main(argv: Sequence[str] | None = None, prog: str = "serinus pack") -> int:
    """`serinus pack ...` command line; returns the exit code (0 ok, 2 error)."""
    try:
        a = build_parser(prog).parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed by argparse
        return int(e.code or 0)
    try:
        m = pack(
            a.model, a.sample, a.out, name=a.name, version=a.version, format=a.format,
            target=a.target, model_format=a.model_format, trust=a.trust,
            trusted_types=a.trusted_types,
            feature_names=a.feature_names.split(",") if a.feature_names else None,
            bins=a.bins, overwrite=a.force,
        )  # fmt: skip
    except (PackError, ModelLoadError) as e:
        print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"bundle {a.out}: {m.name} {m.version} ({m.output_kind}, {m.format}, "
          f"{len(m.features)} features)")  # fmt: skip
    print(f"  sha256 {m.sha256}")
    if m.training_metrics:
        print(
            "  training metrics: "
            + ", ".join(f"{k}={v:.4g}" for k, v in m.training_metrics.items())
        )
    if m.trusted_types:
        print("  the runtime must trust these types: --trusted-types " + " ".join(m.trusted_types))
    extra = " --trust" if m.format == "joblib" else ""
    print(f"  serve: serinus-runtime --model-uri {a.out} --sha256 {m.sha256}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(pack_main())
