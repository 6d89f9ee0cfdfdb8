"""V2 / V1 endpoints over real HTTP against a running runtime (iris and diabetes bundles)."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import skops.io as sio
from runtime_helpers import BUNDLES, IRIS_ROWS, RuntimeProcess, v2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def iris_model():
    data = (BUNDLES / "iris" / "model.skops").read_bytes()
    return sio.loads(data, trusted=sio.get_untrusted_types(data=data) or None)


def flat(rows: list[list[float]]) -> list[float]:
    return [v for r in rows for v in r]


# ----------------------------------------------------------------------------- health, metadata
def test_health_live_and_ready(iris: RuntimeProcess) -> None:
    assert iris.client.get("/v2/health/live").json() == {"live": True}
    r = iris.client.get("/v2/health/ready")
    assert r.status_code == 200 and r.json() == {"ready": True}


def test_server_metadata(iris: RuntimeProcess) -> None:
    body = iris.client.get("/v2").json()
    assert body["name"] == "serinus" and body["version"] and "extensions" in body


@pytest.mark.parametrize("path", ["/v2/models/iris", "/v2/models/iris/versions/1"])
def test_model_metadata_from_bundle(iris: RuntimeProcess, path: str) -> None:
    body = iris.client.get(path).json()
    assert body["name"] == "iris" and body["versions"] == ["1"] and body["platform"] == "sklearn"
    assert body["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert body["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    params = body["parameters"]
    assert [f["name"] for f in params["features"]][:2] == ["sepal_length_cm", "sepal_width_cm"]
    assert params["classes"] == ["setosa", "versicolor", "virginica"]
    assert params["training_metrics"]["accuracy"] > 0.9


@pytest.mark.parametrize(
    "path", ["/v2/models/iris/ready", "/v2/models/iris/versions/1/ready", "/v1/models/iris"]
)
def test_model_ready(iris: RuntimeProcess, path: str) -> None:
    r = iris.client.get(path)
    assert r.status_code == 200 and r.json() == {"name": "iris", "ready": True}


# ----------------------------------------------------------------------------- V2 infer
@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT32", "INT64"])
def test_infer_numeric_datatypes(iris: RuntimeProcess, iris_model, datatype: str) -> None:
    rows = [[5, 3, 1, 0], [7, 3, 5, 2]] if datatype.startswith("INT") else IRIS_ROWS
    r = iris.client.post("/v2/models/iris/infer", json=v2(flat(rows), [len(rows), 4], datatype))
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "predict" and out["datatype"] == "BYTES" and out["shape"] == [len(rows)]
    assert out["data"] == iris_model.predict(np.array(rows, dtype=float)).tolist()


def test_infer_nested_data_equals_flat(iris: RuntimeProcess) -> None:
    a = iris.client.post("/v2/models/iris/infer", json=v2(IRIS_ROWS, [3, 4])).json()
    b = iris.client.post("/v2/models/iris/infer", json=v2(flat(IRIS_ROWS), [3, 4])).json()
    assert a["outputs"] == b["outputs"]


def test_infer_outputs_id_parameters_and_versioned_path(iris: RuntimeProcess, iris_model) -> None:
    body = v2(flat(IRIS_ROWS), [3, 4], id="req-42", parameters={"content_type": "np", "x": 1},
              outputs=[{"name": "predict_proba", "parameters": {"binary_data": False}},
                       {"name": "predict"}])  # fmt: skip
    r = iris.client.post("/v2/models/iris/versions/1/infer", json=body)
    assert r.status_code == 200, r.text
    resp = r.json()
    assert resp["id"] == "req-42" and resp["model_name"] == "iris" and resp["model_version"] == "1"
    proba, pred = resp["outputs"]
    assert proba["name"] == "predict_proba" and proba["datatype"] == "FP64"
    assert proba["shape"] == [3, 3]
    np.testing.assert_allclose(proba["data"], iris_model.predict_proba(np.array(IRIS_ROWS)))
    assert pred["data"] == iris_model.predict(np.array(IRIS_ROWS)).tolist()


def test_infer_generates_distinct_ids(iris: RuntimeProcess) -> None:
    ids = {iris.client.post("/v2/models/iris/infer", json=v2(IRIS_ROWS[0], [1, 4])).json()["id"]
           for _ in range(3)}  # fmt: skip
    assert len(ids) == 3 and all(ids)


def test_infer_named_feature_columns(iris: RuntimeProcess, iris_model) -> None:
    names = ["petal_width_cm", "sepal_length_cm", "petal_length_cm", "sepal_width_cm"]  # any order
    order = [3, 0, 2, 1]
    inputs = [{"name": n, "datatype": "FP64", "shape": [3], "data": [r[j] for r in IRIS_ROWS]}
              for n, j in zip(names, order, strict=True)]  # fmt: skip
    r = iris.client.post("/v2/models/iris/infer", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == iris_model.predict(np.array(IRIS_ROWS)).tolist()


def test_infer_regressor_outputs_floats(diabetes: RuntimeProcess) -> None:
    r = diabetes.client.post("/v2/models/diabetes/infer", json=v2([0.01] * 20, [2, 10]))
    assert r.status_code == 200
    out = r.json()["outputs"][0]
    assert out["datatype"] == "FP64" and out["shape"] == [2] and isinstance(out["data"][0], float)


# ----------------------------------------------------------------------------- V1
def test_v1_predict_rows_and_records(iris: RuntimeProcess, iris_model) -> None:
    r = iris.client.post("/v1/models/iris:predict", json={"instances": IRIS_ROWS})
    assert r.status_code == 200
    assert r.json() == {"predictions": iris_model.predict(np.array(IRIS_ROWS)).tolist()}
    names = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    recs = [dict(zip(names, row, strict=True)) for row in IRIS_ROWS]
    r2 = iris.client.post("/v1/models/iris:predict", json={"instances": recs})
    assert r2.json() == r.json()


# ----------------------------------------------------------------------------- errors
BAD_V2 = [
    ("not json", b"{nope", "malformed_json", "not valid JSON"),
    ("no inputs", {"id": "x"}, "bad_request", '"inputs"'),
    ("inputs not list", {"inputs": {"a": 1}}, "bad_request", '"inputs"'),
    ("bad datatype", v2(IRIS_ROWS[0], [1, 4], "FLOAT"), "datatype", "FLOAT"),
    ("bytes for numeric", v2(["a", "b", "c", "d"], [1, 4], "BYTES"), "datatype", "numeric"),
    ("width", v2([1.0, 2.0, 3.0], [1, 3]), "feature_count",
     "inputs[0].shape [1, 3] does not match the model's 4 features"),
    ("shape vs data", v2([1.0, 2.0, 3.0], [1, 4]), "shape", "needs 4 values, data has 3"),
    ("bad shape", v2(IRIS_ROWS[0], [1, -4]), "shape", "non-negative"),
    ("1-D shape", v2(IRIS_ROWS[0], [4]), "shape", "1-D"),
    ("string in FP32", v2(["abc", 1.0, 2.0, 3.0], [1, 4], "FP32"), "value", "'abc'"),
    ("ragged", v2([[1.0, 2.0], [3.0]], [2, 2]), "shape", "uneven"),
    ("null value", v2([None, 1.0, 2.0, 3.0], [1, 4]), "non_finite",
     "row 0 feature 'sepal_length_cm' is missing"),
    ("float in INT64", v2([1.5, 1, 2, 3], [1, 4], "INT64"), "value", "non-integer"),
    ("unknown output", v2(IRIS_ROWS[0], [1, 4], outputs=[{"name": "proba"}]), "output",
     "predict, predict_proba"),
    ("bad id", v2(IRIS_ROWS[0], [1, 4], id=7), "bad_request", '"id"'),
    ("unknown column", {"inputs": [{"name": "a", "datatype": "FP64", "shape": [1], "data": [1]},
                                   {"name": "b", "datatype": "FP64", "shape": [1], "data": [1]}]},
     "feature_names", "unknown input name"),
    ("missing column", {"inputs": [
        {"name": "sepal_length_cm", "datatype": "FP64", "shape": [1], "data": [1]},
        {"name": "sepal_width_cm", "datatype": "FP64", "shape": [1], "data": [1]}]},
     "feature_names", "missing input(s) for feature(s): petal_length_cm, petal_width_cm"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "reason", "needle"), BAD_V2, ids=[b[0] for b in BAD_V2])
def test_v2_bad_input_is_400_naming_the_problem(
    iris: RuntimeProcess, case: str, body: object, reason: str, needle: str
) -> None:
    before = iris.metrics()
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = iris.client.post("/v2/models/iris/infer", content=content,
                         headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]
    after = iris.metrics()
    key = ("serinus_invalid_inputs_total", frozenset({
        ("model", "iris"), ("version", "1"), ("revision", "r1"), ("variant", "stable"),
        ("reason", reason)}))  # fmt: skip
    assert after.get(key, 0) == before.get(key, 0) + 1


@pytest.mark.parametrize(("body", "needle"), [
    ({"foo": 1}, '"instances"'),
    ({"instances": [[1.0, 2.0]]}, "takes 4 features"),
    ({"instances": [["abc", 1, 2, 3]]}, "strings"),
    ({"instances": [{"sepal_length_cm": 1}]}, "missing feature(s)"),
])  # fmt: skip
def test_v1_bad_input_is_400(iris: RuntimeProcess, body: dict, needle: str) -> None:
    r = iris.client.post("/v1/models/iris:predict", json=body)
    assert r.status_code == 400 and needle in r.json()["error"]


def test_unknown_model_and_version_are_404(iris: RuntimeProcess) -> None:
    r = iris.client.post("/v2/models/nope/infer", json=v2(IRIS_ROWS[0], [1, 4]))
    assert r.status_code == 404 and "'nope' not found" in r.json()["error"]
    r = iris.client.post("/v2/models/iris/versions/9/infer", json=v2(IRIS_ROWS[0], [1, 4]))
    assert r.status_code == 404 and "no version '9'" in r.json()["error"]
    assert iris.client.get("/v2/models/nope").status_code == 404
    assert iris.client.post("/v1/models/nope:predict", json={"instances": []}).status_code == 404
    assert iris.client.get("/nowhere").status_code == 404


def test_wrong_method_is_405_with_allow(iris: RuntimeProcess) -> None:
    r = iris.client.get("/v2/models/iris/infer")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = iris.client.post("/v2/health/live", json={})
    assert r.status_code == 405 and "GET" in r.headers["allow"]


def test_non_json_content_type_is_415(iris: RuntimeProcess) -> None:
    r = iris.client.post("/v2/models/iris/infer", content=b"a=b",
                         headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 415 and "application/json" in r.json()["error"]


def test_head_request(iris: RuntimeProcess) -> None:
    r = iris.client.head("/v2/health/ready")
    assert r.status_code == 200 and r.content == b""


# ----------------------------------------------------------------------------- raw HTTP
def _raw(port: int, payload: bytes, expect_responses: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        data = b""
        while data.count(b"HTTP/1.1 ") < expect_responses or not data.endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_pipelined_requests_answered_in_order(iris: RuntimeProcess) -> None:
    body = json.dumps(v2(IRIS_ROWS[1], [1, 4], id="second")).encode()
    req = (b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
    first = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    data = _raw(iris.port, first + req + first, 3)
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.index(b'{"live":true}') < data.index(b'"second"') < data.rindex(b'{"live":true}')


def test_malformed_http_is_400_and_server_survives(iris: RuntimeProcess) -> None:
    data = _raw(iris.port, b"NOT HTTP AT ALL\r\n\r\n", 1)
    assert data.startswith(b"HTTP/1.1 400")
    assert iris.client.get("/v2/health/live").status_code == 200


def test_chunked_body_and_expect_continue(iris: RuntimeProcess, iris_model) -> None:
    body = json.dumps(v2(IRIS_ROWS[0], [1, 4])).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    req = (b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)  # fmt: skip
    data = _raw(iris.port, req, 2)
    assert data.startswith(b"HTTP/1.1 100 Continue")
    assert b"200 OK" in data and iris_model.predict(np.array(IRIS_ROWS[:1]))[0].encode() in data
