"""Loading rules checked in-process (fast): every refusal names its cause."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import joblib
import pytest
import skops.io as sio
from runtime_helpers import BUNDLES
from serinus_test_models import SlowClassifier, Unpredictable

from serinus_runtime.bundle import verify_bundle
from serinus_runtime.errors import ModelLoadError
from serinus_runtime.loading import ModelSource, load_model


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def refused(uri: str | Path, **kw: object) -> str:
    with pytest.raises(ModelLoadError) as e:
        load_model(ModelSource(uri=str(uri), **kw))  # type: ignore[arg-type]
    return str(e.value)


def test_sha256_mismatch() -> None:
    msg = refused(BUNDLES / "iris", sha256="ab" * 32)
    assert "sha256 mismatch" in msg and "expected abab" in msg


def test_tampered_bundle(tmp_path: Path) -> None:
    b = tmp_path / "iris"
    shutil.copytree(BUNDLES / "iris", b)
    (b / "model.skops").write_bytes((BUNDLES / "iris-v2" / "model.skops").read_bytes())
    assert "digest in serinus.json" in refused(b)
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        verify_bundle(b)


def test_verify_bundle_ok_and_expected_digest() -> None:
    m = verify_bundle(BUNDLES / "iris")
    assert m.name == "iris" and verify_bundle(BUNDLES / "iris", m.sha256) == m
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        verify_bundle(BUNDLES / "iris", "0" * 64)


def test_unknown_format(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    assert "pass --format" in refused(f)
    assert "unknown model format 'pmml'" in refused(f, format="pmml")
    assert "contradicts the bundle" in refused(BUNDLES / "iris", format="onnx")


def test_not_a_model(tmp_path: Path) -> None:
    f = tmp_path / "model.skops"
    f.write_text("plain text")
    assert "is not a skops model file" in refused(f)
    g = tmp_path / "dict.skops"
    g.write_bytes(sio.dumps({"a": 1}))
    assert "has no predict method" in refused(g)
    h = tmp_path / "m.joblib"
    h.write_text("not a pickle")
    assert "is not a joblib/pickle model file" in refused(h, sha256=sha(h), trust=True)


def test_model_without_predict(tmp_path: Path) -> None:
    f = tmp_path / "m.joblib"
    joblib.dump(Unpredictable(), f)
    assert "no predict method" in refused(f, sha256=sha(f), trust=True)


def test_joblib_needs_both_sha256_and_trust(tmp_path: Path) -> None:
    f = tmp_path / "m.joblib"
    joblib.dump(SlowClassifier(0.0), f)
    assert "--sha256" in refused(f)
    assert "--sha256" in refused(f, trust=True)
    assert "--trust" in refused(f, sha256=sha(f))
    assert load_model(ModelSource(uri=str(f), sha256=sha(f), trust=True)).kind == "classification"


def test_untrusted_types(tmp_path: Path) -> None:
    f = tmp_path / "model.skops"
    f.write_bytes(sio.dumps(SlowClassifier(0.0)))
    assert "not trusted: serinus_test_models.SlowClassifier" in refused(f)
    m = load_model(ModelSource(uri=str(f), trusted_types=("serinus_test_models.SlowClassifier",)))
    assert m.signature.n == 2


def test_missing_and_bad_uris(tmp_path: Path) -> None:
    assert "does not exist" in refused(tmp_path / "nope.skops")
    assert "without serinus.json" in refused(tmp_path)
    assert "unsupported model URI scheme 'ftp'" in refused("ftp://host/model.skops")
    (tmp_path / "serinus.json").write_text('{"name": "Bad Name"}')
    assert "not a valid Serinus manifest" in refused(tmp_path)


def test_bundle_file_names_cannot_escape(tmp_path: Path) -> None:
    import json

    b = tmp_path / "b"
    shutil.copytree(BUNDLES / "iris", b)
    m = json.loads((b / "serinus.json").read_text())
    m["model_file"] = "../model.skops"
    (b / "serinus.json").write_text(json.dumps(m))
    assert "not a valid Serinus manifest" in refused(b)


def test_warm_up_failure_is_a_load_error(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    est = LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])
    est.coef_ = est.coef_[:, :1]  # now predict raises on 2 features
    f = tmp_path / "m.skops"
    f.write_bytes(sio.dumps(est))
    assert "warm-up prediction" in refused(f)


def test_runtime_imports_neither_kopf_nor_kubernetes() -> None:
    import subprocess
    import sys

    code = (
        "import sys, serinus_runtime.runner, serinus_runtime.pack, serinus_runtime.asgi\n"
        "bad = [m for m in ('kopf', 'kubernetes') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "import serinus_runtime.metric_names  # noqa\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    cheap = ("import sys, serinus_runtime.metric_names as mn\n"
             "assert 'prometheus_client' not in sys.modules and 'numpy' not in sys.modules\n"
             "assert mn.REQUESTS_TOTAL == 'serinus_requests_total'\n")  # fmt: skip
    subprocess.run([sys.executable, "-c", cheap], check=True)
