"""Pure builders of the Kubernetes objects the operator owns: runtime Deployments, Services, the
pre-traffic validation Job and the retraining Job. No I/O; every object validates against the
Kubernetes schemas (tests).
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime
from typing import Any

from serinus.api.resource import API_VERSION, KIND
from serinus.api.spec import ModelDeploymentSpec
from serinus.api.types import parse_duration
from serinus.core.actions import EmitEvent, StartRetrain
from serinus.traffic import naming

RUNTIME_PORT = naming.CONTAINER_PORT
SERVICE_PORT = naming.SERVICE_PORT
VALIDATION_BACKOFF_LIMIT = 1
RUNTIME_UID = 10001
EVENT_SOURCE = "serinus-operator"


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(
    name: str, namespace: str, owner: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [owner],
    }


def _restricted_security() -> tuple[dict[str, Any], dict[str, Any]]:
    """Pod and container security contexts meeting the `restricted` Pod Security Standard."""
    pod = {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "fsGroup": RUNTIME_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return pod, container


def runtime_env(
    spec: ModelDeploymentSpec, name: str, revision: str, variant: str
) -> list[dict[str, Any]]:
    """The runtime's settings as SERINUS_* variables, then the user's own."""
    model, runtime = spec.model, spec.runtime
    values = {
        "SERINUS_MODEL_URI": model.uri,
        "SERINUS_MODEL_FORMAT": model.format.value,
        "SERINUS_MODEL_SHA256": model.sha256,
        "SERINUS_MODEL_TRUST": "true" if model.trust else None,
        "SERINUS_MODEL_TRUSTED_TYPES": ",".join(model.trusted_types) or None,
        "SERINUS_MODEL_NAME": name,
        "SERINUS_MODEL_VERSION": model.version or revision,
        "SERINUS_REVISION": revision,
        "SERINUS_VARIANT": variant,
        "SERINUS_PORT": str(RUNTIME_PORT),
        "SERINUS_WORKERS": str(runtime.workers),
        "SERINUS_MAX_BATCH_SIZE": str(runtime.batching.max_batch_size),
        "SERINUS_MAX_LATENCY_MS": str(runtime.batching.max_latency_ms),
        "TMPDIR": "/tmp",
    }
    env = [{"name": key, "value": value} for key, value in values.items() if value is not None]
    env += [var.to_wire() for var in runtime.env]
    return env


def build_deployment(
    spec: ModelDeploymentSpec,
    name: str,
    namespace: str,
    uid: str,
    revision: str,
    variant: str,
    replicas: int,
) -> dict[str, Any]:
    """The runtime Deployment of one revision."""
    runtime = spec.runtime
    labels = naming.pod_labels(name, revision)
    pod_security, container_security = _restricted_security()
    probe = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 2}
    container = {
        "name": "runtime",
        "image": runtime.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": naming.CONTAINER_PORT_NAME, "containerPort": RUNTIME_PORT, "protocol": "TCP"}
        ],
        "env": runtime_env(spec, name, revision, variant),
        "resources": runtime.resources.to_wire(),
        "readinessProbe": {**probe, "failureThreshold": 2},
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "startupProbe": {**probe, "failureThreshold": 150},
        "securityContext": container_security,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": pod_security,
        "volumes": [{"name": "tmp", "emptyDir": {}}],
        "automountServiceAccountToken": runtime.service_account_name is not None,
    }
    if runtime.service_account_name:
        pod_spec["serviceAccountName"] = runtime.service_account_name
    if runtime.node_selector:
        pod_spec["nodeSelector"] = dict(runtime.node_selector)
    if runtime.tolerations:
        pod_spec["tolerations"] = list(runtime.tolerations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            naming.deployment_name(name, revision),
            namespace,
            owner_reference(name, uid),
            labels,
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": naming.selector_for(name, revision)},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(RUNTIME_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def build_service(
    service_name: str,
    name: str,
    namespace: str,
    uid: str,
    selector: dict[str, str],
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            service_name, namespace, owner_reference(name, uid), naming.selector_for(name)
        ),
        "spec": {
            "selector": selector,
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def build_validation_job(
    spec: ModelDeploymentSpec,
    name: str,
    namespace: str,
    uid: str,
    revision: str,
    image: str,
    stable_url: str | None,
) -> dict[str, Any]:
    """A Job running `serinus check` (smoke requests, dataset gate) against the canary Service."""
    _, _, canary_service = naming.service_names(name)
    url = f"http://{canary_service}.{namespace}.svc:{SERVICE_PORT}"
    plan = {
        "model": name,
        "url": url,
        "stableUrl": stable_url,
        "validation": spec.validation.to_wire(),
    }
    pod_security, container_security = _restricted_security()
    labels = {**naming.selector_for(name, revision), "serinus.dev/role": "validation"}
    timeout = spec.validation.timeout
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(
            validation_job_name(name, revision), namespace, owner_reference(name, uid), labels
        ),
        "spec": {
            "backoffLimit": VALIDATION_BACKOFF_LIMIT,
            "activeDeadlineSeconds": int(parse_seconds(timeout)),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security,
                    "containers": [
                        {
                            "name": "check",
                            "image": image,
                            # command, not args: the image's entrypoint runs the operator
                            "command": ["serinus", "check", "--plan", json.dumps(plan)],
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "securityContext": container_security,
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def build_event(involved: dict[str, str], event: EmitEvent, now: datetime) -> dict[str, Any]:
    """A core/v1 Event with a unique name of its own (no reliance on generateName)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{involved['name']}.{uuid.uuid4().hex[:16]}",
            "namespace": involved["namespace"],
        },
        "involvedObject": involved,
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": EVENT_SOURCE},
        "reportingComponent": EVENT_SOURCE,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


RESULT_FILE = "/dev/termination-log"
"""Where a retraining Job's container writes its result: Kubernetes' default termination message
path, read back from the pod's status."""


def build_retrain_job(
    spec: ModelDeploymentSpec, name: str, namespace: str, uid: str, action: StartRetrain
) -> dict[str, Any]:
    """The user's `spec.retrain.jobTemplate` as a Job named for `action.job`, owned by the
    ModelDeployment, each container told why it runs and where the current model is."""
    assert spec.retrain is not None
    template = copy.deepcopy(spec.retrain.job_template)
    metadata = template.get("metadata") or {}
    labels = {
        **(metadata.get("labels") or {}),
        **naming.selector_for(name),
        "serinus.dev/role": "retrain",
    }
    job_spec = template.get("spec") or {}
    job_spec.setdefault("backoffLimit", 0)
    pod = job_spec.setdefault("template", {}).setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    job_spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    facts = retrain_facts(action)
    for container in pod.get("containers") or []:
        result_file = container.get("terminationMessagePath") or RESULT_FILE
        mine = {**facts, "SERINUS_RESULT_FILE": result_file}
        env = [e for e in container.get("env") or [] if e.get("name") not in mine]
        container["env"] = [*env, *({"name": k, "value": v} for k, v in mine.items())]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            **{k: v for k, v in metadata.items() if k not in ("name", "namespace", "labels")},
            **_metadata(
                retrain_job_name(name, action.job), namespace, owner_reference(name, uid), labels
            ),
        },
        "spec": job_spec,
    }


def retrain_facts(action: StartRetrain) -> dict[str, str]:
    """The environment a retraining Job (or local command) is told why it runs by."""
    return {
        "SERINUS_RETRAIN_REASON": action.reason,
        "SERINUS_RETRAIN_TRIGGER": action.trigger,
        "SERINUS_MODEL_URI": action.model_uri,
        "SERINUS_MODEL_SHA256": action.model_sha256 or "",
        "SERINUS_MODEL_VERSION": action.model_version or "",
        "SERINUS_WINDOW_START": action.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SERINUS_WINDOW_END": action.window_end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def retrain_job_name(name: str, job: str) -> str:
    """`<ModelDeployment>-<job id>`, within the 63 characters a Job's pods can label."""
    return f"{name[: 62 - len(job)].rstrip('-')}-{job}"


def validation_job_name(name: str, revision: str) -> str:
    return f"{name}-validate-{revision}"[:63].rstrip("-")


def parse_seconds(duration: str) -> float:
    return parse_duration(duration).total_seconds()
