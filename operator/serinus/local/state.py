"""Local mode's stand-in for the API server: two JSON files in a state directory.

`desired.json` is the ModelDeployment as the user applied it — what `kubectl apply` and
`kubectl annotate` would store — written by `serinus local apply` and the action commands
(promote, abort...) under a file lock; `generation` goes up when, and only when, the spec
changes, as on an API server. `controller.json` is what the running controller owns: the status
(the engine's only memory, so a restarted controller resumes the rollout from it), the pids it
started (so a successor can reap them after a crash), recent Events and the traffic figures
`serinus local status` shows. Each file is replaced atomically, so a reader never sees half a
write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from serinus.api.resource import ACTION_ANNOTATION, API_VERSION, KIND
from serinus.core.window import AnalysisWindow
from serinus.local.processes import RevisionSpec

DEFAULT_STATE_DIR = Path(".serinus/local")
EVENTS_KEPT = 50


class StateError(Exception):
    """The state directory cannot be used; the message says what to do."""


class LocalEvent(BaseModel):
    time: datetime
    type: str
    reason: str
    message: str


class DesiredState(BaseModel):
    """The applied ModelDeployment (metadata, spec, annotations) and its generation."""

    manifest: dict[str, Any]
    generation: int = Field(default=1, ge=1)

    @property
    def name(self) -> str:
        return str(self.manifest.get("metadata", {}).get("name", ""))

    @property
    def action(self) -> str | None:
        annotations = self.manifest.get("metadata", {}).get("annotations") or {}
        value = annotations.get(ACTION_ANNOTATION)
        return str(value) if value is not None else None


class ControllerState(BaseModel):
    """What the controller of `serinus local up` wrote last."""

    status: dict[str, Any] = Field(default_factory=dict)
    controller_pid: int | None = None
    fleet_id: str | None = None
    runtime_pids: list[int] = Field(default_factory=list)
    prometheus_pid: int | None = None
    prometheus_dir: str | None = None
    router_url: str | None = None
    prometheus_url: str | None = None
    provider: str | None = None
    revisions: dict[str, RevisionSpec] = Field(default_factory=dict)
    """How each running revision was started, so a restarted controller can start it again."""
    scaled_down: list[str] = Field(default_factory=list)
    """Revisions stopped on purpose while the status still names them (a rolled-back canary)."""
    traffic: dict[str, dict[int, int]] = Field(default_factory=dict)
    """Responses through the router so far, by variant and HTTP status."""
    last_window: AnalysisWindow | None = None
    events: list[LocalEvent] = Field(default_factory=list)
    updated_at: datetime | None = None


class StateDir:
    """The files of one local ModelDeployment."""

    def __init__(self, path: Path | str = DEFAULT_STATE_DIR) -> None:
        self.path = Path(path)
        self.desired_file = self.path / "desired.json"
        self.controller_file = self.path / "controller.json"
        self.lock_file = self.path / ".lock"
        self.run_dir = self.path / "run"

    def ensure(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.run_dir.mkdir(exist_ok=True)
        except OSError as error:
            raise StateError(
                f"cannot create the state directory {self.path}: {error.strerror or error}; "
                "pass --state-dir with a writable path"
            ) from error

    # ------------------------------------------------------------------ desired
    def read_desired(self) -> DesiredState | None:
        raw = _read_json(self.desired_file)
        if raw is None:
            return None
        try:
            return DesiredState.model_validate(raw)
        except ValidationError as error:
            raise StateError(
                f"{self.desired_file} is not a local ModelDeployment ({error.error_count()} "
                "problems): apply the manifest again with `serinus local apply -f FILE`"
            ) from error

    def apply(self, manifest: dict[str, Any]) -> tuple[DesiredState, bool]:
        """Store `manifest`; returns the stored state and whether the spec changed. An action
        annotation already waiting is kept unless the manifest sets its own."""
        _check_kind(manifest)
        with self._locked():
            current = self.read_desired()
            incoming = json.loads(json.dumps(manifest))
            if current is None:
                stored = DesiredState(manifest=incoming)
                self._write(self.desired_file, stored.model_dump(mode="json"))
                return stored, True
            if current.name and current.name != incoming["metadata"]["name"]:
                raise StateError(
                    f"{self.path} holds ModelDeployment {current.name!r}, not "
                    f"{incoming['metadata']['name']!r}: one state directory serves one "
                    "ModelDeployment; use another --state-dir"
                )
            waiting = current.action
            annotations = incoming["metadata"].setdefault("annotations", {}) or {}
            incoming["metadata"]["annotations"] = annotations
            if waiting is not None and ACTION_ANNOTATION not in annotations:
                annotations[ACTION_ANNOTATION] = waiting
            changed = incoming.get("spec") != current.manifest.get("spec")
            stored = DesiredState(
                manifest=incoming, generation=current.generation + (1 if changed else 0)
            )
            self._write(self.desired_file, stored.model_dump(mode="json"))
            return stored, changed

    def set_model(self, uri: str, sha256: str | None, version: str | None) -> DesiredState:
        """spec.model of the applied manifest set to a retrained model (autoDeploy): a new
        generation, which the controller rolls out like any applied change."""
        with self._locked():
            current = self.read_desired()
            if current is None:
                raise StateError("no ModelDeployment is applied: nothing to set a model on")
            manifest = json.loads(json.dumps(current.manifest))
            model = manifest.setdefault("spec", {}).setdefault("model", {})
            model["uri"] = uri
            for key, value in (("sha256", sha256), ("version", version)):
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
            stored = DesiredState(manifest=manifest, generation=current.generation + 1)
            self._write(self.desired_file, stored.model_dump(mode="json"))
            return stored

    def request_action(self, action: str) -> str:
        """Set the action annotation to `action/<nonce>` (acted on once); returns the value."""
        value = f"{action}/{secrets.token_hex(4)}"
        with self._locked():
            current = self.read_desired()
            if current is None:
                raise StateError(
                    f"nothing applied in {self.path} yet: run `serinus local up -f FILE` first"
                )
            metadata = current.manifest.setdefault("metadata", {})
            annotations = metadata.get("annotations") or {}
            annotations[ACTION_ANNOTATION] = value
            metadata["annotations"] = annotations
            self._write(self.desired_file, current.model_dump(mode="json"))
        return value

    # ------------------------------------------------------------------ controller
    def read_controller(self) -> ControllerState:
        raw = _read_json(self.controller_file)
        if raw is None:
            return ControllerState()
        try:
            return ControllerState.model_validate(raw)
        except ValidationError:
            # Only the controller writes it; an unreadable one starts over rather than wedging,
            # as the operator does with an unreadable status.
            return ControllerState()

    def write_controller(self, state: ControllerState) -> None:
        state.updated_at = datetime.now(UTC)
        state.events = state.events[-EVENTS_KEPT:]
        self._write(self.controller_file, state.model_dump(mode="json"))

    # ------------------------------------------------------------------ files
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure()
        with self.lock_file.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        self.ensure()
        fd, temp = tempfile.mkstemp(dir=self.path, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise StateError(
            f"{path} is not valid JSON (line {error.lineno}): it was edited or damaged; "
            "remove it and apply the manifest again"
        ) from error
    return data if isinstance(data, dict) else None


def _check_kind(manifest: dict[str, Any]) -> None:
    if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != KIND:
        raise StateError(
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{manifest.get('apiVersion')!r} {manifest.get('kind')!r}"
        )
    name = (manifest.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise StateError("metadata.name is missing: a ModelDeployment needs a name")


def resolve_local_paths(manifest: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative model and dataset paths, as written next to the manifest, made absolute so the
    controller (running anywhere) finds them. URIs with a scheme are left alone."""
    out = json.loads(json.dumps(manifest))
    spec = out.get("spec") or {}
    for holder in (spec.get("model"), (spec.get("validation") or {}).get("dataset")):
        if isinstance(holder, dict) and isinstance(holder.get("uri"), str):
            uri = holder["uri"]
            if "://" not in uri and not Path(uri).is_absolute():
                holder["uri"] = str((base / uri).resolve())
    return out
