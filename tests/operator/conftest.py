"""The real kopf operator (serinus.kube.handlers) in its own thread, against kmock.

The test plays the kubelet and the controllers: it marks Deployments ready and Jobs finished
through the API, and scripts the analysis with a fake MetricsProvider (no patching).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

os.environ.setdefault("SERINUS_TICK_SECONDS", "0.3")
os.environ.setdefault("SERINUS_METRICS_PORT", "0")

import kmock
import kopf
import kopf.testing
import kubernetes
import pytest
from kopf_harness import MD, ScriptedProvider, wait_for

import serinus.kube.handlers as handlers
from serinus.kube.driver import KubeDriver

_server: dict[str, str] = {}


@kopf.on.login()
def _login(**_: Any) -> kopf.ConnectionInfo:
    """One login handler for the session (they accumulate): the current test's kmock."""
    return kopf.ConnectionInfo(server=_server["url"])


@pytest.fixture
def k8s(kmock: kmock.KubernetesEmulator) -> kmock.KubernetesEmulator:
    kmock.resources.load_bundled()
    kmock.resources[MD] = kmock.ResourceInfo(
        kind="ModelDeployment",
        singular="modeldeployment",
        namespaced=True,
        subresources={"status"},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
    )
    configuration = kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"))
    kubernetes.client.Configuration.set_default(configuration)
    return kmock


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
async def operator(
    k8s: kmock.KubernetesEmulator, provider: ScriptedProvider
) -> AsyncIterator[kopf.testing.KopfRunner]:
    configuration = kubernetes.client.Configuration(host=str(k8s.url).rstrip("/"))
    handlers.use_driver(
        KubeDriver(
            api_client=kubernetes.client.ApiClient(configuration),
            operator_image="serinus-operator:test",
            provider_factory=lambda _spec, _source: provider,
        )
    )
    registry = kopf.get_default_registry()
    _server["url"] = str(k8s.url).rstrip("/")
    watches = k8s["watch " + MD]
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 10
    with kopf.testing.KopfRunner(
        ["run", "--standalone", "--all-namespaces"],
        registry=registry,
        settings=settings,
        timeout=60,
    ) as runner:
        await wait_for(lambda: len(watches) > 0)
        yield runner
        handlers.suspend()
        await asyncio.sleep(1.5)  # in-flight handlers finish while kmock's loop still serves
    handlers.use_driver(None)
    assert runner.exception is None, runner.output
