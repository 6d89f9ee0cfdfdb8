"""The operator serves the rollout dashboard from what its driver decides (kopf + kmock)."""

from __future__ import annotations

import socket

import httpx
import pytest
from kopf_harness import NS, ScriptedProvider, running_operator, wait_for
from test_operator_kmock import (
    BASE,
    finish_validation,
    first_version_stable,
    job_names,
    make_ready,
    manifest,
    phase,
    revision,
)

from serinus.dashboard.api import ModelDeploymentDetail, ModelDeploymentList

pytestmark = pytest.mark.looptime(False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_operator_dashboard_shows_phase_weights_windows_and_verdicts(
    k8s, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("SERINUS_DASHBOARD_PORT", str(port))
    monkeypatch.setenv("SERINUS_DASHBOARD_HOST", "127.0.0.1")
    url = f"http://127.0.0.1:{port}/api/modeldeployments"
    async with running_operator(k8s, provider), httpx.AsyncClient(timeout=5.0) as http:
        await first_version_stable(k8s)
        listed = ModelDeploymentList.model_validate((await http.get(url)).json())
        assert [(i.namespace, i.name, i.phase.value) for i in listed.items] == [
            (NS, "iris", "Stable")
        ]
        assert listed.items[0].stable is not None and listed.items[0].stable.weight == 100

        body = manifest("2.0.0")
        new = revision(body)
        await k8s.patch(f"{BASE}/iris", json={"spec": body["spec"], "metadata": {"generation": 2}})
        await wait_for(lambda: phase(k8s) == "Validating")
        await make_ready(k8s, new, 1)
        await wait_for(lambda: len(job_names(k8s)) == 2)
        await finish_validation(k8s)
        await wait_for(lambda: phase(k8s) in ("Progressing", "Promoting"), timeout=20)
        await make_ready(k8s, new, 2)
        await wait_for(lambda: phase(k8s) == "Stable", timeout=30)

        response = await http.get(f"{url}/{NS}/iris")
        assert response.status_code == 200
        detail = ModelDeploymentDetail.model_validate(response.json())
        assert detail.phase.value == "Stable" and detail.stable is not None
        assert detail.stable.revision == new
        rollout = detail.rollouts[-1]
        assert rollout.revision == new and rollout.result is not None
        assert rollout.result.value == "Promoted"
        # The weights the operator moved through, from the canary at 50 % to promotion.
        weights = [p.weight for p in detail.timeline.points if p.rollout == rollout.id]
        assert 50 in weights and weights[-1] == 100
        # Each window the provider measured is a point with the judge's inputs per second.
        measured = [p for p in detail.timeline.points if p.canary is not None]
        assert measured, detail.timeline.points
        point = measured[-1]
        assert point.canary is not None and point.stable is not None
        assert point.canary.requests == 500 and point.stable.requests == 4500
        assert point.window_seconds is not None
        assert point.canary.request_rate == pytest.approx(500 / point.window_seconds)
        assert point.canary.prediction_mix == pytest.approx({"0": 0.5, "1": 0.3, "2": 0.2})
        markers = [m for m in detail.timeline.markers if m.rollout == rollout.id]
        assert markers and markers[-1].verdict.value == "Pass"
        assert "error-rate" in markers[-1].reason
        assert (await http.post(url)).status_code == 405
    # kopf's cleanup stopped the server with the operator.
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
