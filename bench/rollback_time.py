"""Local mode: how fast a bad canary is rolled back, and what the local router adds per request.

One run, a real `LocalController` in this process (state in a temporary directory, router on a
free port, a tick every 0.2 s in a thread), real runtime processes, real Prometheus when
/usr/bin/prometheus (or any `prometheus` on PATH) exists:

1. Rollback time. v1 of `serinus demo`'s iris model serves under steady load (the bounded
   `LoadGenerator`, 100 req/s, 4 connections, through the router). Then the bad demo versions
   are applied one after the other, alternating: v4 (errors on about a fifth of the traffic)
   and v3 (skewed predictions), with rollout interval 3 s, minRequests 50 and failureLimit 1.
   For each rollout this process polls the router every 5 ms: when the first canary response
   came back, when the canary had answered minRequests requests, when the router's canary
   weight was 0 again, and when the status said RolledBack. Once with the scrape provider,
   once with Prometheus.
2. Router overhead. After the scrape run's rollbacks (load generator stopped, stable only,
   canary weight 0, the controller still ticking), the same timing client sends V2 infer
   requests at a fixed rate either straight to the stable runtime process or through the
   router to that same process, in interleaved rounds (A B B A ...), so the box's other work
   falls on both alike. The client runs in a child process, as a real client would, so it does
   not share this process' GIL with the router.

Prints the "## Local mode: rollback time and router overhead" section of bench/README.md; a
full run also writes it there, with the raw results in bench/results/rollback_time.json and
one summary line appended to bench/results/rollback_time_runs.jsonl ("Every full run").

    python bench/rollback_time.py             # about 4-5 minutes
    python bench/rollback_time.py --quick     # about 1 minute smoke run; writes nothing
    python bench/rollback_time.py --render    # rewrite the section from the saved results
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httptools
import numpy as np
import orjson

from readme_sections import loadavg, write_section

BENCH = Path(__file__).resolve().parent
README = BENCH / "README.md"
RESULTS = BENCH / "results" / "rollback_time.json"
RUNS = BENCH / "results" / "rollback_time_runs.jsonl"
"""One line per full run (appended), for the "Every full run" table."""
SECTION = "## Local mode: rollback time and router overhead"
COMMAND = ".venv/bin/python bench/rollback_time.py"

# --- rollback -----------------------------------------------------------------------------
LOAD_RATE = 100.0
LOAD_CONCURRENCY = 4
INTERVAL_S = 3
MIN_REQUESTS = 50
FAILURE_LIMIT = 1
TICK_S = 0.2
POLL_S = 0.005
ROLLOUT_TIMEOUT_S = 90.0
"""A rollout not rolled back by then is recorded as a miss (paused, promoted or stuck)."""
WARM_UP_S = 2.0
"""Steady load on v1 before the first canary: the stable side has a baseline to compare to."""
SETTLE_S = 0.5
"""Pause between one rollback and the next apply."""

# --- router overhead ----------------------------------------------------------------------
AB_RATE = 200.0
AB_CONCURRENCY = 4
AB_WARM_UP = 200
"""Requests per round before the measured ones: connections open, caches warm."""
INFER_PATH = "/v2/models/iris/infer"
BODIES = 256


# ==========================================================================================
# The timing client (runs in a child process: `rollback_time.py --ab-client`)
# ==========================================================================================


class _TimedConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; the latency is taken in the
    parser's callback, before any event-loop scheduling."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, float]] | None = None
        self.sent_at = 0.0

    def request(self, data: bytes) -> asyncio.Future[tuple[int, float]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.sent_at = time.perf_counter()
        self.transport.write(data)
        return self.waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed by the server"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as problem:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(problem)

    def on_message_complete(self) -> None:
        latency = time.perf_counter() - self.sent_at
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), latency))


async def timed_round(
    port: int, requests: Sequence[bytes], rate: float, concurrency: int, seconds: float
) -> dict[str, Any]:
    """Warm up, then send at `rate` from `concurrency` connections for `seconds`; latencies in
    microseconds, from the request's write to the end of its response."""
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(_TimedConnection, "127.0.0.1", port))[1]
        for _ in range(concurrency)
    ]
    latencies: list[float] = []
    errors = 0
    counter = 0

    def next_request() -> bytes:
        nonlocal counter
        counter += 1
        return requests[counter % len(requests)]

    async def warm(conn: _TimedConnection) -> None:
        for _ in range(AB_WARM_UP // concurrency):
            await conn.request(next_request())

    await asyncio.gather(*(warm(c) for c in conns))
    start = next_slot = time.perf_counter()
    end = start + seconds

    async def worker(conn: _TimedConnection) -> None:
        nonlocal next_slot, errors
        while True:
            slot = max(next_slot, time.perf_counter())
            next_slot = slot + 1.0 / rate
            if slot >= end:
                return
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, latency = await conn.request(next_request())
            if status == 200:
                latencies.append(latency * 1e6)
            else:
                errors += 1

    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return {"latencies_us": latencies, "errors": errors, "elapsed_s": elapsed}


def ab_client_main() -> None:
    """Child-process entry: a JSON plan on stdin, the rounds' latencies as JSON on stdout."""
    plan = json.load(sys.stdin)
    requests = [
        b"POST " + INFER_PATH.encode() + b" HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body.encode()
        for body in plan["bodies"]
    ]  # fmt: skip
    rounds = []
    for path in plan["schedule"]:
        result = asyncio.run(
            timed_round(
                plan["ports"][path], requests, plan["rate"], plan["concurrency"], plan["seconds"]
            )
        )
        rounds.append({"path": path, **result})
    json.dump({"rounds": rounds}, sys.stdout)


# ==========================================================================================
# Rollback time
# ==========================================================================================


@dataclass
class Rollback:
    """One bad canary's rollout, times in seconds from its first canary response."""

    provider: str
    version: str
    outcome: str
    setup_s: float | None = None
    """Apply → first canary response (deploy, readiness, validation, first weight)."""
    weight_to_first_s: float | None = None
    """Router weight above 0 first seen → first canary response."""
    min_requests_s: float | None = None
    weight_zero_s: float | None = None
    rolled_back_s: float | None = None
    canary_responses: int = 0
    canary_5xx: int = 0
    canary_after_weight_zero: int = 0
    checks: list[str] = field(default_factory=list)
    """Verdicts of this rollout's checks, with the canary requests each counted."""
    failed_metrics: list[str] = field(default_factory=list)
    target_written_s: float | None = None
    """Prometheus only: when the canary's address appeared in targets.json."""
    first_scrape_s: float | None = None
    """Prometheus only: its first sample of the canary (`up`), the start of the data it has."""
    router_window_requests: list[int] = field(default_factory=list)
    """Canary responses through the router in each check's window, by the router's own count
    (taken when the check showed up in the status): what the provider should have counted."""
    not_failed: list[str] = field(default_factory=list)
    """Why each check before the failing one did not fail (its first non-Pass metric)."""
    reason: str = ""

    @property
    def after_min_requests(self) -> float | None:
        """(weight 0 - minRequests reached) in analysis intervals: the goal is ≤ 1."""
        if self.weight_zero_s is None or self.min_requests_s is None:
            return None
        return (self.weight_zero_s - self.min_requests_s) / INTERVAL_S


class Ticker:
    """`serinus local up`'s loop: tick, sleep, in a thread."""

    def __init__(self, controller: Any, period: float) -> None:
        self.controller = controller
        self.period = period
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-tick", daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.controller.tick()
            except Exception as error:  # the bench reports it; the loop goes on like `up`'s
                self.errors.append(f"{type(error).__name__}: {error}")
                logging.getLogger("bench").warning("tick failed: %s", error)
            self._stop.wait(self.period)


def manifest(model: Any) -> dict[str, Any]:
    from serinus.demo.run import demo_manifest

    out = demo_manifest(model)
    rollout = out["spec"]["rollout"]
    rollout["interval"] = f"{INTERVAL_S}s"
    rollout["analysis"]["minRequests"] = MIN_REQUESTS
    rollout["analysis"]["failureLimit"] = FAILURE_LIMIT
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.05)


def roll_out_bad(controller: Any, state: Any, model: Any, provider: str) -> Rollback:
    """Apply `model` and watch the router and the status until it is rolled back."""
    from serinus.api.status import Phase, RolloutResult

    router = controller.router
    before = router.counts()
    base_total, base_5xx = before.total("canary"), before.server_errors("canary")
    applied_wall = datetime.now(UTC)
    applied = time.monotonic()
    state.apply(manifest(model))
    first = min_reached = up = zero = rolled = None
    at_zero = 0
    at_checks: list[int] = []
    revision: str | None = None
    written: float | None = None
    targets = controller.prometheus.targets_path if controller.prometheus else None
    outcome = "timeout"
    while time.monotonic() - applied < ROLLOUT_TIMEOUT_S:
        now = time.monotonic()
        served = router.counts().total("canary") - base_total
        weight = router.weight
        if up is None and weight > 0:
            up = now
        if first is None and served > 0:
            first = now
        if min_reached is None and served >= MIN_REQUESTS:
            min_reached = now
        if up is not None and zero is None and weight == 0:
            zero, at_zero = now, served
        status = controller.status
        if revision is None and status.canary and status.canary.version == model.version:
            revision = status.canary.revision
        if targets is not None and revision is not None and written is None:
            with contextlib.suppress(OSError):
                if f'"{revision}"' in targets.read_text():
                    written = now
        if sum(c.at >= applied_wall for c in status.analysis.checks) > len(at_checks):
            at_checks.append(served)
        last = status.history[-1] if status.history else None
        if last is not None and last.version == model.version and last.finished_at >= applied_wall:
            if last.result == RolloutResult.ROLLED_BACK and status.phase == Phase.ROLLED_BACK:
                rolled, outcome = now, "rolled back"
                break
            if last.result != RolloutResult.ROLLED_BACK:
                outcome = last.result.value
                break
        if (
            status.phase == Phase.PAUSED
            and status.canary
            and status.canary.version == model.version
        ):
            outcome = "paused"
            break
        time.sleep(POLL_S)
    counts = router.counts()
    status = controller.status
    checks = [c for c in status.analysis.checks if c.at >= applied_wall]
    last = status.history[-1] if status.history else None
    failing = checks[-1].metrics if checks else []
    result = Rollback(
        provider=provider,
        version=model.version,
        outcome=outcome,
        canary_responses=counts.total("canary") - base_total,
        canary_5xx=counts.server_errors("canary") - base_5xx,
        checks=[f"{c.verdict.value} ({c.canary_requests} req)" for c in checks],
        failed_metrics=[m.name for m in failing if m.verdict.value == "Fail"],
        not_failed=[why_not_failed(c) for c in checks if c.verdict.value != "Fail"],
        router_window_requests=[b - a for a, b in zip([0, *at_checks], at_checks, strict=False)],
        reason=last.reason if last is not None and last.version == model.version else "",
    )
    if first is not None:
        result.setup_s = first - applied
        result.weight_to_first_s = None if up is None else first - up
        result.min_requests_s = None if min_reached is None else min_reached - first
        result.weight_zero_s = None if zero is None else zero - first
        result.rolled_back_s = None if rolled is None else rolled - first
        result.canary_after_weight_zero = (counts.total("canary") - base_total) - at_zero
        if written is not None:
            result.target_written_s = written - first
        if controller.prometheus is not None and revision is not None:
            since = applied_wall.timestamp()
            scraped = first_scrape(controller.prometheus.address, revision, since)
            if scraped is not None:
                result.first_scrape_s = scraped - (time.time() - time.monotonic()) - first
    return result


def first_scrape(address: str, revision: str, since: float) -> float | None:
    """Unix time of Prometheus' first sample of `revision`'s targets (their `up` series) after
    `since` (a revision applied again was scraped in its earlier rollout too)."""
    import httpx

    query = f'up{{serinus_revision="{revision}"}}[10m]'
    try:
        answer = httpx.get(f"{address}/api/v1/query", params={"query": query}, timeout=5.0)
        series = answer.json()["data"]["result"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    times = [float(t) for s in series for t, _ in s.get("values", []) if float(t) >= since]
    return min(times) if times else None


def why_not_failed(check: Any) -> str:
    """A check that did not fail, in a few words: its verdict and its first metric's reason."""
    for metric in check.metrics:
        if metric.verdict.value != "Pass":
            return f"{check.verdict.value}: {metric.name}: {metric.reason}"
    return f"{check.verdict.value}: every metric passed"


def run_provider(
    provider: str, bundles: Any, workdir: Path, reps: int, ab: dict[str, Any] | None
) -> tuple[list[Rollback], dict[str, Any] | None, list[str]]:
    """Rollbacks with one metrics provider; the A/B rounds too when `ab` is given."""
    from serinus.api.status import Phase
    from serinus.demo.bundles import FEATURES, MODEL_NAME
    from serinus.local.controller import LocalController
    from serinus.local.load import LoadGenerator, rows_from_profile
    from serinus.local.state import StateDir

    state = StateDir(workdir / f"state-{provider}")
    state.apply(manifest(bundles.v1))
    controller = LocalController(state, router_port=0, prometheus=provider == "prometheus")
    ticker: Ticker | None = None
    load: LoadGenerator | None = None
    rollbacks: list[Rollback] = []
    ab_result = None
    try:
        controller.start()
        ticker = Ticker(controller, TICK_S).start()
        wait_for(
            lambda: (
                controller.status.phase == Phase.STABLE
                and controller.status.stable is not None
                and controller.status.stable.version == bundles.v1.version
            ),
            120.0,
            "v1 Stable",
        )
        rows = rows_from_profile(bundles.v1.bundle, n=500, seed=0)
        load = LoadGenerator(
            controller.router.url, MODEL_NAME, rows, LOAD_RATE, concurrency=LOAD_CONCURRENCY,
            features=list(FEATURES), seed=0,
        ).start()  # fmt: skip
        if controller.prometheus is not None:
            stable = controller.status.stable.revision
            controller.prometheus.wait_scraped(controller.fleet.urls(stable)[0], timeout=30.0)
        time.sleep(WARM_UP_S)
        for rep in range(reps):
            for model in (bundles.v4, bundles.v3):
                one = roll_out_bad(controller, state, model, provider)
                rollbacks.append(one)
                print(f"  {provider} rep {rep + 1} v{model.version}: {describe(one)}", flush=True)
                time.sleep(SETTLE_S)
        stats = load.stop()
        load = None
        print(f"  {provider} load: {stats.sent} sent, {dict(stats.failures)} failures", flush=True)
        if ab is not None:
            stable = controller.status.stable.revision
            direct = controller.fleet.urls(stable, ready_only=True)[0]
            ab_result = router_overhead(direct, controller.router.url, rows, **ab)
    finally:
        if load is not None:
            load.stop()
        if ticker is not None:
            ticker.stop()
        controller.close()
    return rollbacks, ab_result, ticker.errors if ticker else []


def describe(r: Rollback) -> str:
    if r.outcome != "rolled back" or r.weight_zero_s is None:
        return f"{r.outcome} ({', '.join(r.checks)})"
    scraped = (
        f"; canary target written {_s(r.target_written_s)}s, first scraped {_s(r.first_scrape_s)}s"
        if r.provider == "prometheus"
        else ""
    )
    return (
        f"weight 0 after {r.weight_zero_s:.2f}s, RolledBack {r.rolled_back_s:.2f}s, "
        f"minRequests at {r.min_requests_s:.2f}s → {r.after_min_requests:.2f} intervals; "
        f"checks {', '.join(r.checks)} (router: {r.router_window_requests}); "
        f"failed {', '.join(r.failed_metrics)}{scraped}"
    )


# ==========================================================================================
# Router overhead
# ==========================================================================================


def router_overhead(
    direct: str, router: str, rows: np.ndarray, *, rounds: int, seconds: float
) -> dict[str, Any]:
    from serinus.demo.bundles import FEATURES

    rng = np.random.default_rng(1)
    bodies = [
        orjson.dumps(
            {
                "inputs": [
                    {"name": name, "shape": [1], "datatype": "FP64", "data": [float(row[j])]}
                    for j, name in enumerate(FEATURES)
                ]
            }
        ).decode()
        for row in rows[rng.integers(0, len(rows), BODIES)]
    ]
    schedule = []
    for i in range(rounds):
        schedule += ["direct", "router"] if i % 2 == 0 else ["router", "direct"]
    plan = {
        "ports": {"direct": _port(direct), "router": _port(router)},
        "schedule": schedule,
        "bodies": bodies,
        "rate": AB_RATE,
        "concurrency": AB_CONCURRENCY,
        "seconds": seconds,
    }
    done = subprocess.run(
        [sys.executable, __file__, "--ab-client"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=60 + len(schedule) * (seconds + 10),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the timing client failed: {done.stderr[-2000:]}")
    return summarize_ab(json.loads(done.stdout)["rounds"], rounds, seconds)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def summarize_ab(rounds: list[dict[str, Any]], pairs: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"pairs": pairs, "round_s": seconds, "paths": {}}
    for path in ("direct", "router"):
        mine = [r for r in rounds if r["path"] == path]
        pooled = np.concatenate([np.asarray(r["latencies_us"]) for r in mine])
        out["paths"][path] = {
            "requests": len(pooled),
            "errors": sum(r["errors"] for r in mine),
            "rate": sum(len(r["latencies_us"]) for r in mine) / sum(r["elapsed_s"] for r in mine),
            "p50_us": float(np.percentile(pooled, 50)),
            "p99_us": float(np.percentile(pooled, 99)),
            "round_p50_us": [float(np.percentile(r["latencies_us"], 50)) for r in mine],
            "round_p99_us": [float(np.percentile(r["latencies_us"], 99)) for r in mine],
        }
    direct, router = out["paths"]["direct"], out["paths"]["router"]
    for q in ("p50", "p99"):
        out[f"{q}_added_us"] = router[f"{q}_us"] - direct[f"{q}_us"]
        out[f"{q}_ratio"] = router[f"{q}_us"] / direct[f"{q}_us"]
        paired = [
            b - a for a, b in zip(direct[f"round_{q}_us"], router[f"round_{q}_us"], strict=True)
        ]
        out[f"{q}_added_paired_us"] = paired
    return out


# ==========================================================================================
# Report
# ==========================================================================================

FAULTS = {"4": "v4: errors on ~22 % of requests", "3": "v3: skewed predictions"}


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _signed(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):+.2f}; {max(values):+.2f}"


def _pair(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.2f} / {max(values):.2f}"


def rollback_rows(rollbacks: list[Rollback]) -> tuple[list[str], list[dict[str, Any]]]:
    lines = [
        "| provider | bad canary | rollouts | rolled back | first canary response → weight 0, "
        "s (median / max) | same, in intervals | minRequests reached after, s | (weight 0 - "
        "minRequests reached) / interval (median / max) | → RolledBack, s | checks per rollout "
        "| caught by | goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    summaries = []
    for provider in dict.fromkeys(r.provider for r in rollbacks):
        for version in ("4", "3"):
            mine = [r for r in rollbacks if r.provider == provider and r.version == version]
            if not mine:
                continue
            done = [r for r in mine if r.outcome == "rolled back" and r.weight_zero_s is not None]
            zero = [r.weight_zero_s for r in done if r.weight_zero_s is not None]
            after = [r.after_min_requests for r in done if r.after_min_requests is not None]
            met = len(done) == len(mine) and len(after) == len(mine) and max(after) <= 1.0
            checks = sorted(
                dict.fromkeys(" → ".join(c.split(" (")[0] for c in r.checks) for r in mine)
            )
            caught = sorted({m for r in mine for m in r.failed_metrics})
            summary = {
                "provider": provider,
                "version": version,
                "rollouts": len(mine),
                "rolled_back": len(done),
                "weight_zero_s": zero,
                "min_requests_s": [r.min_requests_s for r in done],
                "after_min_requests_intervals": after,
                "rolled_back_s": [r.rolled_back_s for r in done],
                "goal_met": met,
            }
            summaries.append(summary)
            intervals = [z / INTERVAL_S for z in zero]
            lines.append(
                f"| {provider} | {FAULTS[version]} | {len(mine)} | {len(done)} | "
                f"{_pair(zero)} | {_pair(intervals)} | "
                f"{_pair([r.min_requests_s for r in done if r.min_requests_s is not None])} | "
                f"{_pair(after)} | "
                f"{_pair([r.rolled_back_s for r in done if r.rolled_back_s is not None])} | "
                f"{'; '.join(checks)} | {', '.join(caught) or '-'} | "
                f"{'met' if met else '**missed**'} |"
            )
    return lines, summaries


def overhead_lines(ab: dict[str, Any]) -> list[str]:
    d, r = ab["paths"]["direct"], ab["paths"]["router"]

    def spread(values: list[float]) -> str:
        return f"{min(values):.0f}-{max(values):.0f}"

    return [
        "| path | requests | achieved req/s | p50 µs | p99 µs | per-round p50 µs | "
        "per-round p99 µs |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| client → runtime process | {d['requests']} | {d['rate']:.0f} | {d['p50_us']:.0f} | "
        f"{d['p99_us']:.0f} | {spread(d['round_p50_us'])} | {spread(d['round_p99_us'])} |",
        f"| client → local router → same process | {r['requests']} | {r['rate']:.0f} | "
        f"{r['p50_us']:.0f} | {r['p99_us']:.0f} | {spread(r['round_p50_us'])} | "
        f"{spread(r['round_p99_us'])} |",
        f"| router adds | | | **{ab['p50_added_us']:+.0f} µs ({ab['p50_ratio']:.2f}x)** | "
        f"**{ab['p99_added_us']:+.0f} µs ({ab['p99_ratio']:.2f}x)** | "
        f"paired rounds: {statistics.median(ab['p50_added_paired_us']):+.0f} µs median | "
        f"paired rounds: {statistics.median(ab['p99_added_paired_us']):+.0f} µs median |",
    ]


def section(result: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    rollbacks = [Rollback(**r) for r in result["rollbacks"]]
    table, summaries = rollback_rows(rollbacks)
    result["summaries"] = summaries
    ab = result["router_overhead"]
    all_after = [a for s in summaries for a in s["after_min_requests_intervals"]]
    by_provider = {
        p: [s for s in summaries if s["provider"] == p]
        for p in dict.fromkeys(s["provider"] for s in summaries)
    }
    goal_rows = []
    for provider, rows in by_provider.items():
        after = [a for s in rows for a in s["after_min_requests_intervals"]]
        total = sum(s["rollouts"] for s in rows)
        done = sum(s["rolled_back"] for s in rows)
        met = all(s["goal_met"] for s in rows)
        measured = (
            f"{done}/{total} rolled back; weight 0 at {max(after):.2f} intervals after "
            "minRequests at worst"
            if after
            else f"{done}/{total} rolled back"
        )
        goal_rows.append(
            f"| rollback within one interval after minRequests is reached ({provider}), this run "
            f"| {measured} | {'yes' if met else '**no**'} |"
        )
    for provider in by_provider:
        mine = [
            (run["run"], run["providers"][provider]) for run in runs if provider in run["providers"]
        ]
        missed = [
            f"run {n}: {len(p['late'])} of {p['rollouts']} rollouts one interval late, worst "
            f"{_s(p['max_after_min_requests'])} intervals"
            for n, p in mine
            if not p["goal_met"]
        ]
        goal_rows.append(
            f"| the same ({provider}), every full run so far ({len(mine)}) | "
            f"{'; '.join(missed) or 'met in each'} | {'**no**' if missed else 'yes'} |"
        )
    lines = [
        SECTION,
        "",
        "How long a bad canary keeps getting traffic in local mode, and what the local router "
        f"adds to a request. Reproduce: `{COMMAND}` (about 5 min; `--quick` for a 1-minute smoke "
        "run that writes nothing). Raw results: `bench/results/rollback_time.json`.",
        "",
        "Setup:",
        f"- Machine: {result['machine']['cpus']} shared cores (a VM that other agents' test "
        "suites and benchmarks also use: noisy); load average "
        f"{result['machine']['loadavg_before']} before, {result['machine']['loadavg_after']} "
        "after. Direct-vs-router figures are ratios within one run, interleaved, so the noise "
        "falls on both paths alike.",
        "- `LocalController` in the bench process: state in a temporary directory, router on a "
        f"free port, `tick()` every {TICK_S:g} s in a thread (`serinus local up --tick "
        f"{TICK_S:g}`); runtimes are real `serinus_runtime` child processes.",
        "- Manifest: `serinus demo`'s (steps setWeight 30, analysis, setWeight 60, analysis; "
        "error-rate max 5 %, latency-p99 maxRatioToStable 2, prediction-drift max 0.1) with "
        f"interval {INTERVAL_S} s, minRequests {MIN_REQUESTS}, failureLimit {FAILURE_LIMIT}.",
        f"- Load: `LoadGenerator`, {LOAD_RATE:g} req/s over {LOAD_CONCURRENCY} keep-alive "
        "connections through the router, 1-row requests drawn from v1's profile; at canary "
        f"weight 30 % that is ~{LOAD_RATE * 0.3:.0f} canary requests/s, so minRequests is reached "
        f"~{MIN_REQUESTS / (LOAD_RATE * 0.3):.1f} s into the first window.",
        f"- Each rollout: v1 stable, apply v4 or v3 (alternating, {result['reps']} of each per "
        "provider), poll the router every 5 ms. Times run from the first canary response through "
        "the router: minRequests reached = the canary has answered minRequests requests; weight 0 "
        "= the router's canary weight is back at 0 (no new request goes to the canary); "
        "RolledBack = `status.phase`. Providers: `scrape` (the runtimes' /metrics) and "
        f"`prometheus` ({result['prometheus_binary'] or 'not found: not run'}, scrape interval "
        "1 s), one controller each.",
        "",
        "### Goals",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *goal_rows,
        "",
        "### Rollback time",
        "",
        *table,
        "",
        "### Every full run",
        "",
        "One line per run of the full bench (`bench/results/rollback_time_runs.jsonl`); the tables "
        "above are the last run.",
        "",
        *runs_lines(runs),
        "",
        "### Router overhead",
        "",
        f"V2 infer, 1 row, {AB_RATE:g} req/s over {AB_CONCURRENCY} keep-alive connections, "
        f"{ab['pairs']} pairs of {ab['round_s']:g} s rounds alternating A B B A (after "
        f"{AB_WARM_UP} warm-up requests each), one timing client (asyncio + httptools, a child "
        "process) for both paths; latency from the request's write to its response's last byte. "
        "Same stable runtime process, canary weight 0, load generator stopped, controller still "
        "ticking (as under `serinus local up`).",
        "",
        *overhead_lines(ab),
        "",
        "### Reading it",
        "",
        *reading(rollbacks, summaries, ab, all_after, runs, result["started_at"]),
        "",
        f"Run time: {result['elapsed_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def reading(
    rollbacks: list[Rollback],
    summaries: list[dict[str, Any]],
    ab: dict[str, Any],
    after: list[float],
    runs: list[dict[str, Any]],
    started_at: str,
) -> list[str]:
    """Sentences drawn from the numbers; the mechanism explained once."""
    out = [
        "- **What sets the time.** A check runs when a full interval has passed since the window "
        "started (the tick that set the canary's first weight), so the first check comes "
        f"~{INTERVAL_S} s after the first canary response plus up to one tick; a Fail with "
        "failureLimit 1 sets the router to 0 in that same tick (before the status is written), "
        "then the canary's processes are stopped (the tick waits for them to drain) and the next "
        "tick records RolledBack. With minRequests reached early in the first window, weight 0 "
        "comes about (interval - time to minRequests) after minRequests: under one interval.",
    ]
    for s in summaries:
        mine = [r for r in rollbacks if r.provider == s["provider"] and r.version == s["version"]]
        late = [r for r in mine if r.not_failed]
        if not late and s["goal_met"]:
            continue
        reasons = sorted({n for r in late for n in r.not_failed})
        stuck = [r for r in mine if r.outcome != "rolled back"]
        out.append(
            f"- **{s['provider']}, v{s['version']}: {'met' if s['goal_met'] else 'missed'}.** "
            f"{len(late)} of {len(mine)} rollouts had a check before the failing one that did "
            f"not fail, which costs one more interval each: {'; '.join(reasons) or '-'}."
            + (f" {len(stuck)} did not end rolled back (see the JSON)." if stuck else "")
        )
    prom = [r for r in rollbacks if r.provider == "prometheus"]
    if prom:
        earlier = [run for run in runs if run["started_at"] != started_at]
        scrape = [r for r in rollbacks if r.provider == "scrape"]
        out.append(prometheus_first_window(prom, scrape, earlier))
    if after:
        out.append(
            f"- Over all {len(after)} rollbacks, weight 0 came {statistics.median(after):.2f} "
            f"intervals (median) and {max(after):.2f} (max) after minRequests was reached."
        )
    stray = [r.canary_after_weight_zero for r in rollbacks if r.outcome == "rolled back"]
    if stray:
        out.append(
            f"- Canary responses after the weight went to 0 (requests already in flight): "
            f"median {statistics.median(stray):g}, max {max(stray)}."
        )
    out.append(
        f"- **Router overhead.** The router adds {ab['p50_added_us']:+.0f} µs at p50 and "
        f"{ab['p99_added_us']:+.0f} µs at p99 over going straight to the runtime "
        f"({ab['p50_ratio']:.2f}x / {ab['p99_ratio']:.2f}x): one more loopback hop and a wake-up "
        "of the router's thread, which lives in the controller's process and shares its GIL "
        "with the tick and the fleet's readiness probes. Both paths include the runtime's "
        "batching window (the spec default `batching.maxLatencyMs: 1`: a lone request waits up "
        "to 1 ms for company) and the cost of waking idle processes at a paced 200 req/s, which "
        "is why the direct p50 is well above the closed-loop figures of the Runtime section."
    )
    return out


def _requests_in(check: str) -> str:
    found = re.search(r"\((\w+) req\)", check)
    return found.group(1) if found else "?"


def _first_window(r: Rollback) -> tuple[int, int] | None:
    """(provider's count, router's count) of a rollout's first window."""
    counted = _requests_in(r.checks[0]) if r.checks else "?"
    if not counted.isdigit() or not r.router_window_requests or not r.router_window_requests[0]:
        return None
    return int(counted), r.router_window_requests[0]


def prometheus_first_window(
    prom: list[Rollback], scrape: list[Rollback], earlier: list[dict[str, Any]]
) -> str:
    """What Prometheus saw of the canary's first window, and what it cost, from what was
    measured (this run, and the earlier runs' summaries)."""
    scraped = [r.first_scrape_s for r in prom if r.first_scrape_s is not None]
    written = [
        r.first_scrape_s - r.target_written_s
        for r in prom
        if r.first_scrape_s is not None and r.target_written_s is not None
    ]
    windows = [(r, w) for r in prom if (w := _first_window(r)) is not None]
    ratios = sorted(windows, key=lambda rw: rw[1][0] / rw[1][1])
    text = (
        "- **Prometheus' first window.** Prometheus knows the canary only from its scrapes. In "
        "this run its first sample of the canary came, relative to the first canary response, "
        f"at {_signed(scraped)} s (median; latest), {_pair(written)} s (median / max) after the "
        "controller wrote the canary's address to `targets.json` (Prometheus applies file_sd "
        "changes about every 5 s, see `serinus.local.prometheus`)."
    )
    if ratios:
        median = statistics.median(w[0] / w[1] for _, w in ratios)
        lowest = ratios[:2]
        shown = ", ".join(
            f"{w[0]} of {w[1]} (first scrape {_s(r.first_scrape_s)} s)" for r, w in lowest
        )
        text += (
            f" In the first window it counted {median:.0%} (median) of the canary requests the "
            f"router had served; lowest {shown}."
        )
        latest = sorted(scraped)[-len(lowest) :]
        if all(r.first_scrape_s is not None and r.first_scrape_s in latest for r, _ in lowest):
            text += (
                " The lowest counts are the rollouts whose first scrape came latest: requests "
                "before a series' first sample are in no `increase()` (the provider's documented "
                "limit)."
            )
    scrape_windows = [w for r in scrape if (w := _first_window(r)) is not None]
    if scrape_windows:
        text += (
            " The scrape provider reads the processes at the check itself: "
            f"{statistics.median(w[0] / w[1] for w in scrape_windows):.0%} (median) of the "
            "router's count."
        )
    late = [r for r in prom if r.not_failed]
    text += (
        " A count under minRequests makes the check Inconclusive and the rollback comes one "
        f"interval later: {len(late)} of {len(prom)} Prometheus rollouts in this run"
    )
    misses = [
        f"run {run['run']}: {len(p['late'])} of {p['rollouts']} ({'; '.join(p['late'])}), "
        f"worst {_s(p['max_after_min_requests'])} intervals after minRequests"
        for run in earlier
        if (p := run["providers"].get("prometheus")) and p["late"]
    ]
    text += (
        f"; earlier runs: {' / '.join(misses)} (first-scrape times were not recorded then)."
        if misses
        else "."
    )
    return text + (
        " With the default interval (1m) the lost seconds are a few percent of a window."
    )


def read_runs() -> list[dict[str, Any]]:
    if not RUNS.exists():
        return []
    return [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()]


def run_summary(result: dict[str, Any], number: int) -> dict[str, Any]:
    """One full run in a line: per provider, how many rolled back, how many needed more than
    one check, the worst (weight 0 - minRequests reached) / interval; the router's overhead."""
    rollbacks = [Rollback(**r) for r in result["rollbacks"]]
    providers = {}
    for provider in dict.fromkeys(r.provider for r in rollbacks):
        mine = [r for r in rollbacks if r.provider == provider]
        done = [r for r in mine if r.outcome == "rolled back"]
        after = [r.after_min_requests for r in done if r.after_min_requests is not None]
        zero = [r.weight_zero_s for r in done if r.weight_zero_s is not None]
        providers[provider] = {
            "rollouts": len(mine),
            "rolled_back": len(done),
            "late": [n for r in mine for n in r.not_failed],
            "median_weight_zero_s": statistics.median(zero) if zero else None,
            "max_after_min_requests": max(after) if after else None,
            "goal_met": len(after) == len(mine) and bool(after) and max(after) <= 1.0,
        }
    ab = result["router_overhead"]
    return {
        "run": number,
        "started_at": result["started_at"],
        "loadavg": f"{result['machine']['loadavg_before']} → {result['machine']['loadavg_after']}",
        "providers": providers,
        "overhead": {k: ab[k] for k in ("p50_added_us", "p99_added_us", "p50_ratio", "p99_ratio")},
        "note": "",
    }


def runs_lines(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| run | started (UTC) | load avg before → after | provider: rolled back, checks before "
        "the Fail that did not fail, worst (weight 0 - minRequests) / interval | goal | router "
        "adds p50 / p99 | note |",
        "|---:|---|---|---|---|---|---|",
    ]
    for run in runs:
        cells = []
        for provider, p in run["providers"].items():
            late = len(p["late"])
            cells.append(
                f"{provider}: {p['rolled_back']}/{p['rollouts']}, {late}, "
                f"{_s(p['max_after_min_requests'])}"
            )
        met = all(p["goal_met"] for p in run["providers"].values())
        o = run["overhead"]
        lines.append(
            f"| {run['run']} | {run['started_at'][:16].replace('T', ' ')} | {run['loadavg']} | "
            f"{'; '.join(cells)} | {'met' if met else '**missed**'} | "
            f"{o['p50_added_us']:+.0f} / {o['p99_added_us']:+.0f} µs "
            f"({o['p50_ratio']:.2f}x / {o['p99_ratio']:.2f}x) | {run.get('note', '')} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 min), writes nothing")
    parser.add_argument("--reps", type=int, help="rollouts of each bad version per provider (5)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--provider", choices=("scrape", "prometheus"), help="only this one (default: both)"
    )
    parser.add_argument(
        "--render", action="store_true", help="rewrite the README section from the saved results"
    )
    parser.add_argument("--ab-client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ab_client:
        ab_client_main()
        return
    if args.render:
        write_section(SECTION, section(json.loads(RESULTS.read_text()), read_runs()))
        print(f"updated {README} from {RESULTS} and {RUNS}", file=sys.stderr)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from serinus.demo.bundles import build_demo_bundles
    from serinus.local.prometheus import find_binary

    reps = args.reps or (1 if args.quick else 5)
    ab = {"rounds": 2, "seconds": 1.5} if args.quick else {"rounds": 6, "seconds": 3.0}
    binary = find_binary()
    providers = ["scrape", "prometheus"] if binary else ["scrape"]
    if args.provider:
        providers = [args.provider]
    started = time.monotonic()
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": loadavg(),
        },
        "prometheus_binary": binary,
        "reps": reps,
        "config": {
            "load_rate": LOAD_RATE, "load_concurrency": LOAD_CONCURRENCY,
            "interval_s": INTERVAL_S, "min_requests": MIN_REQUESTS,
            "failure_limit": FAILURE_LIMIT, "tick_s": TICK_S, "poll_s": POLL_S,
            "ab_rate": AB_RATE, "ab_concurrency": AB_CONCURRENCY, **ab,
        },
        "started_at": datetime.now(UTC).isoformat(),
        "rollbacks": [],
        "tick_errors": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="serinus-rollback-bench-") as tmp:
        workdir = Path(tmp)
        bundles = build_demo_bundles(workdir / "bundles")
        for provider in providers:
            print(f"{provider}: {reps} rollout(s) of v4 and of v3", flush=True)
            rollbacks, ab_result, errors = run_provider(
                provider, bundles, workdir, reps, ab if provider == providers[0] else None
            )
            result["rollbacks"] += [asdict(r) for r in rollbacks]
            result["tick_errors"][provider] = errors
            if ab_result is not None:
                result["router_overhead"] = ab_result
    result["machine"]["loadavg_after"] = loadavg()
    result["elapsed_s"] = time.monotonic() - started
    writing = not (args.quick or args.no_write)
    runs = read_runs()
    if writing:
        runs.append(run_summary(result, len(runs) + 1))
    text = section(result, runs)
    print(text)
    if not writing:
        return
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    with RUNS.open("a") as out:
        out.write(json.dumps(runs[-1]) + "\n")
    write_section(SECTION, text)
    print(f"updated {README}, {RESULTS} and {RUNS}", file=sys.stderr)


if __name__ == "__main__":
    main()
