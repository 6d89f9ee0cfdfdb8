"""What `kubectl serinus` does against a cluster: read a ModelDeployment's status and Events,
and ask for manual actions by writing the action annotation (the operator acts on it once).

Plain functions over a `kubernetes` ApiClient, so the commands work against any cluster the
kubeconfig reaches and the tests run them against kmock.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from serinus.api.resource import ACTION_ANNOTATION, GROUP, KIND, PLURAL, VERSION
from serinus.api.status import ActionKind, Check, ModelDeploymentStatus
from serinus.local.state import LocalEvent


class KubectlError(Exception):
    """The cluster could not be asked, or said no; the message says what to do."""


def connect(kubeconfig: str | None = None, context: str | None = None) -> tuple[Any, str]:
    """An ApiClient for the kubeconfig's (or in-cluster) credentials, and the namespace of the
    current context ("default" when it names none)."""
    try:
        contexts, current = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
        chosen = (
            next((c for c in contexts if c["name"] == context), current) if context else current
        )
        namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
        client = kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context)
        return client, namespace
    except (kubernetes.config.ConfigException, OSError, yaml.YAMLError) as error:
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            raise KubectlError(
                f"no usable kubeconfig ({error}): set KUBECONFIG or pass --kubeconfig"
            ) from error
        return kubernetes.client.ApiClient(), "default"


def get_deployment(api: Any, namespace: str, name: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as error:
        raise _explain(error, namespace, name) from error
    except HTTPError as error:
        raise KubectlError(f"cannot reach the cluster: {error}") from error
    return body


def read_status(body: dict[str, Any]) -> ModelDeploymentStatus:
    raw = {k: v for k, v in (body.get("status") or {}).items() if not k.startswith("kopf")}
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError as error:
        raise KubectlError(
            f"the status of {body['metadata']['name']} cannot be read ({error.error_count()} "
            "problems): is the operator the same version as this plugin?"
        ) from error


def request_action(api: Any, namespace: str, name: str, action: ActionKind) -> str:
    """Set `serinus.dev/action: <action>/<nonce>`; returns the value written."""
    value = f"{action.value}/{secrets.token_hex(4)}"
    patch = {"metadata": {"annotations": {ACTION_ANNOTATION: value}}}
    try:
        kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch
        )
    except ApiException as error:
        raise _explain(error, namespace, name) from error
    except HTTPError as error:
        raise KubectlError(f"cannot reach the cluster: {error}") from error
    return value


def events(api: Any, namespace: str, name: str) -> list[LocalEvent]:
    """The ModelDeployment's Events, oldest first (an unreadable list is an empty one: Events
    are a courtesy, and the status holds the decisions)."""
    selector = f"involvedObject.kind={KIND},involvedObject.name={name}"
    try:
        items = (
            kubernetes.client.CoreV1Api(api)
            .list_namespaced_event(namespace, field_selector=selector)
            .items
        )
    except (ApiException, HTTPError):
        return []
    found = [
        LocalEvent(
            time=_event_time(item),
            type=item.type or "Normal",
            reason=item.reason or "",
            message=item.message or "",
        )
        for item in items
        if item.involved_object is not None and item.involved_object.name == name
    ]
    return sorted(found, key=lambda event: event.time)


def analysis_lines(status: ModelDeploymentStatus, events_: list[LocalEvent]) -> list[str]:
    """Every check the status keeps, metric by metric, then the analysis Events (which reach
    further back than the status' last checks)."""
    lines = [line for check in status.analysis.checks for line in _check_lines(check)]
    if not lines:
        lines.append("no analysis check in the current rollout yet")
    analysis_events = [e for e in events_ if e.reason.startswith("Analysis")]
    if analysis_events:
        lines.append("")
        lines.append("analysis Events:")
        lines.extend(
            f"  {e.time:%Y-%m-%d %H:%M:%S} {e.reason}: {e.message}" for e in analysis_events
        )
    return lines


def _check_lines(check: Check) -> list[str]:
    head = (
        f"{check.at:%Y-%m-%d %H:%M:%S} step {check.step} weight {check.weight}% "
        f"{check.verdict.value}"
        + (f" ({check.canary_requests} canary requests)" if check.canary_requests else "")
    )
    return [head] + [f"  {m.name}: {m.verdict.value} — {m.reason}" for m in check.metrics]


def _event_time(item: Any) -> datetime:
    moment = item.last_timestamp or item.event_time or item.first_timestamp
    if moment is None:
        return datetime.fromtimestamp(0, UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _explain(error: ApiException, namespace: str, name: str) -> KubectlError:
    if error.status == 404:
        return KubectlError(f"{KIND} {namespace}/{name} not found (check the name and -n)")
    if error.status in (401, 403):
        return KubectlError(
            f"the cluster refused ({error.status} {error.reason}): your user needs get/patch on "
            f"{PLURAL}.{GROUP} in {namespace}"
        )
    return KubectlError(f"the cluster answered {error.status} {error.reason}")
