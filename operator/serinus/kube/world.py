"""Reading the cluster for one ModelDeployment: what the engine's Observations need.

Sync on purpose: kopf runs sync handlers in worker threads, and the same code then serves the
end-to-end tests and the scale benchmark without an async client.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from serinus.core.observations import RetrainOutcome, ValidationOutcome
from serinus.traffic import naming

JOB_RUNNING = None


class ClusterReader:
    """Lists and reads through the official client (one ApiClient per operator)."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.batch = kubernetes.client.BatchV1Api(api_client)

    def deployments(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The revision Deployments as plain JSON: every tick lists them, and the client's typed
        models cost several times the request itself to build."""
        selector = ",".join(f"{k}={v}" for k, v in naming.selector_for(name).items())
        response = self.apps.list_namespaced_deployment(
            namespace, label_selector=selector, _preload_content=False
        )
        items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
        return items

    def ready_replicas(self, namespace: str, name: str) -> dict[str, int]:
        """Ready pods per revision, from the Deployments' status."""
        ready: dict[str, int] = {}
        for deployment in self.deployments(namespace, name):
            revision = (deployment.get("metadata", {}).get("labels") or {}).get(
                naming.LABEL_REVISION
            )
            if revision:
                ready[revision] = (deployment.get("status") or {}).get("readyReplicas") or 0
        return ready

    def delete_deployment(self, namespace: str, deployment: str) -> None:
        try:
            self.apps.delete_namespaced_deployment(deployment, namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    def _finished_job(
        self, namespace: str, job_name: str, what: str
    ) -> tuple[bool, str | None] | None:
        """(succeeded, termination message or the Failed condition's words) of a finished Job;
        None while it runs or before it exists."""
        try:
            job = self.batch.read_namespaced_job(job_name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        status = job.status
        conditions = {c.type: c for c in (status.conditions or [])} if status else {}
        succeeded = bool(status and status.succeeded) or _true(conditions.get("Complete"))
        failed = _true(conditions.get("Failed"))
        if not succeeded and not failed:
            return JOB_RUNNING
        message = self._termination_message(namespace, job_name)
        if not message and failed:
            reason = conditions["Failed"]
            message = f"{what} Job {job_name} failed: {reason.reason}: {reason.message}"
        return succeeded, message

    def retrain(self, namespace: str, job_name: str, job: str) -> RetrainOutcome | None:
        """The finished retraining Job's outcome (its result parsed from the termination
        message), None while it runs."""
        finished = self._finished_job(namespace, job_name, "retraining")
        if finished is None:
            return None
        succeeded, message = finished
        if not succeeded:
            return RetrainOutcome(
                job=job, succeeded=False, message=message or f"Job {job_name} failed"
            )
        try:
            result = json.loads(message or "")
        except ValueError:
            return RetrainOutcome(
                job=job, succeeded=False,
                message=f"Job {job_name} succeeded but its termination message is not JSON: "
                f"{(message or '(empty)')[:200]!r}",
            )  # fmt: skip
        return RetrainOutcome(
            job=job, succeeded=True, message=f"Job {job_name} succeeded", result=result
        )

    def validation(self, namespace: str, job_name: str, revision: str) -> ValidationOutcome | None:
        """The finished validation Job's outcome, None while it runs (or before it exists)."""
        finished = self._finished_job(namespace, job_name, "validation")
        if finished is None:
            return None
        succeeded, message = finished
        return ValidationOutcome(
            revision=revision,
            passed=succeeded,
            message=(message or f"validation Job {job_name} succeeded")
            .removeprefix("passed: ")
            .removeprefix("failed: "),
        )

    def _termination_message(self, namespace: str, job_name: str) -> str | None:
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}")
        newest = sorted(
            pods.items, key=lambda pod: pod.metadata.creation_timestamp or 0, reverse=True
        )
        for pod in newest:
            for container in (pod.status.container_statuses or []) if pod.status else []:
                terminated = container.state.terminated if container.state else None
                if terminated and terminated.message:
                    return terminated.message.strip()
        return None


def _true(condition: Any) -> bool:
    return condition is not None and condition.status == "True"
