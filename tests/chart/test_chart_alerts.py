"""Monitoring objects: they scrape what the operator really creates, and every alert is real
PromQL over metrics Serinus really exposes, checked and unit-tested by the real promtool."""

from __future__ import annotations

import copy
import math
import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import NAMESPACE, of_kind, one, render

import serinus_runtime.metric_names as runtime_metrics
from serinus.api.spec import ModelDeploymentSpec
from serinus.api.status import RolloutResult, Verdict
from serinus.kube import builders, operator_metrics
from serinus.traffic import naming

WATCHED = ["ml", "ml-staging"]
ALERTS = {
    "rolloutRolledBack": "SerinusRolloutRolledBack",
    "analysisInconclusive": "SerinusAnalysisInconclusive",
    "runtimeErrorRate": "SerinusRuntimeErrorRateHigh",
    "inputDrift": "SerinusInputDrift",
    "accuracyBelowFloor": "SerinusAccuracyBelowFloor",
    "modelDrifted": "SerinusModelDrifted",
    "modelDegraded": "SerinusModelDegraded",
}


def monitoring(**overrides: Any) -> dict[str, Any]:
    return {
        "monitoring": {
            "serviceMonitor": {"enabled": True},
            "podMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True, **overrides},
        }
    }


def rule_groups(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return one(render(values or monitoring()), "PrometheusRule")["spec"]["groups"]


def alert_rules(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(values) for rule in group["rules"]]


# ----------------------------------------------------------------------------- metric names


def known_metric_names() -> set[str]:
    """Every series name the runtime and the operator expose (histograms as scraped)."""
    histograms = {
        runtime_metrics.LATENCY_SECONDS,
        runtime_metrics.PREDICTION_VALUE,
        runtime_metrics.BATCH_ROWS,
    }
    names = {
        value
        for module in (runtime_metrics, operator_metrics)
        for key, value in vars(module).items()
        if key.isupper() and isinstance(value, str) and value.startswith("serinus_")
    }
    return (names - histograms) | {
        f"{h}{s}" for h in histograms for s in ("_bucket", "_sum", "_count")
    }


_STRIPPED = [
    r'"(?:[^"\\]|\\.)*"',  # strings (label values, regexes)
    r"\{[^}]*\}",  # label matchers
    r"\[[^\]]*\]",  # range durations
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",  # label lists
    r"\boffset\s+\w+",
    r"\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b",  # numbers
]
_KEYWORDS = {"and", "or", "unless", "bool", "group_left", "group_right", "on", "ignoring"}


def metric_names_in(expr: str) -> set[str]:
    """Series names in a PromQL expression: identifiers that are not functions, aggregations,
    keywords, labels, numbers or durations."""
    for pattern in _STRIPPED:
        expr = re.sub(pattern, " ", expr)
    identifiers = re.findall(r"[A-Za-z_:][\w:]*(?!\s*\()(?![\w:])", expr)
    return {name for name in identifiers if name not in _KEYWORDS}


def test_metric_name_extraction_sees_names_and_skips_the_rest() -> None:
    expr = (
        'sum by (namespace, name) (increase(a_total{x=~"b|c"}[5m] offset 1d)) / on (namespace)'
        " group_left b_total > 1e-05 and ln(c_bucket + 0.5) unless bool d"
    )
    assert metric_names_in(expr) == {"a_total", "b_total", "c_bucket", "d"}


def test_every_metric_in_the_rules_exists() -> None:
    known = known_metric_names()
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        names = metric_names_in(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        used[rule["alert"]] = names
    assert {alert: names - known for alert, names in used.items()} == {
        alert: set() for alert in used
    }
    assert set(used) == set(ALERTS.values())


def test_label_values_in_the_rules_are_the_ones_exposed() -> None:
    allowed = {
        runtime_metrics.ENDPOINT: set(runtime_metrics.ENDPOINTS),
        runtime_metrics.OUTCOME: set(runtime_metrics.FEEDBACK_OUTCOMES),
        "verdict": {v.value for v in Verdict},
        "result": {r.value for r in RolloutResult},
        "check": set(operator_metrics.MONITOR_CHECKS),
    }
    exprs = "\n".join(rule["expr"] for rule in alert_rules())
    matchers = re.findall(r'(\w+)=~?"([^"]+)"', exprs)
    assert {label for label, _ in matchers} == {*allowed, runtime_metrics.CODE}
    for label, value in matchers:
        if label != runtime_metrics.CODE:  # "5..": a regex over status codes
            assert set(value.split("|")) <= allowed[label], (label, value)
    inference = "|".join(runtime_metrics.INFERENCE_ENDPOINTS)
    assert f'{runtime_metrics.ENDPOINT}=~"{inference}"' in exprs
    grouping = set(re.findall(r"\b(?:by|on) \(([^)]*)\)", exprs))
    labels = {label.strip() for group in grouping for label in group.split(",")}
    runtime_labels = {runtime_metrics.MODEL, runtime_metrics.VARIANT, runtime_metrics.FEATURE}
    runtime_labels |= {runtime_metrics.BIN}
    exposed = operator_metrics.OperatorMetrics()
    operator_labels = {
        label
        for metric in (
            exposed.rollouts,
            exposed.verdicts,
            exposed.weight,
            exposed.phase,
            exposed.alarm,
        )
        for label in metric._labelnames  # prometheus_client keeps no public accessor
    }
    assert "namespace" in operator_labels and "name" in operator_labels
    # `namespace` of runtime series is the pod's (PodMonitor target label); `instance` is
    # Prometheus' own target label
    assert labels - {"instance"} <= runtime_labels | operator_labels | {"namespace"}
    assert labels >= {"namespace", "model", "name", "feature", "bin", "result", "metric"}


# ----------------------------------------------------------------------------- promtool


def write_rule_file(path: Path, groups: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000))
    return path


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "values",
    [monitoring(), {**monitoring(), "watchNamespaces": WATCHED}],
    ids=["cluster-wide", "namespaced"],
)
def test_rules_pass_promtool_check(promtool: str, tmp_path: Path, values: dict[str, Any]) -> None:
    path = write_rule_file(tmp_path / "rules.yaml", rule_groups(values))
    checked = run_promtool(promtool, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def counter(steps: Iterable[float | None]) -> str:
    """promtool series values from per-minute increments; None: no sample (series absent)."""
    total, out = 0.0, []
    for step in steps:
        if step is None:
            out.append("_")
        else:
            total += step
            out.append(f"{total:g}")
    return " ".join(out)


def series(metric: str, values: str, /, **labels: str) -> dict[str, str]:
    matchers = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{metric}{{{matchers}}}", "values": values}


def alert(name: str, when: str, fired: list[dict[str, str]], **annotations: str) -> dict:
    expected = []
    for labels in fired:
        entry: dict[str, Any] = {"exp_labels": labels}
        if annotations:
            entry["exp_annotations"] = {k: v.format(**labels) for k, v in annotations.items()}
        expected.append(entry)
    return {"eval_time": when, "alertname": name, "exp_alerts": expected}


OPERATOR = {"pod": "serinus-0", "instance": "10.0.0.5:8081", "job": "serinus-metrics"}
RUNTIME = {"pod": "iris-a1b2c3-x", "version": "1.1.0", "revision": "a1b2c3"}

# Short windows keep the synthetic series short; the PromQL is the same as with the defaults.
TEST_ALERTS: dict[str, dict[str, Any]] = {
    "rolloutRolledBack": {"window": "15m"},
    "analysisInconclusive": {"window": "10m"},
    "runtimeErrorRate": {"threshold": 0.05, "window": "5m", "for": "10m"},
    "inputDrift": {
        "psi": 0.2,
        "window": "10m",
        "baselineOffset": "30m",
        "minRows": 100,
        "for": "5m",
    },
    "accuracyBelowFloor": {"floor": 0.8, "window": "10m", "minLabels": 50, "for": "5m"},
    "modelDrifted": {"for": "5m"},
    "modelDegraded": {"for": "5m"},
}


def rollback_case() -> dict[str, Any]:
    def rollouts(values: str, name: str, result: str) -> dict[str, str]:
        labels = {"namespace": "ml", "name": name, "result": result, **OPERATOR}
        return series(operator_metrics.ROLLOUTS_TOTAL, values, **labels)

    born = counter([None] * 20 + [1] + [0] * 40)  # a series born at 20m with value 1
    rolled = {"severity": "warning", "namespace": "ml", "result": "RolledBack"}
    text = {
        "summary": "ModelDeployment {namespace}/{name}: a rollout ended {result}",
        "description": "A rollout of {namespace}/{name} ended {result} in the last 15m; the "
        "stable version keeps serving. Why: kubectl describe md -n {namespace} {name} "
        "(status.history, Events).",
    }
    phase = {"namespace": "ml", "name": "iris", "phase": "Stable", **OPERATOR}
    name = "SerinusRolloutRolledBack"
    return {
        "interval": "1m",
        "input_series": [
            # the operator reports phases all along (it is scraped before anything happens)
            series(operator_metrics.PHASE, "1+0x60", **phase),
            # first rollbacks of iris and bad: series born at 20m
            rollouts(born, "iris", "RolledBack"),
            rollouts(born, "bad", "Failed"),
            rollouts(born, "good", "Promoted"),
            rollouts(born, "stop", "Aborted"),
            # shop rolled back before Prometheus started, and again at 40m
            rollouts("1+0x39 2+0x20", "shop", "RolledBack"),
        ],
        "alert_rule_test": [
            alert(name, "5m", []),  # history is not news
            alert(
                name,
                "22m",
                [{**rolled, "name": "iris"}, {**rolled, "name": "bad", "result": "Failed"}],
                **text,
            ),
            alert(name, "38m", []),  # 15m later: resolved
            alert(name, "45m", [{**rolled, "name": "shop"}], **text),
        ],
    }


def inconclusive_case() -> dict[str, Any]:
    def verdicts(values: str, name: str, verdict: str) -> dict[str, str]:
        labels = {"namespace": "ml", "name": name, "metric": "error-rate", **OPERATOR}
        return series(operator_metrics.VERDICTS_TOTAL, values, verdict=verdict, **labels)

    every_minute = counter([1] * 40)
    pass_every_5m = counter([1 if minute % 5 == 0 else 0 for minute in range(40)])
    late_pass = counter([None] * 8 + [1] + [0] * 31)  # one Pass at 8m, as a new series
    name = "SerinusAnalysisInconclusive"
    return {
        "interval": "1m",
        "input_series": [
            verdicts(every_minute, "iris", "Inconclusive"),
            verdicts(every_minute, "shop", "Inconclusive"),
            verdicts(pass_every_5m, "shop", "Pass"),
            verdicts(every_minute, "late", "Inconclusive"),
            verdicts(late_pass, "late", "Pass"),
        ],
        "alert_rule_test": [
            alert(name, "8m", []),  # pending: not yet 10m
            alert(
                name,
                "15m",
                [
                    {
                        "severity": "warning",
                        "namespace": "ml",
                        "name": "iris",
                        "metric": "error-rate",
                    }
                ],
                summary="ModelDeployment {namespace}/{name}: analysis metric {metric} stays "
                "Inconclusive",
                description="Analysis metric {metric} of {namespace}/{name} gave only "
                "Inconclusive verdicts for 10m: too few requests (rollout.analysis.minRequests) "
                "or metrics that cannot be read. The reasons are in status.analysis.checks.",
            ),
        ],
    }


def error_rate_case() -> dict[str, Any]:
    def requests(values: str, model: str, endpoint: str, code: str, **labels: str) -> dict:
        labels = {"namespace": "ml", "model": model, "protocol": "v2", **labels}
        return series(
            runtime_metrics.REQUESTS_TOTAL, values, endpoint=endpoint, code=code, **labels
        )

    stable = {"variant": "stable", **RUNTIME}
    other_pod = {**stable, "pod": "iris-a1b2c3-y"}
    return {
        "interval": "1m",
        "input_series": [
            # stable: two pods, 10 of 110 requests a minute fail (9%)
            requests("0+50x40", "iris", "infer", "200", **stable),
            requests("0+50x40", "iris", "infer", "200", **other_pod),
            requests("0+10x40", "iris", "infer", "500", **stable),
            # canary: 1 of 101 (1%)
            requests("0+100x40", "iris", "predict", "200", variant="canary"),
            requests("0+1x40", "iris", "predict", "503", variant="canary"),
            # shop: failing health checks are not inference errors
            requests("0+100x40", "shop", "infer", "200", variant="stable"),
            requests("0+50x40", "shop", "health_ready", "503", variant="stable"),
        ],
        "alert_rule_test": [
            alert("SerinusRuntimeErrorRateHigh", "8m", []),  # pending for 10m
            alert(
                "SerinusRuntimeErrorRateHigh",
                "20m",
                [{"severity": "critical", "namespace": "ml", "model": "iris", "variant": "stable"}],
            ),
        ],
    }


def psi(now: list[float], then: list[float], epsilon: float = 1e-4) -> float:
    """The alert's PSI, in Python: sum of (p - q) * ln((p + e) / (q + e)) over bins."""
    p = [n / sum(now) for n in now]
    q = [t / sum(then) for t in then]
    return sum((a - b) * math.log((a + epsilon) / (b + epsilon)) for a, b in zip(p, q, strict=True))


DRIFT_BEFORE, DRIFT_AFTER = [10, 10, 10], [25, 3, 2]  # rows a minute per bin of petal_length


def drift_case() -> dict[str, Any]:
    before, after = 41, 30  # uniform inputs until 40m, then skewed (windows never straddle it)

    def bins(feature: str, bin_: int, even: float, skewed: float) -> dict[str, str]:
        labels = {"namespace": "ml", "model": "iris", "variant": "stable", **RUNTIME}
        values = counter([even] * before + [skewed] * after)
        return series(
            runtime_metrics.FEATURE_BIN_TOTAL, values, feature=feature, bin=str(bin_), **labels
        )

    expected = psi(DRIFT_AFTER, DRIFT_BEFORE)  # the 10m window at 70m vs the one at 40m
    assert expected > 1
    fired = {"severity": "warning", "namespace": "ml", "model": "iris", "feature": "petal_length"}
    return {
        "interval": "1m",
        "input_series": [
            # petal_length drifts: 1/3 each, then 25/30, 3/30, 2/30
            *[bins("petal_length", b, DRIFT_BEFORE[b], DRIFT_AFTER[b]) for b in range(3)],
            # sepal_width stays the same
            *[bins("sepal_width", b, 10, 10) for b in range(3)],
            # rare drifts just as much, but 1 row a minute is below minRows
            bins("rare", 0, 0.34, 0.8),
            bins("rare", 1, 0.33, 0.1),
            bins("rare", 2, 0.33, 0.1),
        ],
        "alert_rule_test": [
            alert("SerinusInputDrift", "35m", []),
            alert(
                "SerinusInputDrift",
                "70m",
                [fired],
                summary="Model {namespace}/{model}: input feature {feature} drifted "
                f"(PSI {expected:.3f})",
                description="The distribution of feature {feature} sent to {namespace}/{model} "
                "over the last 10m differs from the same window 30m earlier: "
                f"PSI {expected:.3f} above 0.2.",
            ),
        ],
    }


def accuracy_case() -> dict[str, Any]:
    def rows(model: str, outcome: str, per_minute: float) -> dict[str, str]:
        labels = {"namespace": "ml", "model": model, "outcome": outcome, "variant": "stable"}
        return series(runtime_metrics.FEEDBACK_TOTAL, counter([per_minute] * 31), **labels)

    return {
        "interval": "1m",
        "input_series": [
            *[rows("iris", "correct", 7), rows("iris", "incorrect", 3)],  # 70%
            *[rows("shop", "correct", 9), rows("shop", "incorrect", 1)],  # 90%
            *[rows("tiny", "correct", 1), rows("tiny", "incorrect", 1)],  # 50%, 20 rows a window
            rows("wrong", "incorrect", 10),  # 0%: no `correct` series at all
            rows("iris", "unknown_id", 50),  # labels for unknown requests are no evidence
        ],
        "alert_rule_test": [
            alert(
                "SerinusAccuracyBelowFloor",
                "25m",
                [
                    {"severity": "warning", "namespace": "ml", "model": "iris"},
                    {"severity": "warning", "namespace": "ml", "model": "wrong"},
                ],
            ),
        ],
    }


def monitoring_alarm_case() -> dict[str, Any]:
    def alarm(name: str, check: str, values: str) -> dict[str, str]:
        labels = {"namespace": "ml", "name": name, "check": check, **OPERATOR}
        return series(operator_metrics.MONITOR_ALARM, values, **labels)

    iris = {"namespace": "ml", "name": "iris", "check": "input-drift"}
    return {
        "interval": "1m",
        "input_series": [
            alarm("iris", "input-drift", "0x5 1x20"),  # raised at 6m, held
            alarm("iris", "accuracy", "0x20"),
            alarm("shop", "accuracy", "0x3 1x20"),  # raised at 4m
            alarm("shop", "input-drift", "0x3 1x2 0x20"),  # raised 2m only: below `for`
        ],
        "alert_rule_test": [
            alert("SerinusModelDrifted", "8m", []),  # pending
            alert(
                "SerinusModelDrifted",
                "15m",
                [{"severity": "warning", **iris}],
                summary="ModelDeployment {namespace}/{name}: {check} alarm",
                description="Monitoring of the stable version of {namespace}/{name} raised its "
                "{check} alarm (its spec.monitoring thresholds). Which features and by how much: "
                "kubectl get md -n {namespace} {name} -o jsonpath='{{.status.monitoring}}'",
            ),
            alert(
                "SerinusModelDegraded",
                "15m",
                [{"severity": "critical", "namespace": "ml", "name": "shop", "check": "accuracy"}],
                summary="ModelDeployment {namespace}/{name}: {check} alarm",
                description="Monitoring of the stable version of {namespace}/{name} raised its "
                "{check} alarm: see the Degraded condition (kubectl describe md -n {namespace} "
                "{name}); spec.retrain starts a retraining Job on it when configured.",
            ),
        ],
    }


def test_alerts_fire_when_they_should_and_only_then(promtool: str, tmp_path: Path) -> None:
    """`promtool test rules` over synthetic series named exactly like the real ones."""
    groups = copy.deepcopy(rule_groups(monitoring(alerts=TEST_ALERTS)))
    for rule in groups[0]["rules"]:
        if rule["alert"] != "SerinusInputDrift" and "$value" in str(rule.get("annotations")):
            del rule["annotations"]  # their $value is checked for the PSI alone, as its formula
    write_rule_file(tmp_path / "rules.yaml", groups)
    cases = [
        rollback_case(), inconclusive_case(), error_rate_case(), drift_case(), accuracy_case(),
        monitoring_alarm_case(),
    ]  # fmt: skip
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": cases}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False, width=1000))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("key", sorted(ALERTS))
def test_each_alert_can_be_turned_off(key: str) -> None:
    names = {rule["alert"] for rule in alert_rules(monitoring(alerts={key: {"enabled": False}}))}
    assert names == set(ALERTS.values()) - {ALERTS[key]}


def test_rules_carry_severity_and_text() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


# ----------------------------------------------------------------------------- scraping


SPEC = ModelDeploymentSpec.model_validate(
    {"model": {"uri": "s3://models/iris/1.1.0/", "version": "1.1.0"}}
)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("watched", [[], WATCHED], ids=["cluster-wide", "namespaced"])
def test_pod_monitor_scrapes_runtime_pods_and_nothing_else(watched: list[str]) -> None:
    objects = render({**monitoring(), "watchNamespaces": watched})
    monitor = one(objects, "PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    runtime = builders.build_deployment(SPEC, "iris", "ml", "uid-1", "abc123", naming.STABLE, 2)
    pod = runtime["spec"]["template"]
    assert selects(selector, pod["metadata"]["labels"])
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert endpoint["port"] in ports
    assert endpoint["path"] == pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    job = builders.build_validation_job(SPEC, "iris", "ml", "uid-1", "abc123", "img", None)
    assert not selects(selector, job["spec"]["template"]["metadata"]["labels"])
    operator_pod = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not selects(selector, operator_pod)
    expected = {"matchNames": watched} if watched else {"any": True}
    assert monitor["spec"]["namespaceSelector"] == expected


def test_service_monitor_scrapes_the_operator_metrics_service() -> None:
    objects = render(monitoring())
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # the metrics' own namespace/name labels name the ModelDeployment: keep them
    assert endpoint["honorLabels"] is True


def test_monitoring_labels_reach_every_prometheus_operator_object() -> None:
    values = monitoring()
    values["monitoring"]["labels"] = {"release": "kube-prometheus-stack"}
    objects = render(values)
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert one(objects, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_monitoring_is_off_by_default() -> None:
    objects = render()
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert of_kind(objects, kind) == []


def test_validators_are_not_blind(validate_object: Callable[[dict[str, Any]], list[str]]) -> None:
    """A broken object of each family is reported (so 'no errors' above means something)."""
    objects = render(monitoring())
    broken_rule = copy.deepcopy(one(objects, "PrometheusRule"))
    broken_rule["spec"]["groups"][0]["rules"][0]["severity"] = "warning"
    assert validate_object(broken_rule)
    broken_deployment = copy.deepcopy(one(objects, "Deployment"))
    broken_deployment["spec"]["replicas"] = "one"
    assert validate_object(broken_deployment)
