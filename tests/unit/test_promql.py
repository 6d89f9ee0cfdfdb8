"""PromQL builders: the exact queries, label escaping, and custom query templates."""

from __future__ import annotations

import pytest

from serinus.metrics import promql
from serinus.metrics.provider import AnalysisTarget
from serinus_runtime import metric_names as mn

LOCAL = AnalysisTarget(name="iris", stable="s1", canary="c2")
IN_CLUSTER = AnalysisTarget(name="iris", namespace="ml", stable="s1", canary="c2")
INFERENCE = 'endpoint=~"infer|predict"'


def test_requests_by_code_over_the_inference_endpoints() -> None:
    assert promql.requests_by_code(IN_CLUSTER, "c2", 60) == (
        "sum by (code) (increase(serinus_requests_total"
        f'{{model="iris",revision="c2",namespace="ml",{INFERENCE}}}[60s]))'
    )


def test_latency_buckets_by_le() -> None:
    assert promql.latency_buckets(LOCAL, "s1", 300) == (
        "sum by (le) (increase(serinus_request_duration_seconds_bucket"
        f'{{model="iris",revision="s1",{INFERENCE}}}[300s]))'
    )


def test_prediction_and_feature_queries() -> None:
    series = '{model="iris",revision="c2"}[30s]'
    assert promql.prediction_counts(LOCAL, "c2", 30) == (
        f"sum by (class) (increase(serinus_predictions_total{series}))"
    )
    assert promql.prediction_buckets(LOCAL, "c2", 30) == (
        f"sum by (le) (increase(serinus_prediction_value_bucket{series}))"
    )
    assert promql.feature_bins(LOCAL, "c2", 30) == (
        f"sum by (feature, bin) (increase(serinus_feature_bin_total{series}))"
    )
    assert promql.presence(LOCAL, "c2", 30) == (f"max(max_over_time(serinus_model_ready{series}))")


@pytest.mark.parametrize(
    "build",
    [
        promql.requests_by_code,
        promql.latency_buckets,
        promql.prediction_counts,
        promql.prediction_buckets,
        promql.feature_bins,
    ],
)
def test_every_query_reads_a_runtime_metric_by_its_one_spelling(build) -> None:
    names = (mn.REQUESTS_TOTAL, mn.LATENCY_SECONDS, mn.PREDICTIONS_TOTAL, mn.PREDICTION_VALUE,
             mn.FEATURE_BIN_TOTAL)  # fmt: skip
    query = build(LOCAL, "c2", 60)
    assert sum(name in query for name in names) == 1
    assert query.startswith("sum by (") and query.endswith("[60s]))")


def test_namespace_is_selected_only_in_a_cluster() -> None:
    assert 'namespace="ml"' in promql.feature_bins(IN_CLUSTER, "c2", 60)
    assert "namespace" not in promql.feature_bins(LOCAL, "c2", 60)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", '"plain"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("two\nlines\ttab", r'"two\nlines\ttab"'),
        ("bell\x07", r'"bell\u0007"'),
        ("café ☕ 😀", '"café ☕ 😀"'),  # UTF-8 as is: no surrogate pairs, which PromQL rejects
    ],
)
def test_string_literals_are_escaped_for_promql(value: str, literal: str) -> None:
    assert promql.string_literal(value) == literal


def test_label_values_are_escaped_in_selectors() -> None:
    odd = AnalysisTarget(name='a"b\\c', namespace="n\n", stable="s", canary="c")
    assert promql.selector("m", odd, 'r"1') == r'm{model="a\"b\\c",revision="r\"1",namespace="n\n"}'


def test_regex_alternatives_escape_regex_syntax_then_promql_escapes_the_backslash() -> None:
    pattern = promql.regex_alternatives(["a.b", "c|d", "e(f)"])
    assert pattern == r"a\.b|c\|d|e\(f\)"
    assert promql.selector("m", LOCAL, "r", regex={"endpoint": pattern}).endswith(
        r'endpoint=~"a\\.b|c\\|d|e\\(f\\)"}'
    )


def test_window_durations_are_whole_seconds() -> None:
    assert promql.duration(90) == "90s"
    with pytest.raises(ValueError, match="at least 1 second"):
        promql.duration(0)


def test_templates_get_every_variable() -> None:
    template = (
        'sum(rate(http_errors{namespace="{{namespace}}",app="{{name}}",track="{{variant}}",'
        'rev="{{ revision }}"}[{{interval}}]))'
    )
    assert promql.render(template, IN_CLUSTER, "canary", "c2", 120) == (
        'sum(rate(http_errors{namespace="ml",app="iris",track="canary",rev="c2"}[120s]))'
    )


def test_template_namespace_is_empty_in_local_mode() -> None:
    # PromQL's `namespace=""` matches series without the label, which is what local mode has.
    assert promql.render('x{namespace="{{namespace}}"}', LOCAL, "stable", "s1", 60) == (
        'x{namespace=""}'
    )


def test_template_values_are_escaped_inside_the_users_quotes() -> None:
    odd = AnalysisTarget(name='we"ird', stable="s", canary="c")
    assert promql.render('x{app="{{name}}"}', odd, "canary", "c", 60) == r'x{app="we\"ird"}'


def test_unknown_placeholder_names_the_known_ones() -> None:
    with pytest.raises(promql.TemplateError) as raised:
        promql.render("x{job={{job}}}", LOCAL, "canary", "c2", 60)
    assert str(raised.value) == (
        "unknown placeholder {{job}}; known ones: {{namespace}}, {{name}}, {{variant}}, "
        "{{revision}}, {{interval}}"
    )


def test_text_without_placeholders_is_unchanged() -> None:
    query = 'sum by (le) (rate(x_bucket{a=~"b{2}"}[5m]))'
    assert promql.render(query, LOCAL, "canary", "c2", 60) == query
