"""Shared field types and the base model every API shape derives from."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")

Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        max_length=32,
        json_schema_extra={"example": "1m30s"},
    ),
]
"""A Go-style duration such as `30s`, `5m` or `1h30m` (as Flagger and Argo Rollouts write them)."""

AnyJSON = Annotated[
    Any,
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True}),
]
"""Any JSON value, kept verbatim by the API server."""

Sha256 = Annotated[str, Field(pattern=r"^[a-f0-9]{64}$")]

DNS1123Label = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


def parse_duration(text: str) -> timedelta:
    """`1m30s` → 90 s. Raises ValueError naming the bad text."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(
            f"{text!r} is not a duration: write a number and a unit (ms, s, m, h),"
            " e.g. 30s or 1m30s"
        )
    seconds = sum(
        float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text)
    )
    return timedelta(seconds=seconds)


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=False,
        validate_assignment=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON shape stored in Kubernetes: camelCase, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
