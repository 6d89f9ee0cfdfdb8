"""An in-memory `KubeObjects` for router tests (stores dicts, applies JSON merge patches), the
objects the operator would have created, and schema checks of everything stored.

It behaves like the API server where the routers depend on it: merge patches recurse into maps,
replace lists whole and delete keys set to None; every write bumps `metadata.resourceVersion`,
and a patch carrying a stale resourceVersion fails with ConflictError; create of an existing
object merges into it (like DynamicKubeObjects' 409 handling).
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest

from serinus.api.spec import TrafficSpec
from serinus.traffic.kube_api import ConflictError, KubeError
from serinus.traffic.naming import (
    CONTAINER_PORT_NAME,
    SERVICE_PORT,
    deployment_name,
    pod_labels,
    selector_for,
    service_names,
)
from serinus.traffic.router import RouteContext

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


@dataclass(frozen=True)
class Write:
    verb: str  # create | patch | scale
    kind: str
    namespace: str
    name: str
    body: Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKubeObjects:
    def __init__(self) -> None:
        self.objects: dict[Key, dict] = {}
        self.writes: list[Write] = []
        self.before_next_patch: Callable[[], None] | None = None
        """Runs once before the next patch: a concurrent writer, for conflict tests."""
        self._version = 0

    # --- KubeObjects -----------------------------------------------------------------------

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def create(self, body: dict) -> dict:
        key = _key(body)
        self.writes.append(Write("create", key[1], key[2], key[3], copy.deepcopy(body)))
        if key in self.objects:
            return self._store(key, merge_patch(self.objects[key], body))
        return self._store(key, copy.deepcopy(body))

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict) -> dict:
        if self.before_next_patch is not None:
            concurrent, self.before_next_patch = self.before_next_patch, None
            concurrent()
        key = (api_version, kind, namespace, name)
        self.writes.append(Write("patch", kind, namespace, name, copy.deepcopy(patch)))
        if key not in self.objects:
            raise KubeError(f"cannot patch {kind} {namespace}/{name}: it does not exist")
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        current = self.objects[key]["metadata"].get("resourceVersion")
        if expected is not None and expected != current:
            raise ConflictError(f"{kind} {namespace}/{name}: resourceVersion {expected} is stale")
        return self._store(key, merge_patch(self.objects[key], patch))

    def scale(self, namespace: str, deployment_name: str, replicas: int) -> None:
        key = ("apps/v1", "Deployment", namespace, deployment_name)
        self.writes.append(Write("scale", "Deployment", namespace, deployment_name, replicas))
        if key not in self.objects:
            raise KubeError(f"cannot scale Deployment {namespace}/{deployment_name}: not found")
        self._store(key, merge_patch(self.objects[key], {"spec": {"replicas": replicas}}))

    # --- for tests -------------------------------------------------------------------------

    def put(self, body: dict) -> None:
        """Seed an object (as the operator or a user would have created it); not a write."""
        self._store(_key(body), copy.deepcopy(body))

    def find(self, kind: str, name: str, namespace: str = "default") -> dict:
        for (_, stored_kind, stored_namespace, stored_name), body in self.objects.items():
            if (stored_kind, stored_namespace, stored_name) == (kind, namespace, name):
                return copy.deepcopy(body)
        raise LookupError(f"no {kind} {namespace}/{name}; have {sorted(self.objects)}")

    def all(self) -> Iterator[dict]:
        for body in self.objects.values():
            yield copy.deepcopy(body)

    def mark_ready(self) -> None:
        """What kubelet and controllers would do: every pod a Deployment asks for is ready."""
        for key, body in self.objects.items():
            if key[1] == "Deployment":
                ready = body["spec"].get("replicas", 1)
                self.objects[key] = merge_patch(body, {"status": {"readyReplicas": ready}})

    def _store(self, key: Key, body: dict) -> dict:
        self._version += 1
        body.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        self.objects[key] = body
        return copy.deepcopy(body)


def _key(body: dict) -> Key:
    metadata = body["metadata"]
    return body["apiVersion"], body["kind"], metadata["namespace"], metadata["name"]


# --- the world as the operator leaves it, and checks of everything in it --------------------

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "schemas"
KUBERNETES_VERSION = "1.30.0"
OWNER = {
    "apiVersion": "serinus.dev/v1alpha1",
    "kind": "ModelDeployment",
    "name": "iris",
    "uid": "6b1f3c2e-0d5a-4c61-9a0e-2f3b7d9c8e11",
    "controller": True,
    "blockOwnerDeletion": True,
}


def context(
    stable: str | None = "a1",
    canary: str | None = "b2",
    replicas: int = 10,
    traffic: dict[str, Any] | None = None,
    name: str = "iris",
    namespace: str = "default",
) -> RouteContext:
    return RouteContext(
        name=name,
        namespace=namespace,
        stable=stable,
        canary=canary,
        replicas=replicas,
        traffic=TrafficSpec.model_validate(traffic or {}),
        owner=OWNER,
    )


def deployment(name: str, revision: str, replicas: int, namespace: str = "default") -> dict:
    """A Deployment as the operator creates it for one revision."""
    labels = pod_labels(name, revision)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name(name, revision), "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_for(name, revision)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "runtime",
                            "image": "ghcr.io/serinus-dev/serinus-runtime:0.1.0",
                            "ports": [{"name": CONTAINER_PORT_NAME, "containerPort": 8080}],
                        }
                    ]
                },
            },
        },
    }


def service(name: str, selector: dict[str, str], namespace: str = "default") -> dict:
    """A Service as the operator creates it: port 80 to the pods' `http` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": CONTAINER_PORT_NAME}],
        },
    }


def seed(
    kube: FakeKubeObjects,
    route: RouteContext,
    stable_pods: int | None = None,
    canary_pods: int = 1,
    main_selector: dict[str, str] | None = None,
) -> None:
    """Deployments (all pods ready) and the three Services of a rollout about to get traffic."""
    name, namespace = route.name, route.namespace
    if route.stable is not None:
        pods = route.replicas if stable_pods is None else stable_pods
        kube.put(deployment(name, route.stable, pods, namespace))
    if route.canary is not None:
        kube.put(deployment(name, route.canary, canary_pods, namespace))
    main, stable, canary = service_names(name)
    kube.put(service(main, main_selector or selector_for(name), namespace))
    kube.put(service(stable, selector_for(name, route.stable or route.canary), namespace))
    kube.put(service(canary, selector_for(name, route.canary or route.stable), namespace))
    kube.mark_ready()


@functools.cache
def validate_cr_module() -> ModuleType:
    if not (SCHEMAS / "validate_cr.py").is_file():
        pytest.fail(
            f"{SCHEMAS / 'validate_cr.py'} is missing: traffic tests check Gateway API and Istio "
            "objects against the published CRD schemas kept in ../shared/schemas beside the repo"
        )
    sys.path.insert(0, str(SCHEMAS))
    import validate_cr

    return validate_cr


def schema_errors(obj: dict) -> list[str]:
    """Problems of one object: CRD kinds against ../shared/schemas, core kinds against the
    Kubernetes 1.30 OpenAPI schema (strict: unknown fields are errors)."""
    validate_cr = validate_cr_module()
    if validate_cr.has_schema(obj):
        return validate_cr.validate(obj)
    # resourceVersion is set by the server (here the fake); leaving it out lets equal content
    # hit the cache.
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return list(_core_errors(json.dumps(obj | {"metadata": metadata}, sort_keys=True)))


@functools.lru_cache(maxsize=512)
def _core_errors(obj_json: str) -> tuple[str, ...]:
    # Cached by content: kubernetes-validate reads its schema files on every call.
    try:
        kubernetes_validate.validate(json.loads(obj_json), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        return (f"{where}: {error.message}",)
    return ()


def assert_valid(*objects: dict) -> None:
    for obj in objects:
        errors = schema_errors(obj)
        name = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        assert not errors, f"{name} is invalid:\n" + "\n".join(errors)


def assert_all_valid(kube: FakeKubeObjects) -> None:
    """Every object the routers (and the seeded operator) left in the fake is valid."""
    assert_valid(*kube.all())
