"""The Kubernetes driver of the engine: read the world, `decide`, carry out the actions.

One `tick(body)` per kopf event or timer firing. It follows the driver contract of
`serinus.core.actions`: every action is applied before the new status is returned for kopf to
patch; if an action raises, nothing is persisted and the next tick decides again.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from serinus.api.resource import ACTION_ANNOTATION, API_VERSION, GROUP, KIND, PLURAL, VERSION
from serinus.api.rules import check_manifest
from serinus.api.spec import (
    DEFAULT_RUNTIME_IMAGE,
    AnalysisSpec,
    ModelDeploymentSpec,
    PrometheusSource,
    TrafficProvider,
)
from serinus.api.status import ConditionStatus, ModelDeploymentStatus
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
from serinus.core.observations import (
    MonitorObservation,
    Observations,
    RetrainOutcome,
    parse_action,
)
from serinus.core.revision import revision_of
from serinus.core.window import AnalysisWindow
from serinus.dashboard.timeline import Timeline
from serinus.kube import builders
from serinus.kube.operator_metrics import OperatorMetrics
from serinus.kube.pod_metrics import PodMetricsSource
from serinus.kube.world import ClusterReader
from serinus.metrics.monitoring import observe_monitoring
from serinus.metrics.provider import AnalysisTarget, MetricsProvider, MetricsSource, MonitorTarget
from serinus.metrics.registry import provider_for
from serinus.notify import Notifier, RetryPolicy, Target, TargetError, notices_for, target_of
from serinus.traffic import naming
from serinus.traffic.kube_api import (
    DynamicKubeObjects,
    KubeError,
    KubeObjects,
    RouteError,
    merge_patch_replacing,
)
from serinus.traffic.registry import router_for
from serinus.traffic.router import RouteContext, TrafficRouter

log = logging.getLogger("serinus.operator")

DEFAULT_OPERATOR_IMAGE = "ghcr.io/serinus-dev/serinus-operator:0.1.0"
APPLIED = "Applied"
"""Condition: whether the operator could carry out its last decision in the cluster."""


@dataclass
class Outcome:
    """What one tick produced: the merge patch of the status for kopf (Events are posted)."""

    status: dict[str, Any]
    events: list[EmitEvent]


@dataclass
class _Deployment:
    """One ModelDeployment as read from its body."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    annotations: dict[str, str]
    body: dict[str, Any]


@dataclass
class KubeDriver:
    api_client: kubernetes.client.ApiClient
    operator_image: str = DEFAULT_OPERATOR_IMAGE
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    provider_factory: Callable[[AnalysisSpec, MetricsSource], MetricsProvider] = provider_for
    prometheus_address: str | None = None
    """Operator-wide Prometheus for specs that choose provider prometheus without an address."""
    runtime_image: str | None = None
    """Operator-wide runtime image for specs that keep the built-in default image."""
    default_targets: list[Target] = field(default_factory=list)
    """Operator-wide notification targets (SERINUS_NOTIFY_DEFAULT), besides each spec's own."""
    notify_policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeline: Timeline | None = None
    """The dashboard's memory (serinus.dashboard): fed at each decision; None without one."""
    _providers: dict[tuple[str, str], MetricsProvider] = field(default_factory=dict)
    _windows: dict[tuple[str, str], AnalysisWindow] = field(default_factory=dict)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _latest: dict[tuple[str, str], ModelDeploymentStatus] = field(default_factory=dict)
    _failures: dict[tuple[str, str], str] = field(default_factory=dict)
    _uids: dict[tuple[str, str], str] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.reader = ClusterReader(self.api_client)
        self.core = kubernetes.client.CoreV1Api(self.api_client)
        self.custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self.objects: KubeObjects = DynamicKubeObjects(self.api_client)
        self.notifier = Notifier(
            secrets=self._read_secret,
            on_delivery=self.metrics.notification,
            on_problem=self._notification_problem,
            policy=self.notify_policy,
        )

    def close(self, timeout: float = 2.0) -> None:
        """The operator stops: deliver waiting notifications for up to `timeout` seconds."""
        self.notifier.close(timeout)

    # --- entry point -----------------------------------------------------------------------

    def tick(self, body: dict[str, Any]) -> Outcome:
        deployment = _read(body)
        with self._lock_for(deployment):
            return self._tick(deployment)

    def tick_named(self, namespace: str, name: str) -> None:
        """A tick outside kopf's handlers for the ModelDeployment (a child object changed):
        read it, tick, and patch the status through the API."""
        try:
            body = self.objects.get(API_VERSION, KIND, namespace, name)
            if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                return
            outcome = self.tick(body)
            if outcome.status:
                self.custom.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, {"status": outcome.status}
                )
        except (KubeError, ApiException, HTTPError) as error:
            # The timers look again; a child's event is a hint to be early, not the only chance.
            log.warning("%s/%s: could not act on a revision change: %s", namespace, name, error)

    def forget(self, namespace: str, name: str) -> None:
        """The ModelDeployment is gone: drop what was kept for it."""
        with self._guard:
            self._locks.pop((namespace, name), None)
            self._latest.pop((namespace, name), None)
            self._uids.pop((namespace, name), None)
            provider = self._providers.pop((namespace, name), None)
            self._windows.pop((namespace, name), None)
        if provider is not None:
            provider.close()
        self.notifier.forget(namespace, name)
        if self.timeline is not None:
            self.timeline.forget(namespace, name)
        self.metrics.forget(namespace, name)

    def _lock_for(self, deployment: _Deployment) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((deployment.namespace, deployment.name), threading.Lock())

    def _tick(self, deployment: _Deployment) -> Outcome:
        now = self.clock()
        key = (deployment.namespace, deployment.name)
        # A timer and an event handler can both hold a body read before the other's status
        # patch landed: the status this process decided last is the newer truth.
        status = self._latest.get(key) or _stored_status(deployment.body)
        problems = check_manifest(deployment.body)
        if problems:
            decision = reject_spec(status, [str(p) for p in problems], deployment.generation, now)
            return self._outcome(deployment, status, decision)
        spec = ModelDeploymentSpec.model_validate(deployment.body["spec"])
        try:
            router = router_for(spec.traffic, self.objects)
            ready = self.reader.ready_replicas(deployment.namespace, deployment.name)
            self._restore_missing(deployment, spec, status, router, present=set(ready))
            observations = self._observe(deployment, spec, status, router, ready, now)
            decision = decide(spec, status, observations, now)
            for action in decision.actions:
                self._apply(action, deployment, spec, status, decision, router, now)
        except (RouteError, KubeError, ApiException, HTTPError) as error:
            return self._failed(deployment, status, error, now)
        self._failures.pop(key, None)
        decision.status.conditions = set_condition(
            decision.status.conditions, APPLIED, ConditionStatus.TRUE, "Applied",
            "the last decision was carried out", now, deployment.generation,
        )  # fmt: skip
        self._mark_new_window(deployment, spec, status, decision.status, observations)
        return self._outcome(deployment, status, decision, spec)

    def _failed(
        self,
        deployment: _Deployment,
        status: ModelDeploymentStatus,
        error: Exception,
        now: datetime,
    ) -> Outcome:
        """Nothing of this tick's decision is kept (it is made again next tick); the reason is
        shown in a condition, and once as an Event, so a person can act on it."""
        message = f"could not carry out the next step, retrying every tick: {_reason(error)}"
        key = (deployment.namespace, deployment.name)
        if self._failures.get(key) != message:
            self._failures[key] = message
            self._post_event(
                deployment, EmitEvent(type="Warning", reason="ActionFailed", message=message)
            )
        log.warning("%s/%s: %s", deployment.namespace, deployment.name, message)
        failed = status.model_copy(deep=True)
        failed.conditions = set_condition(
            failed.conditions, APPLIED, ConditionStatus.FALSE, "ActionFailed", message, now,
            deployment.generation,
        )  # fmt: skip
        self._to_timeline(deployment, failed)
        wanted = failed.model_dump(mode="json", by_alias=True, exclude_none=True)
        return Outcome(
            status=merge_patch_replacing(_stored_wire(deployment.body), wanted), events=[]
        )

    def _mark_new_window(
        self,
        deployment: _Deployment,
        spec: ModelDeploymentSpec,
        before: ModelDeploymentStatus,
        after: ModelDeploymentStatus,
        observations: Observations,
    ) -> None:
        if not window_needs_baseline(before, after, observations.analysis is not None):
            return
        assert after.stable is not None and after.canary is not None
        target = self._target(deployment, spec, after.stable.revision, after.canary.revision)
        self._provider(deployment, spec).mark(target)

    def _outcome(
        self,
        deployment: _Deployment,
        before: ModelDeploymentStatus,
        decision: Decision,
        spec: ModelDeploymentSpec | None = None,
    ) -> Outcome:
        """The decision was carried out: count it, post its Events, queue its notifications
        (`spec` is None for a rejected spec: only the operator's default targets hear then)."""
        self.metrics.record(deployment.namespace, deployment.name, before, decision.status)
        self._latest[(deployment.namespace, deployment.name)] = decision.status
        self._to_timeline(deployment, decision.status)
        events = [a for a in decision.actions if isinstance(a, EmitEvent)]
        for event in events:
            log.info(
                "%s/%s %s: %s", deployment.namespace, deployment.name, event.reason, event.message
            )
            self._post_event(deployment, event)
        self._notify(deployment, spec, before, decision.status, events)
        stored = _stored_wire(deployment.body)
        wanted = decision.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        return Outcome(status=merge_patch_replacing(stored, wanted), events=events)

    # --- notifications ---------------------------------------------------------------------

    def _notify(
        self,
        deployment: _Deployment,
        spec: ModelDeploymentSpec | None,
        before: ModelDeploymentStatus,
        after: ModelDeploymentStatus,
        events: list[EmitEvent],
    ) -> None:
        notices = notices_for(
            deployment.namespace, deployment.name, events, before, after, self.clock()
        )
        if not notices:
            return
        # A ModelDeployment's own targets never read the operator's environment (urlEnv).
        own = [target_of(t, env_allowed=False) for t in spec.notifications] if spec else []
        self._uids[(deployment.namespace, deployment.name)] = deployment.uid
        self.notifier.send([*self.default_targets, *own], notices)

    def _read_secret(self, namespace: str, name: str, key: str) -> str:
        """A notification URL from a Secret (called in the notifier's threads). Errors name the
        Secret and key; the value and the API's response body are never logged."""
        where = f"Secret {namespace}/{name}"
        try:
            secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=10)
        except ApiException as error:
            if error.status == 404:
                raise TargetError(f"{where} not found") from None
            if error.status == 403:
                raise TargetError(
                    f"the operator may not read {where} (403): grant it get on secrets"
                ) from None
            raise TargetError(f"cannot read {where}: HTTP {error.status}", retryable=True) from None
        except HTTPError as error:
            raise TargetError(
                f"cannot read {where}: {type(error).__name__}", retryable=True
            ) from None
        data = secret.data or {}
        if key not in data:
            raise TargetError(f"{where} has no key {key}")
        try:
            return base64.b64decode(data[key], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise TargetError(f"{where} key {key} is not UTF-8 text") from None

    def _notification_problem(self, namespace: str, name: str, target: str, problem: str) -> None:
        """Once per distinct problem of a target (the notifier keeps count): a Warning Event."""
        uid = self._uids.get((namespace, name), "")
        ref = _Deployment(namespace, name, uid, None, {}, {})
        message = f"notification target {target}: {problem}"
        self._post_event(
            ref, EmitEvent(type="Warning", reason="NotificationFailed", message=message)
        )

    def _to_timeline(self, deployment: _Deployment, status: ModelDeploymentStatus) -> None:
        """The dashboard's record of the status this tick returns, with its window if any."""
        window = self._windows.pop((deployment.namespace, deployment.name), None)
        if self.timeline is not None:
            self.timeline.record(
                deployment.namespace, deployment.name, status, window, self.clock()
            )

    def _post_event(self, deployment: _Deployment, event: EmitEvent) -> None:
        """An Event on the ModelDeployment; a failure to post one never fails the tick."""
        try:
            self.core.create_namespaced_event(
                deployment.namespace,
                builders.build_event(deployment_ref(deployment), event, self.clock()),
            )
        except (ApiException, HTTPError) as error:
            log.warning("could not post Event %s on %s: %s", event.reason, deployment.name, error)

    # --- observing -------------------------------------------------------------------------

    def _route(
        self,
        deployment: _Deployment,
        spec: ModelDeploymentSpec,
        stable: str | None,
        canary: str | None,
    ) -> RouteContext:
        return RouteContext(
            name=deployment.name,
            namespace=deployment.namespace,
            stable=stable,
            canary=canary,
            replicas=spec.runtime.replicas,
            traffic=spec.traffic,
            owner=builders.owner_reference(deployment.name, deployment.uid),
        )

    def _observe(
        self,
        deployment: _Deployment,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        router: TrafficRouter,
        ready: dict[str, int],
        now: datetime,
    ) -> Observations:
        canary, stable = status.canary, status.stable
        weight = None
        validation = None
        analysis = None
        if canary is not None:
            route = self._route(
                deployment, spec, stable.revision if stable else None, canary.revision
            )
            weight = router.observed_weight(route)
            if canary.validation_started_at is not None:
                validation = self.reader.validation(
                    deployment.namespace,
                    _job_name(deployment.name, canary.revision, canary.started_at),
                    canary.revision,
                )
            if stable is not None and analysis_due(spec, status, now):
                target = self._target(deployment, spec, stable.revision, canary.revision)
                start = analysis_window(status) or now
                window = self._provider(deployment, spec).window(target, start, now)
                if self.timeline is not None:
                    self._windows[(deployment.namespace, deployment.name)] = window
                analysis = judge(spec.rollout.analysis, window)
        return Observations(
            generation=deployment.generation,
            ready_replicas=ready,
            weight=weight,
            analysis=analysis,
            validation=validation,
            action=parse_action(deployment.annotations.get(ACTION_ANNOTATION)),
            monitoring=self._monitor(deployment, spec, status, now),
            retrain=self._retrain_outcome(deployment, status),
        )

    def _monitor(
        self,
        deployment: _Deployment,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        now: datetime,
    ) -> MonitorObservation | None:
        """The stable version's monitoring check, when one is due."""
        if not monitoring_due(spec, status, now) or status.stable is None:
            return None
        revision = status.stable.revision
        target = MonitorTarget(
            name=deployment.name, namespace=deployment.namespace, revision=revision
        )
        return observe_monitoring(self._provider(deployment, spec), target, spec, now)

    def _retrain_outcome(
        self, deployment: _Deployment, status: ModelDeploymentStatus
    ) -> RetrainOutcome | None:
        job = retrain_running(status)
        if job is None:
            return None
        job_name = builders.retrain_job_name(deployment.name, job)
        return self.reader.retrain(deployment.namespace, job_name, job)

    def _restore_missing(
        self,
        deployment: _Deployment,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        router: TrafficRouter,
        present: set[str],
    ) -> None:
        """Recreate a revision Deployment someone deleted, when the spec still describes it."""
        current = revision_of(spec)
        wanted = serving_revisions(status)
        for revision, variant in wanted.items():
            if revision in present:
                continue
            deployment_name = naming.deployment_name(deployment.name, revision)
            if revision != current:
                self._post_event(
                    deployment,
                    EmitEvent(
                        type="Warning",
                        reason="DeploymentMissing",
                        message=f"Deployment {deployment_name} ({variant}) is gone and the spec "
                        "no longer describes it: restore it, or roll forward with a new version",
                    ),
                )
                continue
            is_canary = variant == naming.CANARY
            replicas = self._canary_start_replicas(spec) if is_canary else spec.runtime.replicas
            self.objects.create(
                builders.build_deployment(
                    self._pods_spec(spec),
                    deployment.name,
                    deployment.namespace,
                    deployment.uid,
                    revision,
                    variant,
                    replicas,
                )
            )
            if is_canary and status.canary is not None and status.canary.desired_weight > 0:
                stable = status.stable.revision if status.stable else None
                route = self._route(deployment, spec, stable, revision)
                router.set_weight(route, status.canary.desired_weight)
            self._post_event(
                deployment,
                EmitEvent(
                    type="Warning",
                    reason="DeploymentRecreated",
                    message=f"Deployment {deployment_name} ({variant}) was missing: recreated",
                ),
            )

    def _target(
        self, deployment: _Deployment, spec: ModelDeploymentSpec, stable: str, canary: str
    ) -> AnalysisTarget:
        custom = tuple(m for m in spec.rollout.analysis.metrics if m.query)
        return AnalysisTarget(
            name=deployment.name,
            namespace=deployment.namespace,
            stable=stable,
            canary=canary,
            custom=custom,
        )

    def _provider(self, deployment: _Deployment, spec: ModelDeploymentSpec) -> MetricsProvider:
        key = (deployment.namespace, deployment.name)
        with self._guard:
            provider = self._providers.get(key)
            if provider is None:
                source = PodMetricsSource(
                    self.api_client, deployment.namespace, deployment.name, builders.RUNTIME_PORT
                )
                provider = self.provider_factory(self._analysis(spec), source)
                self._providers[key] = provider
            return provider

    def _analysis(self, spec: ModelDeploymentSpec) -> AnalysisSpec:
        analysis = spec.rollout.analysis
        if analysis.prometheus is None and self.prometheus_address:
            address = PrometheusSource(address=self.prometheus_address)
            return analysis.model_copy(update={"prometheus": address})
        return analysis

    def _pods_spec(self, spec: ModelDeploymentSpec) -> ModelDeploymentSpec:
        """The spec Deployments are built from: the operator's runtime image when the spec
        keeps the built-in default. Only new Deployments get it — the revision hash is the
        spec's own, so changing the operator's default never starts rollouts by itself."""
        if self.runtime_image and spec.runtime.image == DEFAULT_RUNTIME_IMAGE:
            runtime = spec.runtime.model_copy(update={"image": self.runtime_image})
            return spec.model_copy(update={"runtime": runtime})
        return spec

    # --- acting ----------------------------------------------------------------------------

    def _apply(
        self,
        action: Action,
        deployment: _Deployment,
        spec: ModelDeploymentSpec,
        before: ModelDeploymentStatus,
        decision: Decision,
        router: TrafficRouter,
        now: datetime,
    ) -> None:
        after = decision.status
        ns, name = deployment.namespace, deployment.name
        match action:
            case Deploy(revision=revision):
                self._ensure_services(deployment, after, spec.traffic.provider)
                first = after.stable is None
                replicas = spec.runtime.replicas if first else self._canary_start_replicas(spec)
                variant = "stable" if first else "canary"
                self._create_or_scale(
                    builders.build_deployment(
                        self._pods_spec(spec), name, ns, deployment.uid, revision, variant, replicas
                    )
                )
            case SetWeight(canary=canary, stable=stable, weight=weight):
                route = self._route(deployment, spec, stable, canary)
                router.set_weight(route, weight)
            case RunValidation(revision=revision):
                assert after.canary is not None
                stable_url = None
                if after.stable is not None:
                    _, stable_service, _ = naming.service_names(name)
                    stable_url = f"http://{stable_service}.{ns}.svc:{builders.SERVICE_PORT}"
                job = builders.build_validation_job(
                    spec, name, ns, deployment.uid, revision, self.operator_image, stable_url
                )
                job["metadata"]["name"] = _job_name(name, revision, after.canary.started_at)
                self.objects.create(job)
            case Promote(revision=revision, previous=previous):
                route = self._route(deployment, spec, previous, revision)
                self.objects.scale(
                    ns, naming.deployment_name(name, revision), spec.runtime.replicas
                )
                router.promote(route)
                self._point_services(deployment, stable=revision, canary=None)
            case ScaleDown(revision=revision):
                kept = {ref.revision for ref in (after.stable, after.canary) if ref is not None}
                deployment_name = naming.deployment_name(name, revision)
                if revision in kept:
                    self.objects.scale(ns, deployment_name, 0)
                else:
                    self.reader.delete_deployment(ns, deployment_name)
            case StartRetrain():
                self.objects.create(
                    builders.build_retrain_job(spec, name, ns, deployment.uid, action)
                )
            case SetModel(uri=uri, sha256=sha256, version=version):
                model = {"uri": uri, "sha256": sha256, "version": version}
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, name, {"spec": {"model": model}}
                )
            case EmitEvent():
                pass  # posted by the kopf handler, which owns the body reference
        if isinstance(action, Deploy | Promote):
            self._point_services(
                deployment,
                stable=after.stable.revision if after.stable else None,
                canary=after.canary.revision if after.canary else None,
            )

    def _create_or_scale(self, body: dict[str, Any]) -> None:
        """A revision's Deployment: created once; a retried revision is scaled back up."""
        metadata = body["metadata"]
        existing = self.objects.get(
            "apps/v1", "Deployment", metadata["namespace"], metadata["name"]
        )
        if existing is None:
            self.objects.create(body)
        else:
            self.objects.scale(metadata["namespace"], metadata["name"], body["spec"]["replicas"])

    @staticmethod
    def _canary_start_replicas(spec: ModelDeploymentSpec) -> int:
        # With a mesh, weight decides traffic and the canary can have its full size at once;
        # the replicas router grows it step by step from one pod.
        return 1 if spec.traffic.provider == TrafficProvider.REPLICAS else spec.runtime.replicas

    @staticmethod
    def _main_selector(
        deployment: _Deployment, provider: TrafficProvider, serving: str | None
    ) -> dict[str, str]:
        # Without a mesh the client Service's selector is the split: until the replicas router
        # widens it, only the serving revision's pods take client traffic (never a canary that
        # is still being validated).
        if provider == TrafficProvider.REPLICAS:
            return naming.selector_for(deployment.name, serving)
        return naming.selector_for(deployment.name)

    def _ensure_services(
        self,
        deployment: _Deployment,
        status: ModelDeploymentStatus,
        spec_provider: TrafficProvider,
    ) -> None:
        main, stable_service, canary_service = naming.service_names(deployment.name)
        stable = status.stable.revision if status.stable else None
        canary = status.canary.revision if status.canary else None
        for service, selector in (
            (main, self._main_selector(deployment, spec_provider, stable or canary)),
            (stable_service, naming.selector_for(deployment.name, stable or canary)),
            (canary_service, naming.selector_for(deployment.name, canary or stable)),
        ):
            if self.objects.get("v1", "Service", deployment.namespace, service) is None:
                self.objects.create(
                    builders.build_service(
                        service, deployment.name, deployment.namespace, deployment.uid, selector
                    )
                )

    def _point_services(
        self, deployment: _Deployment, stable: str | None, canary: str | None
    ) -> None:
        _, stable_service, canary_service = naming.service_names(deployment.name)
        for service, revision in ((stable_service, stable), (canary_service, canary or stable)):
            if revision is None:
                continue
            self.objects.patch(
                "v1",
                "Service",
                deployment.namespace,
                service,
                {"spec": {"selector": naming.selector_for(deployment.name, revision)}},
            )


def _job_name(name: str, revision: str, started_at: datetime) -> str:
    """One validation Job per attempt: a retry of the same revision gets a fresh Job."""
    attempt = format(int(started_at.timestamp()), "x")[-6:]
    return f"{builders.validation_job_name(name, revision)[:55]}-{attempt}"


def _reason(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(error, ApiException) and body:
        try:
            return f"{error.status} {json.loads(body).get('message', body)}"
        except (ValueError, AttributeError):
            return f"{error.status} {body}"
    return str(error)


def deployment_ref(deployment: _Deployment) -> dict[str, str]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": deployment.name,
        "namespace": deployment.namespace,
        "uid": deployment.uid,
    }


def _read(body: dict[str, Any]) -> _Deployment:
    metadata = body.get("metadata", {})
    return _Deployment(
        namespace=metadata.get("namespace") or "default",
        name=metadata["name"],
        uid=metadata.get("uid", ""),
        generation=metadata.get("generation"),
        annotations=dict(metadata.get("annotations") or {}),
        body=body,
    )


def _stored_wire(body: dict[str, Any]) -> dict[str, Any]:
    """The stored status as JSON, without what kopf keeps there."""
    return {k: v for k, v in (body.get("status") or {}).items() if not k.startswith("kopf")}


def _stored_status(body: dict[str, Any]) -> ModelDeploymentStatus:
    """The persisted status; a status that no longer parses starts over rather than wedging."""
    raw = _stored_wire(body)
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError as error:
        log.warning("ignoring an unreadable status of %s: %s", body["metadata"]["name"], error)
        return ModelDeploymentStatus()
