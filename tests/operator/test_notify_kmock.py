"""Notifications from the running operator (kopf against kmock) to a real HTTP receiver: URLs
from a Secret, both formats, a receiver that hangs, a missing Secret — and the rollout never
waits for, or changes because of, a webhook."""

from __future__ import annotations

import base64
import logging
from typing import Any

import kmock
import pytest
from kopf_harness import NS, ScriptedProvider, healthy, running_operator, wait_for
from notify_receiver import Receiver
from test_operator_kmock import (
    first_version_stable,
    phase,
    status,
    unexpected_errors,
    validated_v2,
)

import serinus.kube.handlers as handlers
from serinus.kube.operator_metrics import NOTIFICATIONS_TOTAL
from serinus.notify import RetryPolicy

pytestmark = pytest.mark.looptime(False)  # the operator runs in real time in its own thread

TOKEN = "s3cr3t-T0KEN"
FAST = RetryPolicy(attempts=2, backoff=0.1)


def secret_ref(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


async def create_secret(k8s: kmock.KubernetesEmulator, name: str, data: dict[str, str]) -> None:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    await k8s.post(
        f"/api/v1/namespaces/{NS}/secrets",
        json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
              "type": "Opaque", "data": encoded},
    )  # fmt: skip


def notifications_counted(target: str, result: str) -> float:
    registry = handlers.driver().metrics.registry
    value = registry.get_sample_value(NOTIFICATIONS_TOTAL, {"target": target, "result": result})
    return value or 0.0


def reasons(bodies: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(b["event"]["reason"], b["category"]) for b in bodies]


async def test_a_rollback_reaches_webhook_and_slack_targets_through_a_secret(
    k8s: kmock.KubernetesEmulator, provider: ScriptedProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    events = k8s["create v1/events"]
    with Receiver() as receiver:
        json_path, slack_path = f"/hooks/{TOKEN}/json", f"/hooks/{TOKEN}/slack"
        await create_secret(
            k8s, "hooks", {"webhook": receiver.url(json_path), "slack": receiver.url(slack_path)}
        )
        notifications = [
            {"name": "hook", "urlFrom": secret_ref("hooks", "webhook")},
            {"name": "chat", "type": "slack", "events": ["rolled-back"],
             "urlFrom": secret_ref("hooks", "slack")},
        ]  # fmt: skip
        async with running_operator(k8s, provider, notify_policy=FAST):
            await first_version_stable(k8s, notifications=notifications)
            provider.canary = healthy(500, errors=200)  # 40 % errors against stable's 0.4 %
            await validated_v2(k8s)
            await wait_for(lambda: phase(k8s) == "RolledBack", timeout=30)
            await wait_for(lambda: len(receiver.bodies(json_path)) == 7)
            await wait_for(lambda: len(receiver.bodies(slack_path)) == 1)
            # Counted once the response is read, a moment after the receiver has the body.
            await wait_for(lambda: notifications_counted("hook", "delivered") >= 7, timeout=5)
            await wait_for(lambda: notifications_counted("chat", "delivered") >= 1, timeout=5)
            assert notifications_counted("hook", "delivered") == 7
            assert notifications_counted("chat", "delivered") == 1

        generic = receiver.bodies(json_path)
        assert reasons(generic) == [
            ("Validating", "phase-change"), ("Promoting", "phase-change"), ("Stable", "promoted"),
            ("Validating", "phase-change"), ("Progressing", "phase-change"),
            ("RollingBack", "phase-change"), ("RolledBack", "rolled-back"),
        ]  # fmt: skip
        rolled_back = generic[-1]
        assert rolled_back["deployment"] == {"namespace": NS, "name": "iris"}
        assert rolled_back["rollout"]["result"] == "RolledBack"
        assert rolled_back["canary"]["version"] == "2.0.0"
        assert rolled_back["stable"]["version"] == "1.0.0"
        [failing] = rolled_back["failingVerdicts"]
        assert failing["name"] == "error-rate" and failing["verdict"] == "Fail"
        assert failing["canary"] == pytest.approx(0.4)
        [slack] = receiver.bodies(slack_path)
        assert slack["text"].startswith(f":rewind: {NS}/iris: RolledBack")
        texts = [block.get("text", {}).get("text", "") for block in slack["blocks"]]
        assert any(text.startswith("*Failing checks*\n• error-rate") for text in texts)

    assert TOKEN not in str(status(k8s))
    assert all(TOKEN not in str(event.data) for event in events)
    assert TOKEN not in caplog.text
    assert "NotificationFailed" not in [event.data["reason"] for event in events]
    assert unexpected_errors(k8s) == []


async def test_a_hanging_receiver_does_not_hold_the_rollout(
    k8s: kmock.KubernetesEmulator, provider: ScriptedProvider
) -> None:
    with Receiver() as receiver:
        receiver.hold("/")
        await create_secret(k8s, "hooks", {"url": receiver.url("/hook")})
        notifications = [{"name": "hook", "urlFrom": secret_ref("hooks", "url"), "timeout": "60s"}]
        async with running_operator(k8s, provider, notify_policy=FAST):
            await first_version_stable(k8s, notifications=notifications)
            # Stable while the receiver still holds the very first notification.
            assert len(receiver.bodies("/hook")) == 1 and not receiver.gate.is_set()
            receiver.release()
            await wait_for(lambda: len(receiver.bodies("/hook")) == 3)
        assert reasons(receiver.bodies("/hook")) == [
            ("Validating", "phase-change"), ("Promoting", "phase-change"), ("Stable", "promoted"),
        ]  # fmt: skip
    assert unexpected_errors(k8s) == []


async def test_a_missing_secret_is_reported_once_and_the_rollout_goes_on(
    k8s: kmock.KubernetesEmulator, provider: ScriptedProvider, caplog: pytest.LogCaptureFixture
) -> None:
    events = k8s["create v1/events"]
    notifications = [
        {"name": "absent", "urlFrom": secret_ref("no-such-secret", "url")},
        {"name": "env", "urlEnv": "HOME"},  # a spec may not read the operator's environment
    ]
    async with running_operator(k8s, provider, notify_policy=FAST):
        await first_version_stable(k8s, notifications=notifications)
        await wait_for(lambda: notifications_counted("absent", "unresolved") == 3)
        await wait_for(lambda: notifications_counted("env", "unresolved") == 3)

    warnings = [e.data for e in events if e.data["reason"] == "NotificationFailed"]
    assert sorted(w["message"] for w in warnings) == [
        f"notification target absent: no URL: Secret {NS}/no-such-secret not found",
        "notification target env: no URL: urlEnv is not read for a ModelDeployment's own "
        "targets in a cluster (it would hand out the operator's environment): use "
        "urlFrom.secretKeyRef",
    ]
    assert all(w["type"] == "Warning" for w in warnings)
    assert {w["involvedObject"]["uid"] for w in warnings} == {"uid-iris"}
    ours = [r for r in caplog.records if r.name.startswith("serinus")]
    logged = [r for r in ours if "no-such-secret" in r.getMessage()]
    assert [r.levelno for r in logged] == [logging.WARNING]  # once, though 3 were not sent
    final = status(k8s)
    assert final["phase"] == "Stable"
    assert "notification" not in str(final).lower()
    assert unexpected_errors(k8s) == []
