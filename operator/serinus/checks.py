"""Pre-traffic validation of a new version: smoke requests and the hold-out dataset gate.

Run as `serinus check --plan JSON` (the Kubernetes validation Job, and local mode), against the
runtime's V2 protocol. The outcome is one line a person can act on; the Job writes it to its
termination message, where the operator reads it into status.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn import metrics as sk_metrics

from serinus.api.spec import LOWER_IS_BETTER, DatasetGate, DatasetMetric, SmokeRequest
from serinus.api.spec import ValidationSpec as Validation

BATCH_ROWS = 256
TERMINATION_LOG = Path("/dev/termination-log")


class CheckPlan(BaseModel):
    """What to validate, against which runtime."""

    model_config = ConfigDict(populate_by_name=True)

    model: str = Field(description="Model name in the runtime's URLs.")
    url: str = Field(description="Base URL of the new version's runtime.")
    stable_url: str | None = Field(default=None, alias="stableUrl")
    validation: Validation = Field(default_factory=Validation)


class CheckResult(BaseModel):
    passed: bool
    message: str


class CheckError(Exception):
    """The new version could not be checked (unreachable, bad answer, unreadable dataset)."""


def _tensor(rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    width = len(rows[0]) if rows else 0
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for r in rows for v in r)
    return {
        "name": "input-0",
        "shape": [len(rows), width],
        "datatype": "FP64" if numeric else "BYTES",
        "data": [value for row in rows for value in row],
    }


def infer(
    client: httpx.Client, url: str, model: str, rows: Sequence[Sequence[Any]], output: str
) -> list[Any]:
    """Predictions (or probabilities) for rows, through the V2 protocol."""
    body = {"inputs": [_tensor(rows)], "outputs": [{"name": output}]}
    endpoint = f"{url.rstrip('/')}/v2/models/{model}/infer"
    try:
        response = client.post(endpoint, json=body)
    except httpx.HTTPError as error:
        raise CheckError(f"{endpoint} unreachable: {error}") from error
    if response.status_code != 200:
        try:
            reason = response.json().get("error", response.text)
        except ValueError:
            reason = response.text[:200]
        raise CheckError(f"{endpoint} answered {response.status_code}: {reason}")
    try:
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        tensor = outputs[output]
    except (ValueError, KeyError, TypeError) as error:
        raise CheckError(f"{endpoint} gave no {output!r} output: {response.text[:200]}") from error
    data, shape = tensor["data"], tensor.get("shape", [len(rows)])
    if len(shape) == 2:
        return [data[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
    return list(data)


def same_prediction(expected: Any, got: Any) -> bool:
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return math.isclose(float(expected), float(got), rel_tol=1e-6, abs_tol=1e-9)
    return str(expected) == str(got)


def smoke_problems(requests: Sequence[SmokeRequest], answers: Sequence[Sequence[Any]]) -> list[str]:
    """What differs between expected and received predictions, one line per request."""
    problems = []
    for index, (request, got) in enumerate(zip(requests, answers, strict=True), start=1):
        if request.expect is None:
            continue
        if len(got) != len(request.expect) or not all(
            same_prediction(e, g) for e, g in zip(request.expect, got, strict=False)
        ):
            problems.append(f"smoke request {index}: expected {request.expect}, got {list(got)}")
    return problems


def read_dataset(uri: str, target: str) -> tuple[list[list[Any]], list[Any]]:
    """Feature rows and labels from a CSV file (path, file:// or http(s)://)."""
    try:
        if uri.startswith(("http://", "https://")):
            text = httpx.get(uri, timeout=30, follow_redirects=True).raise_for_status().text
        else:
            text = Path(uri.removeprefix("file://")).read_text()
    except (OSError, httpx.HTTPError) as error:
        raise CheckError(f"dataset {uri} unreadable: {error}") from error
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or target not in reader.fieldnames:
        raise CheckError(f"dataset {uri} has no column {target!r} (columns: {reader.fieldnames})")
    features = [name for name in reader.fieldnames if name != target]
    rows, labels = [], []
    for record in reader:
        rows.append([_number_or_text(record[name]) for name in features])
        labels.append(_number_or_text(record[target]))
    if not rows:
        raise CheckError(f"dataset {uri} has no rows")
    return rows, labels


def _number_or_text(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def score(metric: DatasetMetric, labels: Sequence[Any], predicted: Sequence[Any]) -> float:
    """The dataset metric; `predicted` holds class-1 probabilities for roc_auc."""
    y_true = np.asarray(labels)
    y_pred = np.asarray(predicted)
    match metric:
        case DatasetMetric.ACCURACY:
            return float(sk_metrics.accuracy_score(y_true.astype(str), y_pred.astype(str)))
        case DatasetMetric.F1:
            average = "binary" if len(set(map(str, labels))) <= 2 else "macro"
            truth, guess = y_true.astype(str), y_pred.astype(str)
            positive = sorted(set(truth))[-1]
            if average == "binary":
                return float(sk_metrics.f1_score(truth, guess, pos_label=positive))
            return float(sk_metrics.f1_score(truth, guess, average="macro"))
        case DatasetMetric.ROC_AUC:
            return float(sk_metrics.roc_auc_score(y_true, y_pred))
        case DatasetMetric.RMSE:
            return float(np.sqrt(sk_metrics.mean_squared_error(y_true, y_pred)))
        case DatasetMetric.MAE:
            return float(sk_metrics.mean_absolute_error(y_true, y_pred))
        case DatasetMetric.R2:
            return float(sk_metrics.r2_score(y_true, y_pred))


def gate_problems(gate: DatasetGate, value: float, stable: float | None) -> list[str]:
    """Why a dataset score fails its gate; empty when it passes."""
    name, problems = gate.metric.value, []
    if gate.min is not None and value < gate.min:
        problems.append(f"{name} {value:.4f} is below min {gate.min}")
    if gate.max is not None and value > gate.max:
        problems.append(f"{name} {value:.4f} is above max {gate.max}")
    if gate.max_drop_vs_stable is not None and stable is not None:
        drop = value - stable if gate.metric in LOWER_IS_BETTER else stable - value
        if drop > gate.max_drop_vs_stable:
            problems.append(
                f"{name} {value:.4f} is {drop:.4f} worse than stable's {stable:.4f} "
                f"(maxDropVsStable {gate.max_drop_vs_stable})"
            )
    return problems


def _dataset_score(
    client: httpx.Client, url: str, model: str, gate: DatasetGate, rows: list, labels: list
) -> float:
    output = "predict_proba" if gate.metric == DatasetMetric.ROC_AUC else "predict"
    predicted: list[Any] = []
    for start in range(0, len(rows), BATCH_ROWS):
        predicted += infer(client, url, model, rows[start : start + BATCH_ROWS], output)
    if gate.metric == DatasetMetric.ROC_AUC:
        predicted = [p[-1] if isinstance(p, list) else p for p in predicted]
    return score(gate.metric, labels, predicted)


def run_checks(plan: CheckPlan, client: httpx.Client) -> CheckResult:
    """Smoke requests, then the dataset gate; the first problems end it."""
    validation = plan.validation
    notes = []
    try:
        answers = [
            infer(client, plan.url, plan.model, request.inputs, "predict")
            for request in validation.smoke
        ]
        problems = smoke_problems(validation.smoke, answers)
        if problems:
            return CheckResult(passed=False, message="; ".join(problems))
        notes.append(f"{len(validation.smoke)} smoke requests answered as expected")
        gate = validation.dataset
        if gate is not None:
            rows, labels = read_dataset(gate.uri, gate.target)
            value = _dataset_score(client, plan.url, plan.model, gate, rows, labels)
            stable = None
            if gate.max_drop_vs_stable is not None and plan.stable_url:
                stable = _dataset_score(client, plan.stable_url, plan.model, gate, rows, labels)
            problems = gate_problems(gate, value, stable)
            if problems:
                return CheckResult(passed=False, message="; ".join(problems))
            against = f" (stable {stable:.4f})" if stable is not None else ""
            notes.append(f"{gate.metric.value} {value:.4f} on {len(rows)} rows{against}")
    except CheckError as error:
        return CheckResult(passed=False, message=str(error))
    return CheckResult(passed=True, message="; ".join(notes))


def check_main(plan_json: str, timeout: float = 30.0) -> int:
    """`serinus check`: exit 0 when the new version passes, 1 when not; the line explains."""
    plan = CheckPlan.model_validate_json(plan_json)
    with httpx.Client(timeout=timeout) as client:
        result = run_checks(plan, client)
    line = ("passed: " if result.passed else "failed: ") + result.message
    print(line)
    with contextlib.suppress(OSError):  # outside a Kubernetes container there is no such file
        TERMINATION_LOG.write_text(line[:4000])
    return 0 if result.passed else 1
