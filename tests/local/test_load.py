"""LoadGenerator against real runtimes (and through the local router): rate, counts, bounds.

Timing assertions are one-sided where the design guarantees a side: send times come from a
schedule spaced 1/rate apart that never catches up, so more than rate x elapsed (+ one request
per connection) cannot happen on any machine. Fewer can, on a starved one: the lower bound only
checks that the generator did not stall (60 % of the rate), with a shared two-core machine in
mind; bench/ is the place for precise throughput numbers.
"""

from __future__ import annotations

import json
import time
from functools import partial

import numpy as np
import pytest
from local_helpers import BUNDLES, CANARY_REV, IRIS_ROW, MODEL, STABLE_REV, free_port

from serinus.api.spec import TrafficSpec
from serinus.local.load import MAX_RATE, LoadGenerator, rows_from_profile
from serinus.local.processes import RuntimeFleet
from serinus.local.router import LocalRouter
from serinus.traffic.router import RouteContext


@pytest.mark.slow
def test_it_keeps_to_its_rate(serving: RuntimeFleet) -> None:
    rate, duration, concurrency = 40.0, 3.0, 4
    rows = rows_from_profile(BUNDLES / "iris", n=200, seed=1)
    url = serving.urls(STABLE_REV)[0]
    load = LoadGenerator(url, MODEL, rows, rate, concurrency, duration, rows_per_request=3)
    stats = load.start().join(timeout=duration + 15)
    assert not load.running
    assert stats.elapsed_s == pytest.approx(duration, abs=1.0)
    assert stats.sent <= rate * stats.elapsed_s + concurrency
    assert stats.sent >= 0.6 * rate * duration
    assert stats.by_status == {200: stats.sent}
    assert stats.failures == {}


@pytest.mark.slow
def test_stop_ends_the_traffic(serving: RuntimeFleet) -> None:
    load = LoadGenerator(serving.urls(STABLE_REV)[0], MODEL, [IRIS_ROW], 50, concurrency=2)
    load.start()
    time.sleep(0.5)
    stats = load.stop(timeout=15)
    assert not load.running
    assert stats.sent > 0
    assert stats.responses == stats.sent  # what was in flight finished
    time.sleep(0.3)
    assert load.stats().sent == stats.sent


@pytest.mark.slow
def test_answers_are_counted_by_status_and_by_variant(serving: RuntimeFleet) -> None:
    router = LocalRouter(partial(serving.urls, ready_only=True), seed=3)
    router.start()
    try:
        route = RouteContext(
            name=MODEL, stable=STABLE_REV, canary=CANARY_REV, replicas=1, traffic=TrafficSpec()
        )
        router.set_weight(route, 50)
        stats = LoadGenerator(router.url, MODEL, [IRIS_ROW], 60, 3, 1.5).start().join(15)
        assert set(stats.by_variant) == {"stable", "canary"}
        assert stats.by_variant == {
            "stable": router.counts().stable,
            "canary": router.counts().canary,
        }
        wrong = LoadGenerator(router.url, "nope", [IRIS_ROW], 40, 1, 0.5).start().join(15)
        assert set(wrong.by_status) == {404}
    finally:
        router.stop()


def test_nothing_listening_is_counted_not_raised() -> None:
    rate = 20.0
    load = LoadGenerator(f"http://127.0.0.1:{free_port()}", MODEL, [IRIS_ROW], rate, 2, 0.5)
    stats = load.start().join(timeout=10)
    assert stats.by_status == {}
    assert stats.failures == {"connect: connection refused": stats.sent}
    assert stats.sent <= rate * stats.elapsed_s + 2  # refused connections are paced too


@pytest.mark.parametrize(
    ("url", "rate", "concurrency", "problem"),
    [
        ("http://10.0.0.1:8080", 10, 1, "only sends to this machine"),
        ("https://127.0.0.1:8080", 10, 1, "only sends to this machine"),
        ("http://example.com", 10, 1, "only sends to this machine"),
        ("http://127.0.0.1:8080", 0, 1, "rate_per_second must be above 0"),
        ("http://127.0.0.1:8080", MAX_RATE + 1, 1, "at most"),
        ("http://127.0.0.1:8080", 10, 0, "concurrency must be"),
    ],
)
def test_it_refuses_remote_targets_and_unbounded_load(
    url: str, rate: float, concurrency: int, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        LoadGenerator(url, MODEL, [IRIS_ROW], rate, concurrency)


def test_rows_need_a_numeric_table_or_feature_names() -> None:
    with pytest.raises(ValueError, match="non-empty 2-D"):
        LoadGenerator("http://127.0.0.1:1", MODEL, [], 10)
    with pytest.raises(ValueError, match="pass features="):
        LoadGenerator("http://127.0.0.1:1", MODEL, [["a", 1.0]], 10)


def test_rows_from_profile_follow_the_bundle() -> None:
    rows = rows_from_profile(BUNDLES / "iris", n=300, seed=5)
    assert rows.shape == (300, 4)
    assert rows.dtype == np.float64
    assert np.array_equal(rows, rows_from_profile(BUNDLES / "iris", n=300, seed=5))
    profile = json.loads((BUNDLES / "iris" / "profile.json").read_text())
    for column, feature in zip(rows.T, profile["features"], strict=True):
        assert feature["edges"][0] <= column.min() and column.max() <= feature["edges"][-1]
