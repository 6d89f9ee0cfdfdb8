"""The ModelDeployment resource as a whole, and its API coordinates."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from serinus.api.spec import ModelDeploymentSpec
from serinus.api.status import ModelDeploymentStatus
from serinus.api.types import ApiModel

GROUP = "serinus.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ("md", "mdep")
CRD_NAME = f"{PLURAL}.{GROUP}"

ACTION_ANNOTATION = f"{GROUP}/action"
"""Manual actions: `serinus.dev/action: <action>/<nonce>`, acted on once per nonce."""


class ObjectMeta(ApiModel):
    """The parts of metadata Serinus reads; the rest is kept as it is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(default="", description="Object name.")
    namespace: str | None = Field(default=None, description="Object namespace.")
    generation: int | None = Field(default=None, description="Spec generation.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")


class ModelDeployment(ApiModel):
    """A scikit-learn model served, rolled out and watched by Serinus."""

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = Field(default=KIND)
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> ModelDeployment:
        return cls.model_validate(body)
