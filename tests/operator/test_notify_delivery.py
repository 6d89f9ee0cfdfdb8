"""Notification delivery against a real HTTP receiver: both formats, retries with backoff, a
receiver that is down, slow or hanging, a full queue, and no URL in any log line.

The Notifier is what both drivers use; these tests drive it directly (the kopf + kmock tests
in test_notify_kmock.py drive it through the operator). Behaviour is asserted, never speed:
`send` returning while the receiver still holds a request is what "never blocks" means.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from notify_receiver import Receiver, free_port, wait_until

from serinus.api.spec import NotificationTarget
from serinus.api.status import ModelDeploymentStatus
from serinus.core.actions import EmitEvent
from serinus.notify import Notice, Notifier, RetryPolicy, Target, notices_for, target_of

TOKEN = "s3cr3t-T0KEN"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(attempts=3, backoff=0.05, max_backoff=1.0)

ROLLING_BACK: dict[str, Any] = {
    "phase": "RollingBack",
    "stable": {"revision": "aaa111", "version": "1.0.0", "uri": "file:///m/1"},
    "canary": {
        "revision": "bbb222", "version": "2.0.0", "uri": "file:///m/2", "weight": 0,
        "desiredWeight": 0, "step": 1, "startedAt": "2026-11-23T11:50:00Z",
    },
    "analysis": {
        "failedChecks": 2,
        "checks": [
            {
                "at": "2026-11-23T11:59:00Z", "step": 1, "weight": 50, "verdict": "Fail",
                "canaryRequests": 480,
                "metrics": [
                    {"name": "error-rate", "verdict": "Fail", "canary": 0.21, "stable": 0.004,
                     "threshold": 0.05, "reason": "error-rate 21.0% > max 5.0%"},
                    {"name": "latency-p99", "verdict": "Pass", "reason": "p99 within 1.25x"},
                ],
            }
        ],
    },
    "history": [
        {"revision": "bbb222", "version": "2.0.0", "result": "RolledBack",
         "reason": "2 failed checks (limit 2)", "startedAt": "2026-11-23T11:50:00Z",
         "finishedAt": "2026-11-23T11:59:00Z"},
    ],
}  # fmt: skip


def rollback_notice(name: str = "iris") -> Notice:
    before = ModelDeploymentStatus.model_validate(ROLLING_BACK)
    after = ModelDeploymentStatus.model_validate({**ROLLING_BACK, "phase": "RolledBack"})
    event = EmitEvent(
        type="Warning", reason="RolledBack", message="2.0.0 rolled back: 2 failed checks"
    )
    [notice] = notices_for("ns1", name, [event], before, after, NOW)
    return notice


def phase_notice(reason: str, name: str = "iris") -> Notice:
    status = ModelDeploymentStatus.model_validate({**ROLLING_BACK, "phase": reason})
    event = EmitEvent(type="Normal", reason=reason, message=f"entered {reason}")
    [notice] = notices_for("ns1", name, [event], status, status, NOW)
    return notice


def target(url: str, name: str = "hook", **fields: Any) -> Target:
    model = NotificationTarget.model_validate({"name": name, "url": url, **fields})
    return target_of(model, env_allowed=True)


class Outcomes:
    """on_delivery and on_problem of a Notifier, recorded."""

    def __init__(self) -> None:
        self.results: Counter[tuple[str, str]] = Counter()
        self.problems: list[tuple[str, str, str, str]] = []
        self._lock = threading.Lock()

    def delivery(self, target: str, result: str) -> None:
        with self._lock:
            self.results[target, result] += 1

    def problem(self, namespace: str, name: str, target: str, message: str) -> None:
        with self._lock:
            self.problems.append((namespace, name, target, message))


@pytest.fixture
def receiver() -> Any:
    with Receiver() as running:
        yield running


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
def notifier(outcomes: Outcomes) -> Any:
    running = Notifier(on_delivery=outcomes.delivery, on_problem=outcomes.problem, policy=FAST)
    yield running
    running.close(timeout=0)


def test_a_rollback_arrives_as_generic_json_and_as_slack(receiver, notifier, outcomes) -> None:
    notifier.send(
        [
            target(receiver.url(f"/hooks/{TOKEN}/json")),
            target(receiver.url(f"/hooks/{TOKEN}/slack"), name="chat", type="slack"),
        ],
        [rollback_notice()],
    )
    assert notifier.wait_idle(10)
    [generic] = receiver.bodies(f"/hooks/{TOKEN}/json")
    assert generic["category"] == "rolled-back" and generic["phase"] == "RolledBack"
    assert generic["deployment"] == {"namespace": "ns1", "name": "iris"}
    assert generic["stable"] == {"revision": "aaa111", "version": "1.0.0"}
    assert generic["canary"]["version"] == "2.0.0" and generic["weight"] == 0
    assert generic["rollout"]["result"] == "RolledBack"
    assert generic["failingVerdicts"] == [
        {"name": "error-rate", "verdict": "Fail", "canary": 0.21, "stable": 0.004,
         "threshold": 0.05, "reason": "error-rate 21.0% > max 5.0%"},
    ]  # fmt: skip
    [slack] = receiver.bodies(f"/hooks/{TOKEN}/slack")
    assert slack["text"].startswith(":rewind: ns1/iris: RolledBack")
    texts = [b.get("text", {}).get("text", "") for b in slack["blocks"]]
    assert any(t.startswith("*Failing checks*\n• error-rate (canary 0.21") for t in texts)
    assert outcomes.results == {("hook", "delivered"): 1, ("chat", "delivered"): 1}
    assert outcomes.problems == []


def test_only_the_subscribed_categories_are_sent(receiver, notifier) -> None:
    rollbacks_only = target(receiver.url("/only"), events=["rolled-back"])
    notifier.send([rollbacks_only], [phase_notice("Progressing"), rollback_notice()])
    assert notifier.wait_idle(10)
    assert [b["event"]["reason"] for b in receiver.bodies("/only")] == ["RolledBack"]


def test_a_receiver_that_is_down_is_retried_then_given_up_and_reported_once(
    notifier, outcomes, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="serinus.notify")
    down = target(f"http://127.0.0.1:{free_port()}/hook")
    notifier.send([down], [rollback_notice()])
    notifier.send([down], [phase_notice("RolledBack")])
    assert notifier.wait_idle(20)
    assert outcomes.results == {("hook", "failed"): 2}
    [problem] = outcomes.problems  # the same problem twice is reported once
    assert problem == ("ns1", "iris", "hook", "gave up after 3 attempts (ConnectError)")
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 4  # two notifications, two retries each
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "to target hook not delivered" in warnings[0].getMessage()
    notifier.forget("ns1", "iris")  # deleted and created again: a problem is news again
    notifier.send([down], [rollback_notice()])
    assert notifier.wait_idle(20)
    assert len(outcomes.problems) == 2


def test_5xx_is_retried_with_growing_waits_until_it_succeeds(receiver, notifier, outcomes):
    receiver.answers["/flaky"] = [503, 503]
    notifier.send([target(receiver.url("/flaky"))], [rollback_notice()])
    assert notifier.wait_idle(10)
    first, second, third = receiver.times("/flaky")
    # Waits are 0.05 s and 0.1 s, each ±20 % jitter: the second is always the longer.
    assert second - first >= 0.04 and third - second > second - first
    assert outcomes.results == {("hook", "delivered"): 1}
    assert outcomes.problems == []


def test_429_waits_as_long_as_retry_after_asks(receiver, notifier, outcomes) -> None:
    receiver.answers["/limited"] = [429]
    receiver.retry_after = "0.5"
    notifier.send([target(receiver.url("/limited"))], [rollback_notice()])
    assert notifier.wait_idle(10)
    first, second = receiver.times("/limited")
    assert second - first >= 0.5  # not FAST's 0.05 s
    assert outcomes.results == {("hook", "delivered"): 1}


def test_a_4xx_answer_is_final_and_reported(receiver, notifier, outcomes) -> None:
    receiver.answers["/gone"] = [404]
    notifier.send([target(receiver.url("/gone"))], [rollback_notice()])
    assert notifier.wait_idle(10)
    assert len(receiver.bodies("/gone")) == 1
    assert outcomes.results == {("hook", "rejected"): 1}
    assert outcomes.problems[0][3] == "the receiver refused it (HTTP 404); not retried"


def test_a_slow_receiver_times_out_and_is_retried(receiver, notifier, outcomes) -> None:
    receiver.delay = 1.5  # longer than the target's timeout
    slow = target(receiver.url("/slow"), timeout="200ms")
    notifier.send([slow], [rollback_notice()])
    assert notifier.wait_idle(20)
    assert len(receiver.bodies("/slow")) == FAST.attempts
    assert outcomes.results == {("hook", "failed"): 1}
    assert outcomes.problems[0][3] == "gave up after 3 attempts (ReadTimeout)"


def test_a_hanging_receiver_holds_only_its_own_lane(receiver, notifier, outcomes) -> None:
    receiver.hold("/stuck")
    stuck, fine = target(receiver.url("/stuck"), name="stuck"), target(receiver.url("/fine"))
    notices = [phase_notice("Validating"), phase_notice("Progressing"), rollback_notice()]
    notifier.send([stuck, fine], notices)
    # send has returned while the receiver holds the first request of the stuck lane.
    wait_until(lambda: len(receiver.bodies("/fine")) == 3, what="the other lane delivers")
    assert len(receiver.bodies("/stuck")) == 1
    assert outcomes.results == {("hook", "delivered"): 3}
    receiver.release()
    assert notifier.wait_idle(10)
    in_order = [b["event"]["reason"] for b in receiver.bodies("/stuck")]
    assert in_order == ["Validating", "Progressing", "RolledBack"]  # one lane, in order
    assert outcomes.results[("stuck", "delivered")] == 3


def test_a_full_queue_drops_the_oldest_and_counts_it(receiver, outcomes) -> None:
    receiver.hold("/")
    notifier = Notifier(on_delivery=outcomes.delivery, policy=FAST, max_pending=2)
    try:
        reasons = ["Validating", "Progressing", "Paused", "Promoting", "Stable"]
        notifier.send([target(receiver.url("/q"))], [phase_notice(r) for r in reasons])
        assert outcomes.results == {("hook", "dropped"): 3}
        receiver.release()
        assert notifier.wait_idle(10)
        assert [b["event"]["reason"] for b in receiver.bodies("/q")] == ["Promoting", "Stable"]
    finally:
        notifier.close(timeout=0)


def test_close_returns_while_a_receiver_hangs(receiver, outcomes, caplog) -> None:
    receiver.hold("/")
    notifier = Notifier(on_delivery=outcomes.delivery, policy=FAST)
    notifier.send([target(receiver.url("/hang"), timeout="60s")], [rollback_notice()])
    wait_until(lambda: receiver.bodies("/hang"), what="the request reached the receiver")
    notifier.close(timeout=0.2)
    assert not receiver.gate.is_set()  # the receiver still holds the request
    assert "1 notifications not delivered at shutdown" in caplog.text


def test_no_url_reaches_a_log_line_at_any_level(receiver, outcomes, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answers[f"/{TOKEN}/refused"] = [400]
    notifier = Notifier(
        on_delivery=outcomes.delivery,
        on_problem=outcomes.problem,
        policy=FAST,
        environ={"NOT_A_URL": TOKEN},
    )
    try:
        from_env = NotificationTarget(name="env", url_env="NOT_A_URL")
        notifier.send(
            [
                target(receiver.url(f"/{TOKEN}/ok"), name="ok", type="slack"),
                target(receiver.url(f"/{TOKEN}/refused"), name="refused"),
                target(f"http://127.0.0.1:{free_port()}/{TOKEN}", name="down"),
                target_of(from_env, env_allowed=True),
            ],
            [rollback_notice()],
        )
        assert notifier.wait_idle(20)
    finally:
        notifier.close(timeout=0)
    assert outcomes.results == {
        ("ok", "delivered"): 1, ("refused", "rejected"): 1, ("down", "failed"): 1,
        ("env", "unresolved"): 1,
    }  # fmt: skip
    assert "not an http:// or https:// URL" in caplog.text
    assert TOKEN not in caplog.text
    assert all(TOKEN not in problem for *_, problem in outcomes.problems)
    # The check is not blind: the same HTTP library, outside the notifier, does log URLs.
    httpx.post(receiver.url(f"/{TOKEN}/outside"), json={})
    assert TOKEN in caplog.text
