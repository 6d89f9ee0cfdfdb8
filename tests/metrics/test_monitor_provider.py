"""`monitor()` of both providers: the stable revision's inputs, predictions, integrity counters,
feedback and reference shares, read from real runtimes (and a real Prometheus).

Two runtimes are watched: the session's STABLE iris classifier, and REGRESSOR, a regressor with
a categorical feature (`color`, one-hot encoded, unknown colors ignored) packed here. Known
traffic — predictions, rejected inputs, feedback labels — is sent to both, and what a monitoring
check would see is compared with it: exactly for the scrape provider, within increase()'s
extrapolation for Prometheus (see test_prometheus_provider.py's docstring: the same warm-up and
window rules apply here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    FEATURES,
    SETOSA_ROW,
    SHORT_ROW,
    STABLE,
    VERSICOLOR_ROW,
    VIRGINICA_ROW,
    PrometheusServer,
    Runtime,
    Runtimes,
    free_port,
    prometheus_binary,
    wait_until,
)
from test_scrape_provider import T0, FakeClock

from serinus.api.spec import AnalysisProvider, AnalysisSpec
from serinus.core.monitor_window import MonitorWindow
from serinus.metrics.prometheus import PrometheusProvider
from serinus.metrics.provider import MonitorTarget, ScrapeError
from serinus.metrics.registry import NO_PROMETHEUS, provider_for
from serinus.metrics.scrape import MONITOR_SAMPLES_KEPT, NO_MONITOR_BASELINE, ScrapeProvider
from serinus.metrics.sources import ProcessMetricsSource
from serinus_runtime import metric_names as mn
from serinus_runtime.bundle import ReferenceProfile, read_bundle

MODEL = "iris"  # the conftest's Runtime serves every bundle under this name
REGRESSOR = "rev-regressor"

CLASSIFIER_ROWS = [SETOSA_ROW, VERSICOLOR_ROW, VIRGINICA_ROW]
CLASSIFIER_OK, CLASSIFIER_SHORT = 12, 3
RIGHT_LABELS, WRONG_LABELS = ["setosa", "versicolor", "virginica"], ["virginica"] * 3
RIGHT_FEEDBACK = 8
"""Of the CLASSIFIER_OK requests, so many get the right labels, the others WRONG_LABELS."""
REGRESSOR_ROWS: list[tuple[str, float]] = [("red", 0.5), ("blue", -1.0), ("purple", 0.1),
                                           ("green", 2.0)]  # fmt: skip
"""`purple` is a color the reference never saw: the categorical feature's `other` bin."""
REGRESSOR_OK = 10
REGRESSOR_LABELS = [3.0, -1.0, 0.0, 2.5]


def nonzero(confusion: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The pairs that counted something (the runtime exposes every pair of a small classifier
    at 0 from start-up)."""
    rows = {label: {c: n for c, n in row.items() if n} for label, row in confusion.items()}
    return {label: row for label, row in rows.items() if row}


def now() -> datetime:
    return datetime.now(UTC)


def target(revision: str) -> MonitorTarget:
    return MonitorTarget(name=MODEL, revision=revision)


# --- the regressor runtime, and known traffic ----------------------------------------------------


@pytest.fixture(scope="module")
def regressor_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from serinus_runtime.pack import pack

    rng = np.random.default_rng(0)
    colors = rng.choice(["red", "green", "blue"], size=300)
    size = rng.normal(size=300)
    x = np.empty((300, 2), dtype=object)
    x[:, 0], x[:, 1] = colors, size
    y = 3.0 * (colors == "red") + size + rng.normal(scale=0.1, size=300)
    estimator = make_pipeline(
        ColumnTransformer(
            [("c", OneHotEncoder(handle_unknown="ignore"), [0]), ("n", "passthrough", [1])]
        ),
        LinearRegression(),
    ).fit(x, y)
    out = tmp_path_factory.mktemp("bundles") / "regressor"
    pack(estimator, x, out, name="regressor", version="1", y=y, feature_names=["color", "size"])
    return out


@pytest.fixture(scope="module")
def regressor(regressor_bundle: Path, runtimes: Runtimes) -> Iterator[Runtime]:
    manifest, _ = read_bundle(regressor_bundle)
    trusted = ["--trusted-types", *manifest.trusted_types] if manifest.trusted_types else []
    runtime = Runtime(REGRESSOR, "stable", "--model-uri", str(regressor_bundle), *trusted)
    try:
        runtime.wait_ready()
        yield runtime
    finally:
        runtime.stop()


def profile_of(bundle: Path) -> ReferenceProfile:
    _, profile = read_bundle(bundle)
    assert profile is not None
    return profile


@dataclass
class Sent:
    """What one round of traffic did, as the runtimes answered it."""

    classes: list[str] = field(default_factory=list)
    """The stable classifier's prediction per row (CLASSIFIER_OK x 3 rows)."""
    confusion: dict[str, dict[str, float]] = field(default_factory=dict)
    values: list[float] = field(default_factory=list)
    """The regressor's prediction per row."""
    absolute_error: float = 0.0
    squared_error: float = 0.0

    @property
    def correct(self) -> float:
        return sum(row.get(label, 0.0) for label, row in self.confusion.items())

    @property
    def incorrect(self) -> float:
        return sum(sum(row.values()) for row in self.confusion.values()) - self.correct


def give_feedback(runtime: Runtime, request_id: str, labels: list) -> None:
    body = {"id": request_id, "labels": labels}
    response = runtime.client.post(f"/v2/models/{MODEL}/feedback", json=body)
    assert response.status_code == 200, response.text


def regressor_request(runtime: Runtime) -> tuple[str, list[float]]:
    colors, sizes = zip(*REGRESSOR_ROWS, strict=True)
    shape = [len(REGRESSOR_ROWS)]
    body = {"inputs": [
        {"name": "color", "datatype": "BYTES", "shape": shape, "data": list(colors)},
        {"name": "size", "datatype": "FP64", "shape": shape, "data": list(sizes)},
    ]}  # fmt: skip
    response = runtime.client.post(f"/v2/models/{MODEL}/infer", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    return answer["id"], answer["outputs"][0]["data"]


def send_traffic(stable: Runtime, regressor: Runtime) -> Sent:
    """Predictions, rejected inputs and feedback (plus one label for an unknown request id)."""
    sent = Sent()
    for index in range(CLASSIFIER_OK):
        response = stable.infer(CLASSIFIER_ROWS)
        assert response.status_code == 200
        answer = response.json()
        predicted = answer["outputs"][0]["data"]
        labels = RIGHT_LABELS if index < RIGHT_FEEDBACK else WRONG_LABELS
        give_feedback(stable, answer["id"], labels)
        sent.classes += predicted
        for label, cls in zip(labels, predicted, strict=True):
            row = sent.confusion.setdefault(label, {})
            row[cls] = row.get(cls, 0.0) + 1
    stable.send([SHORT_ROW], times=CLASSIFIER_SHORT, expect=400)
    give_feedback(stable, "never-sent", ["setosa"])
    for _ in range(REGRESSOR_OK):
        request_id, values = regressor_request(regressor)
        give_feedback(regressor, request_id, REGRESSOR_LABELS)
        sent.values += values
        errors = [label - value for label, value in zip(REGRESSOR_LABELS, values, strict=True)]
        sent.absolute_error += sum(abs(e) for e in errors)
        sent.squared_error += sum(e * e for e in errors)
    return sent


def cumulative(values: list[float], bounds: list[float]) -> list[tuple[float, float]]:
    """A cumulative histogram of `values` with upper bounds `bounds` (+Inf added)."""
    return [(le, float(sum(v <= le for v in values))) for le in [*bounds, math.inf]]


def assert_same_shares(shares: dict[str, list[float]], profile: ReferenceProfile) -> None:
    expected = {f.name: f.frequencies for f in profile.features}
    assert sorted(shares) == sorted(expected)
    for feature, frequencies in expected.items():
        assert shares[feature] == pytest.approx(frequencies, rel=1e-9), feature


def assert_buckets(
    buckets: list[tuple[float, float]] | None, expected: list[tuple[float, float]]
) -> None:
    """Same upper bounds, exactly; same values up to float noise."""
    assert buckets is not None
    assert [le for le, _ in buckets] == [le for le, _ in expected]
    assert [n for _, n in buckets] == pytest.approx([n for _, n in expected], rel=1e-9)


def assert_references(
    stable: MonitorWindow, regressor: MonitorWindow, classifier: ReferenceProfile,
    regression: ReferenceProfile,
) -> None:  # fmt: skip
    """The reference shares are the bundles' profiles (both have no missing values)."""
    assert_same_shares(stable.reference_features, classifier)
    assert stable.reference_rows == classifier.rows
    assert regressor.reference_rows == regression.rows
    assert stable.categorical == frozenset()
    predictions = classifier.predictions
    assert stable.reference_predictions == pytest.approx(
        dict(zip(predictions.classes, predictions.frequencies, strict=True)), rel=1e-9
    )
    assert stable.reference_prediction_buckets is None and stable.prediction_buckets is None

    assert_same_shares(regressor.reference_features, regression)
    assert regressor.categorical == {"color"}
    values = regression.predictions
    bounds = [*values.edges[1:-1], math.inf]
    expected = list(zip(bounds, values.frequencies, strict=True))
    assert_buckets(regressor.reference_prediction_buckets, expected)
    assert regressor.reference_predictions is None and regressor.prediction_counts is None


# --- the scrape provider, real runtimes ----------------------------------------------------------


@pytest.fixture
def scrape(runtimes: Runtimes, regressor: Runtime) -> Iterator[ScrapeProvider]:
    urls = {STABLE: [runtimes.stable.url], REGRESSOR: [regressor.url]}
    with ProcessMetricsSource(lambda revision: urls.get(revision, [])) as source:
        yield ScrapeProvider(source)


@pytest.mark.slow
def test_scrape_monitor_counts_the_traffic_exactly(
    runtimes: Runtimes, regressor: Runtime, regressor_bundle: Path, scrape: ScrapeProvider
) -> None:
    for revision in (STABLE, REGRESSOR):
        first = scrape.monitor(target(revision), now(), 300, 3600)
        assert first == MonitorWindow(
            error=NO_MONITOR_BASELINE, drift_seconds=300, label_seconds=3600
        )
    sent = send_traffic(runtimes.stable, regressor)
    stable = scrape.monitor(target(STABLE), now(), 300, 3600)
    mixed = scrape.monitor(target(REGRESSOR), now(), 300, 3600)

    assert stable.error is None and mixed.error is None
    # The history is shorter than both windows: they cover what it holds, a few seconds.
    assert 0 < stable.drift_seconds == stable.label_seconds < 60
    assert stable.requests == CLASSIFIER_OK + CLASSIFIER_SHORT
    assert stable.rows == 3 * CLASSIFIER_OK
    assert stable.invalid == {"feature_count": CLASSIFIER_SHORT}
    assert {f: sum(bins) for f, bins in stable.feature_bins.items()} == dict.fromkeys(
        FEATURES, 3 * CLASSIFIER_OK
    )
    assert stable.feature_missing == {}
    assert stable.prediction_counts == {c: sent.classes.count(c) for c in RIGHT_LABELS}
    assert stable.feedback == {
        "correct": sent.correct, "incorrect": sent.incorrect, "unknown_id": 1,
    }  # fmt: skip
    assert nonzero(stable.confusion) == sent.confusion  # every pair exists, at 0 unless seen
    assert sum(sum(row.values()) for row in stable.confusion.values()) == 3 * CLASSIFIER_OK

    regression = profile_of(regressor_bundle)
    rows = len(REGRESSOR_ROWS) * REGRESSOR_OK
    assert (mixed.requests, mixed.rows, mixed.invalid) == (REGRESSOR_OK, rows, {})
    assert mixed.feature_bins["color"][-1] == REGRESSOR_OK  # purple: the `other` bin
    assert sum(mixed.feature_bins["color"]) == sum(mixed.feature_bins["size"]) == rows
    assert mixed.prediction_buckets == cumulative(
        sent.values, list(regression.predictions.edges[1:-1])
    )
    assert mixed.feedback == {"scored": rows}
    assert mixed.feedback_absolute_error == pytest.approx(sent.absolute_error, rel=1e-9)
    assert mixed.feedback_squared_error == pytest.approx(sent.squared_error, rel=1e-9)
    assert mixed.confusion == {}
    assert_references(stable, mixed, profile_of(BUNDLES_IRIS), regression)

    # A check without new traffic: the windows still reach back to the first sample.
    again = scrape.monitor(target(STABLE), now(), 300, 3600)
    assert (again.requests, again.rows, again.feedback) == (
        stable.requests,
        stable.rows,
        stable.feedback,
    )
    assert again.drift_seconds > stable.drift_seconds


@pytest.mark.slow
def test_scrape_monitor_of_a_revision_without_processes_is_an_error(
    scrape: ScrapeProvider,
) -> None:
    window = scrape.monitor(target("rev-gone"), now(), 60, 600)
    assert window == MonitorWindow(
        error="the stable version (rev-gone) has no ready pod to read metrics from",
        drift_seconds=60,
        label_seconds=600,
    )


# --- the scrape provider's history, on fake pods -------------------------------------------------


class FakeStable:
    """One stable pod whose counters the test sets; `broken` makes it unreadable."""

    def __init__(self) -> None:
        self.text = ""
        self.broken = False
        self.set(requests=0, labels=0)

    def set(self, requests: int, labels: int, missing: int = 0, started: float = 1.0) -> None:
        lines = [
            f"# TYPE {mn.REQUESTS_TOTAL} counter",
            f'{mn.REQUESTS_TOTAL}{{endpoint="infer",code="200"}} {requests}',
            f"# TYPE {mn.FEEDBACK_TOTAL} counter",
            f'{mn.FEEDBACK_TOTAL}{{outcome="correct"}} {labels}',
            f"# TYPE {mn.FEATURE_BIN_TOTAL} counter",
            f'{mn.FEATURE_BIN_TOTAL}{{feature="f",bin="0"}} {requests}',
            f'{mn.FEATURE_BIN_TOTAL}{{feature="f",bin="missing"}} {missing}',
            f"# TYPE {mn.REFERENCE_FEATURE_SHARE} gauge",
            f'{mn.REFERENCE_FEATURE_SHARE}{{feature="f",bin="0",kind="numeric"}} 0.9',
            f'{mn.REFERENCE_FEATURE_SHARE}{{feature="f",bin="missing",kind="numeric"}} 0.1',
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {started}",
        ]
        self.text = "\n".join(lines) + "\n"

    def scrape(self, revision: str) -> dict[str, str]:
        if self.broken:
            raise ScrapeError(f"pod {revision}-0: connection refused")
        return {"stable-0": self.text} if revision == "s1" else {}


FAKE = MonitorTarget(name="m", namespace="ns", revision="s1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pod() -> FakeStable:
    return FakeStable()


@pytest.fixture
def fake(pod: FakeStable, clock: FakeClock) -> ScrapeProvider:
    return ScrapeProvider(pod, clock=clock)


def check(
    fake: ScrapeProvider, clock: FakeClock, at: float, drift: int = 60, label: int = 180
) -> MonitorWindow:
    """A monitoring check `at` seconds after T0."""
    clock.now = T0 + timedelta(seconds=at)
    return fake.monitor(FAKE, clock.now, drift, label)


def test_drift_and_label_windows_count_from_their_own_samples(fake, pod, clock) -> None:
    for at in range(0, 301, 60):
        pod.set(requests=10 * at, labels=at)
        window = check(fake, clock, at)
    assert window.error is None
    assert (window.drift_seconds, window.label_seconds) == (60, 180)
    assert window.requests == 10 * 60 and window.feature_bins == {"f": [600]}
    assert window.feedback == {"correct": 180}
    # The gauges come from the sample taken now; the `missing` bin is no reference bin.
    assert window.reference_features == {"f": [0.9]}


def test_a_history_shorter_than_the_label_window_says_what_it_covers(fake, pod, clock) -> None:
    pod.set(requests=0, labels=0)
    assert check(fake, clock, 0).error == NO_MONITOR_BASELINE
    pod.set(requests=1200, labels=120)
    window = check(fake, clock, 120, drift=60, label=3600)
    # No sample 60 s back: the oldest one (120 s back) is the drift window's baseline too.
    assert (window.drift_seconds, window.label_seconds) == (120, 120)
    assert window.requests == 1200 and window.feedback == {"correct": 120}


def test_a_sample_a_little_after_the_window_start_is_its_baseline(fake, pod, clock) -> None:
    check(fake, clock, 0)
    pod.set(requests=100, labels=10)
    check(fake, clock, 60.5)  # the check came half a second late
    pod.set(requests=700, labels=30)
    window = check(fake, clock, 120, drift=60, label=120)
    assert window.drift_seconds == 60 and window.requests == 600  # since 60.5
    assert window.label_seconds == 120 and window.feedback == {"correct": 30}  # since 0


def test_the_history_keeps_the_label_window_only_and_is_bounded(fake, pod, clock) -> None:
    for at in range(0, 3600, 60):
        pod.set(requests=at, labels=0)
        check(fake, clock, at, drift=60, label=600)
    # The label window's 10 samples, the one just before it, and the one taken now.
    assert fake.monitored_kept == {"s1": 12}
    for at in range(3600, 3600 + 100):
        check(fake, clock, at, drift=1, label=3600)
    assert fake.monitored_kept == {"s1": MONITOR_SAMPLES_KEPT}


def test_restarted_pod_counts_its_new_values_and_missing_values_count(fake, pod, clock) -> None:
    pod.set(requests=500, labels=50)
    check(fake, clock, 0)
    pod.set(requests=30, labels=2, missing=4, started=2.0)
    window = check(fake, clock, 60)
    assert window.requests == 30 and window.feedback == {"correct": 2}
    assert window.feature_missing == {"f": 4}


def test_a_read_that_fails_is_an_error_naming_the_revision(fake, pod, clock) -> None:
    check(fake, clock, 0)
    pod.broken = True
    window = check(fake, clock, 60)
    assert window.error == "could not read the stable (s1)'s metrics: pod s1-0: connection refused"
    assert (window.drift_seconds, window.label_seconds) == (60, 180)


def test_monitored_revisions_not_checked_are_forgotten_after_their_label_window(pod, clock) -> None:
    provider = ScrapeProvider(pod, clock=clock, forget_after=timedelta(minutes=10))
    check(provider, clock, 0, drift=3600, label=7200)
    clock.now = T0 + timedelta(hours=2)
    provider.monitor(MonitorTarget(name="m", revision="other"), clock.now, 60, 60)
    assert "s1" in provider.monitored_kept  # an hourly check with a 2 h label window
    clock.now = T0 + timedelta(hours=3, minutes=1)
    provider.monitor(MonitorTarget(name="m", revision="other"), clock.now, 60, 60)
    assert "s1" not in provider.monitored_kept


# --- the prometheus provider ---------------------------------------------------------------------

BUNDLES_IRIS = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "iris"
MIN_WINDOW_SECONDS = 8


@dataclass(frozen=True)
class Observed:
    sent: Sent
    end: datetime
    seconds: int

    def bounds(self, count: float) -> tuple[float, float]:
        """Where increase() of `count` may land (test_prometheus_provider's docstring)."""
        return count, count * self.seconds / (self.seconds - 2.5)

    def within(self, value: float, count: float) -> bool:
        low, high = self.bounds(count)
        return low - 1e-9 <= value <= high


@pytest.fixture(scope="module")
def prometheus(
    runtimes: Runtimes, regressor: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    targets = [r.url.removeprefix("http://") for r in (runtimes.stable, regressor)]
    server = PrometheusServer(prometheus_binary(), tmp_path_factory.mktemp("prom"), targets)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def provider(prometheus: PrometheusServer) -> Iterator[PrometheusProvider]:
    client = PrometheusProvider(prometheus.address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def observed(runtimes: Runtimes, regressor: Runtime, provider: PrometheusProvider) -> Observed:
    """The traffic sent once to create every series (increase() misses a series' first
    sample), then again inside a window of at least 8 s, with scrapes on both sides."""
    send_traffic(runtimes.stable, regressor)
    for revision, series in ((STABLE, mn.FEEDBACK_CONFUSION_TOTAL), (REGRESSOR, mn.ROWS_TOTAL)):
        selector = f'{series}{{revision="{revision}"}}'
        wait_until(lambda s=selector: bool(provider.query(s, time.time())), 20, f"{selector}")
    start = now()
    time.sleep(2.5)
    sent = send_traffic(runtimes.stable, regressor)
    sent_at = time.time()
    for revision in (STABLE, REGRESSOR):
        selector = f'timestamp({mn.ROWS_TOTAL}{{revision="{revision}"}})'
        wait_until(
            lambda s=selector: provider.query(s, time.time())[0].number > sent_at + 0.2,
            20,
            f"Prometheus scraped {revision} after the traffic",
        )
    # At least 8 s, and 3.5 s without traffic at the end (the short label window's test).
    time.sleep(max(0, 3.5 - (time.time() - sent_at), MIN_WINDOW_SECONDS - (now() - start).seconds))
    end = now()
    return Observed(sent, end, round((end - start).total_seconds()))


@pytest.mark.slow
def test_prometheus_monitor_matches_the_traffic(
    provider: PrometheusProvider, observed: Observed, regressor_bundle: Path
) -> None:
    seconds, sent = observed.seconds, observed.sent
    stable = provider.monitor(target(STABLE), observed.end, seconds, seconds)
    mixed = provider.monitor(target(REGRESSOR), observed.end, seconds, seconds)

    assert stable.error is None and mixed.error is None
    assert (stable.drift_seconds, stable.label_seconds) == (seconds, seconds)
    assert observed.within(stable.requests, CLASSIFIER_OK + CLASSIFIER_SHORT)
    assert observed.within(stable.rows, 3 * CLASSIFIER_OK)
    assert observed.within(stable.invalid["feature_count"], CLASSIFIER_SHORT)
    # Exact deltas between two scrapes (no extrapolation): one factor for all of them.
    factor = stable.rows / (3 * CLASSIFIER_OK)
    for bins in stable.feature_bins.values():
        assert sum(bins) == pytest.approx(stable.rows)
    assert stable.prediction_counts == pytest.approx(
        {c: factor * sent.classes.count(c) for c in RIGHT_LABELS}
    )
    assert stable.feedback == pytest.approx({
        "correct": factor * sent.correct, "incorrect": factor * sent.incorrect,
        "unknown_id": factor,
    })  # fmt: skip
    assert sorted(nonzero(stable.confusion)) == sorted(sent.confusion)
    for label, row in sent.confusion.items():
        expected = {cls: factor * n for cls, n in row.items()}
        assert nonzero(stable.confusion)[label] == pytest.approx(expected), label

    regression = profile_of(regressor_bundle)
    rows = len(REGRESSOR_ROWS) * REGRESSOR_OK
    assert observed.within(mixed.rows, rows)
    factor = mixed.rows / rows
    assert mixed.requests == pytest.approx(factor * REGRESSOR_OK)
    assert mixed.feature_bins["color"][-1] == pytest.approx(factor * REGRESSOR_OK)
    expected = cumulative(sent.values, list(regression.predictions.edges[1:-1]))
    assert_buckets(mixed.prediction_buckets, [(le, factor * n) for le, n in expected])
    assert mixed.feedback == pytest.approx({"scored": factor * rows})
    assert mixed.feedback_absolute_error == pytest.approx(factor * sent.absolute_error)
    assert mixed.feedback_squared_error == pytest.approx(factor * sent.squared_error)
    assert_references(stable, mixed, profile_of(BUNDLES_IRIS), regression)


@pytest.mark.slow
def test_prometheus_label_window_is_read_apart_from_the_drift_window(
    provider: PrometheusProvider, observed: Observed
) -> None:
    window = provider.monitor(target(STABLE), observed.end, observed.seconds, 2)
    assert window.error is None and window.label_seconds == 2
    assert observed.within(window.rows, 3 * CLASSIFIER_OK)
    assert window.feedback and set(window.feedback.values()) == {0.0}  # none in the last 2 s
    assert all(set(row.values()) == {0.0} for row in window.confusion.values())


@pytest.mark.slow
def test_prometheus_monitor_of_a_revision_never_scraped_names_the_selector(
    provider: PrometheusProvider, observed: Observed
) -> None:
    window = provider.monitor(target("rev-never-deployed"), observed.end, 300, 3600)
    assert window == MonitorWindow(
        error=f"Prometheus at {provider.address} has no series serinus_model_ready"
        '{model="iris",revision="rev-never-deployed"} in the last 300s for the stable version: '
        "check that Prometheus scrapes the stable pods' /metrics and keeps their model and "
        "revision labels",
        drift_seconds=300,
        label_seconds=3600,
    )


def test_unreachable_prometheus_gives_an_error_window() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    nobody = PrometheusProvider(address)
    window = nobody.monitor(target(STABLE), now(), 300, 3600)
    nobody.close()
    assert window.error is not None
    assert window.error.startswith(f"Prometheus at {address}: unreachable (")
    assert window.error.endswith("check analysis.prometheus.address and that Prometheus is running")
    assert (window.drift_seconds, window.label_seconds) == (300, 3600)


def test_unconfigured_prometheus_gives_an_error_window() -> None:
    unconfigured = provider_for(AnalysisSpec(provider=AnalysisProvider.PROMETHEUS), None)
    window = unconfigured.monitor(target(STABLE), now(), 300, 3600)
    assert window == MonitorWindow(error=NO_PROMETHEUS, drift_seconds=300, label_seconds=3600)
