"""Where notifications go: targets from a ModelDeployment's spec and the operator's defaults,
and the one function that turns a target into its URL.

A URL may carry a token (Slack's do), so it is read only when a request is about to be sent
(in the notifier's worker thread) and never appears in a log line, an Event, the status or an
error message: those name the target, the Secret or the variable, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from serinus.api.rules import field_problems
from serinus.api.spec import NotificationCategory, NotificationTarget, NotificationType
from serinus.api.types import parse_duration

DEFAULT_TARGETS_ENV = "SERINUS_NOTIFY_DEFAULT"
"""The operator's default targets: a JSON list, or the path of a JSON or YAML file with one."""

SecretReader = Callable[[str, str, str], str]
"""(namespace, Secret name, key) → the value; raises TargetError saying what is wrong."""

_URL = re.compile(r"^https?://[^\s/]+\S*$")


class NotifyConfigError(ValueError):
    """The operator's default targets cannot be used; the message says where and why."""


class TargetError(Exception):
    """A target's URL cannot be had. The message never contains a URL."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Target:
    """A resolved-on-demand notification target. Its repr leaves the URL out."""

    name: str
    type: NotificationType
    events: frozenset[NotificationCategory]
    timeout: float
    url: str | None = field(default=None, repr=False)
    url_env: str | None = None
    secret: tuple[str, str] | None = None
    """(Secret name, key) in the ModelDeployment's namespace."""
    env_allowed: bool = True
    """urlEnv is honoured: local mode, and the operator's own default targets."""
    origin: str = "spec"
    """`spec` (the ModelDeployment's own) or `default` (the operator's)."""

    def wants(self, categories: Iterable[NotificationCategory]) -> bool:
        return not self.events.isdisjoint(categories)


def target_of(model: NotificationTarget, *, env_allowed: bool, origin: str = "spec") -> Target:
    secret = model.url_from.secret_key_ref if model.url_from is not None else None
    return Target(
        name=model.name,
        type=model.type,
        events=frozenset(model.events),
        timeout=parse_duration(model.timeout).total_seconds(),
        url=model.url,
        url_env=model.url_env,
        secret=(secret.name, secret.key) if secret is not None else None,
        env_allowed=env_allowed,
        origin=origin,
    )


def resolve_url(
    target: Target,
    namespace: str,
    *,
    environ: Mapping[str, str],
    secrets: SecretReader | None,
) -> str:
    """The target's URL, or TargetError naming what is missing (never the URL itself)."""
    if target.url is not None:
        url, where = target.url, "url"
    elif target.url_env is not None:
        if not target.env_allowed:
            raise TargetError(
                "urlEnv is not read for a ModelDeployment's own targets in a cluster (it would "
                "hand out the operator's environment): use urlFrom.secretKeyRef"
            )
        value = environ.get(target.url_env)
        if not value:
            raise TargetError(f"environment variable {target.url_env} is not set")
        url, where = value, f"environment variable {target.url_env}"
    elif target.secret is not None:
        name, key = target.secret
        if secrets is None:
            raise TargetError(
                f"urlFrom.secretKeyRef (Secret {name}) needs Kubernetes: in local mode, put the "
                "URL in an environment variable and name it in urlEnv"
            )
        url, where = secrets(namespace, name, key).strip(), f"Secret {namespace}/{name} key {key}"
    else:  # the CEL rule makes this impossible for an accepted spec
        raise TargetError("no url, urlFrom or urlEnv")
    if not _URL.match(url):
        raise TargetError(f"the value of {where} is not an http:// or https:// URL")
    return url


def load_default_targets(value: str | None) -> list[Target]:
    """The operator's default targets from SERINUS_NOTIFY_DEFAULT: a JSON list (or
    `{targets: [...]}`), or the path of a JSON or YAML file holding one."""
    if value is None or not value.strip():
        return []
    text = value.strip()
    where = DEFAULT_TARGETS_ENV
    if not text.startswith(("[", "{")):
        where = f"{DEFAULT_TARGETS_ENV} file {text}"
        try:
            text = Path(text).read_text()
        except OSError as error:
            raise NotifyConfigError(f"cannot read {where}: {error.strerror or error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        # The parser's message quotes the text, which may hold a URL: it is left out.
        raise NotifyConfigError(f"{where} is not valid JSON or YAML{line}") from None
    if isinstance(data, dict) and set(data) == {"targets"}:
        data = data["targets"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise NotifyConfigError(f"{where} must be a list of targets (or {{targets: [...]}})")
    try:
        models = TypeAdapter(list[NotificationTarget]).validate_python(data)
    except ValidationError as error:
        problems = [
            where
            + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
            + f": {e['msg']}"
            for e in error.errors()
        ]  # pydantic's msg never quotes the input
        raise NotifyConfigError("; ".join(problems)) from None
    problems = [str(p) for p in field_problems("notifications", _wire(models), where)]
    for index, model in enumerate(models):
        if model.url_from is not None:
            problems.append(
                f"{where}[{index}].urlFrom: a default target reads its URL from the operator's "
                "environment (urlEnv; the chart sets it from a Secret), not from a Secret in "
                "each ModelDeployment's namespace"
            )
    if problems:
        raise NotifyConfigError("; ".join(problems))
    return [target_of(model, env_allowed=True, origin="default") for model in models]


def _wire(models: list[NotificationTarget]) -> list[dict[str, object]]:
    return [model.to_wire() for model in models]
