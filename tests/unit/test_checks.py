"""Pre-traffic validation logic: smoke comparisons, dataset scores and gates."""

from __future__ import annotations

import pytest

from serinus.api.spec import DatasetGate, SmokeRequest
from serinus.checks import (
    CheckError,
    gate_problems,
    read_dataset,
    same_prediction,
    score,
    smoke_problems,
)


def test_smoke_requests_that_match_pass_and_mismatches_are_named():
    requests = [
        SmokeRequest(inputs=[[1.0, 2.0]], expect=[0]),
        SmokeRequest(inputs=[[3.0, 4.0]], expect=["setosa"]),
        SmokeRequest(inputs=[[5.0, 6.0]]),
    ]
    assert smoke_problems(requests, [[0], ["setosa"], [2]]) == []
    assert smoke_problems(requests, [[1], ["setosa"], [2]]) == [
        "smoke request 1: expected [0], got [1]"
    ]


def test_predictions_compare_numbers_with_tolerance_and_labels_as_text():
    assert same_prediction(0, 0.0)
    assert same_prediction(1.2345678, 1.2345679)
    assert not same_prediction(1.0, 1.1)
    assert same_prediction("1", 1)  # a label that arrives as text still matches its number
    assert same_prediction("setosa", "setosa")


@pytest.mark.parametrize(
    ("metric", "labels", "predicted", "expected"),
    [
        ("accuracy", [0, 1, 1, 0], [0, 1, 0, 0], 0.75),
        ("f1", [0, 1, 1, 0], [0, 1, 0, 0], 2 / 3),
        ("roc_auc", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        ("rmse", [1.0, 2.0], [1.0, 4.0], 2**0.5),
        ("mae", [1.0, 2.0], [2.0, 4.0], 1.5),
        ("r2", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 1.0),
    ],
)
def test_scores(metric, labels, predicted, expected):
    assert score(metric, labels, predicted) == pytest.approx(expected)


def test_gate_floor_ceiling_and_drop_against_stable():
    accuracy = DatasetGate(
        uri="d.csv", target="y", metric="accuracy", min=0.9, max_drop_vs_stable=0.02
    )
    assert gate_problems(accuracy, 0.95, 0.96) == []
    assert gate_problems(accuracy, 0.85, None) == ["accuracy 0.8500 is below min 0.9"]
    assert gate_problems(accuracy, 0.91, 0.95) == [
        "accuracy 0.9100 is 0.0400 worse than stable's 0.9500 (maxDropVsStable 0.02)"
    ]
    rmse = DatasetGate(uri="d.csv", target="y", metric="rmse", max=10, max_drop_vs_stable=1)
    assert gate_problems(rmse, 9.5, 9.0) == []
    assert gate_problems(rmse, 9.5, 8.0) == [
        "rmse 9.5000 is 1.5000 worse than stable's 8.0000 (maxDropVsStable 1.0)"
    ]


def test_dataset_is_read_from_csv_with_its_target_column(tmp_path):
    path = tmp_path / "holdout.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n")
    rows, labels = read_dataset(str(path), "label")
    assert rows == [[1.0, 2.0], [3.0, 4.0]] and labels == [0.0, 1.0]
    with pytest.raises(CheckError, match="has no column 'y'"):
        read_dataset(f"file://{path}", "y")
    with pytest.raises(CheckError, match="unreadable"):
        read_dataset(str(tmp_path / "missing.csv"), "label")
