"""Notifications: webhooks (generic JSON or Slack-compatible) told about what a rollout does.

`categories` maps the engine's Event reasons to what a target subscribes to, `payloads` turns an
Event and the status around it into a `Notice` and a Notice into a request body (pure
functions), `targets` resolves where to send (a URL from the spec, a Secret or the environment,
never logged), and `notifier` delivers in the background with retries, so a failing webhook
never holds or changes a rollout. Both drivers (the operator, local mode) own a `Notifier`.
"""

from serinus.notify.categories import CATEGORY_BY_REASON, categories_of
from serinus.notify.notifier import Notifier, RetryPolicy
from serinus.notify.payloads import Notice, notices_for, payload_for, slack_payload, webhook_payload
from serinus.notify.targets import (
    NotifyConfigError,
    Target,
    TargetError,
    load_default_targets,
    resolve_url,
    target_of,
)

__all__ = [
    "CATEGORY_BY_REASON",
    "Notice",
    "Notifier",
    "NotifyConfigError",
    "RetryPolicy",
    "Target",
    "TargetError",
    "categories_of",
    "load_default_targets",
    "notices_for",
    "payload_for",
    "resolve_url",
    "slack_payload",
    "target_of",
    "webhook_payload",
]
