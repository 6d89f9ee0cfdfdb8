"""Helpers for the local-mode scenarios (test_scenarios.py): manifests, a controller ticking in a
background thread, a `serinus local up` subprocess, client traffic and child-process checks.

`Scenario` is local mode as `serinus local up` runs it, minus the terminal: a `LocalController`
over a `StateDir`, ticked every TICK_S by a thread, with the router on a free port and client
traffic from `LoadGenerator`s (several in a row when a test changes the rate). `UpProcess` is
the real command. Both note every child pid they see in a `Children`, which says at the end
whether any of them (or anything in their process groups) is still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from serinus.api.status import HistoryEntry, ModelDeploymentStatus, Phase, Verdict
from serinus.demo.bundles import FEATURES, MODEL_NAME, DemoModel
from serinus.demo.run import demo_manifest
from serinus.local import orphans
from serinus.local.controller import LocalController
from serinus.local.load import LoadGenerator, LoadStats, rows_from_profile
from serinus.local.state import ControllerState, LocalEvent, StateDir

TICK_S = 0.2
"""How often the scenario thread ticks the controller (`serinus local up --tick`)."""
POLL_S = 0.1
SETTLED = frozenset({Phase.STABLE, Phase.ROLLED_BACK, Phase.FAILED})
SERINUS = Path(sys.executable).with_name("serinus")
"""The venv's `serinus` command."""

WEIGHT_STEPS: list[dict[str, Any]] = [
    {"setWeight": 30},
    {"analysis": {"passes": 1}},
    {"setWeight": 60},
    {"analysis": {"passes": 1}},
]


def scenario_manifest(
    model: DemoModel,
    *,
    interval: str = "3s",
    min_requests: int = 40,
    failure_limit: int = 1,
    inconclusive_limit: int = 0,
    confidence: float = 0.9999,
    steps: list[dict[str, Any]] | None = None,
    metrics: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The demo's manifest for `model`, sized for a test: one process per revision, short
    intervals, the old revision stopped 1 s after a promotion.

    `confidence` is 99.99 %, not the default 99 %: a module judges good versions in ~10
    checks of three metrics, and at 99 % one now and then failed a good version (seen:
    prediction-drift PSI 0.19, chi-square p=0.0035, on v2, whose class mix is v1's; 3 s
    `increase()` windows extrapolate ~2 s of samples, so the counts overstate the evidence).
    Every bad version here is worse than stable at p far below 0.0001."""
    manifest = demo_manifest(model)
    spec = manifest["spec"]
    spec["runtime"] = {"replicas": 1}
    if env:
        spec["runtime"]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    rollout = spec["rollout"]
    rollout["interval"] = interval
    rollout["scaleDownDelay"] = "1s"
    rollout["steps"] = steps if steps is not None else [dict(s) for s in WEIGHT_STEPS]
    analysis = rollout["analysis"]
    analysis["minRequests"] = min_requests
    analysis["failureLimit"] = failure_limit
    analysis["inconclusiveLimit"] = inconclusive_limit
    analysis["confidence"] = confidence
    if metrics is not None:
        analysis["metrics"] = metrics
    return manifest


# ---------------------------------------------------------------------- status predicates


def settled_on(version: str) -> Callable[[ModelDeploymentStatus], bool]:
    """The rollout of `version` has ended (a rolled-back canary stays in the status, so the
    history says which rollout ended)."""

    def check(status: ModelDeploymentStatus) -> bool:
        last = status.history[-1] if status.history else None
        return status.phase in SETTLED and last is not None and last.version == version

    return check


def stable_on(version: str) -> Callable[[ModelDeploymentStatus], bool]:
    def check(status: ModelDeploymentStatus) -> bool:
        stable = status.stable
        return status.phase == Phase.STABLE and stable is not None and stable.version == version

    return check


def progressing_at(
    step: int, *, version: str | None = None
) -> Callable[[ModelDeploymentStatus], bool]:
    """The canary (of `version`) walks its steps and has reached `step` (0-based) or later."""

    def check(status: ModelDeploymentStatus) -> bool:
        canary = status.canary
        return (
            status.phase == Phase.PROGRESSING
            and canary is not None
            and canary.step >= step
            and (version is None or canary.version == version)
        )

    return check


def last_rollout(status: ModelDeploymentStatus) -> HistoryEntry:
    assert status.history, f"no rollout has ended yet: {status.phase}: {status.message}"
    return status.history[-1]


def describe(status: ModelDeploymentStatus, events: Iterable[LocalEvent], last: int = 20) -> str:
    """Status, checks, history and the latest Events, for a failure message."""
    lines = [f"phase {status.phase.value}: {status.message}"]
    if status.stable is not None:
        lines.append(f"stable: version {status.stable.version} ({status.stable.revision})")
    canary = status.canary
    if canary is not None:
        lines.append(
            f"canary: version {canary.version} ({canary.revision}) step {canary.step} weight "
            f"{canary.weight}/{canary.desired_weight} validated {canary.validated} "
            f"paused_by {canary.paused_by}"
        )
    for check in status.analysis.checks:
        metrics = "; ".join(f"{m.name} {m.verdict.value}: {m.reason}" for m in check.metrics)
        lines.append(
            f"check {check.at:%H:%M:%S.%f} step {check.step} weight {check.weight}: "
            f"{check.verdict.value} ({check.canary_requests} canary requests): {metrics}"
        )
    for entry in status.history:
        lines.append(f"history: version {entry.version} {entry.result.value}: {entry.reason}")
    for event in list(events)[-last:]:
        lines.append(f"event {event.time:%H:%M:%S.%f} {event.type} {event.reason}: {event.message}")
    return "\n  ".join(lines)


def metric_verdicts(status: ModelDeploymentStatus) -> list[dict[str, Verdict]]:
    """Per check (oldest first), each metric's verdict."""
    return [{m.name: m.verdict for m in check.metrics} for check in status.analysis.checks]


def reasons(events: Iterable[LocalEvent]) -> list[str]:
    return [event.reason for event in events]


# ---------------------------------------------------------------------- client traffic


class Traffic:
    """Client requests through the router: one `LoadGenerator` at a time, totals over all."""

    def __init__(self, model: DemoModel) -> None:
        self.rows = rows_from_profile(model.bundle, n=500, seed=0)
        self.finished: list[LoadStats] = []
        self.current: LoadGenerator | None = None
        self._seed = 0

    def start(self, url: str, rate: float) -> None:
        """Send `rate` requests/s to the router at `url` (replacing the current generator)."""
        self.stop()
        self._seed += 1
        self.current = LoadGenerator(
            url, MODEL_NAME, self.rows, rate, concurrency=4, features=list(FEATURES),
            seed=self._seed, timeout=10.0,
        ).start()  # fmt: skip

    def stop(self) -> None:
        if self.current is not None:
            self.finished.append(self.current.stop(timeout=15.0))
            self.current = None

    def all_stats(self) -> list[LoadStats]:
        running = [self.current.stats()] if self.current is not None else []
        return [*self.finished, *running]

    def by_variant(self, variant: str) -> dict[int, int]:
        """Responses the clients got from `variant` (the router's x-serinus-variant header),
        by HTTP status."""
        total: dict[int, int] = {}
        for stats in self.all_stats():
            for code, count in stats.by_variant.get(variant, {}).items():
                total[code] = total.get(code, 0) + count
        return total

    def failures(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for stats in self.all_stats():
            for reason, count in stats.failures.items():
                total[reason] = total.get(reason, 0) + count
        return total

    def assert_stable_never_5xx(self) -> None:
        stable = self.by_variant("stable")
        assert sum(stable.values()) > 0, f"no response from stable at all: {self.all_stats()}"
        errors = {code: n for code, n in stable.items() if code >= 500}
        assert not errors, (
            f"clients got 5xx from the stable version: {errors} (all stable answers: {stable}; "
            f"canary answers: {self.by_variant('canary')}; failures: {self.failures()})"
        )


# ---------------------------------------------------------------------- child processes


class Children:
    """Pids of every child process a controller started (runtime processes, Prometheus), each
    the leader of its own process group, with its start time (so a pid the system reuses
    later for something else is not mistaken for it)."""

    def __init__(self) -> None:
        self.groups: dict[int, str] = {}
        self._started: dict[int, int] = {}
        self._lock = threading.Lock()

    def add(self, pids: Iterable[int | None], what: str) -> None:
        with self._lock:
            for pid in pids:
                if pid and pid not in self.groups:
                    stat = _stat(pid)
                    if stat is None:
                        continue  # already gone
                    self.groups[pid] = what
                    self._started[pid] = stat.started

    def note_record(self, record: ControllerState) -> None:
        self.add(record.runtime_pids, "runtime")
        self.add([record.prometheus_pid], "prometheus")

    def note_controller(self, controller: LocalController) -> None:
        self.add(controller.fleet.pids(), "runtime")
        prometheus = controller.prometheus
        self.add([prometheus.pid if prometheus is not None else None], "prometheus")

    def survivors(self, groups: Iterable[int] | None = None) -> list[str]:
        """Live processes (not zombies) that are one of `groups` (default: every pid noted) or
        in its process group."""
        with self._lock:
            chosen = list(self.groups) if groups is None else list(groups)
            wanted = {pid: self._started[pid] for pid in chosen if pid in self._started}
            names = dict(self.groups)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            stat = _stat(pid)
            if stat is None or stat.state == "Z":
                continue
            if pid in wanted and stat.started == wanted[pid]:
                leader = pid
            elif stat.group in wanted and stat.group != pid and stat.started >= wanted[stat.group]:
                leader = stat.group
            else:
                continue
            found.append(f"pid {pid} ({_cmdline(pid)}) of the {names[leader]} group {leader}")
        return found

    def wait_gone(self, groups: Iterable[int] | None = None, timeout: float = 10.0) -> list[str]:
        """`survivors` after giving them up to `timeout` to exit."""
        pids = list(groups) if groups is not None else None
        deadline = time.monotonic() + timeout
        while (left := self.survivors(pids)) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return left


@dataclass(frozen=True)
class _Stat:
    state: str
    group: int
    started: int
    """Clock ticks after boot."""


def _stat(pid: int) -> _Stat | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return _Stat(state=fields[0], group=int(fields[2]), started=int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat.state != "Z"


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:160]


# ---------------------------------------------------------------------- in-process controller


class Scenario:
    """A LocalController on `state_dir`, ticked every TICK_S by a background thread."""

    def __init__(
        self, state_dir: Path, children: Children, *, prometheus: bool | None = None
    ) -> None:
        self.state = StateDir(state_dir)
        self.children = children
        self.want_prometheus = prometheus
        self.controller: LocalController | None = None
        self.traffic: Traffic | None = None
        self.error: str | None = None
        self.seen: set[int] = set()
        """Every child pid (runtime processes, Prometheus) this controller was seen running."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, manifest: dict[str, Any]) -> Scenario:
        self.state.apply(manifest)
        self.controller = LocalController(
            self.state, router_port=0, prometheus=self.want_prometheus
        )
        self.controller.start()
        self._note()
        self._thread = threading.Thread(target=self._tick_loop, name="scenario-ticks", daemon=True)
        self._thread.start()
        return self

    def close(self) -> set[int]:
        """Stop the traffic, the ticks and the controller; returns every child pid seen."""
        if self.traffic is not None:
            self.traffic.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
        if self.controller is not None:
            self._note()
            self.controller.close()
        return self.seen

    def _note(self) -> None:
        controller = self.ctl
        pids = controller.fleet.pids()
        if controller.prometheus is not None and controller.prometheus.pid:
            pids.append(controller.prometheus.pid)
        self.seen.update(pids)
        self.children.note_controller(controller)

    def _tick_loop(self) -> None:
        assert self.controller is not None
        while not self._stop.wait(TICK_S):
            try:
                self.controller.tick()
            except Exception:
                self.error = traceback.format_exc()
                return
            self._note()

    # ------------------------------------------------------------------ looking
    @property
    def ctl(self) -> LocalController:
        assert self.controller is not None, "start() first"
        return self.controller

    @property
    def status(self) -> ModelDeploymentStatus:
        return self.ctl.status

    @property
    def events(self) -> list[LocalEvent]:
        return list(self.ctl.record.events)

    def describe(self) -> str:
        return describe(self.status, self.events)

    def wait_for(
        self,
        predicate: Callable[[ModelDeploymentStatus], bool],
        timeout: float,
        what: str,
    ) -> ModelDeploymentStatus:
        """Poll the status until `predicate`; on timeout (or a tick that raised) fail with the
        status, the checks and the recent Events."""
        deadline = time.monotonic() + timeout
        while True:
            if self.error is not None:
                raise AssertionError(f"a controller tick raised:\n{self.error}")
            status = self.status
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g}s\n  {self.describe()}")
            time.sleep(POLL_S)

    def events_for(self, reason: str, revision_or_version: str | None = None) -> list[LocalEvent]:
        return [
            e
            for e in self.events
            if e.reason == reason
            and (revision_or_version is None or revision_or_version in e.message)
        ]

    # ------------------------------------------------------------------ doing
    def apply(self, manifest: dict[str, Any]) -> None:
        self.state.apply(manifest)

    def start_traffic(self, model: DemoModel, rate: float) -> Traffic:
        if self.traffic is None:
            self.traffic = Traffic(model)
        self.traffic.start(self.ctl.router.url, rate)
        return self.traffic

    def serve_first(self, model: DemoModel, rate: float, timeout: float = 60.0) -> None:
        """Wait for `model` (the manifest started with) to be stable, then send traffic."""
        self.wait_for(stable_on(model.version), timeout, f"v{model.version} stable")
        self.start_traffic(model, rate)


# ---------------------------------------------------------------------- `serinus local up`


def write_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


class UpProcess:
    """`serinus local up -f FILE --state-dir DIR --port PORT --no-live --tick 0.5` as a
    subprocess, its output in `log`."""

    def __init__(
        self,
        manifest_file: Path,
        state_dir: Path,
        port: int,
        log: Path,
        *,
        children: Children,
        tick: float = 0.5,
    ) -> None:
        self.state = StateDir(state_dir)
        self.log = log
        self.children = children
        self.started: set[int] = set()
        """Child pids this command recorded in controller.json (as seen by `record`)."""
        argv = [
            str(SERINUS), "local", "up", "-f", str(manifest_file), "--state-dir", str(state_dir),
            "--port", str(port), "--no-live", "--tick", f"{tick:g}",
        ]  # fmt: skip
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "200"},
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def record(self) -> ControllerState:
        """controller.json as the command wrote it last; its child pids are noted."""
        record = self.state.read_controller()
        self.children.note_record(record)
        if record.controller_pid == self.pid:
            self.started.update(record.runtime_pids)
            if record.prometheus_pid:
                self.started.add(record.prometheus_pid)
        return record

    def status(self) -> ModelDeploymentStatus:
        return ModelDeploymentStatus.model_validate(self.record().status)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def describe(self) -> str:
        record = self.record()
        status = ModelDeploymentStatus.model_validate(record.status)
        tail = "\n    ".join(self.output().splitlines()[-25:])
        return f"{describe(status, record.events)}\n  output:\n    {tail}"

    def wait_for(
        self, predicate: Callable[[ControllerState], bool], timeout: float, what: str
    ) -> ControllerState:
        """Poll controller.json until `predicate`; fail early if the command exits."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.record()
            if predicate(record):
                return record
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{what}: `serinus local up` exited with {self.proc.returncode}\n  "
                    f"{self.describe()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g}s\n  {self.describe()}")
            time.sleep(POLL_S)

    def wait_status(
        self, predicate: Callable[[ModelDeploymentStatus], bool], timeout: float, what: str
    ) -> ControllerState:
        """`wait_for` on the status this process wrote (not a predecessor's)."""
        return self.wait_for(
            lambda r: (
                r.controller_pid == self.pid
                and predicate(ModelDeploymentStatus.model_validate(r.status))
            ),
            timeout,
            what,
        )

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Teardown after a failure: Ctrl-C, SIGKILL if it does not end, and then reap what a
        SIGKILLed command left (as its successor would)."""
        if self.proc.poll() is None:
            self.signal(signal.SIGINT)
            try:
                self.proc.wait(30.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        record = self.record()
        if record.controller_pid == self.pid:  # it did not clean up
            if record.runtime_pids:
                orphans.reap(record.runtime_pids, record.fleet_id)
            if record.prometheus_pid and record.prometheus_dir:
                orphans.reap_prometheus(record.prometheus_pid, Path(record.prometheus_dir))
