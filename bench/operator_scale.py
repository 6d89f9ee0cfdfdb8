"""Operator at scale: N ModelDeployments in kmock, time until all are Stable, RSS, idle CPU.

This process serves kmock (the Kubernetes API emulator) and plays the Deployment and Job
controllers through its API; the operator is a separate `serinus operator` process, so the RSS
and CPU reported are the operator's alone. Results are printed as Markdown rows for the
"Operator scale" section of bench/README.md.

    python bench/operator_scale.py              # 1 000 objects, 60 s idle window
    python bench/operator_scale.py --quick      # 50 objects, 10 s idle window
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attrs
import kmock

from serinus.api.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION

MD = f"{GROUP}/{VERSION}/{PLURAL}"
SERINUS = Path(sys.executable).with_name("serinus")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
CONTROLLER_PERIOD = 1.0
IN_FLIGHT = 16
PR_SET_PDEATHSIG = 1  # linux/prctl.h


# --- the emulated cluster ----------------------------------------------------------------


@attrs.define(kw_only=True)
class _SingleRequestDispatch(kmock.RawHandler):
    """kmock's dispatch, minus its quadratic cost.

    kmock decides whether a reaction serves a request with `request in reaction_view`, which
    walks every request served so far through the view's filters: after 20 000 requests each new
    one costs ~20 000 x 13 filter checks, and kmock (not the operator) becomes the bottleneck
    within a few hundred objects. The views here are plain filters (no slices), so a request
    matches a view exactly when it matches while being the only request logged. The swap is
    synchronous, so no other request ever sees the shortened log.
    """

    def _serving(self, request: kmock.Request) -> list[Any]:
        everything = self._requests
        self._requests = [request]
        try:
            ranked = sorted(self._payloads, key=_rank(self._payloads))
            return [p for p in ranked if request in p._source and not p._disabled.is_set()]
        finally:
            self._requests = everything

    async def _handle(self, request: kmock.Request) -> Any:
        for payload in self._serving(request):
            try:
                return await payload(request)
            except kmock.ReactionMismatchError:
                payload._disabled.set()
            except NotImplementedError:
                pass
        raise NotImplementedError(f"kmock has no reaction for {request.method} {request.url}")


def _rank(payloads: list[Any]) -> Any:
    """kmock's order: higher priority first, priorities zero-padded to the same depth."""
    depth = max((len(p.priorities) for p in payloads), default=0)
    return lambda p: tuple(-x for x in p.priorities) + (0,) * (depth - len(p.priorities))


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator, _SingleRequestDispatch):
    """kmock's KubernetesEmulator, its object store, indexed, in front of the dispatch above.

    kmock scans every stored object for each get, patch and list; with ~10 objects per
    ModelDeployment that scan, not the operator, would set the pace. Same answers, by key.
    Objects are only ever added to kmock's dict (deletion is a tombstone in place), so new keys
    are always at its end and the index only needs the tail.
    """

    _by_namespace: dict[str | None, list[Any]] = attrs.field(factory=dict, init=False)
    _by_plural: dict[str, list[Any]] = attrs.field(factory=dict, init=False)
    _indexed: int = attrs.field(default=0, init=False)
    _version: int = attrs.field(default=1, init=False)

    async def _handle(self, request: kmock.Request) -> Any:
        # kmock keeps whatever resourceVersion the client sent. kopf tells its own patches'
        # echoes from stale watch events by resourceVersion, so with a constant one it acts on
        # stale bodies (every creation was handled twice). An API server bumps it on every write.
        writes = (kmock.action.CREATE, kmock.action.UPDATE)
        if request.action in writes and isinstance(request.data, dict):
            self._version += 1
            request.data.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        return await super()._handle(request)

    def _index(self) -> None:
        if len(self.objects) == self._indexed:
            return
        keys = list(self.objects.keys())
        for key in keys[self._indexed :]:
            self._by_namespace.setdefault(key[1], []).append(key)
            self._by_plural.setdefault(key[0].plural, []).append(key)
        self._indexed = len(keys)

    def live(self, plural: str) -> Iterator[tuple[Any, Any]]:
        """(key, object) of every live object of one resource."""
        self._index()
        stored = self.objects._objects
        for key in self._by_plural.get(plural, []):
            obj = stored[key]
            if not obj.deleted:
                yield key, obj

    def _KubernetesEmulator__get_objs(self, request: kmock.Request, strict: bool) -> list[Any]:
        stored = self.objects._objects
        if request.name is not None and (strict or request.namespace is not None):
            obj = stored.get((request.resource, request.namespace, request.name))
            return [] if obj is None else [obj]
        self._index()
        if request.namespace is None and not strict:
            keys: Iterable[Any] = stored
        else:
            keys = self._by_namespace.get(request.namespace, [])
        return [
            stored[key]
            for key in keys
            if key[0] == request.resource and (request.name is None or key[2] == request.name)
        ]

    def _get_resources(self) -> list[Any]:
        # Every resource the bench touches is declared; kmock would also walk all objects here.
        return kmock.KubernetesScaffold._get_resources(self)


def register_resources(k8s: Emulator) -> None:
    k8s.resources.load_bundled()
    k8s.resources[MD] = kmock.ResourceInfo(
        kind=KIND,
        singular="modeldeployment",
        namespaced=True,
        subresources={"status"},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
    )


def namespace_of(index: int) -> str:
    # One namespace per ModelDeployment: kmock ignores label selectors, so in a shared namespace
    # every "list my Deployments" would return all N of them (an O(N^2) artefact of the mock
    # that a real API server does not have).
    return f"bench-{index:04d}"


def manifest(index: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "namespace": namespace_of(index),
            "name": f"model-{index:04d}",
            "uid": f"uid-{index:04d}",
            "generation": 1,
        },
        "spec": {
            "model": {"uri": "file:///models/iris/1.0.0", "version": "1.0.0"},
            "runtime": {"replicas": 1},
        },
    }


async def send(k8s: Emulator, method: str, path: str, body: dict) -> None:
    response = await k8s.request(method, path, json=body)
    try:
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
    finally:
        response.release()


async def send_all(k8s: Emulator, requests: Iterable[tuple[str, str, dict]]) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(method: str, path: str, body: dict) -> None:
        async with gate:
            await send(k8s, method, path, body)

    await asyncio.gather(*(one(*request) for request in requests))


def controller_writes(k8s: Emulator) -> list[tuple[str, str, dict]]:
    """What the Deployment and Job controllers (and the kubelet) would write now."""
    writes = []
    for (_, ns, name), body in k8s.live("deployments"):
        wanted = (body.get("spec") or {}).get("replicas", 1)
        if (body.get("status") or {}).get("readyReplicas") != wanted:
            status = {"replicas": wanted, "readyReplicas": wanted, "availableReplicas": wanted}
            path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}/status"
            writes.append(("PATCH", path, {"status": status}))
    for (_, ns, name), body in k8s.live("jobs"):
        if not (body.get("status") or {}).get("conditions"):
            complete = {"type": "Complete", "status": "True", "reason": "Bench", "message": ""}
            path = f"/apis/batch/v1/namespaces/{ns}/jobs/{name}/status"
            writes.append(("PATCH", path, {"status": {"succeeded": 1, "conditions": [complete]}}))
    return writes


async def play_controllers(k8s: Emulator) -> None:
    while True:
        await send_all(k8s, controller_writes(k8s))
        await asyncio.sleep(CONTROLLER_PERIOD)


# --- the operator process ------------------------------------------------------------------


def write_kubeconfig(directory: Path, url: str) -> Path:
    path = directory / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "bench", "user": {}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "bench"}}],
        "current-context": "kmock",
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _die_with_parent() -> None:
    # Even if this process is killed outright, the operator must not outlive it.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def operator_process(kubeconfig: Path, log: Path) -> Iterator[subprocess.Popen]:
    env = os.environ | {"KUBECONFIG": str(kubeconfig), "SERINUS_METRICS_PORT": "0"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(SERINUS), "operator", "--standalone", "--liveness", ""],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    try:
        yield process
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Usage:
    """One reading of the operator's /proc entries."""

    at: float
    cpu_seconds: float
    rss: int
    peak_rss: int


def read_usage(pid: int) -> Usage:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) * 1024
    return Usage(
        at=time.monotonic(),
        cpu_seconds=(utime + stime) / CLOCK_TICKS,
        rss=memory["VmRSS"],
        peak_rss=memory["VmHWM"],
    )


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# --- the run -------------------------------------------------------------------------------


@dataclass
class Progress:
    """When each ModelDeployment first showed a status and first reached Stable."""

    count: int
    started: float = 0.0
    first_status: dict[str, float] = field(default_factory=dict)
    stable: dict[str, float] = field(default_factory=dict)
    phases: Counter[str] = field(default_factory=Counter)

    def observe(self, k8s: Emulator) -> None:
        now = time.monotonic()
        self.phases = Counter()
        for (_, ns, name), body in k8s.live(PLURAL):
            phase = (body.get("status") or {}).get("phase")
            self.phases[phase or "(none)"] += 1
            key = f"{ns}/{name}"
            if phase:
                self.first_status.setdefault(key, now - self.started)
            if phase == "Stable":
                self.stable.setdefault(key, now - self.started)

    def all_have_status(self) -> bool:
        return len(self.first_status) == self.count

    def all_stable(self) -> bool:
        return len(self.stable) == self.count and self.phases["Stable"] == self.count


@dataclass
class Result:
    count: int
    tick_seconds: str
    create_seconds: float = 0.0
    all_status_seconds: float | None = None
    all_stable_seconds: float | None = None
    phases: dict[str, int] = field(default_factory=dict)
    ramp_requests: Counter[str] = field(default_factory=Counter)
    ramp_operator_cpu: float = 0.0
    ramp_bench_cpu: float = 0.0
    ramp_wall: float = 0.0
    settle_seconds: float = 0.0
    idle_seconds: float = 0.0
    idle_cpu: float = 0.0
    idle_requests: Counter[str] = field(default_factory=Counter)
    idle_log_lines: int = 0
    rss_before: int = 0
    rss: int = 0
    peak_rss: int = 0
    rss_samples: list[tuple[float, int]] = field(default_factory=list)


VERBS = {"fetch": "get", "update": "patch"}


def request_kind(request: Any) -> str:
    """'patch modeldeployments/status' and the like, for counting."""
    action = getattr(request.action, "name", str(request.action)).lower()
    action = VERBS.get(action, action)
    resource = request.resource.plural if request.resource is not None else request.url.path
    sub = f"/{request.subresource}" if request.subresource else ""
    return f"{action} {resource}{sub}"


def from_operator(request: Any) -> bool:
    """Not one of the bench's own requests (kmock's client names itself in User-Agent)."""
    return not request.headers.get("User-Agent", "").startswith("kmock/")


def count_requests(requests: list[Any]) -> Counter[str]:
    return Counter(request_kind(r) for r in requests if from_operator(r))


async def wait_for_watch(k8s: Emulator, process: subprocess.Popen) -> None:
    watches = k8s["watch " + MD]
    async with asyncio.timeout(60):
        while not watches:
            if process.poll() is not None:
                raise RuntimeError(f"the operator exited with {process.returncode}")
            await asyncio.sleep(0.1)


async def create_all(k8s: Emulator, count: int) -> None:
    await send_all(
        k8s,
        (
            ("POST", f"/apis/{API_VERSION}/namespaces/{namespace_of(i)}/{PLURAL}", manifest(i))
            for i in range(count)
        ),
    )


async def ramp(
    k8s: Emulator,
    process: subprocess.Popen,
    result: Result,
    deadline: float,
) -> None:
    """Create every ModelDeployment, then wait until all are Stable (or the deadline)."""
    progress = Progress(count=result.count, started=time.monotonic())
    operator_before, bench_before = read_usage(process.pid), own_cpu_seconds()
    result.rss_before = operator_before.rss
    await create_all(k8s, result.count)
    result.create_seconds = time.monotonic() - progress.started
    last_report = 0.0
    while time.monotonic() - progress.started < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the operator exited with {process.returncode}")
        progress.observe(k8s)
        usage = read_usage(process.pid)
        elapsed = usage.at - progress.started
        result.rss_samples.append((elapsed, usage.rss))
        if result.all_status_seconds is None and progress.all_have_status():
            result.all_status_seconds = max(progress.first_status.values())
        if progress.all_stable():
            result.all_stable_seconds = max(progress.stable.values())
            break
        if elapsed - last_report >= 15:
            last_report = elapsed
            print(f"  {elapsed:5.0f} s  {dict(progress.phases)}  rss {usage.rss / MIB:.0f} MiB")
        await asyncio.sleep(0.5)
    progress.observe(k8s)
    result.phases = dict(progress.phases)
    result.ramp_wall = time.monotonic() - progress.started
    result.ramp_operator_cpu = read_usage(process.pid).cpu_seconds - operator_before.cpu_seconds
    result.ramp_bench_cpu = own_cpu_seconds() - bench_before


def log_lines(log: Path) -> int:
    with log.open("rb") as lines:
        return sum(1 for _ in lines)


SETTLE_QUIET = 5.0
SETTLE_LIMIT = 180.0


async def settle(k8s: Emulator, result: Result) -> None:
    """All Stable is not yet idle: events of the ramp (Deployments turning ready) may still be
    queued in the operator. Idle starts once it made no API request for SETTLE_QUIET seconds."""
    started = time.monotonic()
    seen, quiet_since = len(list(k8s)), time.monotonic()
    while time.monotonic() - started < SETTLE_LIMIT:
        await asyncio.sleep(0.5)
        now_seen = len([r for r in list(k8s)[seen:] if from_operator(r)])
        if now_seen:
            seen, quiet_since = len(list(k8s)), time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_QUIET:
            break
    result.settle_seconds = time.monotonic() - started


async def idle(
    k8s: Emulator,
    process: subprocess.Popen,
    log: Path,
    result: Result,
    window: float,
) -> None:
    """Nothing changes for `window` seconds: what does the operator spend?"""
    requests_before, lines_before = len(list(k8s)), log_lines(log)
    before = read_usage(process.pid)
    await asyncio.sleep(window)
    after = read_usage(process.pid)
    result.idle_seconds = after.at - before.at
    result.idle_cpu = (after.cpu_seconds - before.cpu_seconds) / result.idle_seconds
    result.idle_requests = count_requests(list(k8s)[requests_before:])
    result.idle_log_lines = log_lines(log) - lines_before
    result.rss, result.peak_rss = after.rss, after.peak_rss


@contextlib.asynccontextmanager
async def background(coroutine: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run(count: int, window: float, deadline: float, workdir: Path) -> Result:
    result = Result(count=count, tick_seconds=os.environ.get("SERINUS_TICK_SECONDS", "5"))
    log = workdir / "operator.log"
    async with Emulator() as k8s, kmock.Server(k8s):
        register_resources(k8s)
        kubeconfig = write_kubeconfig(workdir, str(k8s.url).rstrip("/"))
        with operator_process(kubeconfig, log) as process:
            await wait_for_watch(k8s, process)
            print(f"operator pid {process.pid} is watching; creating {count} ModelDeployments")
            async with background(play_controllers(k8s)):
                first_request = len(list(k8s))
                await ramp(k8s, process, result, deadline)
                result.ramp_requests = count_requests(list(k8s)[first_request:])
                print(f"ramp done after {result.ramp_wall:.0f} s: {result.phases}")
                await settle(k8s, result)
                print(f"operator quiet {result.settle_seconds:.0f} s later")
                await idle(k8s, process, log, result, window)
        errors = [e for e in k8s.errors if getattr(e, "status", None) != 404]
        if errors:
            print(f"kmock served {len(errors)} errors besides 404, first: {errors[0]!r}")
    return result


# --- reporting -----------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.0f} s"


def markdown(result: Result) -> str:
    ramp_total = sum(result.ramp_requests.values())
    idle_total = sum(result.idle_requests.values())
    per_object = ramp_total / result.count
    idle_rate = idle_total / result.idle_seconds
    return "\n".join(
        [
            "| ModelDeployments | tick | created in | all have a status | all Stable "
            "| operator API requests per object to Stable | operator CPU during ramp | RSS idle "
            "| peak RSS | idle CPU | idle operator API requests/s | idle log lines/s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {result.count} | {result.tick_seconds} s | {result.create_seconds:.0f} s "
            f"| {seconds(result.all_status_seconds)} | {seconds(result.all_stable_seconds)} "
            f"| {per_object:.1f} | {result.ramp_operator_cpu:.0f} s "
            f"({100 * result.ramp_operator_cpu / result.ramp_wall:.0f} % of a core) "
            f"| {result.rss / MIB:.0f} MiB | {result.peak_rss / MIB:.0f} MiB "
            f"| {100 * result.idle_cpu:.1f} % of a core | {idle_rate:.1f} "
            f"| {result.idle_log_lines / result.idle_seconds:.1f} |",
        ]
    )


def breakdown(title: str, counts: Counter[str], per: float, unit: str) -> str:
    lines = [f"{title} ({unit}):"]
    lines += [f"  {kind:40} {n / per:8.2f}" for kind, n in counts.most_common()]
    return "\n".join(lines)


def report(result: Result) -> None:
    print()
    print(markdown(result))
    print()
    print(f"phases at the end of the ramp: {result.phases}")
    print(f"bench process (kmock + controllers) CPU during ramp: {result.ramp_bench_cpu:.0f} s")
    print(
        breakdown(
            "operator requests during ramp",
            result.ramp_requests,
            result.count,
            "per ModelDeployment",
        )
    )
    print(
        breakdown(
            "operator requests while idle", result.idle_requests, result.idle_seconds, "per second"
        )
    )
    samples = result.rss_samples[:: max(1, len(result.rss_samples) // 10)]
    print(f"RSS with no ModelDeployment yet: {result.rss_before / MIB:.0f} MiB")
    print("RSS during ramp: " + ", ".join(f"{t:.0f} s {r / MIB:.0f} MiB" for t, r in samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="ModelDeployments (1000)")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds (60)")
    parser.add_argument(
        "--deadline", type=float, default=450.0, help="give up waiting for Stable after (450 s)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 objects, 10 s idle")
    parser.add_argument("--keep", type=Path, help="keep the kubeconfig and operator log here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop the operator
    count, window = (50, 10.0) if args.quick else (args.count, args.idle)
    with contextlib.ExitStack() as stack:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="serinus-")))
        result = asyncio.run(run(count, window, args.deadline, workdir))
    report(result)


if __name__ == "__main__":
    main()
