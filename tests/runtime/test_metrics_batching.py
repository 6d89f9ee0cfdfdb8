"""/metrics values after known traffic, feedback counters, and micro-batching under concurrency."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import skops.io as sio
from runtime_helpers import BUNDLES, IRIS_ROWS, RuntimeProcess, metric_sum, v2

from serinus_runtime import metric_names as mn
from serinus_runtime.bundle import read_bundle

pytestmark = pytest.mark.slow


def load_local(name: str):
    data = (BUNDLES / name / "model.skops").read_bytes()
    return sio.loads(data, trusted=sio.get_untrusted_types(data=data) or None)


def test_metrics_after_known_traffic(start_runtime) -> None:
    rp: RuntimeProcess = start_runtime("--model-uri", str(BUNDLES / "iris"), "--variant", "canary",
                                       "--revision", "7f3a")  # fmt: skip
    model = load_local("iris")
    c = rp.client
    for _ in range(4):  # 4 good V2 requests, 3 rows each
        assert c.post("/v2/models/iris/infer", json=v2(IRIS_ROWS, [3, 4])).status_code == 200
    assert c.post("/v1/models/iris:predict", json={"instances": IRIS_ROWS[:2]}).status_code == 200
    assert c.post("/v2/models/iris/infer", json=v2([1.0], [1, 1])).status_code == 400
    assert c.post("/v2/models/iris/infer", content=b"{", headers={
        "content-type": "application/json"}).status_code == 400  # fmt: skip
    assert c.post("/v2/models/nope/infer", json=v2(IRIS_ROWS[0], [1, 4])).status_code == 404

    m = rp.metrics()
    ident = {"model": "iris", "version": "1", "variant": "canary", "revision": "7f3a"}
    req = mn.REQUESTS_TOTAL
    assert metric_sum(m, req, endpoint="infer", code="200", protocol="v2", **ident) == 4
    assert metric_sum(m, req, endpoint="predict", code="200", protocol="v1", **ident) == 1
    assert metric_sum(m, req, endpoint="infer", code="400", **ident) == 2
    assert metric_sum(m, req, endpoint="not_found", code="404", **ident) == 1
    assert metric_sum(m, mn.INVALID_INPUTS_TOTAL, reason="feature_count", **ident) == 1
    assert metric_sum(m, mn.INVALID_INPUTS_TOTAL, reason="malformed_json", **ident) == 1

    # latency histogram: cumulative buckets from 0.25 ms to 10 s, count = inference requests
    lat = mn.LATENCY_SECONDS
    assert metric_sum(m, lat + "_count", endpoint="infer", **ident) == 6
    assert metric_sum(m, lat + "_count", endpoint="predict", **ident) == 1
    buckets = {dict(ls)["le"]: v for (n, ls), v in m.items()
               if n == lat + "_bucket" and dict(ls)["endpoint"] == "infer"}  # fmt: skip
    assert float(min(buckets, key=float)) == 0.00025 and "10.0" in buckets
    assert buckets["+Inf"] == 6
    ordered = [buckets[k] for k in sorted(buckets, key=float)]
    assert ordered == sorted(ordered)

    rows = 4 * 3 + 2
    assert metric_sum(m, mn.ROWS_TOTAL, **ident) == rows
    expected = model.predict(np.array(IRIS_ROWS * 4 + IRIS_ROWS[:2])).tolist()
    for cls in ("setosa", "versicolor", "virginica"):
        assert metric_sum(m, mn.PREDICTIONS_TOTAL, **{"class": cls}, **ident) == expected.count(cls)

    # each feature's bins add up to the rows seen, and the right bin got them
    manifest, profile = read_bundle(BUNDLES / "iris")
    assert profile is not None
    for f in profile.features:
        assert metric_sum(m, mn.FEATURE_BIN_TOTAL, feature=f.name, **ident) == rows
    edges = profile.features[0].edges
    assert edges is not None
    b = int(np.searchsorted(edges[1:-1], IRIS_ROWS[0][0], side="right"))
    assert metric_sum(m, mn.FEATURE_BIN_TOTAL, feature=manifest.features[0].name, bin=str(b),
                      **ident) >= 5  # fmt: skip
    assert metric_sum(m, mn.MODEL_READY, **ident) == 1


def test_regressor_value_histogram_and_feedback_errors(diabetes: RuntimeProcess) -> None:
    before = diabetes.metrics()
    x = [[0.02] * 10, [-0.03] * 10]
    r = diabetes.client.post("/v2/models/diabetes/infer", json=v2(x, [2, 10], id="d-1"))
    preds = r.json()["outputs"][0]["data"]
    after = diabetes.metrics()
    name = mn.PREDICTION_VALUE
    assert metric_sum(after, name + "_count") - metric_sum(before, name + "_count") == 2
    assert metric_sum(after, name + "_sum") - metric_sum(before, name + "_sum") == pytest.approx(
        sum(preds))  # fmt: skip
    fb = diabetes.client.post(
        "/v2/models/diabetes/feedback", json={"id": "d-1", "labels": [preds[0] + 3, preds[1] - 1]}
    )
    assert fb.status_code == 200 and fb.json()["scored"] == 2
    assert fb.json()["mean_absolute_error"] == pytest.approx(2.0)
    m = diabetes.metrics()
    assert metric_sum(m, mn.FEEDBACK_ABSOLUTE_ERROR_TOTAL) - metric_sum(
        before, mn.FEEDBACK_ABSOLUTE_ERROR_TOTAL) == pytest.approx(4.0)  # fmt: skip
    assert metric_sum(m, mn.FEEDBACK_SQUARED_ERROR_TOTAL) - metric_sum(
        before, mn.FEEDBACK_SQUARED_ERROR_TOTAL) == pytest.approx(10.0)  # fmt: skip
    r = diabetes.client.post("/v2/models/diabetes/infer",
                             json=v2(x, [2, 10], outputs=[{"name": "predict_proba"}]))  # fmt: skip
    assert r.status_code == 400 and "it has: predict" in r.json()["error"]


def test_feedback_outcomes(start_runtime) -> None:
    rp: RuntimeProcess = start_runtime("--model-uri", str(BUNDLES / "iris"),
                                       "--feedback-capacity", "2")  # fmt: skip
    c = rp.client
    preds = {}
    for i in range(3):
        r = c.post("/v2/models/iris/infer", json=v2(IRIS_ROWS[:2], [2, 4], id=f"r{i}"))
        preds[f"r{i}"] = r.json()["outputs"][0]["data"]
    # r0 was evicted (capacity 2); r1 labelled right and wrong; r2 with a wrong row count
    r = c.post("/v2/models/iris/feedback", json={"feedback": [
        {"id": "r0", "labels": preds["r0"]},
        {"id": "r1", "labels": [preds["r1"][0], "virginica" if preds["r1"][1] != "virginica"
                                else "setosa"]},
        {"id": "r2", "labels": ["setosa"]},
    ]})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["correct"] == 1 and body["incorrect"] == 1 and body["unknown_ids"] == ["r0"]
    assert "1 label(s)" in body["errors"][0]
    again = c.post("/v2/models/iris/feedback", json={"id": "r1", "labels": preds["r1"]}).json()
    assert again["unknown_ids"] == ["r1"]  # a label counts once
    m = rp.metrics()
    assert metric_sum(m, mn.FEEDBACK_TOTAL, outcome="correct") == 1
    assert metric_sum(m, mn.FEEDBACK_TOTAL, outcome="incorrect") == 1
    assert metric_sum(m, mn.FEEDBACK_TOTAL, outcome="unknown_id") == 2
    assert metric_sum(m, mn.FEEDBACK_TOTAL, outcome="invalid") == 1
    assert c.post("/v2/models/iris/feedback", json={"labels": [1]}).status_code == 400
    assert c.post("/v2/models/iris/feedback", json=[1, 2]).status_code == 400


def test_concurrent_requests_are_batched_and_each_gets_its_rows(start_runtime) -> None:
    rp: RuntimeProcess = start_runtime("--model-uri", str(BUNDLES / "breast-cancer"),
                                       "--max-latency-ms", "30", "--max-batch-size", "256",
                                       "--trusted-types", "sklearn.tree._tree.Tree")  # fmt: skip
    model = load_local("breast-cancer")
    rng = np.random.default_rng(0)
    _, profile = read_bundle(BUNDLES / "breast-cancer")
    assert profile is not None
    lo = np.array([f.edges[0] for f in profile.features])  # type: ignore[index]
    hi = np.array([f.edges[-1] for f in profile.features])  # type: ignore[index]
    requests = [rng.uniform(lo, hi, size=(int(rng.integers(1, 6)), 30)) for _ in range(48)]

    def call(i: int) -> tuple[int, list]:
        x = requests[i]
        body = v2(x.ravel().tolist(), list(x.shape), id=f"q{i}",
                  outputs=[{"name": "predict"}, {"name": "predict_proba"}])  # fmt: skip
        with httpx.Client(base_url=rp.url, timeout=10) as c:
            r = c.post("/v2/models/breast-cancer/infer", content=json.dumps(body),
                       headers={"content-type": "application/json"})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["id"] == f"q{i}"
        return i, r.json()["outputs"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(len(requests))))
    for i, outputs in results:
        assert outputs[0]["data"] == model.predict(requests[i]).tolist()
        np.testing.assert_allclose(outputs[1]["data"], model.predict_proba(requests[i]))
    m = rp.metrics()
    calls = metric_sum(m, mn.BATCH_ROWS + "_count")
    assert metric_sum(m, mn.BATCH_ROWS + "_sum") == sum(len(x) for x in requests)
    assert calls < len(requests), "no two concurrent requests shared a model call"
