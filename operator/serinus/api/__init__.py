"""ModelDeployment API: pydantic models of spec and status, CRD generation, offline rules."""

from serinus.api.resource import (
    ACTION_ANNOTATION,
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ModelDeployment,
)
from serinus.api.spec import ModelDeploymentSpec
from serinus.api.status import ModelDeploymentStatus, Phase, Verdict
from serinus.api.types import parse_duration

__all__ = [
    "ACTION_ANNOTATION",
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "Phase",
    "Verdict",
    "parse_duration",
]
