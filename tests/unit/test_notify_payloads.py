"""Notifications, the pure part: which Events are sent (one table), what a notice carries, the
generic JSON and Slack bodies, targets and their URLs, the operator's default targets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from engine_world import World, spec_for, stable_world, v2

from serinus.api.rules import check_manifest
from serinus.api.spec import NotificationCategory, NotificationTarget, NotificationType
from serinus.api.status import MetricResult, Phase, Verdict
from serinus.core.actions import EmitEvent
from serinus.core.judge import AnalysisOutcome
from serinus.core.observations import Observations
from serinus.notify import (
    CATEGORY_BY_REASON,
    Notice,
    NotifyConfigError,
    RetryPolicy,
    TargetError,
    load_default_targets,
    notices_for,
    resolve_url,
    slack_payload,
    target_of,
    webhook_payload,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "operator" / "serinus"
C = NotificationCategory
STEPS = [{"setWeight": 50}, {"analysis": {}}]
TOKEN_URL = "https://hooks.example.com/services/T000/B000/s3cr3t-T0KEN"


def ticked(world: World, seconds: float = 10) -> list[Notice]:
    """One tick of the engine and the notices a driver would send for it."""
    before, seen = world.status, len(world.events)
    world.tick(seconds)
    events = world.events[seen:]
    return notices_for("ml", "iris", events, before, world.status, world.now)


def run(world: World, until: Phase, limit: int = 100) -> list[Notice]:
    notices: list[Notice] = []
    for _ in range(limit):
        notices += ticked(world)
        if world.status.phase == until:
            return notices
    raise AssertionError(f"never reached {until}: {world.phases[-10:]}")


FAILING_ERROR_RATE = AnalysisOutcome(
    metrics=[
        MetricResult(
            name="error-rate",
            verdict=Verdict.FAIL,
            canary=0.21,
            stable=0.004,
            threshold=0.05,
            reason="error-rate 21.0% > max 5.0% & worse than stable",
        ),
        MetricResult(name="latency-p99", verdict=Verdict.PASS, reason="p99 within 1.25x"),
    ],
    canary_requests=500,
)


@dataclass
class FailingWorld(World):
    """Every check of the canary fails on error rate (latency passes)."""

    def observe(self) -> Observations:
        observations = super().observe()
        if observations.analysis is None:
            return observations
        return observations.model_copy(update={"analysis": FAILING_ERROR_RATE})


def rolled_back() -> tuple[FailingWorld, list[Notice]]:
    """Version 1.0.0 stable, 2.0.0 rolled back by failing checks; the notices of the rollout."""
    world = FailingWorld(spec=spec_for())
    world.run_until(Phase.STABLE)
    world.events.clear()
    world.roll_to(v2(rollout={"steps": STEPS, "interval": "10s"}))
    return world, run(world, Phase.ROLLED_BACK)


def test_every_reason_the_code_emits_is_in_the_table() -> None:
    """A new Event reason must be placed in the table (sent or not), never forgotten."""
    found = {phase.value for phase in Phase}
    found |= {f"Analysis{verdict.value}" for verdict in Verdict}
    for path in SOURCES.rglob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'_emit\(\s*"(\w+)"', text))
        found |= set(re.findall(r'reason="([A-Z]\w+)"', text))
    assert "TrafficShifted" in found and "ActionFailed" in found  # the scan sees them
    assert found - set(CATEGORY_BY_REASON) == set()


def test_a_rollback_is_sent_with_the_failing_verdicts() -> None:
    world, notices = rolled_back()
    assert [(n.reason, n.category) for n in notices] == [
        ("Validating", C.PHASE_CHANGE),
        ("Progressing", C.PHASE_CHANGE),
        ("RollingBack", C.PHASE_CHANGE),
        ("RolledBack", C.ROLLED_BACK),
    ]  # no TrafficShifted, ValidationPassed or Analysis* notices
    last = notices[-1]
    assert last.categories == {C.ROLLED_BACK, C.PHASE_CHANGE}
    assert last.type == "Warning" and last.phase == "RolledBack"
    assert last.failing_verdicts == notices[-2].failing_verdicts
    [failing] = last.failing_verdicts
    assert failing["name"] == "error-rate" and failing["canary"] == 0.21
    assert failing["threshold"] == 0.05 and "21.0%" in failing["reason"]
    assert last.rollout is not None and last.rollout["result"] == "RolledBack"
    assert last.last_check is not None and last.last_check["verdict"] == "Fail"
    assert last.stable == {"revision": world.status.stable.revision, "version": "1.0.0"}
    assert last.canary["version"] == "2.0.0" and last.weight == 0
    assert notices[0].failing_verdicts == () and notices[0].rollout is None


def test_a_promotion_is_promoted_and_a_recovery_only_a_phase_change() -> None:
    world = World(spec=spec_for())
    first = run(world, Phase.STABLE)
    assert [(n.reason, n.category) for n in first] == [
        ("Validating", C.PHASE_CHANGE),
        ("Promoting", C.PHASE_CHANGE),
        ("Stable", C.PROMOTED),
    ]
    assert first[-1].categories == {C.PROMOTED, C.PHASE_CHANGE}
    assert first[-1].rollout["result"] == "Promoted" and first[-1].canary is None
    revision = world.status.stable.revision
    world.pods[revision] = 0
    degraded = ticked(world)
    assert [(n.reason, n.category) for n in degraded] == [("Degraded", C.PHASE_CHANGE)]
    world.pods[revision] = world.spec.runtime.replicas
    recovered = ticked(world)
    assert [(n.reason, n.category, n.categories) for n in recovered] == [
        ("Stable", C.PHASE_CHANGE, frozenset({C.PHASE_CHANGE}))
    ]
    assert recovered[0].rollout is None


def test_a_failed_validation_is_failed_without_verdicts() -> None:
    world = stable_world()
    world.validation_passes = False
    world.roll_to(v2())
    notices = run(world, Phase.FAILED)
    assert notices[-1].category == C.FAILED and notices[-1].failing_verdicts == ()
    assert notices[-1].rollout["result"] == "Failed"
    assert "validation failed" in notices[-1].message


def test_monitoring_reasons_have_their_categories() -> None:
    world = stable_world()
    status = world.status
    events = [
        _event("Drifted", "feature petal_length PSI 0.41 > 0.2"),
        _event("AccuracyLow", "accuracy 0.71 < min 0.8 over 1h"),
        _event("RetrainCandidate", "retrained bundle s3://b/v3 waits for a rollout"),
        _event("TrafficShifted", "not sent"),
    ]
    notices = notices_for("ml", "iris", events, status, status, world.now)
    assert [n.categories for n in notices] == [{C.DRIFT}, {C.ACCURACY}, {C.RETRAIN_CANDIDATE}]


def _event(reason: str, message: str) -> EmitEvent:
    return EmitEvent(type="Warning", reason=reason, message=message)


# --- bodies ----------------------------------------------------------------------------------


def test_webhook_payload_is_the_documented_json() -> None:
    _, notices = rolled_back()
    body = webhook_payload(notices[-1])
    assert json.loads(json.dumps(body)) == body  # plain JSON
    assert set(body) == {
        "version", "source", "category", "categories", "time", "deployment", "event", "phase",
        "stable", "canary", "weight", "rollout", "lastCheck", "failingVerdicts",
    }  # fmt: skip
    assert body["version"] == 1 and body["source"] == "serinus"
    assert body["category"] == "rolled-back"
    assert body["categories"] == ["phase-change", "rolled-back"]
    assert body["deployment"] == {"namespace": "ml", "name": "iris"}
    assert body["event"]["reason"] == "RolledBack" and body["event"]["type"] == "Warning"
    assert body["time"].endswith("Z") and body["rollout"]["finishedAt"].endswith("Z")
    assert body["failingVerdicts"][0]["verdict"] == "Fail"
    assert "file://" not in json.dumps(body)  # no model URI (it may be a signed URL)


def test_slack_payload_has_text_blocks_and_the_failing_checks() -> None:
    _, notices = rolled_back()
    body = slack_payload(notices[-1])
    assert json.loads(json.dumps(body)) == body
    assert body["text"].startswith(":rewind: ml/iris: RolledBack: ")
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "section", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": "ml/iris: RolledBack"}
    fields = [f["text"] for f in body["blocks"][2]["fields"]]
    assert fields[0] == "*Phase*\nRolledBack" and fields[-1] == "*Result*\nRolledBack"
    assert any(f.startswith("*Canary*\n2.0.0 (revision ") and f.endswith("at 0%") for f in fields)
    failing = body["blocks"][3]["text"]["text"]
    assert failing.startswith("*Failing checks*\n• error-rate (canary 0.21, stable 0.004, ")
    assert "&amp; worse than stable" in failing  # Slack's control characters are escaped
    assert "rolled-back" in body["blocks"][4]["elements"][0]["text"]


def test_slack_text_is_cut_to_slack_limits() -> None:
    _, notices = rolled_back()
    notice = notices[-1]
    long = Notice(**{**notice.__dict__, "message": "x" * 5000, "name": "n" * 200})
    body = slack_payload(long)
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert len(body["blocks"][1]["text"]["text"]) <= 3000 and len(body["text"]) <= 3000


# --- targets and URLs ------------------------------------------------------------------------


def target(**fields):
    return NotificationTarget.model_validate({"name": "hook", **fields})


def test_a_target_wants_every_category_by_default_and_hides_its_url() -> None:
    hook = target_of(target(url=TOKEN_URL), env_allowed=False)
    assert hook.events == set(NotificationCategory) and hook.timeout == 5.0
    assert hook.type == NotificationType.WEBHOOK
    assert "T0KEN" not in repr(hook) and "T0KEN" not in str(hook)
    only = target_of(target(url=TOKEN_URL, events=["rolled-back"], timeout="500ms"), env_allowed=1)
    assert only.wants({C.ROLLED_BACK, C.PHASE_CHANGE}) and not only.wants({C.PHASE_CHANGE})
    assert only.timeout == 0.5


def test_urls_come_from_the_spec_the_environment_or_a_secret() -> None:
    environ = {"HOOK": TOKEN_URL, "NOT_A_URL": "s3cr3t-T0KEN"}
    secrets = {("ml", "hooks", "slack"): TOKEN_URL + "\n"}

    def read(namespace: str, name: str, key: str) -> str:
        try:
            return secrets[namespace, name, key]
        except KeyError:
            raise TargetError(f"Secret {namespace}/{name} not found") from None

    def url(env_allowed: bool = True, reader=read, **fields) -> str:
        hook = target_of(target(**fields), env_allowed=env_allowed)
        return resolve_url(hook, "ml", environ=environ, secrets=reader)

    assert url(url=TOKEN_URL) == TOKEN_URL
    assert url(urlEnv="HOOK") == TOKEN_URL
    assert url(urlFrom={"secretKeyRef": {"name": "hooks", "key": "slack"}}) == TOKEN_URL
    problems = {
        "refused": lambda: url(env_allowed=False, urlEnv="HOOK"),
        "unset": lambda: url(urlEnv="UNSET"),
        "not a url": lambda: url(urlEnv="NOT_A_URL"),
        "no secret": lambda: url(urlFrom={"secretKeyRef": {"name": "gone", "key": "k"}}),
        "local": lambda: url(reader=None, urlFrom={"secretKeyRef": {"name": "hooks", "key": "k"}}),
    }
    messages = {}
    for name, attempt in problems.items():
        with pytest.raises(TargetError) as error:
            attempt()
        messages[name] = error.value.message
        assert "T0KEN" not in messages[name]
    assert "urlFrom.secretKeyRef" in messages["refused"]
    assert messages["unset"] == "environment variable UNSET is not set"
    assert messages["not a url"] == (
        "the value of environment variable NOT_A_URL is not an http:// or https:// URL"
    )
    assert messages["no secret"] == "Secret ml/gone not found"
    assert "in local mode" in messages["local"] and "urlEnv" in messages["local"]


def manifest(notifications: list[dict]) -> dict:
    return {
        "apiVersion": "serinus.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris"},
        "spec": {"model": {"uri": "file:///m"}, "notifications": notifications},
    }


@pytest.mark.parametrize(
    ("notifications", "problem"),
    [
        ([{"name": "a"}], "exactly one of url, urlFrom or urlEnv"),
        ([{"name": "a", "url": "https://x", "urlEnv": "X"}], "exactly one of url"),
        ([{"name": "a", "url": "ftp://x"}], "url must start with https:// or http://"),
        ([{"name": "a", "url": "https://x", "timeout": "2m"}], "between 100ms and 60s"),
        ([{"name": "a", "url": "https://x", "timeout": "50ms"}], "between 100ms and 60s"),
        ([{"name": "a", "url": "https://x"}] * 2, "notification target names must be unique"),
        ([{"name": "a", "url": "https://x", "events": ["everything"]}], "events[0]"),
        ([{"name": "A b", "url": "https://x"}], "name"),
    ],
)
def test_bad_targets_are_refused(notifications: list[dict], problem: str) -> None:
    problems = [str(p) for p in check_manifest(manifest(notifications))]
    assert any(problem in p for p in problems), problems
    assert not any("ftp://x" in p for p in problems)  # the rule's message, not the value


SECRET = {"name": "hooks", "key": "slack"}


def test_good_targets_pass() -> None:
    assert check_manifest(
        manifest(
            [
                {"name": "slack", "type": "slack", "urlFrom": {"secretKeyRef": SECRET}},
                {"name": "audit", "url": "http://audit.ml.svc/hook", "events": ["promoted"]},
                {"name": "local", "urlEnv": "HOOK", "timeout": "1m"},
            ]
        )
    ) == []  # fmt: skip


# --- the operator's default targets ----------------------------------------------------------


def test_default_targets_from_json_a_yaml_file_or_nothing(tmp_path: Path) -> None:
    assert load_default_targets(None) == [] and load_default_targets("  ") == []
    [slack] = load_default_targets(
        '[{"name": "ops", "type": "slack", "urlEnv": "OPS_URL", "events": ["failed"]}]'
    )
    assert (slack.name, slack.type, slack.url_env) == ("ops", "slack", "OPS_URL")
    assert slack.origin == "default"
    assert slack.env_allowed and slack.events == {C.FAILED}
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n  - name: audit\n    url: http://audit/hook\n  - {name: b, urlEnv: B}\n"
    )
    assert [t.name for t in load_default_targets(str(path))] == ["audit", "b"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('[{"name": "a", "url": "' + TOKEN_URL + '"', "SERINUS_NOTIFY_DEFAULT is not valid JSON"),
        ('{"name": "a"}', "must be a list of targets"),
        ('[{"name": "a", "url": "' + TOKEN_URL + '", "extra": 1}]', "DEFAULT[0].extra"),
        ('[{"name": "a", "url": "' + TOKEN_URL + '", "urlEnv": "B"}]', "exactly one of url"),
        ('[{"name": "a", "urlEnv": "A"}, {"name": "a", "urlEnv": "B"}]', "names must be unique"),
        ('[{"name": "a", "urlFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]',
         "[0].urlFrom: a default target reads its URL from the operator's environment"),
        ("/nonexistent/targets.yaml", "cannot read SERINUS_NOTIFY_DEFAULT file /nonexistent"),
    ],
)  # fmt: skip
def test_broken_default_targets_say_where_without_quoting_urls(value: str, problem: str) -> None:
    with pytest.raises(NotifyConfigError) as error:
        load_default_targets(value)
    assert problem in str(error.value)
    assert "T0KEN" not in str(error.value)


# --- retries ---------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=6, backoff=1.0, max_backoff=5.0, jitter=0.2)
    for _ in range(50):
        waits = [policy.delay(retry) for retry in range(1, 6)]
        for wait, base in zip(waits, [1, 2, 4, 5, 5], strict=True):
            assert base * 0.8 <= wait <= base * 1.2
        assert 3.0 <= policy.delay(1, retry_after=3.0) <= 3.6
        assert policy.delay(1, retry_after=3600) == 5.0  # capped
    assert RetryPolicy().attempts == 4


def test_the_operator_refuses_to_start_with_broken_default_targets() -> None:
    broken = f'[{{"name": "a", "url": "{TOKEN_URL}", "urlEnv": "X"}}]'
    result = subprocess.run(
        [str(Path(sys.executable).parent / "serinus"), "operator", "--standalone"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SERINUS_NOTIFY_DEFAULT": broken, "KUBECONFIG": "/nonexistent"},
    )
    assert result.returncode == 2, result.stderr
    assert "default notification targets: SERINUS_NOTIFY_DEFAULT[0]: a notification target " in (
        " ".join(result.stderr.split())
    )
    assert "T0KEN" not in result.stderr + result.stdout
