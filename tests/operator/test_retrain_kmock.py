"""Monitoring and retraining wiring against kmock: an alarm of the stable version starts the
retraining Job from `spec.retrain.jobTemplate`; its result becomes a candidate; autoDeploy sets
it as spec.model and the normal rollout follows; a failing Job leaves stable alone.

The test plays the Job controller and the kubelet (a pod with a termination message), and
scripts the monitoring window (tests/metrics reads real windows from real runtimes)."""

from __future__ import annotations

import json
from typing import Any

import kmock
import pytest
from kopf_harness import NS, ScriptedProvider, running_operator, wait_for
from notify_receiver import Receiver
from test_notify_kmock import FAST, create_secret, reasons, secret_ref
from test_operator_kmock import (
    first_version_stable,
    has_object,
    job_finished,
    phase,
    revision,
    status,
)

import serinus.kube.handlers as handlers
from serinus.core.monitor_window import MonitorWindow
from serinus.kube.operator_metrics import MONITOR_ALARM, MONITOR_VALUE, RETRAINS_TOTAL

pytestmark = pytest.mark.looptime(False)

NEW_SHA = "b" * 64
JOB_TEMPLATE = {
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "retrain",
                        "image": "registry.example/retrain:1",
                        "command": ["python", "/app/retrain.py", "--output-dir", "/models"],
                        "env": [{"name": "DATASET", "value": "iris"}],
                    }
                ]
            }
        }
    }
}


def retrain_spec(auto_deploy: bool) -> dict[str, Any]:
    return {
        "monitoring": {
            "interval": "1s",
            "accuracy": {"metric": "accuracy", "min": 0.9, "window": "1h", "minLabels": 100},
        },
        "retrain": {
            "jobTemplate": JOB_TEMPLATE,
            "triggers": ["accuracy"],
            "cooldown": "1h",
            "autoDeploy": auto_deploy,
        },
    }


def degraded_labels(provider: ScriptedProvider) -> None:
    """Feedback says the stable version is right on 60 of 200 rows."""
    provider.monitoring = MonitorWindow(
        drift_seconds=1, label_seconds=1, feedback={"correct": 60, "incorrect": 140}
    )


def retrain_jobs(k8s: kmock.KubernetesEmulator) -> list[dict[str, Any]]:
    return [
        dict(k8s.objects[key])
        for key in k8s.objects
        if key[0].plural == "jobs"
        and (dict(k8s.objects[key])["metadata"].get("labels") or {}).get("serinus.dev/role")
        == "retrain"
    ]


async def finish_retrain(
    k8s: kmock.KubernetesEmulator, job: str, succeeded: bool, message: str
) -> None:
    """Play the Job controller and the kubelet: the Job's pod terminated with `message`."""
    await k8s.post(
        f"/api/v1/namespaces/{NS}/pods",
        json={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{job}-x1", "namespace": NS, "labels": {"job-name": job}},
            "spec": {"containers": [{"name": "retrain", "image": "x"}]},
        },
    )
    await k8s.patch(
        f"/api/v1/namespaces/{NS}/pods/{job}-x1/status",
        json={
            "status": {
                "containerStatuses": [
                    {
                        "name": "retrain", "image": "x", "imageID": "", "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0 if succeeded else 1,
                                                 "message": message}},
                    }
                ]
            }
        },
    )  # fmt: skip
    await job_finished(k8s, job, succeeded, failed_pods=1)


def events(k8s: kmock.KubernetesEmulator, reason: str) -> list[dict[str, Any]]:
    return [c.data for c in k8s["create v1/events"] if c.data.get("reason") == reason]


def conditions(k8s: kmock.KubernetesEmulator) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status(k8s).get("conditions") or []}


async def test_accuracy_alarm_starts_the_job_and_autodeploy_rolls_out_the_candidate(
    k8s, operator, provider
):
    stable_rev = await first_version_stable(k8s, **retrain_spec(auto_deploy=True))
    degraded_labels(provider)

    await wait_for(lambda: retrain_jobs(k8s), timeout=20)
    [job] = retrain_jobs(k8s)
    name = job["metadata"]["name"]
    assert name.startswith("iris-retrain-")
    [owner] = job["metadata"]["ownerReferences"]
    assert owner["kind"] == "ModelDeployment" and owner["uid"] == "uid-iris"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    assert container["command"] == ["python", "/app/retrain.py", "--output-dir", "/models"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DATASET"] == "iris"  # the template's own env is kept
    assert env["SERINUS_MODEL_URI"] == "file:///models/1.0.0"
    assert env["SERINUS_MODEL_VERSION"] == "1.0.0"
    assert env["SERINUS_RETRAIN_TRIGGER"] == "accuracy"
    assert "accuracy 30.0% is below the floor 90.0%" in env["SERINUS_RETRAIN_REASON"]
    assert env["SERINUS_RESULT_FILE"] == "/dev/termination-log"
    assert env["SERINUS_WINDOW_START"] < env["SERINUS_WINDOW_END"]
    # The Job is created before the status that names it is patched.
    await wait_for(lambda: (status(k8s).get("retrain") or {}).get("running"))
    assert status(k8s)["retrain"]["running"] in name
    assert conditions(k8s)["Degraded"]["status"] == "True"
    assert conditions(k8s)["Degraded"]["reason"] == "AccuracyLow"
    assert events(k8s, "AccuracyLow") and events(k8s, "RetrainStarted")
    registry = handlers.driver().metrics.registry
    labels = {"namespace": NS, "name": "iris"}
    assert registry.get_sample_value(MONITOR_ALARM, {**labels, "check": "accuracy"}) == 1
    assert registry.get_sample_value(MONITOR_ALARM, {**labels, "check": "input-drift"}) == 0
    assert registry.get_sample_value(MONITOR_VALUE, {**labels, "check": "accuracy"}) == 0.3
    started = {**labels, "result": "started"}
    assert registry.get_sample_value(RETRAINS_TOTAL, started) == 1

    result = json.dumps({"uri": "file:///models/1.1.0", "sha256": NEW_SHA, "version": "1.1.0"})
    await finish_retrain(k8s, name, succeeded=True, message=result)

    def model() -> dict[str, Any]:
        return dict(k8s.objects[("serinus.dev/v1alpha1/modeldeployments", NS, "iris")])["spec"][
            "model"
        ]

    await wait_for(lambda: model()["uri"] == "file:///models/1.1.0", timeout=20)
    assert model() == {"uri": "file:///models/1.1.0", "sha256": NEW_SHA, "version": "1.1.0"}
    body = dict(k8s.objects[("serinus.dev/v1alpha1/modeldeployments", NS, "iris")])
    new_rev = revision(body)
    # The normal rollout follows: the candidate's pods come up as a canary to validate.
    await wait_for(lambda: has_object(k8s, "apps/v1/deployments", f"iris-{new_rev}"))
    await wait_for(lambda: phase(k8s) == "Validating")
    assert status(k8s)["stable"]["revision"] == stable_rev
    candidate = status(k8s)["retrain"]["candidate"]
    assert candidate["uri"] == "file:///models/1.1.0" and candidate["deployed"] is True
    [told] = events(k8s, "RetrainCandidate")
    assert "autoDeploy sets it as spec.model" in told["message"]
    assert len(retrain_jobs(k8s)) == 1  # one alarm, one Job: no storm


async def test_failing_job_leaves_stable_serving_and_says_so(k8s, operator, provider):
    stable_rev = await first_version_stable(k8s, **retrain_spec(auto_deploy=True))
    degraded_labels(provider)
    await wait_for(lambda: retrain_jobs(k8s), timeout=20)
    name = retrain_jobs(k8s)[0]["metadata"]["name"]

    await finish_retrain(k8s, name, succeeded=False, message="ValueError: no training data")
    await wait_for(lambda: events(k8s, "RetrainFailed"), timeout=20)
    [failed] = events(k8s, "RetrainFailed")
    assert failed["type"] == "Warning"
    assert "no training data" in failed["message"]
    assert "keeps serving" in failed["message"]
    assert "no training data" in status(k8s)["retrain"]["lastResult"]
    assert phase(k8s) == "Stable"
    assert status(k8s)["stable"]["revision"] == stable_rev
    body = dict(k8s.objects[("serinus.dev/v1alpha1/modeldeployments", NS, "iris")])
    assert body["spec"]["model"]["uri"] == "file:///models/1.0.0"
    assert "candidate" not in status(k8s)["retrain"]
    # The alarm stays up check after check, but the cooldown (1h) holds the next Job back.
    checks = len(provider.monitored)
    await wait_for(lambda: len(provider.monitored) >= checks + 3, timeout=20)
    assert len(retrain_jobs(k8s)) == 1
    assert phase(k8s) == "Stable"


async def test_without_autodeploy_a_candidate_waits_for_a_person(k8s, operator, provider):
    await first_version_stable(k8s, **retrain_spec(auto_deploy=False))
    degraded_labels(provider)
    await wait_for(lambda: retrain_jobs(k8s), timeout=20)
    name = retrain_jobs(k8s)[0]["metadata"]["name"]
    result = json.dumps({"uri": "file:///models/1.1.0", "sha256": NEW_SHA})
    await finish_retrain(k8s, name, succeeded=True, message=result)

    await wait_for(lambda: "RetrainCandidate" in conditions(k8s), timeout=20)
    waiting = conditions(k8s)["RetrainCandidate"]
    assert waiting["status"] == "True" and waiting["reason"] == "Waiting"
    assert "file:///models/1.1.0" in waiting["message"]
    [told] = events(k8s, "RetrainCandidate")
    assert "waiting: set spec.model.uri" in told["message"]
    body = dict(k8s.objects[("serinus.dev/v1alpha1/modeldeployments", NS, "iris")])
    assert body["spec"]["model"]["uri"] == "file:///models/1.0.0"
    assert phase(k8s) == "Stable"


async def test_alarms_and_candidates_reach_the_webhooks_that_asked_for_them(k8s, provider):
    """The drift, accuracy and retrain-candidate categories of spec.notifications."""
    with Receiver() as receiver:
        await create_secret(k8s, "hooks", {"url": receiver.url("/all"), "q": receiver.url("/q")})
        notifications = [
            {"name": "all", "urlFrom": secret_ref("hooks", "url")},
            {"name": "quality", "events": ["drift", "accuracy", "retrain-candidate"],
             "urlFrom": secret_ref("hooks", "q")},
        ]  # fmt: skip
        async with running_operator(k8s, provider, notify_policy=FAST):
            await first_version_stable(
                k8s, notifications=notifications, **retrain_spec(auto_deploy=False)
            )
            provider.monitoring = MonitorWindow(
                drift_seconds=1, label_seconds=1,
                feedback={"correct": 60, "incorrect": 140},
                rows=600, requests=600,
                reference_predictions={"setosa": 0.33, "versicolor": 0.33, "virginica": 0.34},
                prediction_counts={"setosa": 10, "versicolor": 580, "virginica": 10},
            )  # fmt: skip
            await wait_for(lambda: retrain_jobs(k8s), timeout=20)
            name = retrain_jobs(k8s)[0]["metadata"]["name"]
            result = json.dumps({"uri": "file:///models/1.1.0", "sha256": NEW_SHA})
            await finish_retrain(k8s, name, succeeded=True, message=result)
            await wait_for(lambda: len(receiver.bodies("/q")) == 3, timeout=20)
            got = sorted(reasons(receiver.bodies("/q")))
            assert got == [
                ("AccuracyLow", "accuracy"),
                ("PredictionDrift", "drift"),
                ("RetrainCandidate", "retrain-candidate"),
            ]
            candidate = next(
                b for b in receiver.bodies("/q") if b["category"] == "retrain-candidate"
            )
            assert "file:///models/1.1.0" in candidate["event"]["message"]
            # Every category goes to a target without a filter; the filtered one got no phase
            # changes.
            everything = reasons(receiver.bodies("/all"))
            assert ("PredictionDrift", "drift") in everything
            assert ("Stable", "promoted") in everything
