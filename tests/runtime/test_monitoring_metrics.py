"""Post-promotion monitoring series: reference-profile shares and the feedback confusion matrix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client.core import CollectorRegistry, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from runtime_helpers import BUNDLES, IRIS_ROWS, RuntimeProcess, v2
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from serinus_runtime import metric_names as mn
from serinus_runtime.bundle import FeatureProfile, PredictionProfile, ReferenceProfile, read_bundle
from serinus_runtime.metrics import (
    DEFAULT_VALUE_BOUNDS,
    Metrics,
    Snapshot,
    _fmt,
    families,
    snapshot,
)
from serinus_runtime.pack import pack

Metrics_ = dict[tuple[str, frozenset[tuple[str, str]]], float]


def series(m: Metrics_, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """Samples of `name` whose labels include `labels`, as (all labels, value)."""
    want = set(labels.items())
    return [(dict(ls), v) for (n, ls), v in m.items() if n == name and want <= set(ls)]


def by(m: Metrics_, name: str, key: str, **labels: str) -> dict[str, float]:
    """{value of label `key`: sample value} for the samples of `name` matching `labels`."""
    out: dict[str, float] = {}
    for ls, v in series(m, name, **labels):
        assert ls[key] not in out, f"duplicate {key}={ls[key]} in {name}"
        out[ls[key]] = v
    return out


def feature_shares(m: Metrics_, feature: str, kind: str) -> dict[str, float]:
    got = series(m, mn.REFERENCE_FEATURE_SHARE, feature=feature)
    assert got, f"no {mn.REFERENCE_FEATURE_SHARE} for {feature}"
    assert {ls[mn.KIND] for ls, _ in got} == {kind}
    return by(m, mn.REFERENCE_FEATURE_SHARE, mn.BIN, feature=feature)


# ----------------------------------------------------------------------------- classifier
@pytest.mark.slow
def test_classifier_reference_shares_and_confusion(start_runtime) -> None:
    rp: RuntimeProcess = start_runtime("--model-uri", str(BUNDLES / "iris"), "--variant", "canary",
                                       "--revision", "r9")  # fmt: skip
    ident = {"model": "iris", "version": "1", "variant": "canary", "revision": "r9"}
    _, profile = read_bundle(BUNDLES / "iris")
    assert profile is not None
    m = rp.metrics()  # before any traffic: the reference is there from start-up
    [(labels, rows)] = series(m, mn.REFERENCE_ROWS)
    assert rows == profile.rows and {k: labels[k] for k in ident} == ident

    for fp in profile.features:
        shares = feature_shares(m, fp.name, "numeric")
        assert fp.missing == 0 and "missing" not in shares
        assert shares == {str(i): f for i, f in enumerate(fp.frequencies)}
        assert sum(shares.values()) == pytest.approx(1.0)
        for ls, _ in series(m, mn.REFERENCE_FEATURE_SHARE, feature=fp.name):
            assert {k: ls[k] for k in ident} == ident
    pp = profile.predictions
    assert pp.classes is not None
    pred_shares = by(m, mn.REFERENCE_PREDICTION_SHARE, mn.CLASS, **ident)
    assert pred_shares == {str(c): f for c, f in zip(pp.classes, pp.frequencies, strict=True)}
    assert sum(pred_shares.values()) == pytest.approx(1.0)
    assert all(mn.LE not in ls for ls, _ in series(m, mn.REFERENCE_PREDICTION_SHARE))
    # Every (label, class) pair of the 3 classes exists at 0 before any feedback, so that a
    # burst of labels between two scrapes is not a series' first (uncountable) sample.
    before = series(m, mn.FEEDBACK_CONFUSION_TOTAL)
    assert len(before) == 9 and {v for _, v in before} == {0.0}
    assert by(m, mn.FEEDBACK_TOTAL, mn.OUTCOME, **ident) == {"correct": 0.0, "incorrect": 0.0}

    c = rp.client
    rows = IRIS_ROWS * 2  # 6 rows
    preds = c.post("/v2/models/iris/infer", json=v2(rows, [6, 4], id="a")).json()
    pa = preds["outputs"][0]["data"]
    pb = c.post("/v2/models/iris/infer", json=v2(IRIS_ROWS, [3, 4], id="b")).json()
    pb = pb["outputs"][0]["data"]
    pc = c.post("/v2/models/iris/infer", json=v2(IRIS_ROWS, [3, 4], id="c")).json()
    pc = pc["outputs"][0]["data"]
    others = {p: next(k for k in ("setosa", "versicolor", "virginica") if k != p) for p in pa}
    # a: 2 right, 3 wrong (another class), 1 not a class of the model; b: all right
    la = [pa[0], pa[1], others[pa[2]], others[pa[3]], others[pa[4]], "daisy"]
    r = c.post("/v2/models/iris/feedback", json={"feedback": [
        {"id": "a", "labels": la},
        {"id": "b", "labels": pb},
        {"id": "c", "labels": pc[:2]},  # wrong row count: invalid, not in the matrix
        {"id": "nope", "labels": ["setosa"]},  # unknown id: not in the matrix
    ]})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["correct"] == 5 and r.json()["incorrect"] == 4

    expected = Counter(
        (label if label != "daisy" else mn.LABEL_OTHER, pred)
        for label, pred in [*zip(la, pa, strict=True), *zip(pb, pb, strict=True)]
    )
    m = rp.metrics()
    got = {(ls[mn.LABEL], ls[mn.CLASS]): v for ls, v in series(m, mn.FEEDBACK_CONFUSION_TOTAL)}
    assert {k: v for k, v in got.items() if v} == {k: float(v) for k, v in expected.items()}
    assert len(got) == 9 + 1  # the 9 pairs of the classes, and `daisy` as __other__
    for ls, _ in series(m, mn.FEEDBACK_CONFUSION_TOTAL):
        assert {k: ls[k] for k in ident} == ident
    outcomes = by(m, mn.FEEDBACK_TOTAL, mn.OUTCOME)
    assert sum(got.values()) == outcomes["correct"] + outcomes["incorrect"] == 9
    diagonal = sum(v for (label, cls), v in got.items() if label == cls)
    assert diagonal == outcomes["correct"]
    # the reference gauges did not move
    assert by(m, mn.REFERENCE_PREDICTION_SHARE, mn.CLASS) == pred_shares


# ----------------------------------------------------------------------------- regressor
@pytest.mark.slow
def test_regressor_reference_prediction_buckets(diabetes: RuntimeProcess) -> None:
    _, profile = read_bundle(BUNDLES / "diabetes")
    assert profile is not None
    pp = profile.predictions
    assert pp.kind == "values" and pp.edges is not None
    m = diabetes.metrics()

    shares = by(m, mn.REFERENCE_PREDICTION_SHARE, mn.LE)
    assert all(mn.CLASS not in ls for ls, _ in series(m, mn.REFERENCE_PREDICTION_SHARE))
    bucket_les = [ls[mn.LE] for ls, _ in series(m, mn.PREDICTION_VALUE + "_bucket")]
    assert len(bucket_les) == len(set(bucket_les)) == len(pp.frequencies)
    assert set(shares) == set(bucket_les)
    assert bucket_les[-1] == "+Inf"
    # in bucket order: the profile's frequencies, bin for bin (not cumulative)
    ordered = sorted(shares, key=float)
    assert ordered[-1] == "+Inf"
    assert [shares[le] for le in ordered] == pp.frequencies
    assert [float(le) for le in ordered[:-1]] == pp.edges[1:-1]
    assert sum(shares.values()) == pytest.approx(1.0)

    for fp in profile.features:
        fs = feature_shares(m, fp.name, "numeric")
        assert fs == {str(i): f for i, f in enumerate(fp.frequencies)}
        assert sum(fs.values()) == pytest.approx(1.0)
    assert series(m, mn.FEEDBACK_CONFUSION_TOTAL) == []


# ----------------------------------------------------------------------------- categorical
@pytest.fixture(scope="module")
def categorical_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A string feature with missing values (None) and a numeric one."""
    rng = np.random.default_rng(0)
    colors = rng.choice(["red", "green", "blue"], size=200).astype(object)
    colors[rng.random(200) < 0.1] = None
    size = rng.normal(size=200)
    x = np.empty((200, 2), dtype=object)
    x[:, 0], x[:, 1] = colors, size
    y = ((colors == "red") ^ (size > 0)).astype(int)
    color_encoder = make_pipeline(
        SimpleImputer(missing_values=None, strategy="constant", fill_value="none"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    est = make_pipeline(
        ColumnTransformer([("c", color_encoder, [0]), ("n", "passthrough", [1])]),
        LogisticRegression(),
    ).fit(x, y)
    out = tmp_path_factory.mktemp("b") / "colors"
    pack(est, x, out, name="colors", version="1", y=y, feature_names=["color", "size"])
    return out


@pytest.mark.slow
def test_categorical_reference_shares(start_runtime, categorical_bundle: Path) -> None:
    manifest, profile = read_bundle(categorical_bundle)
    assert profile is not None
    color, size = profile.features
    assert color.kind == "categorical" and color.categories is not None and color.missing > 0
    rp: RuntimeProcess = start_runtime("--model-uri", str(categorical_bundle),
                                       "--trusted-types", *manifest.trusted_types)  # fmt: skip
    m = rp.metrics()

    shares = feature_shares(m, "color", "categorical")
    n = len(color.categories)
    assert set(shares) == {*(str(i) for i in range(n + 1)), "missing"}  # n is "other"
    assert shares["missing"] == color.missing
    # the profile counts categories over present values; the gauge is a share of all rows
    for i, f in enumerate(color.frequencies):
        assert shares[str(i)] == pytest.approx(f * (1 - color.missing), abs=1e-12)
    assert sum(shares.values()) == pytest.approx(1.0)

    num = feature_shares(m, "size", "numeric")
    assert num == {str(i): f for i, f in enumerate(size.frequencies)}
    assert sum(num.values()) == pytest.approx(1.0)

    # live bins and reference bins carry the same `bin` values
    body = {"inputs": [
        {"name": "color", "datatype": "BYTES", "shape": [3], "data": ["red", "purple", "blue"]},
        {"name": "size", "datatype": "FP64", "shape": [3], "data": [-9.0, 0.1, 9.0]},
    ]}  # fmt: skip
    assert rp.client.post("/v2/models/colors/infer", json=body).status_code == 200
    m = rp.metrics()
    for feature in ("color", "size"):
        live = by(m, mn.FEATURE_BIN_TOTAL, mn.BIN, feature=feature)
        ref = by(m, mn.REFERENCE_FEATURE_SHARE, mn.BIN, feature=feature)
        assert set(live) == set(ref) - {"missing"}
    assert by(m, mn.FEATURE_BIN_TOTAL, mn.BIN, feature="color")[str(n)] == 1  # purple: other
    pred_shares = by(m, mn.REFERENCE_PREDICTION_SHARE, mn.CLASS)
    assert set(pred_shares) == {"0", "1"}
    assert sum(pred_shares.values()) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- in process
def _model(kind: str, profile: ReferenceProfile | None, classes: list | None = None) -> Any:
    """Just what Metrics reads of a ServedModel: two features, a (numeric) and b (string)."""
    features = [SimpleNamespace(dtype="float64"), SimpleNamespace(dtype="string")]
    sig = SimpleNamespace(layout="table", names=["a", "b"], n=2, features=features)
    return SimpleNamespace(
        kind=kind,
        profile=profile,
        signature=sig,
        format="skops",
        sha256="0" * 64,
        classes=np.asarray(classes) if classes is not None else None,
    )


def _features() -> list[FeatureProfile]:
    return [
        FeatureProfile(name="a", kind="numeric", edges=[0.0, 1.0, 2.0], frequencies=[0.5, 0.3],
                       missing=0.2),
        FeatureProfile(name="b", kind="categorical", categories=["x"], frequencies=[1.0, 0.0]),
    ]  # fmt: skip


def _expose(snap: Snapshot) -> Metrics_:
    """`snap` through prometheus-client's text exposition and parser, as /metrics serves it."""

    class Collector:
        def collect(self) -> Iterator[Metric]:
            return families(snap)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip


def _parse(m: Metrics) -> Metrics_:
    return _expose(snapshot(m))


def test_reference_shares_without_a_process() -> None:
    prof = ReferenceProfile(
        rows=10, features=_features(),
        predictions=PredictionProfile(kind="values", edges=[3.0, 3.0], frequencies=[1.0]),
    )  # fmt: skip
    m = _parse(Metrics(("m", "1", "", ""), _model("regression", prof)))
    assert feature_shares(m, "a", "numeric") == {"0": 0.5, "1": 0.3, "missing": 0.2}
    assert feature_shares(m, "b", "categorical") == {"0": 1.0, "1": 0.0}
    # a one-bin profile: the default bounds are used, its one bin falls in one bucket
    shares = by(m, mn.REFERENCE_PREDICTION_SHARE, mn.LE)
    les = [*(_fmt(b) for b in DEFAULT_VALUE_BOUNDS), "+Inf"]
    assert list(shares) == les
    assert set(shares) == {ls[mn.LE] for ls, _ in series(m, mn.PREDICTION_VALUE + "_bucket")}
    assert shares == {le: (1.0 if le == "10.0" else 0.0) for le in les}

    # a one-bin profile spanning several default buckets cannot be placed: no series
    wide = prof.model_copy(update={"predictions": PredictionProfile(
        kind="values", edges=[0.5, 50.0], frequencies=[1.0])})  # fmt: skip
    m = _parse(Metrics(("m", "1", "", ""), _model("regression", wide)))
    assert series(m, mn.REFERENCE_PREDICTION_SHARE) == []
    assert series(m, mn.REFERENCE_FEATURE_SHARE)

    # no profile: no reference series at all
    m = _parse(Metrics(("m", "1", "", ""), _model("classification", None, ["p", "q"])))
    assert series(m, mn.REFERENCE_FEATURE_SHARE) == []
    assert series(m, mn.REFERENCE_PREDICTION_SHARE) == []


def test_merged_workers_of_both_kinds_expose_valid_text() -> None:
    """During a reload from a regressor to a classifier, workers may briefly disagree."""
    feats = _features()
    reg = ReferenceProfile(rows=10, features=feats, predictions=PredictionProfile(
        kind="values", edges=[0.0, 1.0, 2.0], frequencies=[0.25, 0.75]))  # fmt: skip
    cls = ReferenceProfile(rows=10, features=feats, predictions=PredictionProfile(
        kind="classes", classes=["p", "q"], frequencies=[0.4, 0.6]))  # fmt: skip
    a = Metrics(("m", "1", "", ""), _model("regression", reg))
    b = Metrics(("m", "2", "", ""), _model("classification", cls, ["p", "q"]))
    snap = snapshot(a)
    snap.merge(snapshot(b))
    snap.merge(snapshot(b))  # gauges merge by max: unchanged
    m = _expose(snap)
    assert by(m, mn.REFERENCE_PREDICTION_SHARE, mn.LE, version="1") == {"1.0": 0.25, "+Inf": 0.75}
    assert by(m, mn.REFERENCE_PREDICTION_SHARE, mn.CLASS, version="2") == {"p": 0.4, "q": 0.6}


def test_confusion_labels_are_bounded() -> None:
    known = Metrics(("m", "1", "", ""), _model("classification", None, [0, 1]))
    known.observe_confusion({("0", "0"): 2, ("1", "0"): 1, ("7", "1"): 1, ("x", "1"): 2})
    counted = {pair: n for pair, n in known.confusion.items() if n}
    assert counted == {("0", "0"): 2, ("1", "0"): 1, (mn.LABEL_OTHER, "1"): 3}

    unknown = Metrics(("m", "1", "", ""), _model("classification", None))
    unknown.observe_confusion({(str(i), "0"): 1 for i in range(mn.MAX_FEEDBACK_LABELS + 5)})
    unknown.observe_confusion({("0", "0"): 1, ("new", "0"): 1})
    labels = {label for label, _ in unknown.confusion}
    assert len(labels) == mn.MAX_FEEDBACK_LABELS + 1 and mn.LABEL_OTHER in labels
    assert unknown.confusion[("0", "0")] == 2
    assert unknown.confusion[(mn.LABEL_OTHER, "0")] == 6
    m = _parse(unknown)
    assert sum(v for _, v in series(m, mn.FEEDBACK_CONFUSION_TOTAL)) == mn.MAX_FEEDBACK_LABELS + 7
