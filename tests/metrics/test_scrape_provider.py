"""The scrape provider: exact windows from real runtimes, and its rules on fake pods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import (
    CANARY_BAD,
    CANARY_GOOD,
    FAILING_ROW,
    FEATURES,
    SETOSA_ROW,
    SHORT_ROW,
    STABLE,
    VERSICOLOR_ROW,
    VIRGINICA_ROW,
    Runtimes,
)

from serinus.api.spec import AnalysisSpec
from serinus.api.status import Verdict
from serinus.core.judge import judge
from serinus.metrics.provider import AnalysisTarget, ScrapeError
from serinus.metrics.scrape import NO_BASELINE, ScrapeProvider
from serinus.metrics.sources import ProcessMetricsSource
from serinus_runtime import metric_names as mn

T0 = datetime(2030, 1, 1, tzinfo=UTC)


# --- fakes ---------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class FakePods:
    """A MetricsSource whose pods' counters the test sets: revision → pod → exposition text."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, str]] = {}
        self.broken: set[str] = set()

    def set(self, revision: str, pod: str, ok: int, failed: int = 0, started: float = 1.0) -> None:
        self.pods.setdefault(revision, {})[pod] = exposition(ok, failed, started)

    def remove(self, revision: str, pod: str) -> None:
        del self.pods[revision][pod]

    def scrape(self, revision: str) -> dict[str, str]:
        if revision in self.broken:
            raise ScrapeError(f"pod {revision}-0: connection refused")
        return dict(self.pods.get(revision, {}))


def exposition(ok: int, failed: int, started: float) -> str:
    """A runtime's /metrics with `ok` 200s and `failed` 500s on the V2 infer endpoint, one
    health check that must not count, and the process start time."""
    lines = [
        f"# TYPE {mn.REQUESTS_TOTAL} counter",
        f'{mn.REQUESTS_TOTAL}{{endpoint="infer",code="200",model="m"}} {ok}',
        f'{mn.REQUESTS_TOTAL}{{endpoint="health_ready",code="200",model="m"}} 7',
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {started}",
    ]
    if failed:
        lines.insert(2, f'{mn.REQUESTS_TOTAL}{{endpoint="infer",code="500",model="m"}} {failed}')
    return "\n".join(lines) + "\n"


TARGET = AnalysisTarget(name="m", namespace="ns", stable="s1", canary="c1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pods() -> FakePods:
    source = FakePods()
    source.set("s1", "stable-0", ok=100)
    source.set("c1", "canary-0", ok=10, failed=1)
    return source


@pytest.fixture
def provider(pods: FakePods, clock: FakeClock) -> ScrapeProvider:
    return ScrapeProvider(pods, clock=clock)


def read_window(provider: ScrapeProvider, clock: FakeClock, seconds: float = 60):
    start = clock.now
    return provider.window(TARGET, start, clock.advance(seconds))


# --- rules, on fake pods -------------------------------------------------------------------------


def test_window_counts_what_happened_since_the_mark(provider, pods, clock) -> None:
    provider.mark(TARGET)
    pods.set("s1", "stable-0", ok=150)
    pods.set("c1", "canary-0", ok=30, failed=4)
    window = read_window(provider, clock)
    assert window.error is None and window.interval_seconds == 60
    assert (window.canary.requests, window.canary.errors) == (20 + 3, 3)
    assert (window.stable.requests, window.stable.errors) == (50, 0)


def test_each_window_is_the_next_ones_baseline(provider, pods, clock) -> None:
    provider.mark(TARGET)
    pods.set("c1", "canary-0", ok=15, failed=1)
    assert read_window(provider, clock).canary.requests == 5
    pods.set("c1", "canary-0", ok=22, failed=2)
    second = read_window(provider, clock)
    assert (second.canary.requests, second.canary.errors) == (8, 1)


def test_restarted_pod_counts_its_new_values_like_a_counter_reset(provider, pods, clock) -> None:
    provider.mark(TARGET)
    pods.set("c1", "canary-0", ok=4, failed=0, started=2.0)
    assert read_window(provider, clock).canary.requests == 4
    # Same process start time, but counters went down (e.g. the model was reloaded).
    pods.set("c1", "canary-0", ok=1, failed=0, started=2.0)
    assert read_window(provider, clock).canary.requests == 1


def test_new_pods_count_everything_and_gone_pods_count_nothing(provider, pods, clock) -> None:
    provider.mark(TARGET)
    pods.set("c1", "canary-1", ok=6)
    pods.set("c1", "canary-0", ok=12, failed=1)
    pods.remove("s1", "stable-0")
    pods.set("s1", "stable-1", ok=9)
    window = read_window(provider, clock)
    assert window.canary.requests == 6 + 2
    assert window.stable.requests == 9


def test_no_baseline_is_inconclusive_and_the_next_window_has_one(provider, pods, clock) -> None:
    window = read_window(provider, clock)
    assert window.error == NO_BASELINE
    outcome = judge(AnalysisSpec(), window)
    assert outcome.verdict == Verdict.INCONCLUSIVE
    assert NO_BASELINE in outcome.metrics[0].reason
    pods.set("c1", "canary-0", ok=70, failed=1)
    assert read_window(provider, clock).canary.requests == 60


def test_a_baseline_far_from_the_window_start_is_not_used(provider, pods, clock) -> None:
    provider.mark(TARGET)
    clock.advance(600)  # e.g. a hold: the window starts long after the last sample
    pods.set("c1", "canary-0", ok=500)
    assert read_window(provider, clock).error == NO_BASELINE


def test_a_failed_read_at_the_start_is_named_by_the_window(provider, pods, clock) -> None:
    pods.broken.add("c1")
    provider.mark(TARGET)
    pods.broken.clear()
    error = read_window(provider, clock).error
    assert error is not None and error.startswith(NO_BASELINE)
    assert "canary: the read at the window start failed" in error and "connection refused" in error


def test_unreadable_revision_is_an_error_naming_it(provider, pods, clock) -> None:
    provider.mark(TARGET)
    pods.broken.add("s1")
    window = read_window(provider, clock)
    assert window.canary is None
    assert window.error == (
        "could not read the stable (s1)'s metrics: pod s1-0: connection refused"
    )


def test_text_that_is_not_prometheus_is_an_error(provider, pods, clock) -> None:
    provider.mark(TARGET)
    pods.pods["c1"]["canary-0"] = "<html>hello</html>\n"
    error = read_window(provider, clock).error
    assert error is not None
    assert "canary-0 of the canary (c1) answered /metrics that is not Prometheus text" in error


def test_revision_without_pods_is_not_observed(provider, pods, clock) -> None:
    provider.mark(TARGET)
    pods.pods["c1"] = {}
    window = read_window(provider, clock)
    assert window.error is None and window.canary is None and window.stable is not None
    outcome = judge(AnalysisSpec(), window)
    assert outcome.metrics[0].reason.startswith("no canary observations in the window")


def test_revisions_not_asked_about_are_forgotten(pods, clock) -> None:
    provider = ScrapeProvider(pods, clock=clock, forget_after=timedelta(minutes=10))
    provider.mark(TARGET)
    assert provider.revisions_kept == 2
    clock.advance(11 * 60)
    other = AnalysisTarget(name="m", namespace="ns", stable="s1", canary="c2")
    provider.mark(other)
    assert provider.revisions_kept == 2  # s1 is asked about again, c1 is forgotten


# --- real runtimes -------------------------------------------------------------------------------


def target(canary: str) -> AnalysisTarget:
    return AnalysisTarget(name="iris", stable=STABLE, canary=canary)


@pytest.fixture
def scrape(runtimes: Runtimes):
    with ProcessMetricsSource(runtimes.urls) as source:
        yield ScrapeProvider(source)


def now() -> datetime:
    return datetime.now(UTC)


def stable_classes(runtimes: Runtimes, rows: list[list[float]]) -> list[str]:
    """What the stable iris model predicts for `rows` (asked before the window starts)."""
    response = runtimes.stable.infer(rows)
    assert response.status_code == 200
    return response.json()["outputs"][0]["data"]


@pytest.mark.slow
def test_window_matches_the_traffic_sent_exactly(runtimes: Runtimes, scrape) -> None:
    rows = [SETOSA_ROW, VERSICOLOR_ROW, VIRGINICA_ROW]
    expected_stable_classes = stable_classes(runtimes, rows)
    bad = runtimes.canary_bad
    start = now()
    scrape.mark(target(CANARY_BAD))
    bad.send([SETOSA_ROW, VIRGINICA_ROW], times=20, expect=200)
    bad.send([VERSICOLOR_ROW], times=5, expect=200)
    bad.send([FAILING_ROW], times=6, expect=500)
    bad.send([SHORT_ROW], times=3, expect=400)
    runtimes.stable.send(rows, times=12, expect=200)
    window = scrape.window(target(CANARY_BAD), start, now())

    assert window.error is None
    canary, stable = window.canary, window.stable
    assert (canary.requests, canary.errors) == (20 + 5 + 6 + 3, 6)
    assert canary.latency_buckets[-1] == (float("inf"), 34)
    assert canary.prediction_counts == {"setosa": 20, "versicolor": 5, "virginica": 20}
    assert canary.prediction_buckets is None
    assert sorted(canary.feature_bins) == sorted(FEATURES)
    assert all(sum(bins) == 45 for bins in canary.feature_bins.values())  # predicted rows
    assert (stable.requests, stable.errors) == (12, 0)
    assert stable.latency_buckets[-1] == (float("inf"), 12)
    expected = {label: 12 * expected_stable_classes.count(label) for label in set(
        expected_stable_classes)}  # fmt: skip
    assert {k: v for k, v in stable.prediction_counts.items() if v} == expected


@pytest.mark.slow
def test_judge_fails_a_canary_that_answers_500(runtimes: Runtimes, scrape) -> None:
    start = now()
    scrape.mark(target(CANARY_BAD))
    runtimes.canary_bad.send([SETOSA_ROW], times=45, expect=200)
    runtimes.canary_bad.send([FAILING_ROW], times=15, expect=500)
    runtimes.stable.send([SETOSA_ROW], times=60, expect=200)
    outcome = judge(AnalysisSpec(), scrape.window(target(CANARY_BAD), start, now()))

    error_rate = outcome.metrics[0]
    assert error_rate.name == "error-rate" and error_rate.verdict == Verdict.FAIL
    assert error_rate.reason.startswith(
        "error-rate 25.0% > max 5.0%, significantly worse than stable 0%"
    )
    assert outcome.verdict == Verdict.FAIL and outcome.canary_requests == 60


@pytest.mark.slow
def test_judge_passes_a_canary_without_errors(runtimes: Runtimes, scrape) -> None:
    rows = [SETOSA_ROW, VERSICOLOR_ROW, VIRGINICA_ROW]
    start = now()
    scrape.mark(target(CANARY_GOOD))
    runtimes.canary_good.send(rows, times=60, expect=200)
    runtimes.stable.send(rows, times=60, expect=200)
    outcome = judge(AnalysisSpec(), scrape.window(target(CANARY_GOOD), start, now()))

    error_rate = outcome.metrics[0]
    assert error_rate.verdict == Verdict.PASS
    assert error_rate.reason == "error-rate 0% within max 5.0% (stable 0%)"


@pytest.mark.slow
def test_judge_waits_for_traffic_when_the_canary_has_none(runtimes: Runtimes, scrape) -> None:
    start = now()
    scrape.mark(target(CANARY_GOOD))
    runtimes.stable.send([SETOSA_ROW], times=10, expect=200)
    outcome = judge(AnalysisSpec(), scrape.window(target(CANARY_GOOD), start, now()))

    assert outcome.verdict == Verdict.INCONCLUSIVE and outcome.canary_requests == 0
    assert all(m.reason.startswith("only 0 canary requests in the ") for m in outcome.metrics)
    assert all(m.reason.endswith(" window, need 50") for m in outcome.metrics)


def test_process_source_names_the_processes_that_do_not_answer() -> None:
    nobody = ProcessMetricsSource(lambda revision: ["http://127.0.0.1:9"])
    with nobody, pytest.raises(ScrapeError) as raised:
        nobody.scrape("r1")
    message = str(raised.value)
    assert message.startswith("no runtime process of revision r1 answered: ")
    assert "http://127.0.0.1:9/metrics" in message and "check that they are running" in message


def test_empty_window_is_measured_not_raised(provider, pods, clock) -> None:
    provider.mark(TARGET)
    window = provider.window(TARGET, clock.now, clock.now)
    assert window.error is None and window.canary.requests == 0
    assert judge(AnalysisSpec(), window).verdict == Verdict.INCONCLUSIVE
