"""Which metrics provider a spec gets, and what happens without a Prometheus address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serinus.api.spec import AnalysisSpec, ModelDeploymentSpec
from serinus.core.judge import judge
from serinus.kube.driver import KubeDriver
from serinus.metrics.prometheus import PrometheusProvider
from serinus.metrics.provider import AnalysisTarget
from serinus.metrics.registry import NO_PROMETHEUS, provider_for
from serinus.metrics.scrape import ScrapeProvider

END = datetime(2026, 11, 23, tzinfo=UTC)
TARGET = AnalysisTarget(name="iris", stable="a", canary="b")


class NoSource:
    def scrape(self, revision: str) -> dict[str, str]:
        raise AssertionError("not called in these tests")


def test_prometheus_without_an_address_is_inconclusive_with_the_reason_never_a_pass():
    analysis = AnalysisSpec.model_validate({"provider": "prometheus"})
    provider = provider_for(analysis, None)
    window = provider.window(TARGET, END - timedelta(minutes=1), END)
    assert window.error == NO_PROMETHEUS
    outcome = judge(analysis, window)
    assert outcome.verdict.value == "Inconclusive"
    assert outcome.metrics and all(
        "SERINUS_PROMETHEUS_ADDRESS" in metric.reason for metric in outcome.metrics
    )


def test_the_operator_default_address_fills_in_only_when_the_spec_has_none():
    driver = KubeDriver.__new__(KubeDriver)  # only the pure helpers are used
    driver.prometheus_address = "http://prometheus.monitoring:9090"
    driver.runtime_image = None
    bare = ModelDeploymentSpec.model_validate(
        {"model": {"uri": "file:///m"}, "rollout": {"analysis": {"provider": "prometheus"}}}
    )
    filled = driver._analysis(bare)
    assert filled.prometheus is not None
    assert filled.prometheus.address == "http://prometheus.monitoring:9090"
    assert isinstance(provider_for(filled, None), PrometheusProvider)
    own = ModelDeploymentSpec.model_validate(
        {
            "model": {"uri": "file:///m"},
            "rollout": {
                "analysis": {"provider": "prometheus", "prometheus": {"address": "http://p:9090"}}
            },
        }
    )
    assert driver._analysis(own).prometheus.address == "http://p:9090"
    assert isinstance(
        provider_for(driver._analysis(bare).model_copy(update={"provider": "scrape"}), NoSource()),
        ScrapeProvider,
    )


def test_the_operator_runtime_image_replaces_only_the_built_in_default():
    driver = KubeDriver.__new__(KubeDriver)
    driver.prometheus_address = None
    driver.runtime_image = "registry.internal/serinus-runtime:0.1.0"
    default = ModelDeploymentSpec.model_validate({"model": {"uri": "file:///m"}})
    assert driver._pods_spec(default).runtime.image == "registry.internal/serinus-runtime:0.1.0"
    chosen = ModelDeploymentSpec.model_validate(
        {"model": {"uri": "file:///m"}, "runtime": {"image": "mine:1"}}
    )
    assert driver._pods_spec(chosen).runtime.image == "mine:1"
