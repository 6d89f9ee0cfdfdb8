"""The chart's operator-wide notification targets: rendered into SERINUS_NOTIFY_DEFAULT, URLs
from Secrets passed as environment variables (never in plain text), read back by the operator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import helm_python
import pytest
from chart_helpers import CHART_DIR, env_of, operator_container, rbac_rules, render

from serinus.api.spec import NotificationCategory, NotificationType
from serinus.notify import load_default_targets, resolve_url

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
TARGETS = [
    {"name": "platform-slack", "type": "slack", "events": ["rolled-back", "failed"],
     "urlFrom": {"secretKeyRef": {"name": "serinus-webhooks", "key": "slack"}}},
    {"name": "audit", "url": "http://audit.observability.svc/serinus", "timeout": "2s"},
    {"name": "pager", "urlEnv": "PAGER_URL"},
]  # fmt: skip


def with_targets(targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"notifications": {"defaultTargets": targets}}


def test_no_default_targets_render_nothing() -> None:
    env = env_of(operator_container(render()))
    assert not [name for name in env if name.startswith("SERINUS_NOTIFY")]


def test_default_targets_reach_the_operator_and_secret_urls_stay_in_secrets(
    validate_object: Callable[[dict[str, Any]], list[str]],
) -> None:
    objects = render(with_targets(TARGETS))
    for obj in objects:
        assert validate_object(obj) == [], obj["kind"]
    env = env_of(operator_container(objects))
    assert env["SERINUS_NOTIFY_URL_0"] == {
        "secretKeyRef": {"name": "serinus-webhooks", "key": "slack"}
    }
    targets = load_default_targets(env["SERINUS_NOTIFY_DEFAULT"])  # what the operator reads
    assert [(t.name, t.type, t.origin) for t in targets] == [
        ("platform-slack", NotificationType.SLACK, "default"),
        ("audit", NotificationType.WEBHOOK, "default"),
        ("pager", NotificationType.WEBHOOK, "default"),
    ]
    slack, audit, pager = targets
    assert slack.url_env == "SERINUS_NOTIFY_URL_0" and slack.url is None
    assert slack.events == {NotificationCategory.ROLLED_BACK, NotificationCategory.FAILED}
    assert audit.timeout == 2.0 and pager.url_env == "PAGER_URL"
    # In the pod, the kubelet sets the variable from the Secret; the operator reads it.
    from_secret = "https://hooks.slack.com/services/T0/B0/token"
    environ = {"SERINUS_NOTIFY_URL_0": from_secret}
    assert resolve_url(slack, "any", environ=environ, secrets=None) == from_secret


@pytest.mark.parametrize(
    ("target", "pointer", "problem"),
    [
        ({"name": "a"}, "/0", "'oneOf' failed, none matched"),
        ({"name": "a", "url": "https://x", "urlEnv": "X"}, "/0", "'oneOf' failed"),
        ({"name": "a", "url": "hooks.example.com/x"}, "/0/url", "does not match pattern"),
        ({"name": "a", "urlEnv": "X", "events": ["all"]}, "/0/events/0", "must be one of"),
        ({"name": "A", "urlEnv": "X"}, "/0/name", "does not match pattern"),
        ({"name": "a", "urlEnv": "X", "timeout": "5 s"}, "/0/timeout", "does not match pattern"),
        ({"name": "a", "urlEnv": "X", "secret": "s"}, "/0", "additional properties 'secret'"),
    ],
)
def test_bad_default_targets_are_refused(target: dict[str, Any], pointer: str, problem: str):
    with pytest.raises(helm_python.HelmValuesError) as refused:
        render(with_targets([target]))
    message = str(refused.value)
    assert f"at '/notifications/defaultTargets{pointer}'" in message, message
    assert problem in message, message


def test_schema_enums_are_the_operators() -> None:
    items = SCHEMA["properties"]["notifications"]["properties"]["defaultTargets"]["items"]
    events = items["properties"]["events"]["items"]["enum"]
    assert events == [c.value for c in NotificationCategory]
    assert items["properties"]["type"]["enum"] == [t.value for t in NotificationType]


def test_the_operator_may_get_secrets_and_nothing_more_on_them() -> None:
    rules = [r for r in rbac_rules()["namespaced"] if "secrets" in r["resources"]]
    assert rules == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
