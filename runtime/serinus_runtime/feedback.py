"""Delayed labels: remember recent predictions by request id (bounded), score labels sent later."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from serinus_runtime.errors import InvalidInput


@dataclass
class FeedbackResult:
    correct: int = 0
    incorrect: int = 0
    scored: int = 0
    abs_error: float = 0.0
    sq_error: float = 0.0
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)
    """Classifiers: rows by (true label, predicted class), string forms; sums to correct +
    incorrect."""
    unknown_ids: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"unknown_ids": self.unknown_ids, "errors": self.invalid}
        if self.scored:
            out["scored"] = self.scored
            out["mean_absolute_error"] = self.abs_error / self.scored
        else:
            out["correct"] = self.correct
            out["incorrect"] = self.incorrect
        return out


class FeedbackStore:
    """Predictions of the last `capacity` requests (and at most `max_rows` rows), by id.

    A label is scored once: the entry is removed when its feedback arrives.
    """

    def __init__(self, capacity: int, max_rows: int) -> None:
        self.capacity = capacity
        self.max_rows = max_rows
        self.rows = 0
        self.items: OrderedDict[str, np.ndarray] = OrderedDict()

    def remember(self, request_id: str, y: np.ndarray) -> None:
        if self.capacity <= 0:
            return
        items = self.items
        old = items.pop(request_id, None)
        if old is not None:
            self.rows -= old.shape[0]
        items[request_id] = y.copy()
        self.rows += y.shape[0]
        while len(items) > self.capacity or (self.rows > self.max_rows and len(items) > 1):
            _, dropped = items.popitem(last=False)
            self.rows -= dropped.shape[0]

    def score(self, body: Any, classification: bool) -> FeedbackResult:
        """Score `{"id", "labels"|"label"}` or `{"feedback": [such objects]}`."""
        if type(body) is not dict:
            raise InvalidInput(
                "bad_request", 'feedback must be a JSON object: {"id": ..., "labels": [...]}'
            )
        entries = body.get("feedback") if "feedback" in body else [body]
        if type(entries) is not list or not entries:
            raise InvalidInput(
                "bad_request", '"feedback" must be a non-empty list of {"id", "labels"}'
            )
        res = FeedbackResult()
        for i, e in enumerate(entries):
            where = f"feedback[{i}]" if "feedback" in body else "feedback"
            if type(e) is not dict or type(e.get("id")) is not str:
                raise InvalidInput(
                    "bad_request", f'{where} needs a string "id" of an earlier request'
                )
            if "labels" in e:
                labels = e["labels"]
            elif "label" in e:
                labels = [e["label"]]
            else:
                raise InvalidInput(
                    "bad_request", f'{where} needs "labels" (one per row) or "label"'
                )
            if type(labels) is not list or not labels:
                raise InvalidInput("bad_request", f"{where}.labels must be a non-empty list")
            rid = e["id"]
            pred = self.items.get(rid)
            if pred is None:
                res.unknown_ids.append(rid)
                continue
            if len(labels) != pred.shape[0]:
                res.invalid.append(
                    f"{where}: request {rid!r} had {pred.shape[0]} row(s), "
                    f"got {len(labels)} label(s)"
                )
                continue
            if classification:
                try:
                    lab = (
                        np.asarray(labels).astype(pred.dtype) if pred.dtype.kind != "O" else labels
                    )
                except (TypeError, ValueError):
                    res.invalid.append(
                        f"{where}: labels {labels!r} are not of the model's class type"
                    )
                    continue
                confusion = res.confusion
                same = 0
                for a, b in zip(np.asarray(lab).tolist(), pred.tolist(), strict=True):
                    key = (str(a), str(b))
                    confusion[key] = confusion.get(key, 0) + 1
                    same += key[0] == key[1]
                res.correct += same
                res.incorrect += len(labels) - same
            else:
                try:
                    lab = np.asarray(labels, dtype=np.float64)
                except (TypeError, ValueError):
                    res.invalid.append(f"{where}: labels must be numbers for a regression model")
                    continue
                err = lab - pred.astype(np.float64).ravel()
                res.scored += len(labels)
                res.abs_error += float(np.abs(err).sum())
                res.sq_error += float((err**2).sum())
            del self.items[rid]
            self.rows -= pred.shape[0]
        return res
