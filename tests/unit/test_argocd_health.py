"""The Argo CD health check (deploy/argocd/modeldeployment-health.lua) run by a real Lua, on
statuses the engine itself produced."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lupa
import pytest

from serinus.api.status import ModelDeploymentStatus, Phase
from serinus.core.conditions import with_conditions
from serinus.core.engine import reject_spec

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "modeldeployment-health.lua"
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def health(body: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _table(lua, body)
    result = lua.execute(SCRIPT.read_text())
    return str(result["status"]), str(result["message"])


def _table(lua: lupa.LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _table(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_table(lua, v) for v in value])
    return value


def body(status: ModelDeploymentStatus | None, generation: int = 3) -> dict[str, Any]:
    out: dict[str, Any] = {"metadata": {"name": "iris", "generation": generation}}
    if status is not None:
        out["status"] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


def settled(phase: Phase, message: str = "", generation: int = 3) -> ModelDeploymentStatus:
    status = ModelDeploymentStatus(phase=phase, message=message, observed_generation=generation)
    status.conditions = with_conditions(status, NOW, generation)
    return status


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        (Phase.STABLE, "Healthy"),
        (Phase.PROGRESSING, "Progressing"),
        (Phase.VALIDATING, "Progressing"),
        (Phase.PROMOTING, "Progressing"),
        (Phase.ROLLING_BACK, "Progressing"),
        (Phase.PAUSED, "Suspended"),
        (Phase.ROLLED_BACK, "Degraded"),
        (Phase.FAILED, "Degraded"),
        (Phase.DEGRADED, "Degraded"),
    ],
)
def test_each_phase_maps_to_an_argo_health(phase, expected):
    state, message = health(body(settled(phase, message=f"now {phase.value}")))
    assert (state, message) == (expected, f"now {phase.value}")


def test_a_new_generation_not_yet_seen_is_progressing_even_if_stable_before():
    state, message = health(body(settled(Phase.STABLE, generation=2), generation=3))
    assert state == "Progressing" and "generation 3" in message


def test_no_status_yet_is_progressing():
    assert health(body(None))[0] == "Progressing"


def test_an_invalid_spec_is_degraded_with_the_operators_message():
    stable = settled(Phase.STABLE, generation=2)
    rejected = reject_spec(stable, ["spec.model.uri: required"], 3, NOW).status
    state, message = health(body(rejected, generation=3))
    assert state == "Degraded"
    assert "spec.model.uri: required" in message
