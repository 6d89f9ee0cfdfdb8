"""The desired state of a ModelDeployment: what the user writes.

Every field carries a description (it becomes `kubectl explain` text), a default where one makes
sense, and bounds. Cross-field rules are CEL expressions (`x-kubernetes-validations`): the API
server enforces them, and `serinus validate` and the operator evaluate the same expressions
offline (see `serinus.api.rules`), so each rule is written exactly once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from serinus import __version__
from serinus.api.types import AnyJSON, ApiModel, DNS1123Label, Duration, Sha256
from serinus_runtime.config import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_LATENCY_MS

BUILTIN_METRICS = ("error-rate", "latency-p99", "prediction-drift")
DEFAULT_RUNTIME_IMAGE = f"ghcr.io/serinus-dev/serinus-runtime:{__version__}"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def validations(*rules: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    return {"x-kubernetes-validations": list(rules)}


Quantity = Annotated[
    int | str,
    Field(description="A Kubernetes quantity, e.g. 500m, 2, 512Mi."),
]


# --- model -----------------------------------------------------------------------------------


class ModelFormat(StrEnum):
    SKOPS = "skops"
    ONNX = "onnx"
    JOBLIB = "joblib"


class ModelSpec(ApiModel):
    """Which model file to serve and how to trust it."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.format != 'joblib' || (has(self.sha256) && self.trust)",
                "format joblib (pickle) can run arbitrary code when loaded: set model.sha256 to "
                "the file's digest and model.trust: true, or convert the model to skops",
            ),
            cel(
                "self.format == 'skops' || !has(self.trustedTypes) || size(self.trustedTypes) == 0",
                "model.trustedTypes only applies to format skops: remove it",
                ".trustedTypes",
            ),
        )
    }

    uri: str = Field(
        min_length=1,
        max_length=2048,
        description="Where the model bundle or file lives: file://, http(s):// or s3:// URI, "
        "or a path inside the runtime image. A bundle directory made by `serinus pack` "
        "carries the signature and reference profile used for drift monitoring.",
    )
    format: ModelFormat = Field(
        default=ModelFormat.SKOPS,
        description="File format. skops (default) loads without running code; onnx needs the "
        "runtime's onnx extra; joblib is pickle and needs sha256 and trust: true.",
    )
    sha256: Sha256 | None = Field(
        default=None,
        description="Expected sha256 of the model file (64 lowercase hex digits). The runtime "
        "refuses to serve a file whose digest differs. Required for joblib.",
    )
    version: str | None = Field(
        default=None,
        max_length=63,
        description="Human version label (shown in status, metrics and Events), e.g. 1.4.0.",
    )
    trust: bool = Field(
        default=False,
        description="Allow a joblib/pickle file to be loaded (it can execute code). Only with "
        "sha256.",
    )
    trusted_types: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list,
        max_length=64,
        description="Extra fully qualified type names skops may load beyond its safe defaults, "
        "e.g. numpy.float64. Each one is a type you vouch for.",
    )


# --- runtime ---------------------------------------------------------------------------------


class Resources(ApiModel):
    """Compute resources of one runtime container."""

    requests: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "100m", "memory": "256Mi"},
        description="Resources the scheduler reserves, e.g. {cpu: 500m, memory: 512Mi}.",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=lambda: {"memory": "1Gi"},
        description="Upper bounds enforced by the kubelet, e.g. {memory: 1Gi}.",
    )


class Batching(ApiModel):
    """Micro-batching of small concurrent requests into one predict call."""

    max_batch_size: int = Field(
        default=DEFAULT_MAX_BATCH_SIZE,
        ge=1,
        le=4096,
        description="Most rows combined into one predict call.",
    )
    max_latency_ms: float = Field(
        default=DEFAULT_MAX_LATENCY_MS,
        ge=0,
        le=1000,
        description="Longest a request waits for others to join its batch, in milliseconds.",
    )


class EnvVar(ApiModel):
    """An environment variable for the runtime container."""

    name: str = Field(min_length=1, max_length=256, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: AnyJSON | None = Field(
        default=None,
        description="A Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef...).",
    )


class RuntimeSpec(ApiModel):
    """How the model is served: the pods of each revision."""

    image: str = Field(
        default=DEFAULT_RUNTIME_IMAGE,
        min_length=1,
        max_length=512,
        description="Serinus runtime container image.",
    )
    replicas: int = Field(default=2, ge=1, le=1000, description="Pods serving the stable version.")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Server processes per pod. Scale with replicas first; see bench/ before "
        "raising this.",
    )
    resources: Resources = Field(
        default_factory=Resources, description="CPU and memory of each runtime container."
    )
    batching: Batching = Field(
        default_factory=Batching, description="Micro-batching of concurrent requests."
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=128, description="Extra environment variables."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pods must run on."
    )
    tolerations: list[AnyJSON] = Field(
        default_factory=list, max_length=64, description="Kubernetes tolerations for the pods."
    )
    service_account_name: DNS1123Label | None = Field(
        default=None,
        description="ServiceAccount of the runtime pods (e.g. for s3:// credentials via IRSA).",
    )


# --- validation ------------------------------------------------------------------------------


class SmokeRequest(ApiModel):
    """A request sent to the new version before it gets any traffic."""

    inputs: list[list[AnyJSON]] = Field(
        min_length=1,
        max_length=1000,
        description="Rows of feature values, in the model's feature order.",
    )
    expect: list[AnyJSON] | None = Field(
        default=None,
        max_length=1000,
        description="Expected predictions, one per row. Omit to check only that the request "
        "succeeds.",
    )


class DatasetMetric(StrEnum):
    ACCURACY = "accuracy"
    F1 = "f1"
    ROC_AUC = "roc_auc"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"


LOWER_IS_BETTER = frozenset({DatasetMetric.RMSE, DatasetMetric.MAE})


class DatasetGate(ApiModel):
    """Hold-out dataset gate: the new version must score well enough on labelled data."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.min) || has(self.max) || has(self.maxDropVsStable)",
                "a dataset gate needs a bound: set min, max or maxDropVsStable",
            ),
        )
    }

    uri: str = Field(
        min_length=1, max_length=2048, description="CSV file with the hold-out rows and labels."
    )
    target: str = Field(min_length=1, max_length=256, description="Name of the label column.")
    metric: DatasetMetric = Field(description="Score computed on the dataset.")
    min: float | None = Field(
        default=None, description="Lowest acceptable score (for accuracy, f1, roc_auc, r2)."
    )
    max: float | None = Field(default=None, description="Highest acceptable error (for rmse, mae).")
    max_drop_vs_stable: float | None = Field(
        default=None,
        ge=0,
        description="Largest acceptable worsening against the stable version on the same rows, "
        "in the metric's units.",
    )


class ValidationSpec(ApiModel):
    """Checks a new version must pass before it gets traffic."""

    smoke: list[SmokeRequest] = Field(
        default_factory=list, max_length=50, description="Smoke requests, all must succeed."
    )
    dataset: DatasetGate | None = Field(default=None, description="Optional hold-out gate.")
    timeout: Duration = Field(
        default="5m", description="Validation that has not finished by then fails."
    )


# --- traffic ---------------------------------------------------------------------------------


class TrafficProvider(StrEnum):
    REPLICAS = "replicas"
    GATEWAY_API = "gateway-api"
    ISTIO = "istio"


class ParentRef(ApiModel):
    """A Gateway the HTTPRoute attaches to."""

    name: str = Field(min_length=1, max_length=253, description="Gateway name.")
    namespace: str | None = Field(default=None, max_length=63, description="Gateway namespace.")
    section_name: str | None = Field(
        default=None, max_length=253, description="Listener name on the Gateway."
    )


class GatewayAPITraffic(ApiModel):
    """Weights on a Gateway API HTTPRoute."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.httpRoute) || (has(self.parentRefs) && size(self.parentRefs) > 0)",
                "name an existing httpRoute to manage, or give parentRefs so Serinus can create "
                "one",
            ),
        )
    }

    http_route: DNS1123Label | None = Field(
        default=None,
        alias="httpRoute",
        description="Existing HTTPRoute whose backendRefs Serinus sets. Omit to let Serinus "
        "own a route named like the ModelDeployment.",
    )
    parent_refs: list[ParentRef] = Field(
        default_factory=list, max_length=16, description="Gateways for an owned route."
    )
    hostnames: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Hostnames of an owned route."
    )


class IstioTraffic(ApiModel):
    """Weights on an Istio VirtualService with DestinationRule subsets."""

    virtual_service: DNS1123Label | None = Field(
        default=None,
        description="Existing VirtualService to manage. Omit to let Serinus own one.",
    )
    hosts: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Hosts of an owned VirtualService."
    )
    gateways: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Gateways of an owned VirtualService."
    )


class TrafficSpec(ApiModel):
    """How requests are split between the stable and the canary version."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.provider != 'gateway-api' || has(self.gatewayAPI)",
                "traffic.provider gateway-api needs traffic.gatewayAPI",
            ),
            cel(
                "self.provider != 'istio' || has(self.istio)",
                "traffic.provider istio needs traffic.istio",
            ),
        )
    }

    provider: TrafficProvider = Field(
        default=TrafficProvider.REPLICAS,
        description="replicas (no mesh: weight by pod count), gateway-api (HTTPRoute weights) "
        "or istio (VirtualService weights).",
    )
    gateway_api: GatewayAPITraffic | None = Field(
        default=None, alias="gatewayAPI", description="Settings for provider gateway-api."
    )
    istio: IstioTraffic | None = Field(default=None, description="Settings for provider istio.")


# --- rollout and analysis --------------------------------------------------------------------


class AnalysisProvider(StrEnum):
    SCRAPE = "scrape"
    PROMETHEUS = "prometheus"


class PrometheusSource(ApiModel):
    """Where the Prometheus HTTP API answers."""

    address: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^https?://",
        description="Base URL of Prometheus, e.g. http://prometheus.monitoring:9090.",
    )


class AnalysisMetric(ApiModel):
    """One check of the canary against a bound or against the stable version."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.name in ['error-rate', 'latency-p99', 'prediction-drift'] || has(self.query)",
                "a custom metric needs a PromQL query (built-in names: error-rate, latency-p99, "
                "prediction-drift)",
            ),
            cel(
                "has(self.max) || has(self.min) || has(self.maxRatioToStable)",
                "a metric needs a bound: set max, min or maxRatioToStable",
            ),
            cel(
                "self.name != 'prediction-drift' || !has(self.maxRatioToStable)",
                "prediction-drift is already a comparison with stable: use max (a PSI), not "
                "maxRatioToStable",
            ),
        )
    }

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="error-rate (share of 5xx), latency-p99 (seconds), prediction-drift (PSI "
        "of canary vs stable predictions), or your own name with a query.",
    )
    max: float | None = Field(default=None, description="Fail when the canary's value is above.")
    min: float | None = Field(default=None, description="Fail when the canary's value is below.")
    max_ratio_to_stable: float | None = Field(
        default=None,
        gt=0,
        description="Fail when canary / stable is above this ratio (e.g. 1.25 for latency).",
    )
    query: str | None = Field(
        default=None,
        max_length=4096,
        description="PromQL template for a custom metric; {{namespace}}, {{name}}, "
        "{{variant}}, {{revision}} and {{interval}} are substituted. Needs provider "
        "prometheus.",
    )


def default_metrics() -> list[AnalysisMetric]:
    return [
        AnalysisMetric(name="error-rate", max=0.05),
        AnalysisMetric(name="latency-p99", max_ratio_to_stable=1.25),
        AnalysisMetric(name="prediction-drift", max=0.1),
    ]


class AnalysisSpec(ApiModel):
    """How the canary is judged against the stable version each interval."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.provider == 'prometheus' || !has(self.metrics) || "
                "self.metrics.all(m, !has(m.query))",
                "custom metrics with a query need analysis.provider: prometheus",
            ),
        )
    }

    provider: AnalysisProvider = Field(
        default=AnalysisProvider.SCRAPE,
        description="scrape (read the runtime pods' /metrics directly, no Prometheus needed) "
        "or prometheus (PromQL over the HTTP API).",
    )
    prometheus: PrometheusSource | None = Field(
        default=None,
        description="Settings for provider prometheus; when left out, the operator's default "
        "address (chart value prometheus.address) is used.",
    )
    min_requests: int = Field(
        default=50,
        ge=1,
        le=10_000_000,
        description="Canary requests a window needs before any verdict; fewer is "
        "Inconclusive, never a failure.",
    )
    failure_limit: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Failed checks during one rollout that trigger onFailure.",
    )
    inconclusive_limit: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Inconclusive checks in a row after which the rollout pauses for a human; "
        "0 waits for traffic forever.",
    )
    confidence: float = Field(
        default=0.99,
        ge=0.5,
        lt=1,
        description="Confidence that the canary is worse than stable before a comparison "
        "fails (one-sided tests).",
    )
    metrics: list[AnalysisMetric] = Field(
        default_factory=default_metrics,
        min_length=1,
        max_length=32,
        description="Checks run each interval; all must pass.",
    )


class PauseStep(ApiModel):
    """Wait; without a duration, wait for `promote`."""

    duration: Duration | None = Field(
        default=None, description="How long to wait. Omit to wait for a manual promote."
    )


class AnalysisStep(ApiModel):
    """Hold the current weight until enough analysis checks have passed."""

    passes: int = Field(
        default=1, ge=1, le=100, description="Passing checks needed before the next step."
    )


class RolloutStep(ApiModel):
    """Exactly one of setWeight, pause or analysis."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "[has(self.setWeight), has(self.pause), has(self.analysis)]"
                ".filter(x, x).size() == 1",
                "each step sets exactly one of setWeight, pause or analysis",
            ),
        )
    }

    set_weight: int | None = Field(
        default=None, ge=0, le=100, description="Percent of requests sent to the canary."
    )
    pause: PauseStep | None = Field(default=None, description="Wait before the next step.")
    analysis: AnalysisStep | None = Field(
        default=None, description="Wait for passing analysis checks."
    )


def default_steps() -> list[RolloutStep]:
    return [
        RolloutStep(set_weight=10),
        RolloutStep(analysis=AnalysisStep()),
        RolloutStep(set_weight=50),
        RolloutStep(analysis=AnalysisStep()),
    ]


class OnFailure(StrEnum):
    ROLLBACK = "rollback"
    PAUSE = "pause"


class RolloutSpec(ApiModel):
    """Steps from 0 % to 100 % canary traffic, and the judge between them."""

    steps: list[RolloutStep] = Field(
        default_factory=default_steps,
        max_length=32,
        description="Steps in order; after the last one the canary is promoted. Weights must "
        "increase.",
        json_schema_extra=validations(
            cel(
                "self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted() && "
                "self.filter(s, has(s.setWeight)).all(s, "
                "self.filter(t, has(t.setWeight) && t.setWeight == s.setWeight).size() == 1)",
                "setWeight values must strictly increase from step to step",
            ),
        ),
    )
    interval: Duration = Field(
        default="1m", description="Time between analysis checks; each check covers one interval."
    )
    progress_deadline: Duration = Field(
        default="10m",
        description="A canary whose pods are not ready by then fails the rollout.",
    )
    scale_down_delay: Duration = Field(
        default="30s",
        description="After promotion, the old version keeps its pods this long for in-flight "
        "requests.",
    )
    on_failure: OnFailure = Field(
        default=OnFailure.ROLLBACK,
        description="What failureLimit failed checks do: rollback (weight 0, canary scaled "
        "down) or pause (hold the weight for a human).",
    )
    analysis: AnalysisSpec = Field(
        default_factory=AnalysisSpec, description="The judge's settings."
    )


# --- monitoring and retraining ---------------------------------------------------------------


class DriftCheck(ApiModel):
    """Drift of a distribution against the bundle's reference profile."""

    enabled: bool = Field(default=True, description="Run this check.")
    psi: float = Field(
        default=0.2, gt=0, le=10, description="Population stability index that raises Drifted."
    )
    min_rows: int = Field(
        default=500, ge=1, description="Rows needed in a window before drift is judged."
    )


class AccuracyMetric(StrEnum):
    ACCURACY = "accuracy"
    F1 = "f1"
    MAE = "mae"
    RMSE = "rmse"


class AccuracyCheck(ApiModel):
    """Quality from delayed labels sent to the runtime's feedback endpoint."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.min) || has(self.max)",
                "monitoring.accuracy needs min (accuracy, f1) or max (mae, rmse)",
            ),
        )
    }

    metric: AccuracyMetric = Field(
        default=AccuracyMetric.ACCURACY, description="Score computed from feedback labels."
    )
    min: float | None = Field(default=None, description="Lowest acceptable score.")
    max: float | None = Field(default=None, description="Highest acceptable error.")
    window: Duration = Field(default="1h", description="Feedback window the score covers.")
    min_labels: int = Field(
        default=100, ge=1, description="Labels needed before the score is judged."
    )


class IntegrityCheck(ApiModel):
    """Bounds on malformed or unusual inputs reaching the stable version."""

    enabled: bool = Field(default=True, description="Run this check.")
    max_invalid_share: float = Field(
        default=0.05, gt=0, le=1, description="Highest share of requests rejected as invalid."
    )
    max_missing_share: float = Field(
        default=0.05, gt=0, le=1, description="Highest share of rows missing a feature (NaN)."
    )
    max_new_category_share: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Highest share of rows with a category the reference profile never saw, "
        "above the reference's own share of such rows.",
    )
    min_requests: int = Field(
        default=100, ge=1, description="Requests needed in a window before integrity is judged."
    )


class MonitoringSpec(ApiModel):
    """Watching the stable version after promotion."""

    enabled: bool = Field(default=True, description="Monitor the stable version.")
    interval: Duration = Field(
        default="5m",
        description="Time between monitoring checks; drift and integrity are judged over it.",
    )
    confidence: float = Field(
        default=0.99,
        ge=0.5,
        lt=1,
        description="Confidence a drift must reach before it raises the alarm (a chi-square "
        "test against the reference, Holm-corrected over the features).",
    )
    input_drift: DriftCheck = Field(
        default_factory=DriftCheck, description="Per-feature drift of inputs vs the reference."
    )
    prediction_drift: DriftCheck = Field(
        default_factory=DriftCheck, description="Drift of predictions vs the reference."
    )
    integrity: IntegrityCheck = Field(
        default_factory=IntegrityCheck,
        description="Invalid inputs, missing values, new categories.",
    )
    accuracy: AccuracyCheck | None = Field(
        default=None, description="Quality from feedback labels."
    )


class RetrainTrigger(StrEnum):
    INPUT_DRIFT = "inputDrift"
    PREDICTION_DRIFT = "predictionDrift"
    ACCURACY = "accuracy"


class RetrainSpec(ApiModel):
    """A Job that trains a replacement when monitoring raises an alarm."""

    job_template: AnyJSON = Field(
        description="A batch/v1 JobTemplateSpec ({metadata, spec}) run on a trigger. The Job "
        "reports the new bundle URI and sha256 in its termination message.",
    )
    triggers: list[RetrainTrigger] = Field(
        default_factory=lambda: [RetrainTrigger.INPUT_DRIFT, RetrainTrigger.ACCURACY],
        max_length=3,
        description="Alarms that start a retraining Job.",
    )
    cooldown: Duration = Field(default="24h", description="Least time between two retraining Jobs.")
    auto_deploy: bool = Field(
        default=False,
        description="Roll out the retrained model by itself (through validation and canary). "
        "Without it an Event says a candidate is waiting.",
    )


# --- notifications ---------------------------------------------------------------------------


class NotificationType(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"


class NotificationCategory(StrEnum):
    PHASE_CHANGE = "phase-change"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"
    DRIFT = "drift"
    ACCURACY = "accuracy"
    RETRAIN_CANDIDATE = "retrain-candidate"


class SecretKeySelector(ApiModel):
    """One key of a Secret in the ModelDeployment's namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Name of the Secret.",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key in the Secret whose value is the URL.",
    )


class UrlSource(ApiModel):
    """Where the URL of a notification target is read from."""

    secret_key_ref: SecretKeySelector = Field(
        description="A key of a Secret in the ModelDeployment's namespace (the operator needs "
        "`get` on secrets there; the chart's RBAC grants it)."
    )


class NotificationTarget(ApiModel):
    """A webhook that hears about this ModelDeployment's rollouts and alarms."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "[has(self.url), has(self.urlFrom), has(self.urlEnv)].filter(x, x).size() == 1",
                "a notification target sets exactly one of url, urlFrom or urlEnv",
            ),
            cel(
                "!has(self.url) || self.url.startsWith('https://') || "
                "self.url.startsWith('http://')",
                "url must start with https:// or http://",
                ".url",
            ),
            cel(
                "duration(self.timeout) >= duration('100ms') && "
                "duration(self.timeout) <= duration('60s')",
                "timeout must be between 100ms and 60s",
                ".timeout",
            ),
        )
    }

    name: DNS1123Label = Field(
        description="Name of the target, unique in the list; shown in logs, Events and the "
        "operator's serinus_operator_notifications_total metric (never the URL)."
    )
    type: NotificationType = Field(
        default=NotificationType.WEBHOOK,
        description="webhook (a JSON document describing the event) or slack (a Slack-compatible "
        "incoming-webhook message: text and blocks).",
    )
    url: str | None = Field(
        default=None,
        max_length=2048,
        description="The URL, written here in plain text: only for URLs that carry no token. "
        "A URL with a token belongs in a Secret (urlFrom).",
    )
    url_from: UrlSource | None = Field(
        default=None, description="Read the URL from a Secret (for URLs that carry a token)."
    )
    url_env: str | None = Field(
        default=None,
        max_length=256,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Read the URL from this environment variable of `serinus local up` (local "
        "mode only: the operator refuses it, it would expose the operator's environment).",
    )
    events: list[NotificationCategory] = Field(
        default_factory=lambda: list(NotificationCategory),
        min_length=1,
        max_length=16,
        description="What to send: phase-change (every phase the rollout enters), promoted, "
        "rolled-back (with the failing verdicts), failed, drift, accuracy, retrain-candidate. "
        "Default: all of them.",
    )
    timeout: Duration = Field(
        default="5s",
        description="Time allowed for one delivery attempt (100ms to 60s). Failed attempts "
        "(no connection, timeout, HTTP 429 or 5xx) are retried with exponential backoff.",
    )


# --- the whole spec --------------------------------------------------------------------------


class ModelDeploymentSpec(ApiModel):
    """Desired state of a served scikit-learn model."""

    model: ModelSpec = Field(description="The model to serve.")
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="The pods that serve it.")
    validation: ValidationSpec = Field(
        default_factory=ValidationSpec, description="Checks before a new version gets traffic."
    )
    traffic: TrafficSpec = Field(
        default_factory=TrafficSpec, description="How traffic is split during a rollout."
    )
    rollout: RolloutSpec = Field(
        default_factory=RolloutSpec, description="Canary steps and analysis."
    )
    paused: bool = Field(
        default=False,
        description="Hold any rollout at its current step (traffic stays as it is).",
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Watching the stable version."
    )
    retrain: RetrainSpec | None = Field(default=None, description="Retraining on alarms.")
    notifications: list[NotificationTarget] = Field(
        default_factory=list,
        max_length=16,
        description="Webhooks told about phase changes, promotions, rollbacks, failures, "
        "alarms and retrain candidates, besides the operator's default targets. A failing "
        "webhook never holds or changes a rollout.",
        json_schema_extra=validations(
            cel(
                "self.all(t, self.filter(u, u.name == t.name).size() == 1)",
                "notification target names must be unique",
            ),
        ),
    )


StepKind = Literal["setWeight", "pause", "analysis"]


def step_kind(step: RolloutStep) -> StepKind:
    if step.set_weight is not None:
        return "setWeight"
    if step.pause is not None:
        return "pause"
    return "analysis"
