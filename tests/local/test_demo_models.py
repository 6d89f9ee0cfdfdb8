"""The demo's four iris versions do what the demo says, on the traffic the demo sends.

Each bundle is loaded the way the runtime loads it (`serinus_runtime.loading.load_model`: digest
check, skops with only the listed trusted types, warm-up) and fed `rows_from_profile` traffic.
The class mixes are compared with the judge's own PSI (`serinus.core.stats.psi`) against the
default prediction-drift bound, and a window of the judge's minimum size goes through `judge`
itself: if a default threshold moves, these tests say which demo version stops making its point.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from local_helpers import BUNDLES, infer_body

from serinus.api.spec import AnalysisSpec, default_metrics
from serinus.api.status import Verdict
from serinus.core import stats
from serinus.core.judge import judge
from serinus.core.window import AnalysisWindow, VariantWindow
from serinus.demo.bundles import DemoBundles, DemoModel, build_demo_bundles
from serinus.demo.models import PetalAspectClassifier
from serinus.local.load import rows_from_profile
from serinus.local.processes import RevisionSpec, RuntimeFleet
from serinus_runtime.errors import ModelLoadError
from serinus_runtime.loading import ModelSource, load_model
from serinus_runtime.model import ServedModel

CLASSES = ("setosa", "versicolor", "virginica")
TRAFFIC_ROWS = 2000
DRIFT_MAX = next(m.max for m in default_metrics() if m.name == "prediction-drift")
ERROR_RATE_MAX = next(m.max for m in default_metrics() if m.name == "error-rate")
WIDE_PETAL_ROW = [5.0, 3.0, 1.5, 1.8]
"""Aspect 1.2: past v4's shape table (traffic pairs short and wide petals like this)."""
REAL_ROW = [5.1, 3.5, 1.4, 0.2]
"""The first iris in the data set, a setosa: aspect 0.14, which every version answers."""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoBundles:
    return build_demo_bundles(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def served(demo: DemoBundles) -> dict[str, ServedModel]:
    """Version → the model as a runtime with the bundle's trusted types would serve it."""
    return {v.version: _load(v) for v in demo.versions}


@pytest.fixture(scope="module")
def traffic(demo: DemoBundles) -> np.ndarray:
    """What the demo's load generator sends, drawn from the stable version's profile."""
    return rows_from_profile(demo.v1.bundle, TRAFFIC_ROWS, seed=0)


def _load(version: DemoModel) -> ServedModel:
    source = ModelSource(
        uri=str(version.bundle), sha256=version.sha256, trusted_types=tuple(version.trusted_types)
    )
    return load_model(source)


def _predict(model: ServedModel, rows: np.ndarray) -> np.ndarray:
    return model.run(rows, False)[0]


def _counts(predictions: np.ndarray) -> np.ndarray:
    counted = Counter(predictions.tolist())
    assert set(counted) <= set(CLASSES)
    return np.array([counted[c] for c in CLASSES], dtype=float)


def _psi(stable: np.ndarray, canary: np.ndarray) -> float:
    """The judge's PSI of canary vs stable class counts (stable is the expected side)."""
    return stats.psi(_counts(stable), _counts(canary))


@dataclass(frozen=True)
class _Answers:
    failed: np.ndarray
    """Per row: the call raised."""
    predictions: np.ndarray
    """Class labels of the rows that did not fail, in order."""
    errors: list[BaseException]


def _single_rows(model: ServedModel, rows: np.ndarray) -> _Answers:
    """One call per row, as single-row requests reach the model."""
    failed: list[bool] = []
    predictions: list[str] = []
    errors: list[BaseException] = []
    for row in rows:
        try:
            label = str(_predict(model, row[None, :])[0])
        except Exception as e:
            errors.append(e)
            failed.append(True)
        else:
            predictions.append(label)
            failed.append(False)
    return _Answers(np.array(failed), np.array(predictions, dtype=str), errors)


# --- the bundles --------------------------------------------------------------------------------


def test_manifests_say_what_the_demo_needs(
    demo: DemoBundles, served: dict[str, ServedModel]
) -> None:
    assert [v.version for v in demo.versions] == ["1", "2", "3", "4"]
    assert [v.caught_by for v in demo.versions] == [None, None, "prediction-drift", "error-rate"]
    for version in demo.versions:
        model = served[version.version]
        assert (model.name, model.version) == ("iris", version.version)
        assert model.sha256 == version.sha256
        assert model.classes is not None and model.classes.tolist() == list(CLASSES)
        assert model.has_proba
        assert version.description and "\n" not in version.description
    # Only v4 is not plain scikit-learn; its bundle lists exactly the type to trust.
    assert [v.trusted_types for v in demo.versions[:3]] == [[], [], []]
    assert demo.v4.trusted_types == [
        f"{PetalAspectClassifier.__module__}.{PetalAspectClassifier.__qualname__}"
    ]
    assert demo.v2.holdout_accuracy >= demo.v1.holdout_accuracy > 0.95
    assert demo.v3.holdout_accuracy < 0.8  # what the drift gate stops without any labels


def test_rebuilding_gives_the_same_models_quickly(
    tmp_path: Path, served: dict[str, ServedModel], traffic: np.ndarray
) -> None:
    """Same predictions and probabilities on every build (skops files differ in bytes)."""
    t0 = time.perf_counter()
    build_demo_bundles(tmp_path)
    took = time.perf_counter() - t0
    again = build_demo_bundles(tmp_path)  # into the same, now non-empty, directories
    assert took < 3.0, f"building the demo bundles took {took:.1f}s"
    rows = traffic[~served["4"].predictor.est.past_table(traffic)]  # rows every version answers
    for version in again.versions:
        rebuilt, first = _load(version).run(rows, True), served[version.version].run(rows, True)
        assert np.array_equal(rebuilt[0], first[0])
        assert rebuilt[1] is not None and first[1] is not None
        np.testing.assert_array_equal(rebuilt[1], first[1])


def test_v1_is_the_example_iris_model(served: dict[str, ServedModel], traffic: np.ndarray) -> None:
    example = load_model(ModelSource(uri=str(BUNDLES / "iris")))
    assert np.array_equal(_predict(served["1"], traffic), _predict(example, traffic))
    np.testing.assert_allclose(
        served["1"].run(traffic, True)[1], example.run(traffic, True)[1], rtol=1e-9, atol=1e-12
    )


def test_a_runtime_without_the_trusted_type_refuses_v4(demo: DemoBundles) -> None:
    with pytest.raises(ModelLoadError, match="PetalAspectClassifier") as refused:
        load_model(ModelSource(uri=str(demo.v4.bundle), sha256=demo.v4.sha256))
    assert "not trusted" in str(refused.value)


# --- what each version does to the traffic ------------------------------------------------------


def test_v2_keeps_v1s_class_mix(served: dict[str, ServedModel], traffic: np.ndarray) -> None:
    value = _psi(_predict(served["1"], traffic), _predict(served["2"], traffic))
    assert value < DRIFT_MAX / 4, f"v2 vs v1 PSI {value:.4f}, drift max {DRIFT_MAX}"


def test_v3_leans_to_virginica(served: dict[str, ServedModel], traffic: np.ndarray) -> None:
    v1, v3 = _predict(served["1"], traffic), _predict(served["3"], traffic)
    value = _psi(v1, v3)
    assert value > 3 * DRIFT_MAX, f"v3 vs v1 PSI {value:.4f}, drift max {DRIFT_MAX}"
    share = _counts(v3) / len(v3)
    assert share[CLASSES.index("virginica")] > 0.5
    assert share[CLASSES.index("virginica")] > 1.5 * (_counts(v1) / len(v1))[2]


@pytest.mark.parametrize("version", ["2", "3"])
def test_v2_and_v3_never_fail(
    version: str, served: dict[str, ServedModel], traffic: np.ndarray
) -> None:
    assert _single_rows(served[version], traffic[:500]).errors == []
    assert len(_predict(served[version], traffic)) == len(traffic)


def test_v4_fails_on_wide_petals_and_answers_like_v1_otherwise(
    served: dict[str, ServedModel], traffic: np.ndarray
) -> None:
    answers = _single_rows(served["4"], traffic)
    share = answers.failed.mean()
    assert 0.10 <= share <= 0.35, f"v4 failed {share:.1%} of single-row requests"
    # A bug (RuntimeError: HTTP 500), never a bad input (ValueError etc.: HTTP 400).
    assert {type(e) for e in answers.errors} == {RuntimeError}
    assert all("shape table" in str(e) for e in answers.errors)
    ok = ~answers.failed
    assert np.array_equal(answers.predictions, _predict(served["1"], traffic[ok]))
    # Deterministic: the same rows fail again, and a batch with one of them fails whole.
    assert np.array_equal(_single_rows(served["4"], traffic[:200]).failed, answers.failed[:200])
    with pytest.raises(RuntimeError):
        _predict(served["4"], np.vstack([traffic[ok][:5], traffic[~ok][:1]]))


def test_v4_passes_every_real_flower(served: dict[str, ServedModel]) -> None:
    """Why v4 gets to the canary at all: hold-out sets and smoke rows of real irises pass."""
    from sklearn.datasets import load_iris

    flowers = load_iris().data
    assert np.array_equal(_predict(served["4"], flowers), _predict(served["1"], flowers))


def test_the_judge_decides_each_version_at_its_smallest_window(
    served: dict[str, ServedModel], traffic: np.ndarray
) -> None:
    """Default error-rate and prediction-drift bounds, canary at the minimum of requests."""
    spec = AnalysisSpec(metrics=[m for m in default_metrics() if m.name != "latency-p99"])
    canary_rows, stable_rows = traffic[: spec.min_requests], traffic[1000:1250]
    stable = _window(served["1"], stable_rows)
    verdicts = {}
    for version in ("2", "3", "4"):
        outcome = judge(
            spec,
            AnalysisWindow(
                canary=_window(served[version], canary_rows), stable=stable, interval_seconds=60
            ),
        )
        verdicts[version] = {r.name: r.verdict for r in outcome.metrics}
    assert verdicts["2"] == {"error-rate": Verdict.PASS, "prediction-drift": Verdict.PASS}
    assert verdicts["3"] == {"error-rate": Verdict.PASS, "prediction-drift": Verdict.FAIL}
    assert verdicts["4"]["error-rate"] == Verdict.FAIL


def _window(model: ServedModel, rows: np.ndarray) -> VariantWindow:
    """What a window of single-row requests shows: 5xx count, class counts of the answers."""
    answers = _single_rows(model, rows)
    counts = _counts(answers.predictions)
    return VariantWindow(
        requests=len(rows),
        errors=len(answers.errors),
        prediction_counts={c: float(n) for c, n in zip(CLASSES, counts, strict=True)},
    )


# --- v4 in a real runtime -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_runtime_serving_v4_answers_500_to_wide_petals(demo: DemoBundles) -> None:
    v4 = demo.v4
    spec = RevisionSpec(
        revision="rev-demo-4", name="iris", model_uri=str(v4.bundle), variant="canary",
        sha256=v4.sha256, trusted_types=tuple(v4.trusted_types),
    )  # fmt: skip
    with RuntimeFleet(restart_backoff=None, shutdown_grace=1.0) as fleet:
        fleet.start(spec)
        fleet.wait_ready(spec.revision, timeout=120)
        (url,) = fleet.urls(spec.revision)
        with httpx.Client(base_url=url, timeout=10.0) as client:
            path = "/v2/models/iris/infer"
            failed = client.post(path, json=infer_body([WIDE_PETAL_ROW]))
            good = client.post(path, json=infer_body([REAL_ROW]))
            short_row = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": REAL_ROW[:3]}
            short = client.post(path, json={"inputs": [short_row]})
    assert failed.status_code == 500, failed.text
    assert failed.headers["content-type"].startswith("application/json")
    assert "RuntimeError" in failed.json()["error"]
    assert good.status_code == 200, good.text
    assert good.json()["outputs"][0]["data"] == ["setosa"]
    assert short.status_code == 400, short.text  # bad input stays the client's error
