"""PromQL for the judge's inputs, and rendering of custom query templates. Pure strings, no I/O.

Every built-in query selects one revision's series of one model: `model=<name>`,
`revision=<revision>`, plus `namespace=<namespace>` when the target has one (in Kubernetes,
Prometheus' service discovery adds that label; in local mode there is none). Each returns one
increase over the window, summed over pods and grouped by what the judge reads (status code,
histogram bound `le`, class, feature and bin).

Monitoring reads the stable revision with one query (`monitor`): the union of tagged parts, the
counters' increases over the drift and label windows and the reference gauges, so every number of
a check comes from one evaluation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from serinus.metrics.provider import AnalysisTarget, MonitorTarget
from serinus_runtime import metric_names as mn

TEMPLATE_VARIABLES = ("namespace", "name", "variant", "revision", "interval")
"""The placeholders a custom query may use, as `{{name}}`."""

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


Target = AnalysisTarget | MonitorTarget
"""Whose series: both name the model (and namespace) the runtime's labels carry."""


class TemplateError(ValueError):
    """A custom query uses a placeholder that does not exist."""


def string_literal(value: str) -> str:
    """`value` as a double-quoted PromQL string.

    PromQL strings take Go's escapes, of which JSON's are a subset; with ensure_ascii off, JSON
    escapes only quotes, backslashes and control characters, so no surrogate pairs (which Go
    rejects) are produced."""
    return json.dumps(value, ensure_ascii=False)


def regex_alternatives(values: tuple[str, ...] | list[str]) -> str:
    """A regex (RE2, anchored by PromQL) matching exactly one of `values`."""
    return "|".join(_RE2_SPECIAL.sub(r"\\\1", value) for value in values)


def duration(seconds: int) -> str:
    """A PromQL range duration: 60 → '60s'."""
    if seconds < 1:
        raise ValueError(f"a PromQL window needs at least 1 second, got {seconds}")
    return f"{seconds}s"


def selector(
    metric: str,
    target: Target,
    revision: str,
    *,
    equal: Mapping[str, str] | None = None,
    regex: Mapping[str, str] | None = None,
) -> str:
    """`metric{model="…",revision="…"[,namespace="…"],…}` with every value escaped."""
    matchers = [f"{mn.MODEL}={string_literal(target.name)}"]
    matchers.append(f"{mn.REVISION}={string_literal(revision)}")
    if target.namespace:
        matchers.append(f"namespace={string_literal(target.namespace)}")
    matchers += [f"{label}={string_literal(value)}" for label, value in (equal or {}).items()]
    matchers += [f"{label}=~{string_literal(value)}" for label, value in (regex or {}).items()]
    return f"{metric}{{{','.join(matchers)}}}"


def _inference(target: Target, revision: str, metric: str) -> str:
    return selector(
        metric, target, revision, regex={mn.ENDPOINT: regex_alternatives(mn.INFERENCE_ENDPOINTS)}
    )


def _increase_by(labels: str, series: str, seconds: int) -> str:
    return f"sum by ({labels}) (increase({series}[{duration(seconds)}]))"


def requests_by_code(target: AnalysisTarget, revision: str, seconds: int) -> str:
    """Inference requests per status code: their sum is the request count, 5xx the errors.

    One query for both, so requests and errors come from the same samples and errors can
    never exceed requests."""
    return _increase_by(mn.CODE, _inference(target, revision, mn.REQUESTS_TOTAL), seconds)


def latency_buckets(target: AnalysisTarget, revision: str, seconds: int) -> str:
    """Cumulative latency histogram of inference requests, per `le`."""
    series = _inference(target, revision, f"{mn.LATENCY_SECONDS}_bucket")
    return _increase_by(mn.LE, series, seconds)


def prediction_counts(target: AnalysisTarget, revision: str, seconds: int) -> str:
    """Classifier: predicted rows per class."""
    series = selector(mn.PREDICTIONS_TOTAL, target, revision)
    return _increase_by(mn.CLASS, series, seconds)


def prediction_buckets(target: AnalysisTarget, revision: str, seconds: int) -> str:
    """Regressor: cumulative histogram of predicted values, per `le`."""
    series = selector(f"{mn.PREDICTION_VALUE}_bucket", target, revision)
    return _increase_by(mn.LE, series, seconds)


def feature_bins(target: AnalysisTarget, revision: str, seconds: int) -> str:
    """Input rows per feature and reference-profile bin."""
    series = selector(mn.FEATURE_BIN_TOTAL, target, revision)
    return _increase_by(f"{mn.FEATURE}, {mn.BIN}", series, seconds)


def presence(target: AnalysisTarget, revision: str, seconds: int) -> str:
    """Non-empty when Prometheus scraped the revision during the window, with or without
    traffic: the runtime exposes MODEL_READY from start-up, request counters only from the
    first request."""
    series = selector(mn.MODEL_READY, target, revision)
    return f"max(max_over_time({series}[{duration(seconds)}]))"


# --- monitoring ----------------------------------------------------------------------------------

MONITOR_PART = "serinus_part"
"""Label `monitor` adds to each series of its result: which part (PART_*) it belongs to."""

PART_READY = "ready"
PART_REQUESTS = "requests"
PART_ROWS = "rows"
PART_INVALID = "invalid"
PART_BINS = "bins"
PART_CLASSES = "classes"
PART_VALUES = "values"
PART_FEEDBACK = "feedback"
PART_ABSOLUTE_ERROR = "absolute_error"
PART_SQUARED_ERROR = "squared_error"
PART_CONFUSION = "confusion"
PART_REFERENCE_FEATURES = "reference_features"
PART_REFERENCE_PREDICTIONS = "reference_predictions"
PART_REFERENCE_ROWS = "reference_rows"


def exact_increase(series: str, window: str) -> str:
    """What `series` counted between its last sample before the window and its last sample in
    it: no extrapolation, unlike `increase()`, which scales a short window's ~(w - scrape
    interval) of samples up to w — on windows of a few scrape intervals that inflates every
    count (seen: a 2 s window at a 1 s scrape interval doubled them) and with them the chi-square
    tests' confidence. A series without a sample before the window counts from its first
    sample in it (like `increase()`, that first sample's own value is unknown: the counter may
    have started at zero in the window, or Prometheus only began scraping it; the runtime
    exposes its counters at zero from start-up where it can, so little is missed). A series
    that went down (a restarted pod) counts nothing this once."""
    earlier = f"{series} offset {window}"
    born = f"({series} - min_over_time({series}[{window}]))"
    return f"({series} - {earlier}) >= 0 or ({born} unless {earlier})"


def _tagged(part: str, query: str) -> str:
    """`query` with MONITOR_PART=`part` on every series (label_replace of an empty source)."""
    return f'label_replace({query}, "{MONITOR_PART}", "{part}", "", "")'


def monitor(target: MonitorTarget, drift_seconds: int, label_seconds: int) -> str:
    """Everything monitoring reads of the stable revision, as one query: the `or` of parts
    tagged with MONITOR_PART (so no two parts' series can collide).

    Over the drift window: PART_READY (MODEL_READY seen at all: the revision is scraped),
    inference requests of every status, rows, rejected inputs by reason, input rows by feature
    and bin, predictions by class (classifiers) or per value bucket (regressors). Over the
    label window: feedback rows by outcome, the regressor's error sums, the confusion counts
    by true label and predicted class. The reference gauges are constant per revision: the
    last value in the drift window, the max over pods (all pods serve the same bundle), so a
    pod that just restarted, or one gone since, still gives them."""
    revision = target.revision
    drift, label = duration(drift_seconds), duration(label_seconds)

    def counted(metric: str, by: str = "", window: str = drift, **regex: str) -> str:
        series = selector(metric, target, revision, regex=regex or None)
        grouped = f"sum by ({by}) " if by else "sum"
        return f"{grouped}({exact_increase(series, window)})"

    def reference(metric: str, by: str) -> str:
        series = selector(metric, target, revision)
        return f"max by ({by}) (last_over_time({series}[{drift}]))"

    ready = f"max(max_over_time({selector(mn.MODEL_READY, target, revision)}[{drift}]))"
    endpoints = regex_alternatives(mn.INFERENCE_ENDPOINTS)
    parts = {
        PART_READY: ready,
        PART_REQUESTS: counted(mn.REQUESTS_TOTAL, **{mn.ENDPOINT: endpoints}),
        PART_ROWS: counted(mn.ROWS_TOTAL),
        PART_INVALID: counted(mn.INVALID_INPUTS_TOTAL, mn.REASON),
        PART_BINS: counted(mn.FEATURE_BIN_TOTAL, f"{mn.FEATURE}, {mn.BIN}"),
        PART_CLASSES: counted(mn.PREDICTIONS_TOTAL, mn.CLASS),
        PART_VALUES: counted(f"{mn.PREDICTION_VALUE}_bucket", mn.LE),
        PART_FEEDBACK: counted(mn.FEEDBACK_TOTAL, mn.OUTCOME, label),
        PART_ABSOLUTE_ERROR: counted(mn.FEEDBACK_ABSOLUTE_ERROR_TOTAL, window=label),
        PART_SQUARED_ERROR: counted(mn.FEEDBACK_SQUARED_ERROR_TOTAL, window=label),
        PART_CONFUSION: counted(mn.FEEDBACK_CONFUSION_TOTAL, f"{mn.LABEL}, {mn.CLASS}", label),
        PART_REFERENCE_FEATURES: reference(
            mn.REFERENCE_FEATURE_SHARE, f"{mn.FEATURE}, {mn.BIN}, {mn.KIND}"
        ),
        PART_REFERENCE_PREDICTIONS: reference(
            mn.REFERENCE_PREDICTION_SHARE, f"{mn.CLASS}, {mn.LE}"
        ),
        PART_REFERENCE_ROWS: reference(mn.REFERENCE_ROWS, ""),
    }
    return " or ".join(_tagged(part, query) for part, query in parts.items())


def render(template: str, target: AnalysisTarget, variant: str, revision: str, seconds: int) -> str:
    """Substitute {{namespace}}, {{name}}, {{variant}}, {{revision}} and {{interval}} ("60s").

    Values are escaped for use inside a double-quoted PromQL string (where templates put them);
    a missing namespace (local mode) becomes "", which PromQL matches against series without
    the label. Raises TemplateError for an unknown placeholder."""
    values = {
        "namespace": target.namespace or "",
        "name": target.name,
        "variant": variant,
        "revision": revision,
    }

    def substitute(match: re.Match[str]) -> str:
        variable = match.group(1)
        if variable == "interval":
            return duration(seconds)
        if variable not in values:
            known = ", ".join(f"{{{{{name}}}}}" for name in TEMPLATE_VARIABLES)
            raise TemplateError(f"unknown placeholder {match.group(0)}; known ones: {known}")
        return string_literal(values[variable])[1:-1]

    return _PLACEHOLDER.sub(substitute, template)
