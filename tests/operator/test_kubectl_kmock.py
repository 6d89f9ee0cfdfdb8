"""`kubectl serinus` against kmock: what it shows, what it writes, and that the operator acts on it.

The plugin is a separate, synchronous program; it runs in a worker thread here so kmock's event
loop keeps serving it, and it reaches kmock through a kubeconfig file, as a user's would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kopf_harness import MD, NS, ScriptedProvider, healthy, wait_for
from test_operator_kmock import BASE, first_version_stable, phase, status, validated_v2
from typer.testing import CliRunner, Result

from serinus.cli import kubectl_app

pytestmark = pytest.mark.looptime(False)

CHECK_AT = "2026-11-23T10:00:00Z"
STATUS = {
    "phase": "Progressing",
    "message": "canary 2 at 20%",
    "stable": {"revision": "aaa111", "version": "1", "uri": "file:///m/1"},
    "canary": {
        "revision": "bbb222",
        "version": "2",
        "uri": "file:///m/2",
        "weight": 20,
        "desiredWeight": 20,
        "step": 1,
        "startedAt": CHECK_AT,
    },
    "analysis": {
        "failedChecks": 1,
        "checks": [
            {
                "at": CHECK_AT,
                "step": 1,
                "weight": 20,
                "verdict": "Fail",
                "canaryRequests": 120,
                "metrics": [
                    {
                        "name": "error-rate",
                        "verdict": "Fail",
                        "canary": 0.21,
                        "stable": 0.0,
                        "threshold": 0.05,
                        "reason": "error-rate 21.0% > max 5.0%",
                    },
                    {"name": "latency-p99", "verdict": "Pass", "reason": "p99 12ms within 2x"},
                ],
            }
        ],
    },
    "history": [
        {
            "revision": "aaa111",
            "version": "1",
            "result": "Promoted",
            "reason": "first version, validated",
            "startedAt": CHECK_AT,
            "finishedAt": CHECK_AT,
        }
    ],
}


@pytest.fixture
def kubeconfig(k8s: kmock.KubernetesEmulator, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    server = str(k8s.url).rstrip("/")
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
                "contexts": [
                    {
                        "name": "kmock",
                        "context": {"cluster": "kmock", "user": "tester", "namespace": NS},
                    }
                ],
                "current-context": "kmock",
            }
        )
    )
    return path


async def plugin(kubeconfig: Path, *args: str) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, kubectl_app, [*args, "--kubeconfig", str(kubeconfig)]
    )


def stored(k8s: kmock.KubernetesEmulator) -> dict[str, Any]:
    return dict(k8s.objects[MD, NS, "iris"])


async def seed(k8s: kmock.KubernetesEmulator) -> None:
    await k8s.post(
        BASE,
        json={
            "apiVersion": "serinus.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {
                "namespace": NS,
                "name": "iris",
                "uid": "uid-iris",
                "resourceVersion": "1",
            },
            "spec": {"model": {"uri": "file:///m/2", "version": "2"}},
            "status": STATUS,
        },
    )
    await k8s.post(
        f"/api/v1/namespaces/{NS}/events",
        json={
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"namespace": NS, "name": "iris.analysis1"},
            "involvedObject": {"kind": "ModelDeployment", "name": "iris", "namespace": NS},
            "type": "Warning",
            "reason": "AnalysisFail",
            "message": "Fail: error-rate 21.0% > max 5.0%",
            "lastTimestamp": CHECK_AT,
        },
    )


async def test_status_shows_phase_weight_verdicts_events_and_history(k8s, kubeconfig):
    await seed(k8s)
    result = await plugin(kubeconfig, "status", "iris")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Progressing" in text and "canary 2 at 20%" in text
    assert "stable v1 (aaa111)" in text and "canary v2 (bbb222) weight 20% step 1" in text
    assert "error-rate" in text and "error-rate 21.0% > max 5.0%" in text
    assert "AnalysisFail: Fail: error-rate 21.0% > max 5.0%" in text
    assert "Promoted" in text and "first version, validated" in text


async def test_logs_analysis_lists_every_metric_of_every_check(k8s, kubeconfig):
    await seed(k8s)
    result = await plugin(kubeconfig, "logs-analysis", "iris")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "2026-11-23 10:00:00 step 1 weight 20% Fail (120 canary requests)"
    assert "  error-rate: Fail — error-rate 21.0% > max 5.0%" in lines
    assert "  latency-p99: Pass — p99 12ms within 2x" in lines
    assert any(line.endswith("AnalysisFail: Fail: error-rate 21.0% > max 5.0%") for line in lines)


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["promote", "iris"], "promote"),
        (["promote", "iris", "--full"], "promote-full"),
        (["abort", "iris"], "abort"),
        (["retry", "iris"], "retry"),
        (["pause", "iris"], "pause"),
        (["resume", "iris"], "resume"),
    ],
)
async def test_actions_write_the_annotation_with_a_fresh_nonce(k8s, kubeconfig, args, action):
    await seed(k8s)
    first = await plugin(kubeconfig, *args)
    assert first.exit_code == 0, first.output
    value = stored(k8s)["metadata"]["annotations"]["serinus.dev/action"]
    name, _, nonce = value.partition("/")
    assert name == action and len(nonce) == 8
    assert value in first.output
    await plugin(kubeconfig, *args)
    again = stored(k8s)["metadata"]["annotations"]["serinus.dev/action"]
    assert again != value, "a repeated request needs a new nonce, or the operator ignores it"
    assert stored(k8s)["spec"] == {"model": {"uri": "file:///m/2", "version": "2"}}


async def test_missing_deployment_and_namespace_flag(k8s, kubeconfig):
    await seed(k8s)
    missing = await plugin(kubeconfig, "status", "nope")
    assert missing.exit_code == 1
    assert f"ModelDeployment {NS}/nope not found" in missing.output
    elsewhere = await plugin(kubeconfig, "abort", "iris", "-n", "other")
    assert elsewhere.exit_code == 1 and "ModelDeployment other/iris not found" in elsewhere.output


async def test_unreadable_kubeconfig_is_a_clear_error(tmp_path):
    broken = tmp_path / "kubeconfig"
    broken.write_text("this: is: not: a kubeconfig")
    result = await asyncio.to_thread(
        CliRunner().invoke, kubectl_app, ["status", "iris", "--kubeconfig", str(broken)]
    )
    assert result.exit_code == 1
    assert "kubeconfig" in result.output


async def test_the_operator_acts_on_the_plugins_abort(
    k8s, kubeconfig, operator, provider: ScriptedProvider
):
    await first_version_stable(k8s)
    provider.canary = healthy(3)  # below minRequests: held at its first step
    await validated_v2(k8s)
    await wait_for(lambda: phase(k8s) == "Progressing")
    result = await plugin(kubeconfig, "abort", "iris")
    assert result.exit_code == 0, result.output
    await wait_for(lambda: phase(k8s) == "RolledBack", timeout=20)
    assert status(k8s)["lastAction"]["action"] == "abort"
    assert status(k8s)["history"][-1]["result"] == "Aborted"
    shown = await plugin(kubeconfig, "status", "iris")
    assert "RolledBack" in shown.output and "Aborted" in shown.output
