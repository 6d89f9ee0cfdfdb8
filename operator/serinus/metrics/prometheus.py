"""The `prometheus` provider: PromQL instant queries over Prometheus' HTTP API.

Each variant is read with a handful of `increase(...[Ns])` queries evaluated at the window's
end (`time=end`), N being the window rounded to whole seconds. Any failure — Prometheus
unreachable, slow, answering an HTTP error, a PromQL error or something that is not JSON —
becomes `AnalysisWindow.error`, which the judge reports as Inconclusive with that sentence.

Missing data: a revision without request series is looked up once more through MODEL_READY,
which the runtime exposes from start-up. Scraped but without requests → 0 requests (the judge
then says "only 0 canary requests"); not scraped at all → an error naming the selector.
Known limit: a counter series is created by its first increment, and Prometheus' increase()
does not count a series' first sample, so the first requests of a new status code are missed.

Monitoring (`monitor`) reads the stable revision with one query (promql.monitor) evaluated at
the check's end: counters over the drift window, feedback over the label window, and the
reference shares the runtime exposes. The same limit applies: the first rejected input of a
reason, or the first feedback row of an outcome, creates its series and is not counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from serinus.core.monitor_window import MonitorWindow
from serinus.core.window import AnalysisWindow, Bucket, VariantWindow
from serinus.metrics import promql
from serinus.metrics.provider import AnalysisTarget, MonitorTarget
from serinus_runtime import metric_names as mn

_QUERY_PATH = "/api/v1/query"
_SHOWN_QUERY_CHARS = 300


class PrometheusError(Exception):
    """Prometheus could not answer a query; the message says what and what to check."""


class Sample(BaseModel):
    """One element of an instant vector."""

    model_config = ConfigDict(frozen=True)

    metric: dict[str, str]
    value: tuple[float, str]

    @property
    def number(self) -> float:
        return float(self.value[1])


class QueryData(BaseModel):
    model_config = ConfigDict(frozen=True)

    resultType: str  # Prometheus' field name
    result: Any


@dataclass(frozen=True)
class _Scope:
    """One variant's queries: whose series, over how many seconds, evaluated when."""

    target: AnalysisTarget
    variant: str
    revision: str
    seconds: int
    at: float
    """Unix seconds of the window's end."""


def window_seconds(start: datetime, end: datetime) -> int:
    """The window as whole seconds (PromQL ranges), at least 1."""
    return max(1, round((end - start).total_seconds()))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class PrometheusProvider:
    """Reads analysis windows from the Prometheus at `address` (e.g. http://prometheus:9090)."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address.rstrip("/")
        self.timeout = timeout
        self._client = httpx.Client(base_url=self.address, timeout=timeout)

    def mark(self, target: AnalysisTarget) -> None:
        """Nothing to do: Prometheus keeps the history."""

    def close(self) -> None:
        self._client.close()

    def window(self, target: AnalysisTarget, start: datetime, end: datetime) -> AnalysisWindow:
        seconds = window_seconds(start, end)
        at = _utc(end).timestamp()
        try:
            canary = self._variant(_Scope(target, "canary", target.canary, seconds, at))
            stable = self._variant(_Scope(target, "stable", target.stable, seconds, at))
        except PrometheusError as problem:
            return AnalysisWindow(error=str(problem), interval_seconds=seconds)
        return AnalysisWindow(canary=canary, stable=stable, interval_seconds=seconds)

    def monitor(
        self, target: MonitorTarget, end: datetime, drift_seconds: int, label_seconds: int
    ) -> MonitorWindow:
        drift, label = max(1, int(drift_seconds)), max(1, int(label_seconds))
        query = promql.monitor(target, drift, label)
        try:
            samples = self.query(query, _utc(end).timestamp(), "monitoring query")
        except PrometheusError as problem:
            return MonitorWindow(error=str(problem), drift_seconds=drift, label_seconds=label)
        parts: dict[str, list[Sample]] = {}
        for sample in samples:
            parts.setdefault(sample.metric.get(promql.MONITOR_PART, ""), []).append(sample)
        if not parts.get(promql.PART_READY):
            selector = promql.selector(mn.MODEL_READY, target, target.revision)
            error = (
                f"Prometheus at {self.address} has no series {selector} in the last {drift}s "
                "for the stable version: check that Prometheus scrapes the stable pods' "
                "/metrics and keeps their model and revision labels"
            )
            return MonitorWindow(error=error, drift_seconds=drift, label_seconds=label)
        return _monitor_window(parts, drift, label)

    # --- one variant ---------------------------------------------------------------------------

    def _variant(self, scope: _Scope) -> VariantWindow:
        by_code = self._built_in(promql.requests_by_code, scope)
        if not by_code:
            self._require_presence(scope)
        requests = sum(sample.number for sample in by_code)
        errors = sum(
            sample.number for sample in by_code if sample.metric.get(mn.CODE, "").startswith("5")
        )
        classes = self._built_in(promql.prediction_counts, scope)
        return VariantWindow(
            requests=round(requests),
            errors=round(errors),
            latency_buckets=_buckets(self._built_in(promql.latency_buckets, scope)),
            prediction_counts=(
                {sample.metric.get(mn.CLASS, ""): sample.number for sample in classes}
                if classes
                else None
            ),
            prediction_buckets=_buckets(self._built_in(promql.prediction_buckets, scope)),
            feature_bins=_feature_bins(self._built_in(promql.feature_bins, scope)),
            custom=self._custom(scope),
        )

    def _built_in(
        self, build: Callable[[AnalysisTarget, str, int], str], scope: _Scope
    ) -> list[Sample]:
        return self.query(build(scope.target, scope.revision, scope.seconds), scope.at)

    def _require_presence(self, scope: _Scope) -> None:
        if self._built_in(promql.presence, scope):
            return
        variant = scope.variant
        raise PrometheusError(
            f"Prometheus at {self.address} has no series "
            f"{promql.selector(mn.MODEL_READY, scope.target, scope.revision)} in the last "
            f"{scope.seconds}s for the {variant}: check that Prometheus scrapes the {variant} "
            "pods' /metrics and keeps their model and revision labels"
        )

    def _custom(self, scope: _Scope) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        for metric in scope.target.custom:
            if metric.query is None:
                continue
            context = f"custom metric {metric.name}"
            try:
                query = promql.render(
                    metric.query, scope.target, scope.variant, scope.revision, scope.seconds
                )
            except promql.TemplateError as problem:
                raise PrometheusError(f"{context}: {problem}") from None
            values[metric.name] = self._single_value(query, scope.at, context)
        return values

    def _single_value(self, query: str, at: float, context: str) -> float | None:
        result_type, result = self._raw_query(query, at, context)
        if result_type == "scalar":
            value = float(result[1])
        else:
            samples = _vector(result, self.address, query)
            if not samples:
                return None
            if len(samples) > 1:
                raise PrometheusError(
                    f"{context}: the query returned {len(samples)} series where one value is "
                    f"needed: aggregate it, e.g. sum(...) (query: {_shown(query)})"
                )
            value = samples[0].number
        return None if math.isnan(value) else value

    # --- the HTTP API --------------------------------------------------------------------------

    def query(self, query: str, at: float, context: str = "built-in query") -> list[Sample]:
        """An instant query evaluated at `at` (Unix seconds) that must return a vector."""
        result_type, result = self._raw_query(query, at, context)
        if result_type != "vector":
            raise PrometheusError(
                f"Prometheus at {self.address} answered a {result_type} where a vector was "
                f"expected for {_shown(query)}"
            )
        return _vector(result, self.address, query)

    def _raw_query(self, query: str, at: float, context: str) -> tuple[str, Any]:
        where = f"Prometheus at {self.address}"
        try:
            response = self._client.get(_QUERY_PATH, params={"query": query, "time": f"{at:.3f}"})
        except httpx.TimeoutException:
            raise PrometheusError(
                f"{where}: no answer within {self.timeout:g}s: check that it is running and not "
                "overloaded"
            ) from None
        except httpx.TransportError as problem:
            raise PrometheusError(
                f"{where}: unreachable ({problem or type(problem).__name__}): check "
                "analysis.prometheus.address and that Prometheus is running"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            raise PrometheusError(
                f"{where}: {context} failed ({body.get('errorType', 'error')}: "
                f"{body.get('error', 'no message')}): check the query {_shown(query)}"
            )
        if response.is_error:
            raise PrometheusError(
                f"{where}: HTTP {response.status_code} from {_QUERY_PATH}: "
                f"{_http_advice(response.status_code)}"
            )
        if not isinstance(body, dict) or body.get("status") != "success":
            raise PrometheusError(
                f"{where}: {_QUERY_PATH} answered something that is not a Prometheus API "
                f"response ({_shown(response.text, 80)!r}): is the address Prometheus itself?"
            )
        try:
            data = QueryData.model_validate(body.get("data"))
        except ValidationError:
            raise PrometheusError(
                f"{where}: a query response without data.resultType/result: is the address "
                "Prometheus itself?"
            ) from None
        return data.resultType, data.result


def _http_advice(status: int) -> str:
    if status in (401, 403, 407):
        return (
            "Prometheus or a proxy in front of it refused the query: Serinus sends no "
            "credentials, so point analysis.prometheus.address at an endpoint that needs none"
        )
    if status >= 500:
        return (
            "Prometheus or a proxy in front of it failed (Prometheus answers 503 while it "
            "starts): check that it is up and its logs"
        )
    return (
        "check that the address is Prometheus' base URL (no path such as /api/v1) and that "
        "a proxy in front of it lets queries through"
    )


def _vector(result: Any, address: str, query: str) -> list[Sample]:
    try:
        return [Sample.model_validate(element) for element in result]
    except (ValidationError, TypeError):
        raise PrometheusError(
            f"Prometheus at {address}: an unreadable vector for {_shown(query)}"
        ) from None


def _shown(text: str, limit: int = _SHOWN_QUERY_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


def _buckets(samples: list[Sample]) -> list[Bucket] | None:
    """Cumulative buckets sorted by `le`; None when there are none (the metric is absent)."""
    buckets = [(float(sample.metric.get(mn.LE, "nan")), sample.number) for sample in samples]
    buckets = [bucket for bucket in buckets if not math.isnan(bucket[0])]
    return sorted(buckets) or None


def _feature_bins(samples: list[Sample]) -> dict[str, list[float]] | None:
    """Per feature, row counts indexed by bin; the `missing` bin is left out (it is no bin of
    the reference profile's distribution)."""
    counts: dict[str, dict[int, float]] = {}
    for sample in samples:
        feature, bin_label = sample.metric.get(mn.FEATURE), sample.metric.get(mn.BIN, "")
        if feature is None or not bin_label.isdigit():
            continue
        counts.setdefault(feature, {})[int(bin_label)] = sample.number
    if not counts:
        return None
    return {
        feature: [by_bin.get(index, 0.0) for index in range(max(by_bin) + 1)]
        for feature, by_bin in counts.items()
    }


# --- monitoring ----------------------------------------------------------------------------------


def _count(sample: Sample) -> float:
    """A sample as a count: NaN (no data in a ratio) and float noise below zero become 0."""
    value = sample.number
    return value if value > 0 else 0.0


def _monitor_window(parts: dict[str, list[Sample]], drift: int, label: int) -> MonitorWindow:
    def part(name: str) -> list[Sample]:
        return parts.get(name, [])

    def by(name: str, label_name: str) -> dict[str, float]:
        return {s.metric.get(label_name, ""): _count(s) for s in part(name)}

    bins = part(promql.PART_BINS)
    confusion: dict[str, dict[str, float]] = {}
    for sample in part(promql.PART_CONFUSION):
        true, predicted = sample.metric.get(mn.LABEL, ""), sample.metric.get(mn.CLASS, "")
        confusion.setdefault(true, {})[predicted] = _count(sample)
    references = part(promql.PART_REFERENCE_FEATURES)
    predictions = part(promql.PART_REFERENCE_PREDICTIONS)
    reference_classes = {
        s.metric[mn.CLASS]: _count(s) for s in predictions if s.metric.get(mn.CLASS)
    }
    reference_buckets = sorted(
        (float(s.metric[mn.LE]), _count(s)) for s in predictions if s.metric.get(mn.LE)
    )
    return MonitorWindow(
        drift_seconds=drift,
        label_seconds=label,
        requests=sum(_count(s) for s in part(promql.PART_REQUESTS)),
        rows=sum(_count(s) for s in part(promql.PART_ROWS)),
        invalid=by(promql.PART_INVALID, mn.REASON),
        feature_bins=_feature_bins(bins) or {},
        feature_missing={
            s.metric.get(mn.FEATURE, ""): _count(s)
            for s in bins
            if s.metric.get(mn.BIN) == "missing"
        },
        reference_features=_feature_bins(references) or {},
        reference_rows=max((_count(s) for s in part(promql.PART_REFERENCE_ROWS)), default=None),
        categorical=frozenset(
            s.metric.get(mn.FEATURE, "")
            for s in references
            if s.metric.get(mn.KIND) == "categorical"
        ),
        prediction_counts=by(promql.PART_CLASSES, mn.CLASS) or None,
        reference_predictions=reference_classes or None,
        prediction_buckets=_buckets(part(promql.PART_VALUES)),
        reference_prediction_buckets=reference_buckets or None,
        feedback=by(promql.PART_FEEDBACK, mn.OUTCOME),
        feedback_absolute_error=sum(_count(s) for s in part(promql.PART_ABSOLUTE_ERROR)),
        feedback_squared_error=sum(_count(s) for s in part(promql.PART_SQUARED_ERROR)),
        confusion=confusion,
    )
