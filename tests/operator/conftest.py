"""The real kopf operator (serinus.kube.handlers) in its own thread, against kmock.

The test plays the kubelet and the controllers: it marks Deployments ready and Jobs finished
through the API, and scripts the analysis with a fake MetricsProvider (no patching).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

os.environ.setdefault("SERINUS_TICK_SECONDS", "0.3")
os.environ.setdefault("SERINUS_MONITOR_POLL_SECONDS", "0.3")
os.environ.setdefault("SERINUS_METRICS_PORT", "0")
os.environ.setdefault("SERINUS_DASHBOARD_PORT", "0")

import kmock
import kopf
import kubernetes
import pytest
from kopf_harness import MD, ScriptedProvider, running_operator


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
    async with running_operator(k8s, provider) as runner:
        yield runner
