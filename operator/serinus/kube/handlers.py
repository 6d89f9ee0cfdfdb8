"""Kopf registration only: every handler hands the body to the driver and patches what it returns.

Handlers are sync (kopf runs them in worker threads) and never return a value (kopf would store it
in status). Settings come from the environment (the chart sets them):
  SERINUS_TICK_SECONDS      how often a ModelDeployment in a rollout is looked at (default 5)
  SERINUS_STEADY_SECONDS    how often one outside a rollout is looked at anyway (default 600)
  SERINUS_MONITOR_POLL_SECONDS  how often a settled one's next monitoring check time is compared
                            with the clock (default 60; no API request unless a check is due)
  SERINUS_OPERATOR_IMAGE    image of the validation Job (the operator's own image)
  SERINUS_METRICS_PORT      port of the operator's /metrics (default 8081; 0 disables)
  SERINUS_PROMETHEUS_ADDRESS  Prometheus for specs with provider prometheus and no address
  SERINUS_RUNTIME_IMAGE     runtime image for specs that keep the built-in default
  SERINUS_DASHBOARD_PORT    port of the read-only rollout dashboard (default 8082; 0 disables)
  SERINUS_DASHBOARD_HOST    address it binds (default 0.0.0.0; docs/dashboard.md)
  SERINUS_NOTIFY_DEFAULT    notification targets for every ModelDeployment: a JSON list, or the
                            path of a JSON/YAML file (docs/notifications.md)
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Any

import kopf
import kubernetes
from prometheus_client import start_http_server

from serinus.api.resource import GROUP, PLURAL, VERSION
from serinus.api.status import ROLLOUT_PHASES, Phase
from serinus.dashboard.server import DashboardServer
from serinus.dashboard.timeline import Timeline
from serinus.kube.driver import DEFAULT_OPERATOR_IMAGE, KubeDriver, Outcome
from serinus.notify import NotifyConfigError, Target, load_default_targets
from serinus.notify.targets import DEFAULT_TARGETS_ENV
from serinus.traffic import naming

log = logging.getLogger("serinus.operator")

TICK_SECONDS = float(os.environ.get("SERINUS_TICK_SECONDS", "5"))
STEADY_SECONDS = float(os.environ.get("SERINUS_STEADY_SECONDS", "600"))
"""Outside a rollout nothing needs a look on a clock: spec and annotation edits arrive as watch
events, and so do a revision Deployment's deletion or change of ready pods (`revision_changed`).
This slow pass is only a safety net, so an idle operator stays idle."""

MONITOR_POLL_SECONDS = float(os.environ.get("SERINUS_MONITOR_POLL_SECONDS", "60"))
"""Monitoring checks are due every `spec.monitoring.interval` (minutes): a cheap filter looks at
status.monitoring.nextCheckAt this often and ticks only when it has passed."""

_driver: KubeDriver | None = None
_dashboard: DashboardServer | None = None
_suspended = False
_ready_seen: dict[tuple[str, str], int] = {}
"""Ready pods last seen per revision Deployment (namespace, name)."""


def driver() -> KubeDriver:
    global _driver
    if _driver is None:
        _driver = KubeDriver(
            api_client=kubernetes.client.ApiClient(
                kubernetes.client.Configuration.get_default_copy()
            ),
            operator_image=os.environ.get("SERINUS_OPERATOR_IMAGE", DEFAULT_OPERATOR_IMAGE),
            prometheus_address=os.environ.get("SERINUS_PROMETHEUS_ADDRESS") or None,
            runtime_image=os.environ.get("SERINUS_RUNTIME_IMAGE") or None,
            default_targets=_default_targets(),
        )
    return _driver


def _default_targets() -> list[Target]:
    """`serinus operator` refuses to start with broken defaults; an embedder gets a log line."""
    try:
        return load_default_targets(os.environ.get(DEFAULT_TARGETS_ENV))
    except NotifyConfigError as error:
        log.error("%s: the operator sends no default notifications", error)
        return []


def use_driver(replacement: KubeDriver | None) -> None:
    """Tests and embedders inject their own driver (another ApiClient, a fake clock); the one
    replaced stops its notifier without waiting."""
    global _driver, _suspended
    if _driver is not None and _driver is not replacement:
        _driver.close(timeout=0)
    _driver = replacement
    _suspended = False
    _ready_seen.clear()


def suspend() -> None:
    """Handlers return at once from now on (lets a test drain in-flight work before stopping)."""
    global _suspended
    _suspended = True


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.posting.level = 30  # Events of kopf's own at WARNING and above; ours are explicit
    settings.watching.server_timeout = 300
    # Per-object workers end soon after their last event: with thousands of objects, lingering
    # ones are what sets the peak memory.
    settings.batching.idle_timeout = 1.0
    logging.getLogger("kopf.objects").addFilter(_quiet_timers)
    port = int(os.environ.get("SERINUS_METRICS_PORT", "8081"))
    if port:
        start_http_server(port, registry=driver().metrics.registry)


@kopf.on.startup()
def start_dashboard(**_: Any) -> None:
    """The read-only rollout dashboard over what this operator's driver decides. A port that
    cannot be bound is logged and the operator runs on without it."""
    global _dashboard
    port = int(os.environ.get("SERINUS_DASHBOARD_PORT", "8082"))
    if not port or _dashboard is not None:
        return
    current = driver()
    if current.timeline is None:
        current.timeline = Timeline()
    host = os.environ.get("SERINUS_DASHBOARD_HOST", "0.0.0.0")
    try:
        _dashboard = DashboardServer(current.timeline, host=host, port=port).start()
    except OSError as error:
        log.error("dashboard not started on %s:%d: %s", host, port, error)
        return
    log.info("dashboard at http://%s:%d/ (read-only)", host, _dashboard.port)


@kopf.on.cleanup()
def stop_dashboard(**_: Any) -> None:
    global _dashboard
    if _dashboard is not None:
        _dashboard.stop()
        _dashboard = None


_ROUTINE = (
    "Timer 'heartbeat' succeeded",
    "Timer 'steady' succeeded",
    "Timer 'monitor' succeeded",
    "Handler 'revision_changed' succeeded",
)


@kopf.on.cleanup()
def shutdown(**_: Any) -> None:
    """The operator stops: notifications still waiting get a moment to go out."""
    if _driver is not None:
        _driver.close()


def _quiet_timers(record: logging.LogRecord) -> bool:
    """Drop kopf's success line of the routine handlers: one per object per tick (or per
    Deployment event) says nothing; what they decide is logged, and failures still are."""
    return not (record.levelno == logging.INFO and record.getMessage().startswith(_ROUTINE))


def _apply(outcome: Outcome, patch: kopf.Patch) -> None:
    patch.status.update(outcome.status)


def _tick(body: kopf.Body, patch: kopf.Patch) -> None:
    if _suspended:
        return
    _apply(driver().tick(dict(body)), patch)


def in_motion(body: kopf.Body, **_: Any) -> bool:
    """A rollout runs, the first version is coming up, an old revision waits to retire, or a
    retraining Job runs."""
    status = body.get("status") or {}
    phase = status.get("phase")
    retraining = bool((status.get("retrain") or {}).get("running"))
    return phase in _FAST_PHASES or bool(status.get("retiring")) or retraining


def monitored(body: kopf.Body, **_: Any) -> bool:
    """A settled ModelDeployment whose stable version is monitored."""
    status = body.get("status") or {}
    return (
        bool((status.get("monitoring") or {}).get("nextCheckAt"))
        and status.get("phase") == Phase.STABLE.value
        and not in_motion(body)
    )


def monitoring_due(body: kopf.Body) -> bool:
    """Its next monitoring check time has passed (read from the status: no API request)."""
    due = ((body.get("status") or {}).get("monitoring") or {}).get("nextCheckAt")
    try:
        return due is not None and datetime.fromisoformat(due) <= datetime.now(UTC)
    except ValueError:
        return True  # a status we cannot read: let the tick rewrite it


def at_rest(body: kopf.Body, **_: Any) -> bool:
    return not in_motion(body)


_FAST_PHASES = {None, Phase.PENDING.value} | {p.value for p in ROLLOUT_PHASES}


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.update(GROUP, VERSION, PLURAL, field="metadata.annotations")
def reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _tick(body, patch)


# Kopf starts and stops each timer as its filter starts and stops matching the object.
@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS, sharp=False, when=in_motion)
def heartbeat(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _tick(body, patch)


@kopf.timer(GROUP, VERSION, PLURAL, interval=STEADY_SECONDS, sharp=False, when=at_rest)
def steady(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _tick(body, patch)


# Kopf evaluates `when` on watch events only, so the clock is compared inside the handler. Async:
# a check is due once per interval, the handler runs every poll — in the event loop, without the
# thread hop of a sync handler; only a due tick goes to a thread.
@kopf.timer(GROUP, VERSION, PLURAL, interval=MONITOR_POLL_SECONDS, sharp=False, when=monitored)
async def monitor(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    if monitoring_due(body):
        await asyncio.to_thread(_tick, body, patch)


@kopf.on.event(
    "apps", "v1", "deployments",
    labels={naming.LABEL_APP_NAME: naming.RUNTIME_APP, naming.LABEL_NAME: kopf.PRESENT},
)  # fmt: skip
def revision_changed(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    """A revision Deployment went away or its ready pods changed: look at its ModelDeployment
    now rather than at the next timer (a settled one has only the slow safety-net timer)."""
    if _suspended:
        return
    namespace = body.metadata.namespace or "default"
    key = (namespace, body.metadata.name)
    ready = int((body.get("status") or {}).get("readyReplicas") or 0)
    if event.get("type") == "DELETED":
        _ready_seen.pop(key, None)
    else:
        before = _ready_seen.get(key)
        _ready_seen[key] = ready
        if before is None or before == ready:  # first sight (a listing), or nothing new
            return
    owner = body.metadata.labels.get(naming.LABEL_NAME)
    if owner:
        driver().tick_named(namespace, owner)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def forget(body: kopf.Body, **_: Any) -> None:
    """Owner references garbage-collect the objects; only in-memory state is dropped here."""
    driver().forget(body.metadata.namespace or "default", body.metadata.name)
