"""Wiring: the kopf operator turns engine decisions into the right API calls, against kmock."""

from __future__ import annotations

from typing import Any

import kmock
import pytest
from kopf_harness import MD, NS, ScriptedProvider, healthy, running_operator, wait_for

from serinus.api.spec import ModelDeploymentSpec
from serinus.core.revision import revision_of

pytestmark = pytest.mark.looptime(False)  # the operator runs in real time in its own thread

BASE = f"/apis/serinus.dev/v1alpha1/namespaces/{NS}/modeldeployments"


def manifest(version: str = "1.0.0", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serinus.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "namespace": NS,
            "name": "iris",
            "uid": "uid-iris",
            "generation": 1,
            "resourceVersion": "1",  # kmock makes none; kopf's JSON patches test it
        },
        "spec": {
            "model": {"uri": f"file:///models/{version}", "version": version},
            "runtime": {"replicas": 2},
            "rollout": {
                "interval": "1s",
                "steps": [{"setWeight": 50}, {"analysis": {}}],
                "analysis": {"minRequests": 10},
            },
            **spec,
        },
    }


def revision(body: dict[str, Any]) -> str:
    return revision_of(ModelDeploymentSpec.model_validate(body["spec"]))


def status(k8s: kmock.KubernetesEmulator) -> dict[str, Any]:
    return dict(k8s.objects[MD, NS, "iris"]).get("status") or {}


def phase(k8s: kmock.KubernetesEmulator) -> str | None:
    return status(k8s).get("phase")


def has_object(k8s: kmock.KubernetesEmulator, resource: str, name: str) -> bool:
    try:
        k8s.objects[resource, NS, name]
    except (KeyError, LookupError):
        return False
    return True


def unexpected_errors(k8s: kmock.KubernetesEmulator) -> list[Exception]:
    """Server-side errors besides the 404s of get-before-create."""
    return [error for error in k8s.errors if getattr(error, "status", None) != 404]


def job_names(k8s: kmock.KubernetesEmulator) -> list[str]:
    """Validation Jobs in creation order (kmock keys are (resource, namespace, name))."""
    return [key[2] for key in k8s.objects if key[0].plural == "jobs"]


async def make_ready(k8s: kmock.KubernetesEmulator, rev: str, replicas: int) -> None:
    """Play the Deployment controller: the revision's pods are ready."""
    await k8s.patch(
        f"/apis/apps/v1/namespaces/{NS}/deployments/iris-{rev}/status",
        json={"status": {"readyReplicas": replicas, "replicas": replicas}},
    )


async def job_finished(
    k8s: kmock.KubernetesEmulator, name: str, succeeded: bool, failed_pods: int = 2
) -> None:
    """Play the Job controller: Job `name` completed, or failed after `failed_pods` pods."""
    condition = "Complete" if succeeded else "Failed"
    await k8s.patch(
        f"/apis/batch/v1/namespaces/{NS}/jobs/{name}/status",
        json={
            "status": {
                "succeeded": 1 if succeeded else 0,
                "failed": 0 if succeeded else failed_pods,
                "conditions": [
                    {"type": condition, "status": "True", "reason": "Test", "message": "by test"}
                ],
            }
        },
    )


async def finish_validation(k8s: kmock.KubernetesEmulator, passed: bool = True) -> str:
    """Play the Job controller: the newest validation Job finished."""
    jobs = job_names(k8s)
    assert jobs, "no validation Job was created"
    name = jobs[-1]
    await job_finished(k8s, name, passed)
    return name


async def validated_v2(k8s: kmock.KubernetesEmulator) -> str:
    """Apply version 2.0.0, play its pods ready and its validation Job passed."""
    body = manifest("2.0.0")
    new = revision(body)
    await k8s.patch(f"{BASE}/iris", json={"spec": body["spec"]})
    await wait_for(lambda: has_object(k8s, "apps/v1/deployments", f"iris-{new}"))
    await make_ready(k8s, new, 1)
    await wait_for(lambda: len(job_names(k8s)) == 2)
    await finish_validation(k8s)
    return new


async def first_version_stable(k8s: kmock.KubernetesEmulator, **spec: Any) -> str:
    body = manifest(**spec)
    await k8s.post(BASE, json=body)
    rev = revision(body)
    await wait_for(lambda: has_object(k8s, "apps/v1/deployments", f"iris-{rev}"))
    await make_ready(k8s, rev, 1)
    await wait_for(lambda: len(job_names(k8s)) == 1)
    await finish_validation(k8s)
    await wait_for(lambda: phase(k8s) == "Promoting")
    await make_ready(k8s, rev, 2)
    await wait_for(lambda: phase(k8s) == "Stable")
    return rev


async def test_first_version_gets_deployment_services_job_and_status(k8s, operator):
    deployment_creates = k8s["create apps/v1/deployments"]
    service_creates = k8s["create v1/services"]
    job_creates = k8s["create batch/v1/jobs"]
    events = k8s["create v1/events"]
    rev = await first_version_stable(k8s)

    [created] = [c.data for c in deployment_creates]
    assert created["metadata"]["name"] == f"iris-{rev}"
    [owner] = created["metadata"]["ownerReferences"]
    assert owner["kind"] == "ModelDeployment" and owner["uid"] == "uid-iris"
    container = created["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SERINUS_MODEL_URI"] == "file:///models/1.0.0"
    assert env["SERINUS_REVISION"] == rev
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert sorted(s.data["metadata"]["name"] for s in service_creates) == [
        "iris",
        "iris-canary",
        "iris-stable",
    ]
    [job] = [j.data for j in job_creates]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["serinus", "check"]

    final = status(k8s)
    assert final["stable"]["revision"] == rev and final["stable"]["version"] == "1.0.0"
    assert final["observedGeneration"] == 1
    conditions = {c["type"]: c["status"] for c in final["conditions"]}
    assert conditions["Ready"] == "True" and conditions["Progressing"] == "False"
    reasons = [e.data["reason"] for e in events]
    assert "Validating" in reasons and "Stable" in reasons
    assert unexpected_errors(k8s) == []


async def test_new_version_is_canaried_and_promoted_when_analysis_passes(
    k8s, operator, provider: ScriptedProvider
):
    old = await first_version_stable(k8s)
    body = manifest("2.0.0")
    new = revision(body)
    await k8s.patch(f"{BASE}/iris", json={"spec": body["spec"], "metadata": {"generation": 2}})
    await wait_for(lambda: has_object(k8s, "apps/v1/deployments", f"iris-{new}"))
    await wait_for(lambda: phase(k8s) == "Validating")
    await make_ready(k8s, new, 1)
    await wait_for(lambda: len(job_names(k8s)) == 2)
    await finish_validation(k8s)
    await wait_for(lambda: phase(k8s) in ("Progressing", "Promoting"), timeout=20)
    await make_ready(k8s, new, 2)
    await wait_for(lambda: phase(k8s) == "Stable", timeout=30)
    final = status(k8s)
    assert final["stable"]["revision"] == new
    assert final["history"][-1]["result"] == "Promoted"
    assert final["analysis"]["checks"][-1]["verdict"] == "Pass"
    assert provider.marks and provider.marks[0].canary == new and provider.marks[0].stable == old
    assert unexpected_errors(k8s) == []


async def test_failing_analysis_rolls_back_and_keeps_stable(k8s, operator, provider):
    old = await first_version_stable(k8s)
    provider.canary = healthy(500, errors=200)  # 40 % errors against stable's 0.4 %
    await validated_v2(k8s)
    await wait_for(lambda: phase(k8s) == "RolledBack", timeout=30)
    final = status(k8s)
    assert final["stable"]["revision"] == old
    assert final["history"][-1]["result"] == "RolledBack"
    assert "error-rate" in final["history"][-1]["reason"]
    assert final["canary"]["weight"] == 0
    assert unexpected_errors(k8s) == []


async def test_invalid_spec_sets_a_condition_and_deletes_nothing(k8s, operator):
    await first_version_stable(k8s)
    deletes = k8s["delete apps/v1/deployments"]
    bad = manifest()["spec"] | {"model": {"uri": "s3://x/m.joblib", "format": "joblib"}}
    await k8s.patch(f"{BASE}/iris", json={"spec": bad})
    await wait_for(lambda: "spec is invalid" in status(k8s).get("message", ""))
    final = status(k8s)
    conditions = {c["type"]: c for c in final["conditions"]}
    assert conditions["SpecValid"]["status"] == "False"
    assert "spec.model: format joblib (pickle)" in conditions["SpecValid"]["message"]
    assert final["stable"]["version"] == "1.0.0"
    assert len(deletes) == 0


async def test_annotation_actions_are_acknowledged(k8s, operator, provider):
    await first_version_stable(k8s)
    provider.canary = healthy(3)  # below minRequests: Inconclusive
    await validated_v2(k8s)
    await wait_for(lambda: phase(k8s) == "Progressing")
    await k8s.patch(
        f"{BASE}/iris", json={"metadata": {"annotations": {"serinus.dev/action": "abort/1"}}}
    )
    await wait_for(lambda: phase(k8s) == "RolledBack", timeout=20)
    last = status(k8s)["lastAction"]
    assert (last["action"], last["nonce"], last["result"]) == ("abort", "1", "aborted")
    assert status(k8s)["history"][-1]["result"] == "Aborted"


async def start_canary_at_first_analysis(k8s, provider) -> str:
    """v2 validated and held at its first weight (analysis Inconclusive: too little traffic)."""
    provider.canary = healthy(3)
    new = await validated_v2(k8s)
    await wait_for(lambda: status(k8s).get("analysis", {}).get("inconclusiveChecks", 0) >= 1)
    return new


async def test_deleted_canary_deployment_is_recreated(k8s, operator, provider):
    await first_version_stable(k8s)
    new = await start_canary_at_first_analysis(k8s, provider)
    creates = k8s["create apps/v1/deployments"]
    before = len(creates)  # the spy sees the whole history
    await k8s.delete(f"/apis/apps/v1/namespaces/{NS}/deployments/iris-{new}")
    await wait_for(lambda: len(creates) == before + 1)
    assert creates[-1].data["metadata"]["name"] == f"iris-{new}"
    assert phase(k8s) == "Progressing"
    await wait_for(
        lambda: any(
            dict(k8s.objects[key]).get("reason") == "DeploymentRecreated"
            for key in k8s.objects
            if key[0].plural == "events"
        )
    )


async def test_operator_restarted_mid_rollout_resumes_at_the_same_step(k8s, provider):
    async with running_operator(k8s, provider):
        await first_version_stable(k8s)
        await start_canary_at_first_analysis(k8s, provider)
        before = status(k8s)["canary"]
    assert before["step"] == 1 and before["desiredWeight"] == 50
    deployment_creates = k8s["create apps/v1/deployments"]
    job_creates = k8s["create batch/v1/jobs"]
    deployments_before, jobs_before = len(deployment_creates), len(job_creates)
    provider.canary = healthy(500)  # traffic arrives after the restart
    async with running_operator(k8s, provider):
        await wait_for(lambda: phase(k8s) == "Promoting", timeout=20)
    after = status(k8s)
    assert after["canary"]["startedAt"] == before["startedAt"]
    assert after["analysis"]["passedChecks"] >= 1  # the check after the restart passed
    assert len(deployment_creates) == deployments_before  # nothing redeployed
    assert len(job_creates) == jobs_before  # validation not rerun
    assert unexpected_errors(k8s) == []


async def test_a_route_that_cannot_be_set_is_reported_and_retried(k8s, operator):
    k8s.resources["gateway.networking.k8s.io/v1/httproutes"] = kmock.ResourceInfo(
        kind="HTTPRoute",
        singular="httproute",
        namespaced=True,
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
    )
    body = manifest(traffic={"provider": "gateway-api", "gatewayAPI": {"httpRoute": "public"}})
    await k8s.post(BASE, json=body)
    rev = revision(body)
    await wait_for(lambda: has_object(k8s, "apps/v1/deployments", f"iris-{rev}"))
    await make_ready(k8s, rev, 1)
    await wait_for(lambda: len(job_names(k8s)) == 1)
    await finish_validation(k8s)
    await make_ready(k8s, rev, 2)

    def applied() -> dict[str, Any]:
        return {c["type"]: c for c in status(k8s).get("conditions", [])}.get("Applied", {})

    await wait_for(lambda: applied().get("status") == "False")
    assert (
        "HTTPRoute ns1/public not found: create it or remove traffic.gatewayAPI.httpRoute"
        in (applied()["message"])
    )
    events = [dict(k8s.objects[key]) for key in k8s.objects if key[0].plural == "events"]
    failures = [e for e in events if e["reason"] == "ActionFailed"]
    assert len(failures) == 1 and failures[0]["type"] == "Warning"  # once, not every tick

    await k8s.post(  # the user creates the route: the next tick goes through
        f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes",
        json={
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "public", "namespace": NS, "uid": "uid-route",
                         "resourceVersion": "1"},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "iris-stable", "port": 80}]}]},
        },
    )  # fmt: skip
    await wait_for(lambda: phase(k8s) == "Stable")
    assert applied()["status"] == "True"


async def test_settled_deployment_acts_on_a_deleted_or_unready_revision_at_once(k8s, operator):
    """Outside a rollout only a slow safety-net timer runs (600 s here): the revision
    Deployment's own watch events bring the ModelDeployment back to the operator."""
    rev = await first_version_stable(k8s)
    creates = k8s["create apps/v1/deployments"]
    before = len(creates)
    await k8s.delete(f"/apis/apps/v1/namespaces/{NS}/deployments/iris-{rev}")
    await wait_for(lambda: len(creates) == before + 1, timeout=10)
    assert creates[-1].data["metadata"]["name"] == f"iris-{rev}"
    await make_ready(k8s, rev, 2)
    await wait_for(lambda: phase(k8s) == "Stable", timeout=10)
    await make_ready(k8s, rev, 0)
    await wait_for(lambda: phase(k8s) == "Degraded", timeout=10)
    await make_ready(k8s, rev, 2)
    await wait_for(lambda: phase(k8s) == "Stable", timeout=10)
