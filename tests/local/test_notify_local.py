"""Local mode sends spec.notifications to a real HTTP receiver (the URL from an environment
variable of the controller's process) and never waits for it: the first version becomes Stable
while the receiver holds the very first notification."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from serinus.api.status import Phase
from serinus.local.controller import LocalController
from serinus.local.state import StateDir
from serinus.notify import RetryPolicy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _receiver_module() -> Any:
    """tests/operator/notify_receiver.py, the webhook receiver the operator tests use."""
    if "notify_receiver" in sys.modules:
        return sys.modules["notify_receiver"]
    path = ROOT / "tests" / "operator" / "notify_receiver.py"
    spec = importlib.util.spec_from_file_location("notify_receiver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["notify_receiver"] = module
    spec.loader.exec_module(module)
    return module


notify_receiver = _receiver_module()
TOKEN = "s3cr3t-T0KEN"
SECRET = {"name": "hooks", "key": "url"}


def manifest(notifications: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "serinus.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "model": {"uri": str(ROOT / "examples" / "bundles" / "iris"), "version": "1"},
            "runtime": {"replicas": 1},
            "validation": {"smoke": [{"inputs": [[5.1, 3.5, 1.4, 0.2]], "expect": ["setosa"]}]},
            "notifications": notifications,
        },
    }


def tick_until(controller: LocalController, phase: Phase, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while controller.status.phase != phase:
        assert time.monotonic() < deadline, f"not {phase} in {timeout}s: {controller.status}"
        controller.tick()
        time.sleep(0.2)


def test_local_mode_notifies_from_url_env_without_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with notify_receiver.Receiver() as receiver:
        receiver.hold("/")
        monkeypatch.setenv("IRIS_HOOK", receiver.url(f"/{TOKEN}/hook"))
        state = StateDir(tmp_path / "state")
        state.ensure()
        state.apply(
            manifest(
                [
                    {"name": "hook", "urlEnv": "IRIS_HOOK", "timeout": "60s"},
                    {
                        "name": "cluster-only",
                        "urlFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                    },
                ]
            )
        )
        controller = LocalController(
            state, router_port=0, prometheus=False, notify_policy=RetryPolicy(attempts=2)
        )
        with controller:
            tick_until(controller, Phase.STABLE)
            # Stable while the receiver still holds the first notification.
            assert len(receiver.bodies(f"/{TOKEN}/hook")) == 1 and not receiver.gate.is_set()
            receiver.release()
            notify_receiver.wait_until(
                lambda: len(receiver.bodies(f"/{TOKEN}/hook")) == 3, what="three notices"
            )
            controller.tick()  # records the problems the notifier reported
            sent = receiver.bodies(f"/{TOKEN}/hook")
            warnings = [e for e in controller.record.events if e.reason == "NotificationFailed"]
        assert [(b["event"]["reason"], b["category"]) for b in sent] == [
            ("Validating", "phase-change"), ("Promoting", "phase-change"), ("Stable", "promoted"),
        ]  # fmt: skip
        assert sent[-1]["deployment"] == {"namespace": "local", "name": "iris"}
        assert sent[-1]["stable"]["version"] == "1"
        [warning] = warnings  # once, though three notices were not sent to it
        assert warning.type == "Warning"
        assert warning.message.startswith("notification target cluster-only: no URL: ")
        assert "needs Kubernetes" in warning.message and "urlEnv" in warning.message
    persisted = state.controller_file.read_text()
    assert TOKEN not in persisted  # status and Events as stored
    assert TOKEN not in caplog.text
