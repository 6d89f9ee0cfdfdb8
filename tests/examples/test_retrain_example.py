"""examples/retrain/retrain.py, run the way the operator runs it: a process with SERINUS_* set."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris

from serinus.api.spec import default_metrics
from serinus.core import stats
from serinus.demo.bundles import FEATURES
from serinus.local.load import rows_from_profile
from serinus_runtime.loading import ModelSource, load_model

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "retrain" / "retrain.py"
STABLE = ROOT / "examples" / "bundles" / "iris"  # the demo's v1 recipe, version 1
CLASSES = ("setosa", "versicolor", "virginica")
DRIFT_MAX = next(m.max for m in default_metrics() if m.name == "prediction-drift")


def run_script(
    cwd: Path, result_file: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SERINUS_")},
        "SERINUS_RETRAIN_REASON": "input drift on petal_length_cm (PSI 0.31 > 0.2)",
        "SERINUS_RETRAIN_TRIGGER": "inputDrift",
        "SERINUS_MODEL_URI": str(STABLE),
        "SERINUS_MODEL_SHA256": "",
        "SERINUS_MODEL_VERSION": "1",
        "SERINUS_WINDOW_START": "2026-11-23T11:00:00Z",
        "SERINUS_WINDOW_END": "2026-11-23T12:00:00Z",
        "SERINUS_RESULT_FILE": str(result_file),
        **env,
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def script_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serinus_retrain_example", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def predict(uri: str, sha256: str | None, rows: list[dict[str, Any]]) -> np.ndarray:
    model = load_model(ModelSource(uri=uri, sha256=sha256))
    pred, _ = model.run(model.signature.decode_v1(rows), False)
    return np.asarray(pred)


def class_counts(model: Any, rows: np.ndarray) -> list[float]:
    pred = model.run(rows, False)[0].tolist()
    return [float(pred.count(c)) for c in CLASSES]


@pytest.mark.slow
def test_retrained_bundle_is_a_drop_in_for_the_demo_model(tmp_path: Path) -> None:
    result_file = tmp_path / "result.json"
    # relative --output-dir: local mode runs the command in the manifest's directory
    done = run_script(tmp_path, result_file, "--output-dir", "models")
    assert done.returncode == 0, done.stderr
    assert "hold-out accuracy" in done.stdout and "retrain: error" not in done.stderr

    text = result_file.read_text()
    assert len(text.encode()) < 4096
    result = json.loads(text)
    bundle = tmp_path / "models" / "iris-v2"
    assert result == {"uri": str(bundle), "sha256": result["sha256"], "version": "2"}
    assert Path(result["uri"]).is_absolute()
    assert result["sha256"] == hashlib.sha256((bundle / "model.skops").read_bytes()).hexdigest()
    provenance = json.loads((bundle / "retrain.json").read_text())
    assert provenance["trigger"] == "inputDrift" and provenance["previous"]["version"] == "1"

    model = load_model(ModelSource(uri=result["uri"], sha256=result["sha256"]))
    assert (model.name, model.version, model.kind) == ("iris", "2", "classification")
    assert model.signature.names == FEATURES
    assert model.classes is not None
    assert model.classes.tolist() == ["setosa", "versicolor", "virginica"]
    assert model.manifest is not None and model.manifest.trusted_types == []
    assert model.profile is not None
    assert [f.name for f in model.profile.features] == list(FEATURES)

    iris = load_iris()
    rows = [dict(zip(FEATURES, map(float, r), strict=True)) for r in iris.data]
    new = predict(result["uri"], result["sha256"], rows)
    assert new[0] == "setosa"
    old = predict(str(STABLE), None, rows)
    assert float(np.mean(new == old)) >= 0.95  # v1's answers on the real rows
    # and v1's class mix on the demo's traffic: the canary's prediction-drift gate passes
    traffic = rows_from_profile(STABLE, 2000, seed=0)
    mix_old = class_counts(load_model(ModelSource(uri=str(STABLE))), traffic)
    mix_new = class_counts(model, traffic)
    assert stats.psi(mix_old, mix_new) < DRIFT_MAX / 2

    # Retrained again while v2 is still a candidate: the next free version, v2 untouched.
    again = run_script(tmp_path, result_file, "--output-dir", "models")
    assert again.returncode == 0, again.stderr
    second = json.loads(result_file.read_text())
    assert second["version"] == "3" and second["uri"] == str(tmp_path / "models" / "iris-v3")
    assert json.loads((bundle / "serinus.json").read_text())["sha256"] == result["sha256"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["iris-v2", "iris-v3"]


@pytest.mark.slow
def test_unwritable_output_dir_fails_without_a_result(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output directory's parent should be\n")
    result_file = tmp_path / "result.json"
    done = run_script(tmp_path, result_file, "--output-dir", str(blocker / "models"))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("retrain: error: cannot create output directory ")
    assert str(blocker / "models") in last and "Not a directory" in last
    assert "Traceback" not in done.stderr
    assert not result_file.exists()


@pytest.mark.slow
def test_features_unlike_the_current_model_fail_without_a_result(tmp_path: Path) -> None:
    result_file = tmp_path / "result.json"
    done = run_script(tmp_path, result_file, "--output-dir", "models", "--dataset", "wine")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("retrain: error: the current model 'iris' takes features")
    assert not result_file.exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == []  # no staging left behind


def test_derived_version(tmp_path: Path) -> None:
    retrain = script_module()
    now = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.UTC)
    assert retrain.derived_version("1", tmp_path, "iris", now) == "2"
    (tmp_path / "iris-v2").mkdir()
    (tmp_path / "iris-v3").mkdir()
    assert retrain.derived_version("1", tmp_path, "iris", now) == "4"
    assert retrain.derived_version("41", tmp_path, "iris", now) == "42"
    assert retrain.derived_version("", tmp_path, "iris", now) == "20261123T120000"
    assert retrain.derived_version("1.4.0", tmp_path, "iris", now) == "20261123T120000"
    local = now.astimezone(dt.timezone(dt.timedelta(hours=5)))
    assert retrain.derived_version("v7", tmp_path, "iris", local) == "20261123T120000"
