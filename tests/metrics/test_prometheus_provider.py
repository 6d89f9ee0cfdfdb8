"""The prometheus provider against a real Prometheus scraping real runtimes every second.

How exact can the counts be? increase() takes the difference between the first and the last
sample inside the range and extrapolates it to the range's edges (by at most ~1.1 scrape
intervals on each side), so for N requests sent between those two samples it returns
N x W / sampled, with sampled >= W - 2.2 s for 1 s scrapes: a value in [N, N x W / (W - 2.2)].
The tests assert that interval (with 0.3 s of margin for scrape jitter) over a window of at
least 8 s, where it excludes 2 x N, the raw counter after the warm-up; and ratios (error
rate, class shares) up to rounding: every series of one runtime is scraped at the same instants,
so they share one extrapolation factor — provided no series starts the window near zero, where
Prometheus shortens the extrapolation so as not to go below zero. So before the window, the
fixture sends the same traffic once more: it creates every series the window reads (increase()
cannot count a series' first sample) and gives each a start value equal to its increase.
"""

from __future__ import annotations

import http.server
import math
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from conftest import (
    CANARY_BAD,
    CANARY_GOOD,
    FAILING_ROW,
    SETOSA_ROW,
    STABLE,
    VIRGINICA_ROW,
    PrometheusServer,
    Runtimes,
    free_port,
    wait_until,
)

from serinus.api.spec import AnalysisMetric, AnalysisSpec
from serinus.api.status import Verdict
from serinus.core.judge import judge
from serinus.metrics.prometheus import PrometheusProvider
from serinus.metrics.provider import AnalysisTarget

pytestmark = pytest.mark.slow

CANARY_OK, CANARY_FAILED, STABLE_OK, GOOD_OK = 45, 15, 60, 60
MIN_WINDOW_SECONDS = 8


def now() -> datetime:
    return datetime.now(UTC)


def target(canary: str, *custom: AnalysisMetric) -> AnalysisTarget:
    return AnalysisTarget(name="iris", stable=STABLE, canary=canary, custom=custom)


@dataclass(frozen=True)
class Traffic:
    """Known traffic, and the window [start, end] that covers it with samples on both sides."""

    start: datetime
    traffic_start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return round((self.end - self.start).total_seconds())

    def bounds(self, sent: float) -> tuple[float, float]:
        """Where increase() of `sent` requests may land (module docstring)."""
        return sent, sent * self.seconds / (self.seconds - 2.5)


@pytest.fixture(scope="module")
def prometheus(start_prometheus: Callable[[], PrometheusServer]) -> PrometheusServer:
    return start_prometheus()


@pytest.fixture(scope="module")
def provider(prometheus: PrometheusServer) -> Iterator[PrometheusProvider]:
    client = PrometheusProvider(prometheus.address)
    yield client
    client.close()


def scraped(provider: PrometheusProvider, selector: str) -> bool:
    return bool(provider.query(selector, time.time()))


def send_traffic(runtimes: Runtimes) -> None:
    runtimes.canary_bad.send([SETOSA_ROW, VIRGINICA_ROW], times=CANARY_OK, expect=200)
    runtimes.canary_bad.send([FAILING_ROW], times=CANARY_FAILED, expect=500)
    runtimes.stable.send([SETOSA_ROW], times=STABLE_OK, expect=200)
    runtimes.canary_good.send([SETOSA_ROW], times=GOOD_OK, expect=200)


@pytest.fixture(scope="module")
def traffic(runtimes: Runtimes, provider: PrometheusProvider) -> Traffic:
    send_traffic(runtimes)  # see the module docstring
    for revision, code in ((CANARY_BAD, "500"), (STABLE, "200"), (CANARY_GOOD, "200")):
        selector = f'serinus_requests_total{{revision="{revision}",code="{code}"}}'
        wait_until(lambda s=selector: scraped(provider, s), 20, f"Prometheus scraped {selector}")
    start = now()
    time.sleep(2.5)  # a scrape between the window's start and the traffic
    traffic_start = now()
    send_traffic(runtimes)
    sent_at = time.time()
    selector = f'timestamp(serinus_requests_total{{revision="{CANARY_GOOD}",code="200"}})'
    wait_until(
        lambda: provider.query(selector, time.time())[0].number > sent_at + 0.2,
        20,
        "Prometheus scraped the canary after the traffic",
    )
    # At least 8 s, so that the bounds on increase() exclude the raw counter's 2 x N.
    time.sleep(max(1.2, MIN_WINDOW_SECONDS - (now() - start).total_seconds()))
    return Traffic(start=start, traffic_start=traffic_start, end=now())


def test_window_matches_the_traffic_sent(provider: PrometheusProvider, traffic: Traffic) -> None:
    window = provider.window(target(CANARY_BAD), traffic.start, traffic.end)

    assert window.error is None and window.interval_seconds == traffic.seconds
    canary, stable = window.canary, window.stable
    low, high = traffic.bounds(CANARY_OK + CANARY_FAILED)
    assert low <= canary.requests <= high < 2 * low  # the warm-up traffic is not counted
    assert canary.errors == pytest.approx(canary.requests * 0.25, abs=1)
    assert canary.latency_buckets[-1][0] == math.inf
    assert canary.latency_buckets[-1][1] == pytest.approx(canary.requests, abs=0.5)
    bounds = [le for le, _ in canary.latency_buckets]
    assert bounds == sorted(bounds)
    counts = canary.prediction_counts
    assert counts["versicolor"] == 0
    assert counts["setosa"] == pytest.approx(counts["virginica"])
    assert traffic.bounds(CANARY_OK)[0] <= counts["setosa"] <= traffic.bounds(CANARY_OK)[1]
    assert all(
        sum(bins) == pytest.approx(2 * counts["setosa"]) for bins in canary.feature_bins.values()
    )
    low, high = traffic.bounds(STABLE_OK)
    assert low <= stable.requests <= high and stable.errors == 0
    assert canary.custom == {} and stable.custom == {}


def test_judge_fails_the_canary_with_errors_and_passes_the_good_one(
    provider: PrometheusProvider, traffic: Traffic
) -> None:
    bad = judge(AnalysisSpec(), provider.window(target(CANARY_BAD), traffic.start, traffic.end))
    assert bad.verdict == Verdict.FAIL
    assert bad.metrics[0].verdict == Verdict.FAIL
    # 15 of 60 requests failed; the rounding of increase() moves the rate by a few tenths.
    assert re.match(
        r"error-rate 2[456]\.\d% > max 5\.0%, significantly worse than stable 0% \(p",
        bad.metrics[0].reason,
    )

    good = judge(AnalysisSpec(), provider.window(target(CANARY_GOOD), traffic.start, traffic.end))
    assert good.metrics[0].verdict == Verdict.PASS
    assert good.metrics[0].reason == "error-rate 0% within max 5.0% (stable 0%)"


def test_window_without_canary_traffic_is_inconclusive(
    provider: PrometheusProvider, traffic: Traffic
) -> None:
    quiet_end = traffic.traffic_start - timedelta(seconds=0.2)
    window = provider.window(target(CANARY_BAD), traffic.start, quiet_end)
    assert window.error is None and window.canary.requests == 0

    outcome = judge(AnalysisSpec(), window)
    assert outcome.verdict == Verdict.INCONCLUSIVE
    assert outcome.metrics[0].reason == "only 0 canary requests in the 2s window, need 50"


def test_revision_prometheus_never_scraped_is_inconclusive_naming_the_selector(
    provider: PrometheusProvider, traffic: Traffic
) -> None:
    window = provider.window(target("rev-never-deployed"), traffic.start, traffic.end)
    assert window.error == (
        f"Prometheus at {provider.address} has no series serinus_model_ready"
        '{model="iris",revision="rev-never-deployed"} in the last '
        f"{traffic.seconds}s for the canary: check that Prometheus scrapes the canary pods' "
        "/metrics and keeps their model and revision labels"
    )
    reason = judge(AnalysisSpec(), window).metrics[0].reason
    assert reason == f"no verdict: the metrics provider failed: {window.error}"


def test_custom_metrics_are_rendered_and_evaluated_per_variant(
    provider: PrometheusProvider, traffic: Traffic
) -> None:
    failures = AnalysisMetric(
        name="failures",
        max=0,
        query='sum(increase(serinus_requests_total{model="{{name}}",revision="{{revision}}",'
        'variant="{{variant}}",code="500"}[{{interval}}]))',
    )
    missing = AnalysisMetric(name="missing", max=1, query='sum(nothing{revision="{{revision}}"})')
    window = provider.window(target(CANARY_BAD, failures, missing), traffic.start, traffic.end)

    assert window.error is None
    low, high = traffic.bounds(CANARY_FAILED)
    assert low <= window.canary.custom["failures"] <= high
    # The runtime exposes its 500 series at 0 from the start: stable had none, measurably.
    assert window.stable.custom == {"failures": 0.0, "missing": None}
    results = {m.name: m for m in judge(AnalysisSpec(metrics=[failures, missing]), window).metrics}
    assert results["failures"].verdict == Verdict.FAIL
    assert results["missing"].verdict == Verdict.INCONCLUSIVE
    assert results["missing"].reason.startswith("the query for missing returned no data")


def test_bad_custom_query_is_an_error_with_prometheus_message(
    provider: PrometheusProvider, traffic: Traffic
) -> None:
    broken = AnalysisMetric(name="broken", max=1, query="sum(rate(foo[{{interval}})")
    window = provider.window(target(CANARY_BAD, broken), traffic.start, traffic.end)
    assert window.error is not None
    assert window.error.startswith(
        f"Prometheus at {provider.address}: custom metric broken failed (bad_data: "
    )
    assert "parse error" in window.error
    assert window.error.endswith(f"check the query sum(rate(foo[{traffic.seconds}s)")

    typo = AnalysisMetric(name="typo", max=1, query='up{job="{{job}}"}')
    error = provider.window(target(CANARY_BAD, typo), traffic.start, traffic.end).error
    assert error == (
        "custom metric typo: unknown placeholder {{job}}; known ones: {{namespace}}, {{name}}, "
        "{{variant}}, {{revision}}, {{interval}}"
    )


def test_custom_query_returning_several_series_is_an_error(
    provider: PrometheusProvider, traffic: Traffic
) -> None:
    several = AnalysisMetric(name="several", max=1, query="serinus_model_ready")
    error = provider.window(target(CANARY_BAD, several), traffic.start, traffic.end).error
    assert error is not None
    assert error.startswith("custom metric several: the query returned 3 series where one value")


def test_unreachable_prometheus_is_an_error_naming_the_address() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    with_nothing = PrometheusProvider(address)
    window = with_nothing.window(target(CANARY_BAD), now() - timedelta(seconds=60), now())
    with_nothing.close()
    assert window.error is not None
    assert window.error.startswith(f"Prometheus at {address}: unreachable (")
    assert window.error.endswith("check analysis.prometheus.address and that Prometheus is running")
    assert window.interval_seconds == 60
    assert judge(AnalysisSpec(), window).verdict == Verdict.INCONCLUSIVE


def test_prometheus_that_does_not_answer_is_an_error_after_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        slow = PrometheusProvider(address, timeout=0.3)
        window = slow.window(target(CANARY_BAD), now() - timedelta(seconds=60), now())
        slow.close()
    assert window.error == (
        f"Prometheus at {address}: no answer within 0.3s: check that it is running and not "
        "overloaded"
    )


def test_address_that_is_not_prometheus_is_an_error(runtimes: Runtimes) -> None:
    not_prometheus = PrometheusProvider(runtimes.stable.url)
    window = not_prometheus.window(target(CANARY_BAD), now() - timedelta(seconds=60), now())
    not_prometheus.close()
    assert window.error == (
        f"Prometheus at {runtimes.stable.url}: HTTP 404 from /api/v1/query: check that the "
        "address is Prometheus' base URL (no path such as /api/v1) and that a proxy in front "
        "of it lets queries through"
    )


def test_prometheus_killed_then_restarted(
    start_prometheus: Callable[[], PrometheusServer], traffic: Traffic
) -> None:
    server = start_prometheus()
    provider = PrometheusProvider(server.address)

    def last_seconds_error() -> str | None:
        return provider.window(target(CANARY_BAD), now() - timedelta(seconds=10), now()).error

    def readable() -> bool:
        return last_seconds_error() is None

    try:
        wait_until(readable, 20, "a first window from the new Prometheus")
        server.stop(signal.SIGKILL)
        error = last_seconds_error()
        assert error is not None
        assert error.startswith(f"Prometheus at {server.address}: unreachable")
        server.start()  # same port, same data directory
        wait_until(readable, 20, "a window after Prometheus restarted")
    finally:
        provider.close()


class CannedAnswer(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's `canned` (status, content type, body)."""

    def do_GET(self) -> None:
        status, content_type, body = self.server.canned  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[Callable[[int, str, bytes], str]]:
    """A local HTTP server answering one canned response; returns its address."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CannedAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def answer(status: int, content_type: str, body: bytes) -> str:
        server.canned = (status, content_type, body)  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield answer
    server.shutdown()
    server.server_close()


def error_from(address: str) -> str | None:
    provider = PrometheusProvider(address)
    try:
        return provider.window(target(CANARY_BAD), now() - timedelta(seconds=60), now()).error
    finally:
        provider.close()


def test_answer_that_is_not_json_is_an_error(answering) -> None:
    address = answering(200, "text/html", b"<html>Grafana</html>")
    assert error_from(address) == (
        f"Prometheus at {address}: /api/v1/query answered something that is not a Prometheus "
        "API response ('<html>Grafana</html>'): is the address Prometheus itself?"
    )


def test_prometheus_starting_up_is_an_error_saying_so(answering) -> None:
    address = answering(503, "text/plain", b"Service Unavailable")
    assert error_from(address) == (
        f"Prometheus at {address}: HTTP 503 from /api/v1/query: Prometheus or a proxy in front "
        "of it failed (Prometheus answers 503 while it starts): check that it is up and its logs"
    )


def test_result_of_an_unexpected_type_is_an_error(answering) -> None:
    body = b'{"status": "success", "data": {"resultType": "matrix", "result": []}}'
    error = error_from(answering(200, "application/json", body))
    assert error is not None and "answered a matrix where a vector was expected" in error
