"""Runtime metrics: cheap counters on the hot path, turned into Prometheus families on scrape.

Requests update plain Python ints and lists, batches update numpy arrays with one vectorised call
per metric; prometheus-client only comes in when /metrics is read (a custom collector). Names and
labels are those of serinus_runtime.metric_names.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.samples import Sample

from serinus_runtime import metric_names as mn
from serinus_runtime.model import ServedModel

SMALL_BATCH_ROWS = 16
PRECREATED_CONFUSION_CLASSES = 20
"""Classifiers with at most this many classes expose every (label, class) pair at 0 from the
start (at most 400 series); larger ones create a pair at its first feedback row."""
DEFAULT_VALUE_BOUNDS = (
    -1000.0, -100.0, -10.0, -1.0, -0.1, 0.0, 0.1, 1.0, 10.0, 100.0, 1000.0,
)  # fmt: skip


class ModelStats:
    """Per-model prediction and input statistics, laid out from the reference profile."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.rows = 0
        self.batch_counts = [0] * (len(mn.BATCH_ROWS_BUCKETS) + 1)
        self.batch_sum = 0
        self.classes: list[str] | None = None
        self.class_counts: np.ndarray | None = None
        self.value_bounds: np.ndarray | None = None
        self.value_counts: np.ndarray | None = None
        self.value_sum = 0.0
        if model.kind == "classification" and model.classes is not None:
            self.classes = [str(c) for c in model.classes.tolist()]
            self.class_values = model.classes
            self.class_sorted = (
                bool(np.all(model.classes[:-1] <= model.classes[1:]))
                if len(model.classes) > 1
                else True
            )
            self.class_counts = np.zeros(len(self.classes), dtype=np.int64)
        elif model.kind == "regression":
            edges = None
            pp = model.profile.predictions if model.profile else None
            if pp is not None and pp.kind == "values" and pp.edges:
                edges = pp.edges[1:-1]
            bounds = np.asarray(edges if edges else DEFAULT_VALUE_BOUNDS, dtype=np.float64)
            self.value_bounds = bounds
            self.value_counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self._prepare_features()
        self.reference = self._reference()

    def _reference(self) -> list[tuple[str, tuple[str, ...], float]]:
        """The constant reference-share gauges, (name, extra label values, value), once per model.
        REFERENCE_PREDICTION_SHARE's extra labels are (label name, value): CLASS or LE."""
        out: list[tuple[str, tuple[str, ...], float]] = []
        prof = self.model.profile
        if prof is None:
            return out
        out.append((mn.REFERENCE_ROWS, (), float(prof.rows)))
        if self.edges is not None:
            by_name = {f.name: f for f in prof.features}
            feats = [(n, "numeric") for n in self.num_names]
            feats += [(n, "categorical") for _, n, _ in self.cat]
            for name, kind in feats:
                fp = by_name[name]
                for b, v in enumerate(_row_shares(fp.frequencies, fp.missing)):
                    out.append((mn.REFERENCE_FEATURE_SHARE, (name, str(b), kind), v))
                if fp.missing > 0:
                    out.append((mn.REFERENCE_FEATURE_SHARE, (name, "missing", kind), fp.missing))
        pp = prof.predictions
        if self.model.kind == "classification" and pp.kind == "classes" and pp.classes:
            for c, v in zip(pp.classes, pp.frequencies, strict=True):
                out.append((mn.REFERENCE_PREDICTION_SHARE, (mn.CLASS, str(c)), float(v)))
        elif self.value_bounds is not None and pp.kind == "values" and pp.edges:
            bounds = self.value_bounds.tolist()
            shares = _bucket_shares(bounds, pp.edges, pp.frequencies)
            if shares is not None:
                les = [*(_fmt(float(b)) for b in bounds), "+Inf"]
                for le, v in zip(les, shares, strict=True):
                    out.append((mn.REFERENCE_PREDICTION_SHARE, (mn.LE, le), v))
        return out

    def _prepare_features(self) -> None:
        """Feature bins from the profile: numeric ones compared in one vectorised step."""
        self.num_cols: list[int] = []
        self.num_names: list[str] = []
        self.num_bins: list[int] = []
        self.cat: list[tuple[int, str, dict[str, int]]] = []
        self.feature_counts: list[np.ndarray] = []
        self.feature_missing: list[int] = []
        prof = self.model.profile
        sig = self.model.signature
        self.edges: np.ndarray | None = None
        self.edges32: np.ndarray | None = None
        if prof is None or sig.layout != "table":
            return
        by_name = {f.name: f for f in prof.features}
        interiors: list[list[float]] = []
        for j, name in enumerate(sig.names):
            fp = by_name.get(name)
            if fp is None:
                continue
            if fp.kind == "numeric" and fp.edges and sig.features[j].dtype != "string":
                self.num_cols.append(j)
                self.num_names.append(name)
                self.num_bins.append(fp.bin_count)
                interiors.append(list(fp.edges[1:-1]))
            elif fp.kind == "categorical" and fp.categories is not None:
                self.cat.append((j, name, {c: i for i, c in enumerate(fp.categories)}))
        width = max((len(e) for e in interiors), default=0)
        # Pad each feature's interior edges with +inf so one comparison serves all features.
        self.edges = np.full((len(interiors), max(width, 1)), np.inf)
        for k, e in enumerate(interiors):
            self.edges[k, : len(e)] = e
        # Compared in float32 when inputs are float32: upcasting every value costs more.
        # (Rounding an edge to float32 can move a value sitting exactly on it by one bin.)
        self.edges32 = self.edges.astype(np.float32)
        self.offsets = np.cumsum([0, *self.num_bins[:-1]]).astype(np.int64)
        self.num_total = int(sum(self.num_bins))
        self.num_counts = np.zeros(self.num_total, dtype=np.int64)
        self.num_missing = np.zeros(len(self.num_cols), dtype=np.int64)
        self.cat_counts = [np.zeros(len(m) + 1, dtype=np.int64) for _, _, m in self.cat]
        self.cat_missing = [0] * len(self.cat)
        self.num_idx = np.asarray(self.num_cols, dtype=np.intp)
        self.all_numeric_in_order = self.num_cols == list(range(sig.n))

    def _bins(self, xn: np.ndarray) -> np.ndarray:
        """Bin index per value (rows x numeric features): the count of interior edges <= value.
        One 3-D comparison is cheapest for small batches; for large ones, one 2-D comparison per
        edge position avoids materialising rows x features x edges booleans."""
        edges = self.edges32 if xn.dtype == np.float32 else self.edges
        assert edges is not None
        if xn.shape[0] <= SMALL_BATCH_ROWS:
            return (xn[:, :, None] >= edges[None, :, :]).sum(axis=2)
        acc = np.zeros(xn.shape, dtype=np.intp)
        for k in range(edges.shape[1]):
            np.add(acc, xn >= edges[:, k], out=acc, casting="unsafe")
        return acc

    def observe_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        n = int(y.shape[0])
        self.rows += n
        self.batch_counts[bisect_left(mn.BATCH_ROWS_BUCKETS, n)] += 1
        self.batch_sum += n
        if self.class_counts is not None:
            if self.class_sorted and y.dtype.kind in "fiub":
                idx = np.searchsorted(self.class_values, y)
                idx = idx[(idx < len(self.class_counts))]
                self.class_counts += np.bincount(idx, minlength=len(self.class_counts))
            else:
                index = {c: i for i, c in enumerate(self.classes or [])}
                for v in y.tolist():
                    i = index.get(str(v))
                    if i is not None:
                        self.class_counts[i] += 1
        elif self.value_counts is not None and y.dtype.kind in "fiub":
            yv = y.astype(np.float64, copy=False).ravel()
            self.value_counts += np.bincount(
                np.searchsorted(self.value_bounds, yv, side="left"),  # type: ignore[arg-type]
                minlength=len(self.value_counts),
            )
            self.value_sum += float(yv.sum())
        if self.edges is None:
            return
        if self.num_cols:
            xn = x if self.all_numeric_in_order else x[:, self.num_idx]
            if xn.dtype.kind != "f":
                xn = xn.astype(np.float64)
            flat = self._bins(xn) + self.offsets
            nan = np.isnan(xn)
            if nan.any():
                self.num_missing += nan.sum(axis=0)
                flat = flat[~nan]
            self.num_counts += np.bincount(flat.ravel(), minlength=self.num_total)
        for k, (j, _, index) in enumerate(self.cat):
            counts = self.cat_counts[k]
            other = len(counts) - 1
            for v in x[:, j].tolist():
                if v is None or (isinstance(v, float) and v != v):
                    self.cat_missing[k] += 1
                else:
                    counts[index.get(str(v), other)] += 1


def _row_shares(frequencies: list[float], missing: float) -> list[float]:
    """A feature's bin frequencies as shares of all rows: bins + missing sum to 1. Numeric profiles
    already count over all rows; categorical ones count over present values, so are scaled."""
    total = float(sum(frequencies))
    if total > 0 and abs(total + missing - 1.0) > 1e-6:
        return [float(f) * (1.0 - missing) / total for f in frequencies]
    return [float(f) for f in frequencies]


def _bucket_shares(
    bounds: list[float], edges: list[float], frequencies: list[float]
) -> list[float] | None:
    """The profile's prediction frequencies per histogram bucket (`bounds` + the +Inf bucket).
    Bounds taken from the profile's interior edges line up bin for bin; otherwise (default bounds,
    when the profile has a single bin) each bin with a share must fit in one bucket, else None."""
    if len(edges) > 2 and bounds == [float(e) for e in edges[1:-1]]:
        return [float(f) for f in frequencies]
    shares = [0.0] * (len(bounds) + 1)
    for i, f in enumerate(frequencies):
        lo, hi = bisect_left(bounds, edges[i]), bisect_left(bounds, edges[i + 1])
        if f and lo != hi:
            return None
        shares[lo] += float(f)
    return shares


class Metrics:
    """All counters of one served model (a reload starts a fresh set, as a restart would)."""

    def __init__(self, labels: tuple[str, str, str, str], model: ServedModel | None) -> None:
        self.labels = labels  # model, version, revision, variant
        self.requests: dict[tuple[str, str, int], int] = {}
        nb = len(mn.LATENCY_BUCKETS) + 1
        self.latency = {
            (p, e): [[0] * nb, 0.0]
            for p, e in ((mn.PROTOCOL_V2, mn.ENDPOINT_INFER), (mn.PROTOCOL_V1, mn.ENDPOINT_PREDICT))
        }
        self.invalid: dict[str, int] = {}
        self.feedback: dict[str, int] = {}
        self.feedback_abs = 0.0
        self.feedback_sq = 0.0
        self.confusion: dict[tuple[str, str], int] = {}  # (true label, predicted class) -> rows
        self.reloads: dict[str, int] = {}
        self.stats = ModelStats(model) if model is not None else None
        classes = self.stats.classes if self.stats is not None else None
        self.known_labels = frozenset(classes) if classes else None
        self.confusion_labels: set[str] = set()  # LABEL values kept when classes are unknown
        self.model = model
        self.ready = False
        if model is not None:
            # Success and server-error series exist from the start at 0: Prometheus' increase()
            # cannot count a series' first sample, so an error counter born at the first error
            # would hide a new version's first errors from its first analysis window.
            for protocol, endpoint in self.latency:
                for code in (200, 500):
                    self.requests[(protocol, endpoint, code)] = 0
            # Feedback series too, for monitoring's label window: a burst of labels that all
            # land between two scrapes would otherwise be the first sample of each series.
            if model.kind == "regression":
                self.feedback["scored"] = 0
            elif classes is not None:
                self.feedback.update(correct=0, incorrect=0)
                if len(classes) <= PRECREATED_CONFUSION_CLASSES:
                    self.confusion.update({(a, b): 0 for a in classes for b in classes})

    def observe_request(self, protocol: str, endpoint: str, code: int, seconds: float) -> None:
        key = (protocol, endpoint, code)
        r = self.requests
        r[key] = r.get(key, 0) + 1
        h = self.latency.get((protocol, endpoint))
        if h is not None:
            h[0][bisect_left(mn.LATENCY_BUCKETS, seconds)] += 1
            h[1] += seconds

    def observe_invalid(self, reason: str) -> None:
        self.invalid[reason] = self.invalid.get(reason, 0) + 1

    def observe_feedback(self, outcome: str, n: int = 1) -> None:
        self.feedback[outcome] = self.feedback.get(outcome, 0) + n

    def observe_confusion(self, counts: dict[tuple[str, str], int]) -> None:
        """Feedback rows by (true label, predicted class); labels that are not classes of the
        model are folded into LABEL_OTHER (see metric_names.LABEL_OTHER)."""
        c = self.confusion
        known, seen = self.known_labels, self.confusion_labels
        for (label, cls), n in counts.items():
            if known is not None:
                keep = label in known
            else:
                keep = label in seen or len(seen) < mn.MAX_FEEDBACK_LABELS
                if keep:
                    seen.add(label)
            key = (label if keep else mn.LABEL_OTHER, cls)
            c[key] = c.get(key, 0) + n


# ------------------------------------------------------------------------------ exposition
# A snapshot is plain data: {metric name: {label values tuple: value}} plus histogram parts, so
# snapshots of several worker processes can be summed before they become Prometheus families.
Series = dict[tuple[str, ...], float]
Hist = dict[tuple[str, ...], tuple[list[float], list[float], float]]  # bounds, counts, sum


class Snapshot:
    __slots__ = ("counters", "gauges", "hists")

    def __init__(self) -> None:
        self.counters: dict[str, Series] = {}
        self.gauges: dict[str, Series] = {}
        self.hists: dict[str, Hist] = {}

    def count(self, name: str, labels: tuple[str, ...], value: float) -> None:
        series = self.counters.setdefault(name, {})
        series[labels] = series.get(labels, 0.0) + value

    def gauge(self, name: str, labels: tuple[str, ...], value: float) -> None:
        self.gauges.setdefault(name, {})[labels] = value

    def hist(
        self,
        name: str,
        labels: tuple[str, ...],
        bounds: list[float],
        counts: list[float],
        total: float,
    ) -> None:
        series = self.hists.setdefault(name, {})
        old = series.get(labels)
        if old is not None and old[0] == bounds:
            counts = [a + b for a, b in zip(old[1], counts, strict=True)]
            total += old[2]
        series[labels] = (bounds, counts, total)

    def merge(self, other: Snapshot) -> None:
        for name, series in other.counters.items():
            for labels, v in series.items():
                self.count(name, labels, v)
        for name, series in other.gauges.items():
            mine = self.gauges.setdefault(name, {})
            for labels, v in series.items():
                mine[labels] = max(v, mine.get(labels, v))
        for name, hseries in other.hists.items():
            for labels, (bounds, counts, total) in hseries.items():
                self.hist(name, labels, bounds, counts, total)


def snapshot(m: Metrics) -> Snapshot:
    """The current values of `m`, as plain data."""
    snap = Snapshot()
    idv = m.labels
    for (p, e, c), v in m.requests.items():
        snap.count(mn.REQUESTS_TOTAL, (*idv, p, e, str(c)), v)
    for (p, e), (counts, total) in m.latency.items():
        snap.hist(mn.LATENCY_SECONDS, (*idv, p, e), list(mn.LATENCY_BUCKETS), list(counts), total)
    for reason, v in m.invalid.items():
        snap.count(mn.INVALID_INPUTS_TOTAL, (*idv, reason), v)
    for outcome, v in m.feedback.items():
        snap.count(mn.FEEDBACK_TOTAL, (*idv, outcome), v)
    for (label, cls), v in m.confusion.items():
        snap.count(mn.FEEDBACK_CONFUSION_TOTAL, (*idv, label, cls), v)
    for outcome, v in m.reloads.items():
        snap.count(mn.RELOADS_TOTAL, (*idv, outcome), v)
    snap.gauge(mn.MODEL_READY, idv, 1.0 if m.ready else 0.0)
    s = m.stats
    if s is None:
        return snap
    model = s.model
    if model.kind == "regression":
        snap.count(mn.FEEDBACK_ABSOLUTE_ERROR_TOTAL, idv, m.feedback_abs)
        snap.count(mn.FEEDBACK_SQUARED_ERROR_TOTAL, idv, m.feedback_sq)
    snap.gauge(mn.MODEL_INFO, (*idv, model.format, model.sha256, model.kind), 1.0)
    for name, extra, v in s.reference:
        snap.gauge(name, (*idv, *extra), v)
    snap.count(mn.ROWS_TOTAL, idv, s.rows)
    snap.hist(mn.BATCH_ROWS, idv, list(mn.BATCH_ROWS_BUCKETS), list(s.batch_counts), s.batch_sum)
    if s.class_counts is not None and s.classes is not None:
        for cls, v in zip(s.classes, s.class_counts.tolist(), strict=True):
            snap.count(mn.PREDICTIONS_TOTAL, (*idv, cls), v)
    if s.value_counts is not None and s.value_bounds is not None:
        snap.hist(
            mn.PREDICTION_VALUE, idv, s.value_bounds.tolist(), s.value_counts.tolist(), s.value_sum
        )
    if s.edges is not None:
        counts = s.num_counts.tolist()
        for k, name in enumerate(s.num_names):
            off = int(s.offsets[k])
            for b in range(s.num_bins[k]):
                snap.count(mn.FEATURE_BIN_TOTAL, (*idv, name, str(b)), counts[off + b])
            if s.num_missing[k]:
                snap.count(mn.FEATURE_BIN_TOTAL, (*idv, name, "missing"), int(s.num_missing[k]))
        for k, (_, name, _index) in enumerate(s.cat):
            for b, v in enumerate(s.cat_counts[k].tolist()):
                snap.count(mn.FEATURE_BIN_TOTAL, (*idv, name, str(b)), v)
            if s.cat_missing[k]:
                snap.count(mn.FEATURE_BIN_TOTAL, (*idv, name, "missing"), s.cat_missing[k])
    return snap


_ID = list(mn.IDENTITY_LABELS)
# name -> (help, extra label names), in exposition order
_COUNTERS: dict[str, tuple[str, list[str]]] = {
    mn.REQUESTS_TOTAL: ("HTTP requests by protocol, endpoint and status code.",
                        [mn.PROTOCOL, mn.ENDPOINT, mn.CODE]),
    mn.INVALID_INPUTS_TOTAL: ("Rejected requests by reason.", [mn.REASON]),
    mn.FEEDBACK_TOTAL: ("Feedback label rows by outcome.", [mn.OUTCOME]),
    mn.FEEDBACK_ABSOLUTE_ERROR_TOTAL: ("Sum of |label - prediction| over feedback rows.", []),
    mn.FEEDBACK_SQUARED_ERROR_TOTAL: ("Sum of squared errors over feedback rows.", []),
    mn.FEEDBACK_CONFUSION_TOTAL: ("Feedback rows by true label and predicted class.",
                                  [mn.LABEL, mn.CLASS]),
    mn.RELOADS_TOTAL: ("Model reloads by outcome.", [mn.OUTCOME]),
    mn.ROWS_TOTAL: ("Rows predicted.", []),
    mn.PREDICTIONS_TOTAL: ("Predicted rows by class.", [mn.CLASS]),
    mn.FEATURE_BIN_TOTAL: ("Input rows by feature and reference-profile bin.",
                           [mn.FEATURE, mn.BIN]),
}  # fmt: skip
# Extra labels None: the series' last two values are a label name and its value (the label
# differs by model kind), kept in the order they were recorded.
_GAUGES: dict[str, tuple[str, list[str] | None]] = {
    mn.MODEL_READY: ("1 when the model is loaded and warmed up.", []),
    mn.MODEL_INFO: ("The served model.", ["format", "sha256", "kind"]),
    mn.REFERENCE_FEATURE_SHARE: ("Reference profile's share of rows per feature bin.",
                                 [mn.FEATURE, mn.BIN, mn.KIND]),
    mn.REFERENCE_ROWS: ("Rows the reference profile was computed from.", []),
    mn.REFERENCE_PREDICTION_SHARE: ("Reference profile's share of predictions per class "
                                    "(classifiers) or per prediction_value bucket (regressors).",
                                    None),
}  # fmt: skip
_HISTS: dict[str, tuple[str, list[str]]] = {
    mn.LATENCY_SECONDS: ("Inference request latency in seconds.", [mn.PROTOCOL, mn.ENDPOINT]),
    mn.BATCH_ROWS: ("Rows per model call after batching.", []),
    mn.PREDICTION_VALUE: ("Predicted values.", []),
}


def families(snap: Snapshot) -> Iterator[Metric]:
    for name, (doc, extra) in _COUNTERS.items():
        fam = CounterMetricFamily(name, doc, labels=[*_ID, *extra])
        for labels, v in sorted(snap.counters.get(name, {}).items()):
            fam.add_metric(list(labels), v)
        yield fam
    for name, (doc, extra) in _GAUGES.items():
        if name in snap.gauges:
            if extra is None:
                g = GaugeMetricFamily(name, doc, labels=_ID)
                for (*ident, key, value), v in snap.gauges[name].items():
                    named = {**dict(zip(_ID, ident, strict=True)), key: value}
                    g.samples.append(Sample(name, named, v))
            else:
                g = GaugeMetricFamily(name, doc, labels=[*_ID, *extra])
                for labels, v in sorted(snap.gauges[name].items()):
                    g.add_metric(list(labels), v)
            yield g
    for name, (doc, extra) in _HISTS.items():
        if name in snap.hists:
            h = HistogramMetricFamily(name, doc, labels=[*_ID, *extra])
            for labels, (bounds, counts, total) in sorted(snap.hists[name].items()):
                h.add_metric(list(labels), _cumulative(bounds, counts), total)
            yield h


class RuntimeCollector:
    """prometheus-client collector: this process's metrics, plus the other workers' when
    `others` (→ their latest snapshots) is set."""

    def __init__(
        self, get: Callable[[], Metrics], others: Callable[[], list[Snapshot]] | None
    ) -> None:
        self.get = get
        self.others = others

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        snap = snapshot(self.get())
        if self.others is not None:
            for other in self.others():
                snap.merge(other)
        yield from families(snap)


def _cumulative(bounds: Any, counts: list[float]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    acc = 0.0
    for b, c in zip(bounds, counts, strict=False):
        acc += c
        out.append((_fmt(float(b)), acc))
    acc += counts[-1]
    out.append(("+Inf", acc))
    return out


def _fmt(v: float) -> str:
    return repr(v) if v != int(v) or abs(v) >= 1e15 else f"{v:.1f}"


def make_registry(
    get: Callable[[], Metrics], others: Callable[[], list[Snapshot]] | None = None
) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RuntimeCollector(get, others))
    ProcessCollector(registry=reg)
    return reg


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
