"""The few Kubernetes operations the traffic routers need, behind a small protocol.

Routers are synchronous and get a `KubeObjects` injected: `DynamicKubeObjects` in the operator
(official `kubernetes` client), an in-memory fake in unit tests. Objects are plain dicts as the
API serves them. `patch` is a JSON merge patch (RFC 7386): maps merge, `None` deletes a key,
lists are replaced whole — never strategic merge, which kmock and custom resources lack.

Routers replace lists they do not own entirely (the rules of a user's HTTPRoute) by
read-modify-write; they put the `resourceVersion` they read into the patch, so the API server
refuses the write with 409 (`ConflictError`) if someone changed the object in between, and
`retry_on_conflict` reads again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import kubernetes

from serinus.traffic.naming import LABEL_MANAGED_BY, MANAGED_BY

MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT_SECONDS = 30.0
CONFLICT_ATTEMPTS = 3

T = TypeVar("T")


class KubeError(Exception):
    """A Kubernetes API request failed; the message names the object and the server's reason."""


class ConflictError(KubeError):
    """The object changed since it was read (409 on a write with a resourceVersion)."""


class NotServedError(KubeError):
    """The cluster does not serve this kind at all (its CRD is not installed)."""


class RouteError(Exception):
    """The cluster is not set up as `spec.traffic` says (a missing or unusable route); the
    message says what to change. Drivers show it in status and retry later."""


class KubeObjects(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        """The object, or None when it does not exist."""

    def create(self, body: dict) -> dict:
        """Create `body`; if it exists already, merge-patch it with `body` (idempotent). A
        merge patch keeps map keys `body` lacks: use `set_service_selector` for selectors."""

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict) -> dict:
        """JSON merge patch; raises KubeError if the object does not exist."""

    def scale(self, namespace: str, deployment_name: str, replicas: int) -> None:
        """Set a Deployment's spec.replicas."""


def resource_plural(kind: str) -> str:
    """The resource name of a kind, guessed the way apimachinery's UnsafeGuessKindToResource
    does (exact for every kind Serinus writes: services, deployments, httproutes,
    virtualservices, destinationrules)."""
    irregular = {"Endpoints": "endpoints"}
    if kind in irregular:
        return irregular[kind]
    singular = kind.lower()
    if singular.endswith("s"):
        return singular + "es"
    if singular.endswith("y"):
        return singular[:-1] + "ies"
    return singular + "s"


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{quote(namespace)}/{resource_plural(kind)}"
    return f"{path}/{quote(name)}" if name is not None else path


def describe(api_version: str, kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name} ({api_version})"


def merge_patch_replacing(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 merge patch that turns `old` into exactly `new`: keys missing from `new` are
    deleted (null), maps are diffed recursively, lists and scalars are replaced when they differ.
    `new` must hold no nulls (a null means "delete" in a merge patch)."""
    old = old or {}
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch_replacing(before, value)
            if nested:
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    return patch


def patch_guarded(
    kube: KubeObjects, found: dict, api_version: str, kind: str, spec_patch: dict[str, Any]
) -> None:
    """Merge-patch a user's object guarded by the resourceVersion it was read at: a concurrent
    edit becomes a ConflictError (for `retry_on_conflict`) instead of being overwritten."""
    metadata = found.get("metadata") or {}
    patch: dict[str, Any] = {"spec": spec_patch}
    if metadata.get("resourceVersion"):
        patch["metadata"] = {"resourceVersion": metadata["resourceVersion"]}
    kube.patch(api_version, kind, metadata["namespace"], metadata["name"], patch)


def retry_on_conflict(write: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run a read-modify-write again when the object changed under it."""
    for attempt in range(attempts):
        try:
            return write()
        except ConflictError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def set_service_selector(
    kube: KubeObjects, namespace: str, service: str, selector: dict[str, str]
) -> None:
    """Make a Service select exactly `selector` (writes only when it differs)."""
    current = kube.get("v1", "Service", namespace, service)
    if current is None:
        raise RouteError(
            f"Service {namespace}/{service} not found: the operator creates it with the "
            "Deployments; it will be retried"
        )
    old = (current.get("spec") or {}).get("selector") or {}
    if old != selector:
        patch = {"spec": {"selector": merge_patch_replacing(old, selector)}}
        kube.patch("v1", "Service", namespace, service, patch)


class DynamicKubeObjects:
    """`KubeObjects` over the official client's ApiClient (REST calls, no discovery).

    Thread-safe as far as the ApiClient is (urllib3's pool is); one instance can serve every
    handler thread.
    """

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api = api_client

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        status, body = self._request("GET", resource_path(api_version, kind, namespace, name))
        if status == 404:
            if _kind_not_served(body):
                raise NotServedError(
                    f"the cluster does not serve {kind} ({api_version}): install its "
                    "CustomResourceDefinition, or choose another spec.traffic.provider"
                )
            return None
        self._raise_for(status, body, "GET", describe(api_version, kind, namespace, name))
        return body

    def create(self, body: dict) -> dict:
        api_version, kind = body["apiVersion"], body["kind"]
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        path = resource_path(api_version, kind, namespace)
        status, created = self._request("POST", path, body)
        if status == 409:
            return self.patch(api_version, kind, namespace, name, _as_update(body))
        self._raise_for(status, created, "POST", describe(api_version, kind, namespace, name))
        return created

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict) -> dict:
        path = resource_path(api_version, kind, namespace, name)
        status, body = self._request("PATCH", path, patch, content_type=MERGE_PATCH)
        what = describe(api_version, kind, namespace, name)
        if status == 404:
            raise KubeError(f"cannot patch {what}: it does not exist")
        if status == 409:
            raise ConflictError(f"{what} changed while it was being updated: {_message(body)}")
        self._raise_for(status, body, "PATCH", what)
        return body

    def scale(self, namespace: str, deployment_name: str, replicas: int) -> None:
        # A merge patch of spec.replicas is the same write as the scale subresource and needs
        # no extra RBAC rule (the operator already patches its Deployments).
        self.patch(
            "apps/v1", "Deployment", namespace, deployment_name, {"spec": {"replicas": replicas}}
        )

    def _request(
        self, method: str, path: str, body: dict | None = None, content_type: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        request = self._api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self._api.call_api(*request, _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except kubernetes.client.exceptions.ApiException as error:  # raised by some transports
            return error.status or 0, _decode(error.body)
        except Exception as error:  # network: name it, the driver retries next tick
            raise KubeError(f"{method} {path}: the API server did not answer: {error}") from error
        return response.status, _decode(response.read())

    @staticmethod
    def _raise_for(status: int, body: Any, method: str, what: str) -> None:
        if not 200 <= status < 300:
            raise KubeError(f"{method} {what} failed with HTTP {status}: {_message(body)}")


def _decode(raw: bytes | str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("reason") or body)
    return str(body)


def _kind_not_served(body: Any) -> bool:
    """A 404 for the resource type rather than for the object: the API server answers
    `404 page not found` for an unknown group and "the server could not find the requested
    resource" (without the object's name in details) for an unknown resource."""
    if not isinstance(body, dict):
        return True
    named = (body.get("details") or {}).get("name")
    return not named and "could not find the requested resource" in str(body.get("message"))


def _as_update(body: dict) -> dict:
    """The merge patch that makes an existing object carry what `body` would have created."""
    metadata = body.get("metadata", {})
    kept = {
        key: metadata[key]
        for key in ("labels", "annotations", "ownerReferences")
        if metadata.get(key) is not None
    }
    skipped = ("apiVersion", "kind", "metadata", "status")
    return {"metadata": kept} | {key: value for key, value in body.items() if key not in skipped}


def apply_owned(kube: KubeObjects, body: dict) -> dict:
    """Create an object the router owns, or bring an existing one to `body`.

    An object of that name that Serinus did not create is left alone (RouteError): it is
    someone's configuration, and overwriting it would silently take over their traffic.
    """
    api_version, kind = body["apiVersion"], body["kind"]
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    existing = kube.get(api_version, kind, namespace, name)
    if existing is None:
        return kube.create(body)
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) != MANAGED_BY:
        raise RouteError(
            f"{kind} {namespace}/{name} exists and was not created by Serinus: name it in "
            f"spec.traffic to let Serinus set its weights, or rename or delete it"
        )
    patch: dict[str, Any] = {"metadata": {"labels": metadata.get("labels", {})}}
    if metadata.get("ownerReferences"):
        patch["metadata"]["ownerReferences"] = metadata["ownerReferences"]
    patch["spec"] = merge_patch_replacing(existing.get("spec"), body["spec"])
    if _unchanged(existing, patch):
        return existing
    return kube.patch(api_version, kind, namespace, name, patch)


def _unchanged(existing: dict, patch: dict) -> bool:
    """Whether applying merge patch `patch` to `existing` would change nothing."""
    for key, value in patch.items():
        if value is None:
            if key in existing:
                return False
        elif isinstance(value, dict) and isinstance(existing.get(key), dict):
            if not _unchanged(existing[key], value):
                return False
        elif existing.get(key) != value:
            return False
    return True
