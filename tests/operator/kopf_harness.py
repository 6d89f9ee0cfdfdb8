"""Shared pieces of the kopf + kmock tests: the resource key, a scripted provider, polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import kmock
import kopf
import kopf.testing
import kubernetes

import serinus.kube.handlers as handlers
from serinus.api.resource import GROUP, PLURAL, VERSION
from serinus.core.monitor_window import MonitorWindow
from serinus.core.window import AnalysisWindow, VariantWindow
from serinus.kube.driver import KubeDriver
from serinus.metrics.provider import AnalysisTarget, MonitorTarget

MD = f"{GROUP}/{VERSION}/{PLURAL}"
NS = "ns1"


def healthy(requests: int, errors: int | None = None) -> VariantWindow:
    """A variant that answers like the stable one: 0.4 % errors, ~5 ms, a 50/30/20 mix."""
    buckets = [(0.001, 0.0), (0.005, 0.5), (0.01, 0.95), (0.05, 1.0), (float("inf"), 1.0)]
    return VariantWindow(
        requests=requests,
        errors=requests // 250 if errors is None else errors,
        latency_buckets=[(le, share * requests) for le, share in buckets],
        prediction_counts={"0": 0.5 * requests, "1": 0.3 * requests, "2": 0.2 * requests},
    )


class ScriptedProvider:
    """A fake MetricsProvider: the window a test wants, for the canary and stable revisions."""

    def __init__(self) -> None:
        self.canary = healthy(500)
        self.stable = healthy(4500)
        self.windows: list[tuple[AnalysisTarget, datetime, datetime]] = []
        self.marks: list[AnalysisTarget] = []
        self.monitoring = MonitorWindow(drift_seconds=1, label_seconds=1)
        self.monitored: list[MonitorTarget] = []

    def mark(self, target: AnalysisTarget) -> None:
        self.marks.append(target)

    def window(self, target: AnalysisTarget, start: datetime, end: datetime) -> AnalysisWindow:
        self.windows.append((target, start, end))
        return AnalysisWindow(
            canary=self.canary,
            stable=self.stable,
            interval_seconds=max((end - start).total_seconds(), 0.001),
        )

    def monitor(
        self, target: MonitorTarget, end: datetime, drift_seconds: int, label_seconds: int
    ) -> MonitorWindow:
        """`monitoring`'s window for the stable version (set by a test; quiet by default)."""
        self.monitored.append(target)
        return self.monitoring.model_copy(
            update={"drift_seconds": drift_seconds, "label_seconds": label_seconds}
        )

    def close(self) -> None:
        pass


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, step: float = 0.1) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


_server: dict[str, str] = {}


@kopf.on.login()
def _login(**_: Any) -> kopf.ConnectionInfo:
    """One login handler for the session (they accumulate): the current test's kmock."""
    return kopf.ConnectionInfo(server=_server["url"])


@contextlib.asynccontextmanager
async def running_operator(
    k8s: kmock.KubernetesEmulator, provider: ScriptedProvider, **driver_options: Any
) -> AsyncIterator[kopf.testing.KopfRunner]:
    """A fresh operator (new driver, empty memory), as after a restart of its pod.
    `driver_options` go to the KubeDriver (e.g. a fast notify_policy)."""
    configuration = kubernetes.client.Configuration(host=str(k8s.url).rstrip("/"))
    handlers.use_driver(
        KubeDriver(
            api_client=kubernetes.client.ApiClient(configuration),
            operator_image="serinus-operator:test",
            provider_factory=lambda _spec, _source: provider,
            **driver_options,
        )
    )
    _server["url"] = str(k8s.url).rstrip("/")
    watches = k8s["watch " + MD]
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 10
    with kopf.testing.KopfRunner(
        ["run", "--standalone", "--all-namespaces"],
        registry=kopf.get_default_registry(),
        settings=settings,
        timeout=60,
    ) as runner:
        await wait_for(lambda: len(watches) > 0)
        try:
            yield runner
        finally:  # also after a failed assertion, so the operator stops and the failure shows
            handlers.suspend()
            await asyncio.sleep(1.5)  # in-flight handlers finish while kmock's loop serves
    handlers.use_driver(None)
    assert runner.exception is None, runner.output
