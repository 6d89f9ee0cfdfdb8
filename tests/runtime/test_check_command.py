"""`serinus check` (what the validation Job runs) against a real runtime process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_helpers import BUNDLES, RuntimeProcess
from sklearn.datasets import load_iris

SERINUS = Path(sys.executable).parent / "serinus"


@pytest.fixture(scope="module")
def iris() -> Iterator[RuntimeProcess]:
    process = RuntimeProcess(["--model-uri", str(BUNDLES / "iris"), "--name", "iris"])
    yield process.wait_ready()
    process.stop()


def check(plan: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SERINUS), "check", "--plan", json.dumps(plan)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_smoke_requests_with_the_right_answers_pass(iris):
    plan = {"model": "iris", "url": iris.url,
            "validation": {"smoke": [{"inputs": [[5.1, 3.5, 1.4, 0.2]], "expect": ["setosa"]},
                                     {"inputs": [[6.7, 3.0, 5.2, 2.3]]}]}}  # fmt: skip
    result = check(plan)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "passed: 2 smoke requests answered as expected"


def test_a_wrong_answer_fails_and_says_which(iris):
    smoke = [{"inputs": [[5.1, 3.5, 1.4, 0.2]], "expect": ["virginica"]}]
    result = check({"model": "iris", "url": iris.url, "validation": {"smoke": smoke}})
    assert result.returncode == 1
    assert result.stdout.strip() == (
        "failed: smoke request 1: expected ['virginica'], got ['setosa']"
    )


def test_a_malformed_smoke_request_fails_with_the_runtimes_reason(iris):
    plan = {"model": "iris", "url": iris.url,
            "validation": {"smoke": [{"inputs": [[5.1, 3.5]]}]}}  # fmt: skip
    result = check(plan)
    assert result.returncode == 1
    assert "answered 400" in result.stdout and "feature" in result.stdout


def _holdout(tmp_path: Path) -> Path:
    data = load_iris()
    path = tmp_path / "holdout.csv"
    lines = ["a,b,c,d,species"]
    names = data.target_names  # the bundle predicts species names
    for row, label in zip(data.data, data.target, strict=True):
        lines.append(",".join(map(str, [*row, names[label]])))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_dataset_gate_scores_the_new_version_and_compares_with_stable(iris, tmp_path):
    gate = {"uri": str(_holdout(tmp_path)), "target": "species", "metric": "accuracy",
            "min": 0.9, "maxDropVsStable": 0.01}  # fmt: skip
    plan = {"model": "iris", "url": iris.url, "stableUrl": iris.url,
            "validation": {"dataset": gate}}  # fmt: skip
    result = check(plan)
    assert result.returncode == 0, result.stdout
    assert "accuracy 0.9" in result.stdout and "on 150 rows (stable 0.9" in result.stdout
    too_strict = check(plan | {"validation": {"dataset": gate | {"min": 0.999}}})
    assert too_strict.returncode == 1
    assert "is below min 0.999" in too_strict.stdout


def test_an_unreachable_runtime_fails_clearly():
    plan = {"model": "iris", "url": "http://127.0.0.1:9",
            "validation": {"smoke": [{"inputs": [[5.1, 3.5, 1.4, 0.2]]}]}}  # fmt: skip
    result = check(plan)
    assert result.returncode == 1
    assert "unreachable" in result.stdout


def test_a_bad_plan_is_refused_with_exit_2():
    result = check({"url": "http://x"})
    assert result.returncode == 2
    assert "--plan is not a valid check plan" in result.stderr
