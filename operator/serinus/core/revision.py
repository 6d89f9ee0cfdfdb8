"""Revisions: which spec changes make new pods, and so a new rollout."""

from __future__ import annotations

import hashlib
import json

from serinus.api.spec import ModelDeploymentSpec

REVISION_LENGTH = 10


def revision_of(spec: ModelDeploymentSpec) -> str:
    """Hash of the pod-affecting fields (model and runtime).

    `runtime.replicas` and the rollout, analysis, validation, traffic and monitoring settings
    are left out on purpose: editing them never restarts a rollout.
    """
    runtime = spec.runtime.model_dump(mode="json", by_alias=True, exclude_none=True)
    del runtime["replicas"]  # scaling is not a new version: the driver scales in place
    pod_fields = {"model": spec.model.to_wire(), "runtime": runtime}
    canonical = json.dumps(pod_fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]
