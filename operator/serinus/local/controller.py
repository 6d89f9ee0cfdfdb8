"""The local driver of the engine: runtime processes, the local router, a metrics provider.

`LocalController.tick()` is local mode's `KubeDriver.tick`: read the applied ModelDeployment
(`StateDir`), check it, observe (ready processes per revision, the router's weight, the
validation run's outcome, an analysis window when due, the action annotation), `decide`, carry
out the actions, persist the status. It keeps the driver contract of `serinus.core.actions`:
every action is applied before the status is written; when one fails nothing of the decision is
kept, the `Applied` condition says why (with one Event per distinct reason) and the next tick
decides again — the stable version keeps serving meanwhile.

Kubernetes → local: a revision's Deployment → `RuntimeFleet` processes; the Services and the
traffic provider → `LocalRouter` (whatever `spec.traffic` says: locally there is one router);
the validation Job → `run_checks` in a thread against the canary's processes; the retraining
Job → a local command (serinus.local.retrain), its autoDeploy → a new desired.json; Events → the
state file and the terminal, and `spec.notifications` (URLs from `urlEnv`: there are no
Secrets here) through a background `Notifier`; the metrics provider → a real Prometheus
started here when the binary is on PATH, else the scrape provider reading the processes'
/metrics.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from serinus.api.rules import check_manifest
from serinus.api.spec import ModelDeploymentSpec
from serinus.api.status import ConditionStatus, ModelDeploymentStatus, Phase
from serinus.checks import CheckPlan, run_checks
from serinus.core.actions import (
    Action,
    Decision,
    Deploy,
    EmitEvent,
    Promote,
    RunValidation,
    ScaleDown,
    SetModel,
    SetWeight,
    StartRetrain,
)
from serinus.core.aftercare import monitoring_due, retrain_running
from serinus.core.conditions import set_condition
from serinus.core.engine import (
    analysis_due,
    analysis_window,
    decide,
    reject_spec,
    serving_revisions,
    window_needs_baseline,
)
from serinus.core.judge import judge
from serinus.core.observations import Observations, ValidationOutcome, parse_action
from serinus.core.revision import revision_of
from serinus.dashboard.timeline import Timeline
from serinus.local import orphans
from serinus.local.processes import FleetError, RevisionSpec, RuntimeFleet
from serinus.local.prometheus import LocalPrometheus, PrometheusError, find_binary
from serinus.local.retrain import LocalRetrainer
from serinus.local.router import LocalRouter
from serinus.local.state import ControllerState, DesiredState, LocalEvent, StateDir, StateError
from serinus.metrics.monitoring import observe_monitoring
from serinus.metrics.prometheus import PrometheusProvider
from serinus.metrics.provider import AnalysisTarget, MetricsProvider, MonitorTarget
from serinus.metrics.scrape import ScrapeProvider
from serinus.metrics.sources import ProcessMetricsSource
from serinus.notify import Notifier, RetryPolicy, notices_for, target_of
from serinus.traffic import naming
from serinus.traffic.router import RouteContext

log = logging.getLogger("serinus.local")

APPLIED = "Applied"
NAMESPACE = "local"
VALIDATION_HTTP_TIMEOUT = 30.0
RESUME_READY_TIMEOUT = 60.0
"""How long `start` waits for a resumed deployment's processes before the router listens anyway."""


@dataclass
class _Validation:
    revision: str
    started_at: datetime
    future: Future[ValidationOutcome]


class LocalController:
    """Drives one ModelDeployment stored in `state` on this machine.

    `prometheus`: True requires it, False never starts it, None uses it when on PATH.
    `on_event` is called with every Event (the live display prints them)."""

    def __init__(
        self,
        state: StateDir,
        *,
        router_port: int = 0,
        prometheus: bool | None = None,
        scrape_interval: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_event: Callable[[LocalEvent], None] | None = None,
        fleet: RuntimeFleet | None = None,
        notify_policy: RetryPolicy | None = None,
    ) -> None:
        self.state = state
        self.router_port = router_port
        self.want_prometheus = prometheus
        self.scrape_interval = scrape_interval
        self.clock = clock
        self.on_event = on_event
        self._own_fleet = fleet is None
        self.fleet = fleet or RuntimeFleet()
        self.router = LocalRouter(
            resolve=lambda revision: self.fleet.urls(revision, ready_only=True)
        )
        self.prometheus: LocalPrometheus | None = None
        self.provider: MetricsProvider | None = None
        self.record = ControllerState()
        self.status = ModelDeploymentStatus()
        self._validations = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serinus-check")
        self._validation: _Validation | None = None
        self.retrainer = LocalRetrainer(state.run_dir / "retrain")
        self._failure: str | None = None
        self._backends: dict[str, list[str]] = {}
        self._started = False
        self._lock = threading.Lock()
        self.timeline: Timeline | None = None
        """The dashboard's memory (serinus.dashboard): fed after each tick; None without one."""
        self._notification_problems: queue.SimpleQueue[EmitEvent] = queue.SimpleQueue()
        self.notifier = Notifier(
            secrets=None,
            on_problem=self._notification_problem,
            policy=notify_policy or RetryPolicy(),
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Reap what a crashed predecessor left, load the last status so the rollout resumes
        where it was, start the metrics backend and the processes that status says serve, then
        the router: it listens once they are ready, so meanwhile clients see a refused
        connection (as after `close`), never a 503 from a stable version without processes."""
        self.state.ensure()
        previous = self.state.read_controller()
        self._reap(previous)
        self.record = previous.model_copy(
            update={"controller_pid": os.getpid(), "runtime_pids": [], "prometheus_pid": None}
        )
        self.status = _parse_status(previous.status)
        self._started = True  # from here on, close() stops whatever a failed start left
        self.provider = self._start_metrics()
        self._resume_processes()
        self.router.start(self.router_port)
        self.record.router_url = self.router.url
        self._persist()

    def close(self) -> None:
        """Stop every child process and the router; the status stays for the next `up`."""
        if not self._started:
            return
        self._started = False
        # The front door closes first: clients see a refused connection, never a 502 from a
        # stable version whose processes are already gone.
        self.router.stop()
        self._validations.shutdown(wait=False, cancel_futures=True)
        self.retrainer.close()
        self.notifier.close()
        if self.provider is not None:
            self.provider.close()
        if self._own_fleet:
            self.fleet.close()
        else:
            self.fleet.stop_all()
        if self.prometheus is not None:
            self.prometheus.stop()
        self.record.controller_pid = None
        self.record.runtime_pids = []
        self.record.prometheus_pid = None
        self.record.router_url = None
        self._persist()

    def __enter__(self) -> LocalController:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _reap(self, previous: ControllerState) -> None:
        other = previous.controller_pid
        if other and other != os.getpid() and orphans.alive(other) and _is_serinus(other):
            raise StateError(
                f"another `serinus local up` (pid {previous.controller_pid}) drives "
                f"{self.state.path}: stop it first (Ctrl-C there), or use another --state-dir"
            )
        if previous.runtime_pids:
            orphans.reap(previous.runtime_pids, previous.fleet_id)
        if previous.prometheus_pid and previous.prometheus_dir:
            orphans.reap_prometheus(previous.prometheus_pid, Path(previous.prometheus_dir))

    def _resume_processes(self) -> None:
        """Start the revisions the loaded status says serve (what the first tick would do) and
        wait until each has a ready process and the router's table lists them."""
        desired = self.state.read_desired()
        if desired is None or not serving_revisions(self.status):
            return
        if check_manifest(desired.manifest):
            return  # the first tick reports the invalid spec
        spec = ModelDeploymentSpec.model_validate(desired.manifest["spec"])
        try:
            self._restore_missing(desired, spec, self.status)
            for revision in self.fleet.revisions():
                self.fleet.wait_ready(revision, count=1, timeout=RESUME_READY_TIMEOUT)
        except (FleetError, OSError, ValueError) as error:
            log.warning("%s: %s; the router listens anyway, the ticks go on", desired.name, error)
        self._follow_backends(desired, spec, self.status)

    def _start_metrics(self) -> MetricsProvider:
        binary = find_binary() if self.want_prometheus is not False else None
        if binary is None and self.want_prometheus:
            raise StateError(
                "--prometheus was asked for but no `prometheus` binary is on PATH: install it "
                "(apt-get install prometheus) or leave the flag out to use the scrape provider"
            )
        if binary is not None:
            workdir = self.state.run_dir / "prometheus"
            self.prometheus = LocalPrometheus(
                workdir, binary=binary, scrape_interval=self.scrape_interval
            )
            try:
                self.prometheus.start()
            except PrometheusError as error:
                if self.want_prometheus:
                    raise
                log.warning("%s; using the scrape provider instead", error)
                self.prometheus = None
        if self.prometheus is not None:
            self.record.provider = "prometheus"
            self.record.prometheus_url = self.prometheus.address
            self.record.prometheus_dir = str(self.prometheus.workdir)
            return PrometheusProvider(self.prometheus.address)
        self.record.provider = "scrape"
        self.record.prometheus_url = None
        return ScrapeProvider(ProcessMetricsSource(self.fleet.urls))

    # ------------------------------------------------------------------ the tick
    def tick(self) -> Decision | None:
        """One look at the world and one decision; None when nothing is applied yet."""
        with self._lock:
            desired = self.state.read_desired()
            if desired is None:
                return None
            measured = self.record.last_window
            decision = self._tick(desired)
            while not self._notification_problems.empty():
                self._event(self._notification_problems.get())
            self._persist()
            if self.timeline is not None:
                window = self.record.last_window  # a new object only when this tick measured
                fresh = window if window is not measured else None
                self.timeline.record(NAMESPACE, desired.name, self.status, fresh, self.clock())
            return decision

    def _tick(self, desired: DesiredState) -> Decision:
        now = self.clock()
        before = self.status
        problems = check_manifest(desired.manifest)
        if problems:
            decision = reject_spec(before, [str(p) for p in problems], desired.generation, now)
            return self._keep(decision, desired, None, before)
        spec = ModelDeploymentSpec.model_validate(desired.manifest["spec"])
        try:
            self._restore_missing(desired, spec, before)
            observations = self._observe(desired, spec, before, now)
            decision = decide(spec, before, observations, now)
            for action in decision.actions:
                self._apply(action, desired, spec, decision)
            self._follow_backends(desired, spec, decision.status)
        except (FleetError, OSError, ValueError, httpx.HTTPError) as error:
            return self._failed(desired, before, error, now)
        self._failure = None
        decision.status.conditions = set_condition(
            decision.status.conditions, APPLIED, ConditionStatus.TRUE, "Applied",
            "the last decision was carried out", now, desired.generation,
        )  # fmt: skip
        if window_needs_baseline(before, decision.status, observations.analysis is not None):
            assert decision.status.stable is not None and decision.status.canary is not None
            self._provider().mark(
                self._target(
                    desired, spec, decision.status.stable.revision, decision.status.canary.revision
                )
            )
        return self._keep(decision, desired, spec, before)

    def _keep(
        self,
        decision: Decision,
        desired: DesiredState,
        spec: ModelDeploymentSpec | None,
        before: ModelDeploymentStatus,
    ) -> Decision:
        """The decision was carried out: keep its status, record its Events and queue their
        notifications (never waiting for a webhook)."""
        self.status = decision.status
        events = [action for action in decision.actions if isinstance(action, EmitEvent)]
        for event in events:
            self._event(event)
        if spec is not None and spec.notifications:
            notices = notices_for(
                NAMESPACE, desired.name, events, before, decision.status, self.clock()
            )
            targets = [target_of(t, env_allowed=True) for t in spec.notifications]
            self.notifier.send(targets, notices)
        return decision

    def _notification_problem(self, _namespace: str, _name: str, target: str, problem: str) -> None:
        """From the notifier's thread: recorded as an Event by the next tick."""
        message = f"notification target {target}: {problem}"
        event = EmitEvent(type="Warning", reason="NotificationFailed", message=message)
        self._notification_problems.put(event)

    def _failed(
        self, desired: DesiredState, status: ModelDeploymentStatus, error: Exception, now: datetime
    ) -> Decision:
        message = f"could not carry out the next step, retrying every tick: {error}"
        event = EmitEvent(type="Warning", reason="ActionFailed", message=message)
        if self._failure != message:
            self._failure = message
            self._event(event)
        log.warning("%s: %s", desired.name, message)
        failed = status.model_copy(deep=True)
        failed.conditions = set_condition(
            failed.conditions, APPLIED, ConditionStatus.FALSE, "ActionFailed", message, now,
            desired.generation,
        )  # fmt: skip
        self.status = failed
        return Decision(status=failed, actions=[])

    # ------------------------------------------------------------------ observing
    def _observe(
        self,
        desired: DesiredState,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        now: datetime,
    ) -> Observations:
        ready = {revision: self.fleet.ready(revision) for revision in self.fleet.revisions()}
        canary, stable = status.canary, status.stable
        if canary is not None and status.phase == Phase.VALIDATING and self.prometheus is not None:
            ready[canary.revision] = self._observed_ready(canary.revision)
        weight = validation = analysis = None
        if canary is not None:
            route = self._route(desired, spec, stable.revision if stable else None, canary.revision)
            weight = self.router.observed_weight(route)
            validation = self._validation_outcome(canary.revision, canary.validation_started_at)
            if stable is not None and analysis_due(spec, status, now):
                target = self._target(desired, spec, stable.revision, canary.revision)
                start = analysis_window(status) or now
                window = self._provider().window(target, start, now)
                self.record.last_window = window
                analysis = judge(spec.rollout.analysis, window)
        monitoring = None
        if stable is not None and monitoring_due(spec, status, now):
            target = MonitorTarget(name=desired.name, revision=stable.revision)
            monitoring = observe_monitoring(self._provider(), target, spec, now)
        job = retrain_running(status)
        return Observations(
            generation=desired.generation,
            ready_replicas=ready,
            weight=weight,
            analysis=analysis,
            validation=validation,
            action=parse_action(desired.action),
            monitoring=monitoring,
            retrain=self.retrainer.outcome(job) if job is not None else None,
        )

    def _observed_ready(self, revision: str) -> int:
        """Ready processes Prometheus has already scraped. A canary counts as ready only then,
        so it gets no traffic before its series exist: Prometheus takes 5-10 s to pick up new
        targets, and requests served before a series' first sample are never counted."""
        scraped = self.prometheus.scraped() if self.prometheus is not None else set()
        urls = self.fleet.urls(revision, ready_only=True)
        return sum(1 for url in urls if url.removeprefix("http://") in scraped)

    def _validation_outcome(
        self, revision: str, started_at: datetime | None
    ) -> ValidationOutcome | None:
        running = self._validation
        if running is None or started_at is None:
            return None
        if running.revision != revision or running.started_at != started_at:
            return None
        if not running.future.done():
            return None
        return running.future.result()

    def _restore_missing(
        self, desired: DesiredState, spec: ModelDeploymentSpec, status: ModelDeploymentStatus
    ) -> None:
        """Start the processes of revisions the status says serve (after a restart of this
        controller, or a revision stopped by hand) — when the spec still describes them."""
        running = set(self.fleet.revisions())
        for revision, variant in serving_revisions(status).items():
            if revision in running or revision in self.record.scaled_down:
                continue
            recorded = self.record.revisions.get(revision)
            if recorded is None and revision_of(spec) == revision:
                recorded = self._revision_spec(desired, spec, revision, variant)
            if recorded is None:
                self._event(
                    EmitEvent(
                        type="Warning",
                        reason="DeploymentMissing",
                        message=f"revision {revision} ({variant}) has no processes and neither "
                        "the spec nor the state file describes it: apply it again, or roll forward",
                    )
                )
                continue
            self._start_revision(recorded)
            self._event(
                EmitEvent(
                    type="Normal",
                    reason="DeploymentRecreated",
                    message=f"revision {revision} ({variant}) had no processes: started",
                )
            )
        if status.canary is not None and status.canary.desired_weight > 0:
            stable = status.stable.revision if status.stable else None
            route = self._route(desired, spec, stable, status.canary.revision)
            if self.router.observed_weight(route) != status.canary.desired_weight:
                self.router.set_weight(route, status.canary.desired_weight)

    # ------------------------------------------------------------------ acting
    def _apply(
        self, action: Action, desired: DesiredState, spec: ModelDeploymentSpec, decision: Decision
    ) -> None:
        after = decision.status
        match action:
            case Deploy(revision=revision):
                variant = naming.STABLE if after.stable is None else naming.CANARY
                self._start_revision(self._revision_spec(desired, spec, revision, variant))
            case SetWeight(canary=canary, stable=stable, weight=weight):
                self.router.set_weight(self._route(desired, spec, stable, canary), weight)
            case RunValidation(revision=revision):
                assert after.canary is not None and after.canary.validation_started_at is not None
                self._start_validation(desired, spec, after, revision)
            case Promote(revision=revision, previous=previous):
                self.router.promote(self._route(desired, spec, previous, revision))
            case ScaleDown(revision=revision):
                self.fleet.stop(revision)
                kept = {ref.revision for ref in (after.stable, after.canary) if ref is not None}
                if revision in kept:  # a Deployment scaled to zero, not a missing one
                    self.record.scaled_down.append(revision)
                else:
                    self.record.revisions.pop(revision, None)
            case StartRetrain():
                assert spec.retrain is not None
                self.retrainer.start(spec.retrain, action)
            case SetModel(uri=uri, sha256=sha256, version=version):
                self.state.set_model(uri, sha256, version)
            case EmitEvent():
                pass  # recorded by _keep once the whole decision was carried out

    def _start_validation(
        self, desired: DesiredState, spec: ModelDeploymentSpec, status: ModelDeploymentStatus,
        revision: str,
    ) -> None:  # fmt: skip
        assert status.canary is not None and status.canary.validation_started_at is not None
        urls = self.fleet.urls(revision, ready_only=True)
        if not urls:
            raise FleetError(f"revision {revision} has no ready process to validate")
        stable_urls = (
            self.fleet.urls(status.stable.revision, ready_only=True) if status.stable else []
        )
        plan = CheckPlan(
            model=desired.name,
            url=urls[0],
            stable_url=stable_urls[0] if stable_urls else None,
            validation=spec.validation.to_wire(),
        )
        self._validation = _Validation(
            revision=revision,
            started_at=status.canary.validation_started_at,
            future=self._validations.submit(_validate, plan, revision),
        )

    def _follow_backends(
        self, desired: DesiredState, spec: ModelDeploymentSpec, status: ModelDeploymentStatus
    ) -> None:
        """Replicas restart on new ports and become ready later: the router follows, and
        Prometheus' targets with it."""
        current = {
            revision: self.fleet.urls(revision, ready_only=True)
            for revision in self.fleet.revisions()
        }
        if current == self._backends:
            return
        self._backends = current
        stable = status.stable.revision if status.stable else None
        canary = status.canary.revision if status.canary else None
        self.router.refresh(self._route(desired, spec, stable, canary))
        if self.prometheus is not None:
            targets = {
                rev: [u.removeprefix("http://") for u in self.fleet.urls(rev)] for rev in current
            }
            self.prometheus.set_targets(targets)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _revision_spec(
        desired: DesiredState, spec: ModelDeploymentSpec, revision: str, variant: str
    ) -> RevisionSpec:
        return RevisionSpec.from_spec(desired.name, revision, variant, spec.model, spec.runtime)

    def _start_revision(self, revision: RevisionSpec) -> None:
        """Start the processes and remember how: after a restart of this controller the spec
        may describe only the canary, and the stable version must come back as it was."""
        self.fleet.start(revision)
        self.record.revisions[revision.revision] = revision
        self.record.scaled_down = [r for r in self.record.scaled_down if r != revision.revision]

    def _route(
        self,
        desired: DesiredState,
        spec: ModelDeploymentSpec,
        stable: str | None,
        canary: str | None,
    ) -> RouteContext:
        return RouteContext(
            name=desired.name,
            namespace=NAMESPACE,
            stable=stable,
            canary=canary,
            replicas=spec.runtime.replicas,
            traffic=spec.traffic,
        )

    @staticmethod
    def _target(
        desired: DesiredState, spec: ModelDeploymentSpec, stable: str, canary: str
    ) -> AnalysisTarget:
        custom = tuple(m for m in spec.rollout.analysis.metrics if m.query)
        return AnalysisTarget(name=desired.name, stable=stable, canary=canary, custom=custom)

    def _provider(self) -> MetricsProvider:
        if self.provider is None:
            raise RuntimeError("the controller is not started: call start() first")
        return self.provider

    def _event(self, event: EmitEvent) -> None:
        entry = LocalEvent(
            time=self.clock(), type=event.type, reason=event.reason, message=event.message
        )
        self.record.events.append(entry)
        log.info("%s %s: %s", event.type, event.reason, event.message)
        if self.on_event is not None:
            self.on_event(entry)

    def _persist(self) -> None:
        self.record.status = self.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.record.runtime_pids = self.fleet.pids()
        self.record.fleet_id = self.fleet.fleet_id
        self.record.prometheus_pid = self.prometheus.pid if self.prometheus else None
        counts = self.router.counts()
        self.record.traffic = {naming.STABLE: counts.stable, naming.CANARY: counts.canary}
        self.state.write_controller(self.record)


def _validate(plan: CheckPlan, revision: str) -> ValidationOutcome:
    with httpx.Client(timeout=VALIDATION_HTTP_TIMEOUT) as client:
        result = run_checks(plan, client)
    return ValidationOutcome(revision=revision, passed=result.passed, message=result.message)


def _parse_status(raw: dict[str, object]) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValueError as error:
        log.warning("ignoring an unreadable stored status: %s", error)
        return ModelDeploymentStatus()


def _is_serinus(pid: int) -> bool:
    return any("serinus" in arg for arg in orphans.cmdline(pid))
