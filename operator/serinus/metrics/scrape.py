"""The `scrape` provider (the embedded default): reads the runtimes' /metrics itself.

No Prometheus needed: each `mark()` / `window()` reads every ready pod (or process) of both
revisions through a `MetricsSource` and keeps the sample. A window is the difference between the
sample taken now and the baseline sample taken at its start, per pod, summed over pods.

Rules, Prometheus-like where Prometheus has one:
- The baseline is the kept sample closest to the window's start, no further than `slack` from
  it. Every `window()` keeps its sample, so back-to-back windows need no `mark()`. Without one
  (first window after an operator restart, or a start far from any sample) the window is an
  error — Inconclusive — and the sample taken now is the next window's baseline.
- A pod restarted since the baseline (another process start time, a counter that went down or
  disappeared) counts its whole current values as the increase, like Prometheus' counter reset.
- A pod absent from the baseline started during the window: its whole values count.
- A pod absent now (deleted, or not answering) contributes nothing: its requests since the
  baseline are unknown. A pod restarted in place keeps its name and is handled as a reset.
- Custom metrics (PromQL queries) need the prometheus provider; they are left out here.
- Memory stays bounded: a few samples per revision, forgotten when a revision has not been asked
  about for `forget_after`.

Monitoring (`monitor`) keeps its own history of the stable revision: one sample per check, the
last MONITOR_SAMPLES_KEPT, and only those of the label window (plus the one just before it).
The drift window's increase is from the kept sample closest to its start (the one at or before
it unless a later one is closer by more than `slack`), the label window's likewise; a history
shorter than a window gives the increase since its oldest sample, and the window says how many
seconds it actually covers. The first check has no earlier sample: an error (no alarm), and its
sample is the next check's baseline. The reference shares are gauges, read from the sample
taken now.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field

from serinus.core.monitor_window import MonitorWindow
from serinus.core.window import AnalysisWindow, Bucket, VariantWindow
from serinus.metrics.provider import AnalysisTarget, MetricsSource, MonitorTarget, ScrapeError
from serinus_runtime import metric_names as mn

NO_BASELINE = (
    "no baseline sample at the window start (operator restarted?): the next window will have one"
)
NO_MONITOR_BASELINE = (
    "no earlier sample of the stable version yet: monitoring starts with the next check"
)
PROCESS_START = "process_start_time_seconds"
SAMPLES_KEPT = 4
MONITOR_SAMPLES_KEPT = 64
MIN_WINDOW_SECONDS = 0.001

Series = tuple[str, ...]
"""What one counter measures, e.g. ("requests", "503"), ("latency", "0.005"), ("bin", "f", "2");
or one gauge, e.g. ("reference_feature", "f", "2", "numeric")."""

_REQUESTS, _LATENCY, _CLASS, _VALUE, _BIN = "requests", "latency", "class", "value", "bin"
_ROWS, _INVALID, _FEEDBACK, _CONFUSION = "rows", "invalid", "feedback", "confusion"
_ABSOLUTE_ERROR, _SQUARED_ERROR = "absolute_error", "squared_error"
_REFERENCE_FEATURE, _REFERENCE_CLASS, _REFERENCE_VALUE, _REFERENCE_ROWS = (
    "reference_feature",
    "reference_class",
    "reference_value",
    "reference_rows",
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PodCounters(BaseModel):
    """The counters the judge and the monitor need from one pod's /metrics, summed over
    protocols/endpoints, and the reference gauges (kept apart: a gauge is no counter)."""

    model_config = ConfigDict(frozen=True)

    started_at: float | None = None
    series: dict[Series, float]
    gauges: dict[Series, float] = Field(default_factory=dict)


class Snapshot(BaseModel):
    """Every pod of one revision at one moment."""

    model_config = ConfigDict(frozen=True)

    taken_at: datetime
    pods: dict[str, PodCounters]


class _RevisionHistory:
    """The last few snapshots of one revision, and when it was last asked about."""

    def __init__(self, now: datetime) -> None:
        self.snapshots: deque[Snapshot] = deque(maxlen=SAMPLES_KEPT)
        self.last_used = now
        self.last_error: str | None = None

    def closest(self, moment: datetime, slack: timedelta) -> Snapshot | None:
        near = [s for s in self.snapshots if abs(s.taken_at - moment) <= slack]
        return min(near, key=lambda s: abs(s.taken_at - moment), default=None)


class _MonitorHistory:
    """One sample of a monitored revision per check, oldest first."""

    def __init__(self, now: datetime) -> None:
        self.snapshots: deque[Snapshot] = deque(maxlen=MONITOR_SAMPLES_KEPT)
        self.last_used = now
        self.keep_for = timedelta(0)
        """How long the history stays useful without a check (its label window, at least)."""

    def add(self, snapshot: Snapshot, cutoff: datetime) -> list[Snapshot]:
        """Keep `snapshot`; drop the samples before the last one at or before `cutoff`.
        Returns the samples taken before `snapshot`, oldest first."""
        earlier = sorted(
            (s for s in self.snapshots if s.taken_at < snapshot.taken_at), key=lambda s: s.taken_at
        )
        while len(earlier) > 1 and earlier[1].taken_at <= cutoff:
            earlier.pop(0)
        self.snapshots.clear()
        self.snapshots.extend(earlier[-(MONITOR_SAMPLES_KEPT - 1) :])
        self.snapshots.append(snapshot)
        return earlier


_HistoryKey = tuple[str | None, str, str]


class ScrapeProvider:
    """Windows computed from samples of the runtimes' /metrics, read through `source`.

    Keep one instance per driver: its samples are the baselines of the next windows."""

    def __init__(
        self,
        source: MetricsSource,
        clock: Callable[[], datetime] = _utc_now,
        *,
        slack: timedelta = timedelta(seconds=10),
        forget_after: timedelta = timedelta(hours=1),
    ) -> None:
        self.source = source
        self.clock = clock
        self.slack = slack
        self.forget_after = forget_after
        self._histories: dict[_HistoryKey, _RevisionHistory] = {}
        self._monitored: dict[_HistoryKey, _MonitorHistory] = {}
        self._lock = threading.Lock()

    def mark(self, target: AnalysisTarget) -> None:
        """Take the baseline of a window starting now. A failed read is remembered and named by
        the window that needed it."""
        for variant, revision in _variants(target):
            try:
                self._keep(target, revision, self._read(variant, revision))
            except ScrapeError as problem:
                self._history(target, revision).last_error = str(problem)

    def window(self, target: AnalysisTarget, start: datetime, end: datetime) -> AnalysisWindow:
        # An empty window is measured like any other (no requests: Inconclusive), never raised.
        seconds = max((end - start).total_seconds(), MIN_WINDOW_SECONDS)
        observed: dict[str, VariantWindow | None] = {}
        missing: list[str] = []
        for variant, revision in _variants(target):
            history = self._history(target, revision)
            baseline = history.closest(start, self.slack)
            try:
                now = self._read(variant, revision)
            except ScrapeError as problem:
                return AnalysisWindow(error=str(problem), interval_seconds=seconds)
            self._keep(target, revision, now)
            if baseline is None:
                missing.append(_with_cause(variant, history.last_error))
                continue
            observed[variant] = _variant_window(baseline, now)
            history.last_error = None
        if missing:
            return AnalysisWindow(error=NO_BASELINE + "".join(missing), interval_seconds=seconds)
        return AnalysisWindow(
            canary=observed["canary"], stable=observed["stable"], interval_seconds=seconds
        )

    def monitor(
        self, target: MonitorTarget, end: datetime, drift_seconds: int, label_seconds: int
    ) -> MonitorWindow:
        drift = timedelta(seconds=max(drift_seconds, MIN_WINDOW_SECONDS))
        label = timedelta(seconds=max(label_seconds, MIN_WINDOW_SECONDS))
        asked = {
            "drift_seconds": drift.total_seconds(),
            "label_seconds": label.total_seconds(),
        }
        with self._lock:
            self._forget_idle(self.clock())
        try:
            now = self._read("stable", target.revision)
        except ScrapeError as problem:
            return MonitorWindow(error=str(problem), **asked)
        if not now.pods:
            # Not kept: pods that come back would count everything since their start.
            error = f"the stable version ({target.revision}) has no ready pod to read metrics from"
            return MonitorWindow(error=error, **asked)
        with self._lock:
            key = (target.namespace, target.name, target.revision)
            history = self._monitored.setdefault(key, _MonitorHistory(now.taken_at))
            history.last_used = now.taken_at
            history.keep_for = label + drift + self.slack
            earlier = history.add(now, now.taken_at - label - self.slack)
        if not earlier:
            return MonitorWindow(error=NO_MONITOR_BASELINE, **asked)
        end = end if end.tzinfo is not None else end.replace(tzinfo=UTC)
        drift_base = _monitor_baseline(earlier, end - drift, self.slack)
        label_base = _monitor_baseline(earlier, end - label, self.slack)
        return _monitor_window(
            increase(drift_base, now),
            increase(label_base, now),
            _gauges(now),
            drift_seconds=self._covered(drift_base, now, end - drift, drift),
            label_seconds=self._covered(label_base, now, end - label, label),
        )

    def _covered(
        self, baseline: Snapshot, now: Snapshot, start: datetime, asked: timedelta
    ) -> float:
        """The window asked for when the baseline is near its start, else what it covers."""
        if abs(baseline.taken_at - start) <= self.slack:
            return asked.total_seconds()
        return max((now.taken_at - baseline.taken_at).total_seconds(), MIN_WINDOW_SECONDS)

    def close(self) -> None:
        """Forget every sample (the source belongs to whoever created it)."""
        with self._lock:
            self._histories.clear()
            self._monitored.clear()

    # --- samples -------------------------------------------------------------------------------

    def _read(self, variant: str, revision: str) -> Snapshot:
        try:
            texts = self.source.scrape(revision)
        except ScrapeError as problem:
            message = f"could not read the {variant} ({revision})'s metrics: {problem}"
            raise ScrapeError(message) from None
        taken_at = self.clock()
        pods: dict[str, PodCounters] = {}
        for pod, text in texts.items():
            try:
                pods[pod] = parse_counters(text)
            except ValueError as problem:
                raise ScrapeError(
                    f"{pod} of the {variant} ({revision}) answered /metrics that is not "
                    f"Prometheus text ({problem}): is it a Serinus runtime?"
                ) from None
        return Snapshot(taken_at=taken_at, pods=pods)

    def _history(self, target: AnalysisTarget, revision: str) -> _RevisionHistory:
        now = self.clock()
        with self._lock:
            self._forget_idle(now)
            key = (target.namespace, target.name, revision)
            history = self._histories.setdefault(key, _RevisionHistory(now))
            history.last_used = now
            return history

    def _keep(self, target: AnalysisTarget, revision: str, snapshot: Snapshot) -> None:
        history = self._history(target, revision)
        with self._lock:
            history.snapshots.append(snapshot)

    def _forget_idle(self, now: datetime) -> None:
        idle = [key for key, h in self._histories.items() if now - h.last_used > self.forget_after]
        for key in idle:
            del self._histories[key]
        unused = [
            key
            for key, m in self._monitored.items()
            if now - m.last_used > max(self.forget_after, m.keep_for)
        ]
        for key in unused:
            del self._monitored[key]

    @property
    def revisions_kept(self) -> int:
        """How many revisions have samples in memory."""
        return len(self._histories)

    @property
    def monitored_kept(self) -> dict[str, int]:
        """How many monitoring samples are kept, by monitored revision."""
        return {key[2]: len(h.snapshots) for key, h in self._monitored.items()}


def _variants(target: AnalysisTarget) -> tuple[tuple[str, str], tuple[str, str]]:
    return (("canary", target.canary), ("stable", target.stable))


def _with_cause(variant: str, error: str | None) -> str:
    return f" ({variant}: the read at the window start failed: {error})" if error else ""


# --- parsing -------------------------------------------------------------------------------------


def parse_counters(text: str) -> PodCounters:
    """The judge's and the monitor's counters, and the reference gauges, from one exposition
    text. Raises ValueError for malformed text."""
    series: dict[Series, float] = {}
    gauges: dict[Series, float] = {}
    started_at: float | None = None
    inference = set(mn.INFERENCE_ENDPOINTS)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, name = sample.labels, sample.name
            key: Series | None = None
            if name == PROCESS_START:
                started_at = sample.value
            elif name in _GAUGE_NAMES:
                gauge = _gauge_key(name, labels)
                if gauge is not None:
                    gauges[gauge] = max(sample.value, gauges.get(gauge, sample.value))
            elif name == mn.REQUESTS_TOTAL and labels.get(mn.ENDPOINT) in inference:
                key = (_REQUESTS, labels.get(mn.CODE, ""))
            elif name == f"{mn.LATENCY_SECONDS}_bucket" and labels.get(mn.ENDPOINT) in inference:
                key = (_LATENCY, labels.get(mn.LE, ""))
            elif name == mn.PREDICTIONS_TOTAL:
                key = (_CLASS, labels.get(mn.CLASS, ""))
            elif name == f"{mn.PREDICTION_VALUE}_bucket":
                key = (_VALUE, labels.get(mn.LE, ""))
            elif name == mn.FEATURE_BIN_TOTAL:
                key = (_BIN, labels.get(mn.FEATURE, ""), labels.get(mn.BIN, ""))
            elif name == mn.ROWS_TOTAL:
                key = (_ROWS,)
            elif name == mn.INVALID_INPUTS_TOTAL:
                key = (_INVALID, labels.get(mn.REASON, ""))
            elif name == mn.FEEDBACK_TOTAL:
                key = (_FEEDBACK, labels.get(mn.OUTCOME, ""))
            elif name == mn.FEEDBACK_ABSOLUTE_ERROR_TOTAL:
                key = (_ABSOLUTE_ERROR,)
            elif name == mn.FEEDBACK_SQUARED_ERROR_TOTAL:
                key = (_SQUARED_ERROR,)
            elif name == mn.FEEDBACK_CONFUSION_TOTAL:
                key = (_CONFUSION, labels.get(mn.LABEL, ""), labels.get(mn.CLASS, ""))
            if key is not None:
                series[key] = series.get(key, 0.0) + sample.value
    return PodCounters(started_at=started_at, series=series, gauges=gauges)


_GAUGE_NAMES = frozenset(
    {mn.REFERENCE_FEATURE_SHARE, mn.REFERENCE_PREDICTION_SHARE, mn.REFERENCE_ROWS}
)


def _gauge_key(name: str, labels: dict[str, str]) -> Series | None:
    if name == mn.REFERENCE_ROWS:
        return (_REFERENCE_ROWS,)
    if name == mn.REFERENCE_FEATURE_SHARE:
        feature, bin_label = labels.get(mn.FEATURE, ""), labels.get(mn.BIN, "")
        return (_REFERENCE_FEATURE, feature, bin_label, labels.get(mn.KIND, ""))
    if labels.get(mn.CLASS):
        return (_REFERENCE_CLASS, labels[mn.CLASS])
    if labels.get(mn.LE):
        return (_REFERENCE_VALUE, labels[mn.LE])
    return None


# --- deltas --------------------------------------------------------------------------------------


def pod_increase(before: PodCounters | None, after: PodCounters) -> dict[Series, float]:
    """What one pod counted between two samples; everything it has if it is new or restarted."""
    if before is None or _restarted(before, after):
        return dict(after.series)
    return {key: value - before.series.get(key, 0.0) for key, value in after.series.items()}


def _restarted(before: PodCounters, after: PodCounters) -> bool:
    if before.started_at is not None and before.started_at != after.started_at:
        return True
    return any(after.series.get(key, -1.0) < value for key, value in before.series.items())


def increase(baseline: Snapshot, now: Snapshot) -> dict[Series, float]:
    """Summed over the pods present now."""
    total: dict[Series, float] = {}
    for pod, counters in now.pods.items():
        for key, value in pod_increase(baseline.pods.get(pod), counters).items():
            total[key] = total.get(key, 0.0) + value
    return total


def _variant_window(baseline: Snapshot, now: Snapshot) -> VariantWindow | None:
    """None when the revision has no pod to read (the judge: "not observed")."""
    if not now.pods:
        return None
    counts = increase(baseline, now)
    by_kind: dict[str, dict[Series, float]] = {}
    for key, value in counts.items():
        by_kind.setdefault(key[0], {})[key[1:]] = value
    requests = by_kind.get(_REQUESTS, {})
    classes = by_kind.get(_CLASS)
    return VariantWindow(
        requests=round(sum(requests.values())),
        errors=round(sum(v for (code,), v in requests.items() if code.startswith("5"))),
        latency_buckets=_buckets(by_kind.get(_LATENCY, {}).items()),
        prediction_counts={label: v for (label,), v in classes.items()} if classes else None,
        prediction_buckets=_buckets(by_kind.get(_VALUE, {}).items()),
        feature_bins=_feature_bins(by_kind.get(_BIN, {})),
    )


def _buckets(items: Iterable[tuple[Series, float]]) -> list[Bucket] | None:
    buckets = sorted((float(le), value) for (le,), value in items)
    return [b for b in buckets if not math.isnan(b[0])] or None


def _feature_bins(counts: dict[Series, float]) -> dict[str, list[float]] | None:
    """Per feature, counts indexed by bin; the `missing` bin is left out (it is no bin of the
    reference profile's distribution)."""
    by_feature: dict[str, dict[int, float]] = {}
    for (feature, bin_label), value in counts.items():
        if bin_label.isdigit():
            by_feature.setdefault(feature, {})[int(bin_label)] = value
    if not by_feature:
        return None
    return {
        feature: [bins.get(index, 0.0) for index in range(max(bins) + 1)]
        for feature, bins in by_feature.items()
    }


# --- monitoring ----------------------------------------------------------------------------------


def _monitor_baseline(earlier: list[Snapshot], start: datetime, slack: timedelta) -> Snapshot:
    """Of the earlier samples (oldest first, at least one): the last one at or before `start`,
    unless the first one after it is closer by more than `slack`; the oldest when none is at or
    before `start` (the history is shorter than the window)."""
    before = [s for s in earlier if s.taken_at <= start]
    after = [s for s in earlier if s.taken_at > start]
    if not before:
        return after[0]
    if after and (after[0].taken_at - start) + slack < start - before[-1].taken_at:
        return after[0]
    return before[-1]


def _gauges(now: Snapshot) -> dict[Series, float]:
    """The reference gauges of the pods read now, the max over pods (they serve one bundle)."""
    gauges: dict[Series, float] = {}
    for counters in now.pods.values():
        for key, value in counters.gauges.items():
            gauges[key] = max(value, gauges.get(key, value))
    return gauges


def _by_kind(counts: dict[Series, float]) -> dict[str, dict[Series, float]]:
    by_kind: dict[str, dict[Series, float]] = {}
    for key, value in counts.items():
        by_kind.setdefault(key[0], {})[key[1:]] = max(value, 0.0)
    return by_kind


def _monitor_window(
    drift: dict[Series, float],
    label: dict[Series, float],
    gauges: dict[Series, float],
    *,
    drift_seconds: float,
    label_seconds: float,
) -> MonitorWindow:
    counted, labelled, reference = _by_kind(drift), _by_kind(label), _by_kind(gauges)
    bins = counted.get(_BIN, {})
    classes = counted.get(_CLASS)
    features = reference.get(_REFERENCE_FEATURE, {})
    confusion: dict[str, dict[str, float]] = {}
    for (true, predicted), value in labelled.get(_CONFUSION, {}).items():
        confusion.setdefault(true, {})[predicted] = value
    reference_classes = {cls: v for (cls,), v in reference.get(_REFERENCE_CLASS, {}).items()}
    reference_buckets = sorted(
        (float(le), v) for (le,), v in reference.get(_REFERENCE_VALUE, {}).items()
    )
    return MonitorWindow(
        drift_seconds=drift_seconds,
        label_seconds=label_seconds,
        requests=sum(counted.get(_REQUESTS, {}).values()),
        rows=sum(counted.get(_ROWS, {}).values()),
        invalid={reason: v for (reason,), v in counted.get(_INVALID, {}).items()},
        feature_bins=_feature_bins(bins) or {},
        feature_missing={f: v for (f, bin_label), v in bins.items() if bin_label == "missing"},
        reference_features=_feature_bins({k[:2]: v for k, v in features.items()}) or {},
        reference_rows=reference.get(_REFERENCE_ROWS, {}).get(()),
        categorical=frozenset(f for (f, _, kind) in features if kind == "categorical"),
        prediction_counts={c: v for (c,), v in classes.items()} if classes else None,
        reference_predictions=reference_classes or None,
        prediction_buckets=_buckets(counted.get(_VALUE, {}).items()),
        reference_prediction_buckets=reference_buckets or None,
        feedback={outcome: v for (outcome,), v in labelled.get(_FEEDBACK, {}).items()},
        feedback_absolute_error=sum(labelled.get(_ABSOLUTE_ERROR, {}).values()),
        feedback_squared_error=sum(labelled.get(_SQUARED_ERROR, {}).values()),
        confusion=confusion,
    )
