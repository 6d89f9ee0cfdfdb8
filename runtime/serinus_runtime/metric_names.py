"""Prometheus metric and label names of the Serinus runtime: the one place they are spelled.

The operator's metrics providers (`prometheus` PromQL and `scrape`) import these constants, so a
rename here is a rename everywhere. This module must stay import-cheap: plain strings only.

Every runtime series carries the identity labels MODEL, VERSION, REVISION and VARIANT
(`IDENTITY_LABELS`); VARIANT and REVISION come from the environment the operator sets
(SERINUS_VARIANT, SERINUS_REVISION), so stable and canary pods of one model are told apart.
Counters are exposed with the `_total` suffix already in their name; histograms expose
`<name>_bucket{le=...}` (cumulative), `<name>_sum` and `<name>_count`.
"""

from typing import Final

# ----------------------------------------------------------------------------- label names
MODEL: Final = "model"
VERSION: Final = "version"
REVISION: Final = "revision"
VARIANT: Final = "variant"
IDENTITY_LABELS: Final = (MODEL, VERSION, REVISION, VARIANT)

PROTOCOL: Final = "protocol"
"""Label: `v2` (Open Inference Protocol), `v1` (`:predict`), or `other` (health, metrics...)."""
ENDPOINT: Final = "endpoint"
"""Label: route name, one of ENDPOINTS."""
CODE: Final = "code"
"""Label: HTTP status code as a decimal string, e.g. "200", "400", "503"."""
CLASS: Final = "class"
"""Label: a predicted class label, as its string form (e.g. "0", "setosa")."""
FEATURE: Final = "feature"
"""Label: a feature name from the bundle's signature."""
BIN: Final = "bin"
"""Label: index of a reference-profile bin as a decimal string ("0".."n-1"), or "missing".
For numeric features bin i covers [edges[i], edges[i+1]) of the reference profile with the first
and last bins open-ended; for categorical features bin i is categories[i] and bin n is "other"."""
REASON: Final = "reason"
"""Label: why an input was rejected, one of INVALID_REASONS."""
OUTCOME: Final = "outcome"
"""Label: what a feedback label did, one of FEEDBACK_OUTCOMES."""
LE: Final = "le"
"""Label of histogram buckets (cumulative upper bound), set by Prometheus conventions; also the
bucket label of REFERENCE_PREDICTION_SHARE, with the same values as PREDICTION_VALUE's buckets."""
KIND: Final = "kind"
"""Label: kind of a profiled feature, "numeric" or "categorical" (see BIN)."""
LABEL: Final = "label"
"""Label: the true label sent as feedback, as its string form (compare CLASS), or LABEL_OTHER."""

# ----------------------------------------------------------------------------- label values
PROTOCOL_V2: Final = "v2"
PROTOCOL_V1: Final = "v1"
PROTOCOL_OTHER: Final = "other"

ENDPOINT_INFER: Final = "infer"
"""V2 POST /v2/models/{m}[/versions/{v}]/infer."""
ENDPOINT_PREDICT: Final = "predict"
"""V1 POST /v1/models/{m}:predict."""
INFERENCE_ENDPOINTS: Final = (ENDPOINT_INFER, ENDPOINT_PREDICT)
"""Endpoints whose latency is recorded in LATENCY_SECONDS and whose errors count for the judge."""
ENDPOINTS: Final = (
    ENDPOINT_INFER,
    ENDPOINT_PREDICT,
    "feedback",
    "health_live",
    "health_ready",
    "server_metadata",
    "model_metadata",
    "model_ready",
    "metrics",
    "not_found",
)

INVALID_REASONS: Final = (
    "malformed_json",  # body is not JSON
    "bad_request",  # JSON, but not a request of the protocol (missing/ill-typed fields)
    "datatype",  # unknown tensor datatype, or one the model's features can't take
    "shape",  # shape invalid or inconsistent with the data
    "feature_count",  # wrong number of features
    "feature_names",  # named inputs that don't match the model's features
    "value",  # a value that can't be converted to the tensor's datatype
    "non_finite",  # NaN / missing / infinite value for a model that does not accept them
    "output",  # `outputs` asks for something the model does not produce
    "model_rejected",  # the model itself raised on this input (e.g. unknown category)
    "content_type",  # 415: body is not JSON by its Content-Type
    "too_large",  # 413: body above the configured limit
)

FEEDBACK_OUTCOMES: Final = (
    "correct",  # classifier: label equals the prediction (per row)
    "incorrect",  # classifier: label differs (per row)
    "scored",  # regressor: row scored; see FEEDBACK_*_ERROR_TOTAL for the error
    "unknown_id",  # request id never seen, expired from the bounded store, or already labelled
    "invalid",  # labels malformed or row count differs from the request's
)

LABEL_OTHER: Final = "__other__"
"""LABEL value of every true label that is not one of the model's classes: such rows are always
incorrect, and folding them into one value keeps the number of series bounded whatever clients
send. (A model without known classes keeps its first MAX_FEEDBACK_LABELS label values.)"""
MAX_FEEDBACK_LABELS: Final = 100
"""Distinct LABEL values kept for a classifier whose classes are unknown; the rest are
LABEL_OTHER."""

# ----------------------------------------------------------------------------- metric names
REQUESTS_TOTAL: Final = "serinus_requests_total"
"""Counter of HTTP requests by PROTOCOL, ENDPOINT and CODE (+ identity labels).
The judge's request count and 5xx count: sum over ENDPOINT in INFERENCE_ENDPOINTS."""

LATENCY_SECONDS: Final = "serinus_request_duration_seconds"
"""Histogram of request latency in seconds, from the first byte of the request to the response
being written, by PROTOCOL and ENDPOINT, for INFERENCE_ENDPOINTS only. Buckets LATENCY_BUCKETS."""

LATENCY_BUCKETS: Final = (
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02,
    0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of LATENCY_SECONDS buckets; +Inf is added on exposition."""

ROWS_TOTAL: Final = "serinus_rows_total"
"""Counter of rows (instances) predicted, over all inference endpoints."""

PREDICTIONS_TOTAL: Final = "serinus_predictions_total"
"""Counter of predicted rows by CLASS (classifiers only)."""

PREDICTION_VALUE: Final = "serinus_prediction_value"
"""Histogram of predicted values (regressors only). Bucket bounds are the reference profile's
prediction bin edges (interior edges, then +Inf), so bucket differences line up with the
profile's frequencies; without a profile, quantile-free default bounds are used."""

FEATURE_BIN_TOTAL: Final = "serinus_feature_bin_total"
"""Counter of input rows by FEATURE and BIN of the reference profile (see BIN). Absent when the
model was served without a reference profile."""

REFERENCE_FEATURE_SHARE: Final = "serinus_reference_feature_share"
"""Gauge: the reference profile's share of rows in each bin, by FEATURE, BIN and KIND, for the
features and bins FEATURE_BIN_TOTAL counts (same BIN values), plus BIN "missing" with the profile's
missing fraction when it is > 0. A feature's shares (missing included) sum to 1: categorical
frequencies, which the profile gives over present values, are scaled by (1 - missing). Constant,
exposed from start-up; absent when the model was served without a reference profile."""

INVALID_INPUTS_TOTAL: Final = "serinus_invalid_inputs_total"
"""Counter of rejected requests by REASON (one of INVALID_REASONS)."""

FEEDBACK_TOTAL: Final = "serinus_feedback_total"
"""Counter of feedback rows by OUTCOME (one of FEEDBACK_OUTCOMES); accuracy = correct /
(correct + incorrect)."""

FEEDBACK_ABSOLUTE_ERROR_TOTAL: Final = "serinus_feedback_absolute_error_total"
"""Counter: sum of |label - prediction| over scored feedback rows (regressors); MAE = this /
FEEDBACK_TOTAL{outcome="scored"}."""

FEEDBACK_SQUARED_ERROR_TOTAL: Final = "serinus_feedback_squared_error_total"
"""Counter: sum of (label - prediction)^2 over scored feedback rows (regressors); RMSE =
sqrt(this / FEEDBACK_TOTAL{outcome="scored"})."""

FEEDBACK_CONFUSION_TOTAL: Final = "serinus_feedback_confusion_total"
"""Counter of feedback rows by LABEL (true label) and CLASS (predicted class), classifiers only:
the confusion matrix, for precision / recall / F1. Only rows counted as `correct` or `incorrect`
in FEEDBACK_TOTAL count here (so its sum equals theirs); series appear with their first row."""

REFERENCE_ROWS: Final = "serinus_reference_rows"
"""Gauge: rows of the training sample the reference profile was computed from (identity labels
only). The reference shares are themselves estimates from that many rows: monitoring compares a
window with them as two samples, not against exact shares. Absent without a profile."""

REFERENCE_PREDICTION_SHARE: Final = "serinus_reference_prediction_share"
"""Gauge: the reference profile's share of predictions. Classifiers: by CLASS, the profile's
frequency of each predicted class. Regressors: by LE, the share in each PREDICTION_VALUE bucket,
NOT cumulative, with exactly the `le` values of that histogram's buckets (its interior bounds,
then "+Inf"). Constant, exposed from start-up; absent without a prediction profile (or for a
regressor whose one-bin profile does not fit inside one default bucket)."""

BATCH_ROWS: Final = "serinus_batch_rows"
"""Histogram of rows per model call after micro-batching (runtime tuning, not used by the judge)."""

BATCH_ROWS_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
"""Upper bounds of BATCH_ROWS buckets; +Inf is added on exposition."""

MODEL_INFO: Final = "serinus_model_info"
"""Gauge, always 1, with identity labels plus `format`, `sha256` and `kind` of the served model."""

MODEL_READY: Final = "serinus_model_ready"
"""Gauge: 1 when the model is loaded and warmed up, else 0."""

RELOADS_TOTAL: Final = "serinus_reloads_total"
"""Counter of model reloads (SIGHUP) by OUTCOME ("succeeded" / "failed"); on failure the previous
model keeps serving."""
