"""BYTES inputs (text and mixed tables), ONNX bundles, S3 URIs and `serinus pack`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from runtime_helpers import BUNDLES, IRIS_ROWS, RuntimeProcess, free_port, metric_sum, v2
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from serinus_runtime import metric_names as mn
from serinus_runtime.bundle import read_bundle, verify_bundle
from serinus_runtime.pack import pack, pack_main

pytestmark = pytest.mark.slow


def trusted(bundle: Path) -> list[str]:
    manifest, _ = read_bundle(bundle)
    return ["--trusted-types", *manifest.trusted_types] if manifest.trusted_types else []


# ----------------------------------------------------------------------------- mixed table
@pytest.fixture(scope="module")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    rng = np.random.default_rng(0)
    colors = rng.choice(["red", "green", "blue"], size=200)
    size = rng.normal(size=200)
    x = np.empty((200, 2), dtype=object)
    x[:, 0], x[:, 1] = colors, size
    y = ((colors == "red") ^ (size > 0)).astype(int)
    est = make_pipeline(
        ColumnTransformer(
            [("c", OneHotEncoder(handle_unknown="error"), [0]), ("n", "passthrough", [1])]
        ),
        LogisticRegression(),
    ).fit(x, y)
    out = tmp_path_factory.mktemp("b") / "mixed"
    pack(est, x, out, name="mixed", version="1", y=y, feature_names=["color", "size"])
    return out, est


def test_mixed_string_and_numeric_features(start_runtime, mixed_bundle) -> None:
    bundle, est = mixed_bundle
    manifest, profile = read_bundle(bundle)
    assert [f.dtype for f in manifest.features] == ["string", "float64"]
    assert profile is not None and profile.features[0].kind == "categorical"
    rp: RuntimeProcess = start_runtime("--model-uri", str(bundle), "--max-latency-ms", "50",
                                       *trusted(bundle))  # fmt: skip
    meta = rp.client.get("/v2/models/mixed").json()
    assert meta["inputs"] == [{"name": "color", "datatype": "BYTES", "shape": [-1]},
                              {"name": "size", "datatype": "FP64", "shape": [-1]}]  # fmt: skip
    body = {
        "inputs": [
            {"name": "size", "datatype": "FP32", "shape": [2], "data": [0.5, -1.0]},
            {"name": "color", "datatype": "BYTES", "shape": [2], "data": ["red", "blue"]},
        ]
    }
    r = rp.client.post("/v2/models/mixed/infer", json=body)
    assert r.status_code == 200, r.text
    x = np.array([["red", 0.5], ["blue", -1.0]], dtype=object)
    assert r.json()["outputs"][0]["data"] == est.predict(x).tolist()  # type: ignore[attr-defined]
    # one BYTES tensor holding the whole table works too, and V1 records
    r2 = rp.client.post("/v2/models/mixed/infer",
                        json=v2([["red", "0.5"], ["blue", "-1.0"]], [2, 2], "BYTES"))  # fmt: skip
    assert r2.json()["outputs"] == r.json()["outputs"]
    r3 = rp.client.post("/v1/models/mixed:predict", json={"instances": [
        {"color": "red", "size": 0.5}, {"color": "blue", "size": -1.0}]})  # fmt: skip
    assert r3.json()["predictions"] == r.json()["outputs"][0]["data"]
    m = rp.metrics()
    assert metric_sum(m, mn.FEATURE_BIN_TOTAL, feature="color") == 6


def test_model_rejection_is_400_and_fails_alone_in_a_batch(start_runtime, mixed_bundle) -> None:
    bundle, _ = mixed_bundle
    rp: RuntimeProcess = start_runtime("--model-uri", str(bundle), "--max-latency-ms", "50",
                                       *trusted(bundle))  # fmt: skip

    def body(color: str) -> dict:
        return {
            "inputs": [
                {"name": "color", "datatype": "BYTES", "shape": [1], "data": [color]},
                {"name": "size", "datatype": "FP64", "shape": [1], "data": [0.1]},
            ]
        }

    def call(color: str) -> httpx.Response:
        with httpx.Client(base_url=rp.url, timeout=10) as c:
            return c.post("/v2/models/mixed/infer", json=body(color))

    with ThreadPoolExecutor(6) as pool:
        res = list(pool.map(call, ["red", "green", "purple", "blue", "red", "green"]))
    codes = [r.status_code for r in res]
    assert codes == [200, 200, 400, 200, 200, 200]
    assert "could not predict" in res[2].json()["error"] and "purple" in res[2].json()["error"]
    assert metric_sum(rp.metrics(), mn.INVALID_INPUTS_TOTAL, reason="model_rejected") == 1


# ----------------------------------------------------------------------------- text
def test_text_model_with_bytes_input(start_runtime, tmp_path: Path) -> None:
    texts = np.array(["good great fine", "bad awful poor", "great good", "poor bad"] * 10,
                     dtype=object)  # fmt: skip
    y = np.array(["pos", "neg", "pos", "neg"] * 10)
    est = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, y)
    out = tmp_path / "sentiment"
    m = pack(est, texts, out, name="sentiment", version="1", y=y)
    assert m.input == "text" and m.features[0].dtype == "string"
    rp: RuntimeProcess = start_runtime("--model-uri", str(out), *trusted(out))
    r = rp.client.post("/v2/models/sentiment/infer",
                       json=v2(["so good", "awful stuff"], [2], "BYTES"))  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == ["pos", "neg"]
    bad = rp.client.post("/v2/models/sentiment/infer", json=v2([1.0, 2.0], [2], "FP32"))
    assert bad.status_code == 400


# ----------------------------------------------------------------------------- onnx
def test_onnx_bundle(start_runtime, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_iris

    data = load_iris()
    est = LogisticRegression(max_iter=500).fit(data.data, data.target)
    out = tmp_path / "iris-onnx"
    m = pack(est, data.data, out, name="iris-onnx", version="1", format="onnx", y=data.target)
    assert m.format == "onnx" and (out / "model.onnx").is_file()
    rp: RuntimeProcess = start_runtime("--model-uri", str(out))
    body = v2(IRIS_ROWS, [3, 4], outputs=[{"name": "predict"}, {"name": "predict_proba"}])
    r = rp.client.post("/v2/models/iris-onnx/infer", json=body)
    assert r.status_code == 200, r.text
    pred, proba = r.json()["outputs"]
    assert pred["data"] == est.predict(np.array(IRIS_ROWS)).tolist()
    np.testing.assert_allclose(proba["data"], est.predict_proba(np.array(IRIS_ROWS)), atol=1e-4)
    assert rp.client.get("/v2/models/iris-onnx").json()["platform"] == "onnxruntime"


# ----------------------------------------------------------------------------- s3
@pytest.fixture
def s3_server() -> object:
    pytest.importorskip("boto3")
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(exe).exists():
        pytest.skip("moto[server] not installed: the s3:// loader is untested here")
    port = free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_s3_bundle(start_runtime, s3_server: str) -> None:
    import boto3

    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")  # fmt: skip
    s3.create_bucket(Bucket="models")
    for f in (BUNDLES / "diabetes").iterdir():
        s3.put_object(Bucket="models", Key=f"diabetes/1/{f.name}", Body=f.read_bytes())
    rp: RuntimeProcess = start_runtime("--model-uri", "s3://models/diabetes/1", env=env)
    assert (
        rp.client.post("/v2/models/diabetes/infer", json=v2([0.0] * 10, [1, 10])).status_code == 200
    )
    gone = start_runtime("--model-uri", "s3://models/nothing/here", env=env, ready=False)
    code, err = gone.wait_exit()
    assert code == 2 and "not found: s3://models/nothing/here/serinus.json" in err


# ----------------------------------------------------------------------------- pack CLI
def test_pack_cli_from_csv_and_joblib(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import joblib
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    d = load_diabetes()
    est = Ridge().fit(d.data, d.target)
    model_file = tmp_path / "ridge.joblib"
    joblib.dump(est, model_file)
    csv_file = tmp_path / "train.csv"
    with csv_file.open("w") as f:
        f.write(",".join([*d.feature_names, "target"]) + "\n")
        for row, t in zip(d.data, d.target, strict=True):
            f.write(",".join(map(str, [*row, t])) + "\n")
    out = tmp_path / "bundle"
    args = [str(model_file), "--sample", str(csv_file), "--target", "target", "--name",
            "sugar", "--version", "2", "--out", str(out)]  # fmt: skip
    assert pack_main(args) == 2
    assert "--trust" in capsys.readouterr().err
    assert pack_main([*args, "--trust"]) == 0
    printed = capsys.readouterr().out
    manifest = verify_bundle(out)
    assert manifest.format == "skops" and manifest.output_kind == "regression"
    assert [f.name for f in manifest.features] == list(d.feature_names)
    assert manifest.training_metrics["r2"] > 0.4 and manifest.sha256 in printed
    _, profile = read_bundle(out)
    assert profile is not None and profile.predictions.kind == "values"
    assert all(abs(sum(f.frequencies) + f.missing - 1) < 1e-9 for f in profile.features)
    assert pack_main([*args, "--trust"]) == 2  # out exists
    assert "--force" in capsys.readouterr().err
    assert pack_main([*args[:-1], str(tmp_path / "x"), "--trust", "--target", "nope"]) == 2
    assert "target column 'nope'" in capsys.readouterr().err
    bad_name = [*args[:6], "Bad Name", *args[7:-1], str(tmp_path / "y"), "--trust"]
    assert pack_main(bad_name) == 2
    assert "name 'Bad Name'" in capsys.readouterr().err
    assert pack_main(["--help"]) == 0


def test_example_bundles_verify() -> None:
    for d in sorted(BUNDLES.iterdir()):
        m = verify_bundle(d)
        assert json.loads((d / "serinus.json").read_text())["sha256"] == m.sha256
        assert (d / "model.skops").stat().st_size < 200_000
    assert os.path.getsize(BUNDLES / "iris" / "profile.json") < 20_000
