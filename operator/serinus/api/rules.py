"""Offline checks of a ModelDeployment: the pydantic types and bounds, then the CRD's own CEL rules.

The CEL rules are written once, on the models, and end up in the CRD where the API server enforces
them. Here the same expressions run through cel-python, so `serinus validate` catches in a pull
request what the cluster would reject, and the operator can refuse an invalid spec on clusters
too old to enforce CEL (before Kubernetes 1.25).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import celpy
import celpy.celtypes as celtypes
from pydantic import ValidationError

from serinus.api.crd import build_crd
from serinus.api.resource import API_VERSION, KIND, ModelDeployment
from serinus.api.spec import ModelDeploymentSpec


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: where, and what to do about it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _is_sorted(values: celtypes.ListType) -> celtypes.BoolType:
    items = list(values)
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


# Kubernetes' CEL list library functions the rules use, which plain CEL lacks.
_KUBERNETES_FUNCTIONS = {"isSorted": _is_sorted}


@cache
def _program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule), functions=_KUBERNETES_FUNCTIONS)


@cache
def _spec_schema() -> dict[str, Any]:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root["properties"]["spec"]


def _walk(schema: dict[str, Any], value: Any, path: str) -> Iterator[Problem]:
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            passed = bool(_program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)}))
        except celpy.CELEvalError as error:  # a rule that cannot run is a failed rule
            passed, detail = False, f" (rule could not be evaluated: {error.args[0]})"
        else:
            detail = ""
        if not passed:
            yield Problem(path + rule.get("fieldPath", ""), rule["message"] + detail)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            child = properties.get(key, extra if isinstance(extra, dict) else None)
            if child is not None:
                yield from _walk(child, item, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _walk(schema["items"], item, f"{path}[{index}]")


def _pydantic_problems(error: ValidationError, prefix: str) -> list[Problem]:
    problems = []
    for entry in error.errors():
        path = prefix + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in entry["loc"]
        )
        message = entry["msg"]
        if entry["type"] == "extra_forbidden":
            message = "unknown field: remove it or check its spelling (fields are camelCase)"
        elif entry["type"] == "missing":
            message = "required field is missing"
        elif not isinstance(entry.get("input"), dict | list):
            message = f"{message} (got {entry.get('input')!r})"
        problems.append(Problem(path, message))
    return problems


SPEC_RESULTS_KEPT = 4096
"""Specs whose CEL verdict is remembered: evaluating the rules costs ~20 ms of CPU, and the
operator looks at every unchanged spec again on each timer tick."""
_spec_results: OrderedDict[str, tuple[Problem, ...]] = OrderedDict()
_spec_results_lock = threading.Lock()


def spec_problems(spec: ModelDeploymentSpec) -> list[Problem]:
    """CEL rules broken by an already typed spec (defaults applied, as the API server would)."""
    wire = spec.to_wire()
    key = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    with _spec_results_lock:
        known = _spec_results.get(key)
        if known is not None:
            _spec_results.move_to_end(key)
            return list(known)
    found = tuple(_walk(_spec_schema(), wire, "spec"))
    with _spec_results_lock:
        _spec_results[key] = found
        while len(_spec_results) > SPEC_RESULTS_KEPT:
            _spec_results.popitem(last=False)
    return list(found)


def field_problems(field: str, wire: Any, path: str) -> list[Problem]:
    """CEL rules of one top-level spec field (e.g. `notifications`) broken by `wire`, a typed
    value in its JSON shape: the operator checks its own settings of the same shape with them."""
    return list(_walk(_spec_schema()["properties"][field], wire, path))


def check_manifest(body: Any) -> list[Problem]:
    """Every problem of one ModelDeployment manifest; empty when the API server would accept it."""
    if not isinstance(body, dict):
        return [Problem("(document)", "expected a mapping with apiVersion, kind, metadata, spec")]
    problems = []
    if body.get("apiVersion") != API_VERSION:
        problems.append(
            Problem("apiVersion", f"must be {API_VERSION}, got {body.get('apiVersion')!r}")
        )
    if body.get("kind") != KIND:
        problems.append(Problem("kind", f"must be {KIND}, got {body.get('kind')!r}"))
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        problems.append(Problem("metadata.name", "required: give the ModelDeployment a name"))
    if "spec" not in body:
        return [*problems, Problem("spec", "required field is missing")]
    try:
        spec = ModelDeploymentSpec.model_validate(body["spec"])
    except ValidationError as error:
        return problems + _pydantic_problems(error, "spec")
    return problems + spec_problems(spec)


def parse_valid(body: dict[str, Any]) -> ModelDeployment:
    """The typed resource, or ValueError listing every problem."""
    problems = check_manifest(body)
    if problems:
        raise ValueError("; ".join(str(problem) for problem in problems))
    return ModelDeployment.from_wire(body)
