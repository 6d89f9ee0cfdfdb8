"""What a notification says: a `Notice` built from an Event and the status around it, and one
request body per target type (generic JSON, Slack-compatible). Pure functions, no I/O.

No URL of any kind goes into a notice (not even the model's URI, which may be a signed link):
revisions and versions name what is deployed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from serinus.api.spec import NotificationCategory, NotificationType
from serinus.api.status import (
    CanaryStatus,
    Check,
    HistoryEntry,
    ModelDeploymentStatus,
    Phase,
    StableStatus,
    Verdict,
)
from serinus.core.actions import EmitEvent
from serinus.notify.categories import categories_of

Category = NotificationCategory
PAYLOAD_VERSION = 1
SOURCE = "serinus"

_ENDS_A_ROLLOUT = {Category.PROMOTED, Category.ROLLED_BACK, Category.FAILED}
_ROLLBACK_REASONS = {Phase.ROLLING_BACK.value, Phase.ROLLED_BACK.value, Phase.FAILED.value}


@dataclass(frozen=True, eq=False)
class Notice:
    """One Event of one ModelDeployment, with the context a receiver needs."""

    namespace: str
    name: str
    category: Category
    """The most specific category (e.g. rolled-back rather than phase-change)."""
    categories: frozenset[Category]
    type: str
    reason: str
    message: str
    phase: str
    stable: dict[str, Any] | None
    canary: dict[str, Any] | None
    weight: int
    rollout: dict[str, Any] | None
    """The finished rollout (history entry) for promoted, rolled-back and failed."""
    last_check: dict[str, Any] | None
    failing_verdicts: tuple[dict[str, Any], ...]
    """The failed metrics of the last check, when it failed and the rollout is rolled back."""
    time: datetime


def notices_for(
    namespace: str,
    name: str,
    events: Sequence[EmitEvent],
    before: ModelDeploymentStatus,
    after: ModelDeploymentStatus,
    now: datetime,
) -> list[Notice]:
    """The notices of one tick's Events (those of a category; the others are not sent)."""
    notices = []
    for event in events:
        found = categories_of(event.reason, before, after)
        if found is None:
            continue
        category, categories = found
        check = after.analysis.checks[-1] if after.analysis.checks else None
        failing: tuple[dict[str, Any], ...] = ()
        if event.reason in _ROLLBACK_REASONS and check is not None:
            failing = _failing(check)
        notices.append(
            Notice(
                namespace=namespace,
                name=name,
                category=category,
                categories=categories,
                type=event.type,
                reason=event.reason,
                message=event.message,
                phase=after.phase.value,
                stable=_stable(after.stable),
                canary=_canary(after.canary),
                weight=after.canary.weight if after.canary else 0,
                rollout=_rollout(after.history[-1])
                if category in _ENDS_A_ROLLOUT and after.history
                else None,
                last_check=_check(check) if check is not None and failing else None,
                failing_verdicts=failing,
                time=now,
            )
        )
    return notices


def _stable(stable: StableStatus | None) -> dict[str, Any] | None:
    if stable is None:
        return None
    return {"revision": stable.revision, "version": stable.version}


def _canary(canary: CanaryStatus | None) -> dict[str, Any] | None:
    if canary is None:
        return None
    return {
        "revision": canary.revision,
        "version": canary.version,
        "weight": canary.weight,
        "desiredWeight": canary.desired_weight,
        "step": canary.step,
    }


def _rollout(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "revision": entry.revision,
        "version": entry.version,
        "result": entry.result.value,
        "reason": entry.reason,
        "startedAt": _iso(entry.started_at),
        "finishedAt": _iso(entry.finished_at),
    }


def _check(check: Check) -> dict[str, Any]:
    return {
        "at": _iso(check.at),
        "step": check.step,
        "weight": check.weight,
        "verdict": check.verdict.value,
        "canaryRequests": check.canary_requests,
    }


def _failing(check: Check) -> tuple[dict[str, Any], ...]:
    if check.verdict != Verdict.FAIL:
        return ()
    return tuple(
        {
            "name": metric.name,
            "verdict": metric.verdict.value,
            "canary": metric.canary,
            "stable": metric.stable,
            "threshold": metric.threshold,
            "reason": metric.reason,
        }
        for metric in check.metrics
        if metric.verdict == Verdict.FAIL
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- generic JSON ----------------------------------------------------------------------------


def webhook_payload(notice: Notice) -> dict[str, Any]:
    """The generic JSON document (docs/notifications.md describes every field)."""
    return {
        "version": PAYLOAD_VERSION,
        "source": SOURCE,
        "category": notice.category.value,
        "categories": sorted(c.value for c in notice.categories),
        "time": _iso(notice.time),
        "deployment": {"namespace": notice.namespace, "name": notice.name},
        "event": {"type": notice.type, "reason": notice.reason, "message": notice.message},
        "phase": notice.phase,
        "stable": notice.stable,
        "canary": notice.canary,
        "weight": notice.weight,
        "rollout": notice.rollout,
        "lastCheck": notice.last_check,
        "failingVerdicts": list(notice.failing_verdicts),
    }


# --- Slack -----------------------------------------------------------------------------------

_EMOJI = {
    Category.PHASE_CHANGE: ":arrow_forward:",
    Category.PROMOTED: ":white_check_mark:",
    Category.ROLLED_BACK: ":rewind:",
    Category.FAILED: ":x:",
    Category.DRIFT: ":chart_with_downwards_trend:",
    Category.ACCURACY: ":dart:",
    Category.RETRAIN_CANDIDATE: ":package:",
}
_HEADER_LIMIT = 150
_SECTION_LIMIT = 3000
_FIELD_LIMIT = 2000


def slack_payload(notice: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (the notification line and fallback) and
    Block Kit `blocks`. Mattermost and Rocket.Chat accept the same shape."""
    title = f"{notice.namespace}/{notice.name}: {notice.reason}"
    emoji = _EMOJI[notice.category]
    fields = [f"*Phase*\n{_escape(notice.phase)}"]
    if notice.stable is not None:
        fields.append(f"*Stable*\n{_escape(_version(notice.stable))}")
    if notice.canary is not None:
        canary = f"{_version(notice.canary)} at {notice.canary['weight']}%"
        fields.append(f"*Canary*\n{_escape(canary)}")
    if notice.rollout is not None:
        fields.append(f"*Result*\n{_escape(notice.rollout['result'])}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_LIMIT)}},
        {"type": "section", "text": _mrkdwn(_escape(notice.message), _SECTION_LIMIT)},
        {"type": "section", "fields": [_mrkdwn(f, _FIELD_LIMIT) for f in fields]},
    ]
    if notice.failing_verdicts:
        lines = ["*Failing checks*"]
        lines += [f"• {_escape(_verdict(v))}" for v in notice.failing_verdicts]
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines), _SECTION_LIMIT)})
    context = f"Serinus · {notice.category.value} · {_iso(notice.time)}"
    blocks.append({"type": "context", "elements": [_mrkdwn(context, _FIELD_LIMIT)]})
    text = _cut(f"{emoji} {_escape(title)}: {_escape(notice.message)}", _SECTION_LIMIT)
    return {"text": text, "blocks": blocks}


def _version(ref: dict[str, Any]) -> str:
    version, revision = ref.get("version"), ref["revision"]
    return f"{version} (revision {revision})" if version and version != revision else revision


def _verdict(verdict: dict[str, Any]) -> str:
    values = []
    for key in ("canary", "stable", "threshold"):
        if verdict.get(key) is not None:
            values.append(f"{key} {verdict[key]:.4g}")
    shown = f" ({', '.join(values)})" if values else ""
    return f"{verdict['name']}{shown}: {verdict['reason']}"


def _escape(text: str) -> str:
    """Slack's three control characters in mrkdwn and plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _cut(text, limit)}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


PAYLOADS: dict[NotificationType, Callable[[Notice], dict[str, Any]]] = {
    NotificationType.WEBHOOK: webhook_payload,
    NotificationType.SLACK: slack_payload,
}


def payload_for(kind: NotificationType, notice: Notice) -> dict[str, Any]:
    return PAYLOADS[kind](notice)
