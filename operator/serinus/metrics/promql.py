"""PromQL for the judge's inputs, and rendering of custom query templates. Pure strings, no I/O.

Every built-in query selects one revision's series of one model: `model=<name>`,
`revision=<revision>`, plus `namespace=<namespace>` when the target has one (in Kubernetes,
Prometheus' service discovery adds that label; in local mode there is none). Each returns one
increase over the window, summed over pods and grouped by what the judge reads (status code,
histogram bound `le`, class, feature and bin).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from serinus.metrics.provider import AnalysisTarget
from serinus_runtime import metric_names as mn

TEMPLATE_VARIABLES = ("namespace", "name", "variant", "revision", "interval")
"""The placeholders a custom query may use, as `{{name}}`."""

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


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
    target: AnalysisTarget,
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


def _inference(target: AnalysisTarget, revision: str, metric: str) -> str:
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
