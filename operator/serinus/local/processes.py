"""`RuntimeFleet`: `serinus-runtime` child processes per revision, on free 127.0.0.1 ports.

Local mode's stand-in for Deployments and their pods. A revision runs `replicas` processes
(`sys.executable -m serinus_runtime`), configured through the same SERINUS_* variables the
Kubernetes driver puts in a pod (the user's `runtime.env` after them, so it can override, as in
a pod). A background supervisor thread notices exits (keeping the exit code and the last line
the process wrote, for a status message), restarts crashed replicas with a growing back-off like
a kubelet's CrashLoopBackOff, and probes `/v2/health/ready`, so `ready()` answers at once from
what it saw last.

No orphans: each child leads its own session and process group (so `--workers` children are
signalled with it, and a terminal's Ctrl-C reaches the controller only, which then stops the
children in order). Children are stopped on `stop_all()`, at interpreter exit, and on SIGTERM /
SIGHUP when nobody else handles those. A controller killed with SIGKILL cannot clean up: it
records `pids()` and `fleet_id`, and its successor calls `serinus.local.orphans.reap(pids,
fleet_id)`.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

from serinus.api.spec import ModelSpec, RuntimeSpec
from serinus.local.orphans import FLEET_ENV, RUNTIME_MODULE, track, untrack

log = logging.getLogger(__name__)

LAST_LINES = 20
LOADING_STOP_S = 1.0
"""How long a runtime that is not ready yet gets after SIGTERM before SIGKILL."""
BIND_FAILURE = "cannot listen on"
"""The runtime's message when its port is taken: the replica restarts on another port."""


class FleetError(Exception):
    """A revision's processes did not become ready; the message says why (exit code, last
    line the runtime wrote) and what to look at."""


class RevisionSpec(BaseModel):
    """What to run for one revision: the runtime's settings and how many processes."""

    model_config = ConfigDict(frozen=True)

    revision: str = Field(min_length=1, description="Revision id; the runtime's metrics label.")
    name: str = Field(min_length=1, description="Model name in URLs and metrics.")
    model_uri: str = Field(min_length=1, description="Bundle directory or model file.")
    variant: str = Field(default="", description="stable, canary...: a metrics label.")
    version: str | None = Field(default=None, description="Model version (default: bundle's).")
    format: str | None = Field(default=None, description="skops | onnx | joblib.")
    sha256: str | None = Field(default=None, description="Expected digest of the model file.")
    trust: bool = Field(default=False, description="Allow joblib/pickle (needs sha256).")
    trusted_types: tuple[str, ...] = Field(default=(), description="Extra skops types.")
    replicas: int = Field(default=1, ge=1, le=64, description="Processes for this revision.")
    workers: int = Field(default=1, ge=1, le=64, description="--workers of each process.")
    max_batch_size: int | None = Field(default=None, ge=1)
    max_latency_ms: float | None = Field(default=None, ge=0)
    env: Mapping[str, str] = Field(default_factory=dict, description="Extra environment.")

    @classmethod
    def from_spec(
        cls, name: str, revision: str, variant: str, model: ModelSpec, runtime: RuntimeSpec
    ) -> RevisionSpec:
        """The same settings the Kubernetes driver gives a revision's pods."""
        env: dict[str, str] = {}
        for var in runtime.env:
            if var.value is None:
                log.warning(
                    "runtime.env %s uses valueFrom, which local mode cannot resolve: left out "
                    "(give it a value to use it locally)",
                    var.name,
                )
                continue
            env[var.name] = var.value
        return cls(
            revision=revision,
            name=name,
            model_uri=model.uri,
            variant=variant,
            version=model.version or revision,
            format=model.format.value,
            sha256=model.sha256,
            trust=model.trust,
            trusted_types=tuple(model.trusted_types),
            replicas=runtime.replicas,
            workers=runtime.workers,
            max_batch_size=runtime.batching.max_batch_size,
            max_latency_ms=runtime.batching.max_latency_ms,
            env=env,
        )

    def environment(self) -> dict[str, str]:
        """SERINUS_* variables for the runtime, then the user's own (which may override)."""
        values = {
            "SERINUS_MODEL_URI": self.model_uri,
            "SERINUS_MODEL_FORMAT": self.format,
            "SERINUS_MODEL_SHA256": self.sha256,
            "SERINUS_MODEL_TRUST": "true" if self.trust else None,
            "SERINUS_MODEL_TRUSTED_TYPES": ",".join(self.trusted_types) or None,
            "SERINUS_MODEL_NAME": self.name,
            "SERINUS_MODEL_VERSION": self.version,
            "SERINUS_REVISION": self.revision,
            "SERINUS_VARIANT": self.variant,
            "SERINUS_WORKERS": str(self.workers),
            "SERINUS_MAX_BATCH_SIZE": _opt(self.max_batch_size),
            "SERINUS_MAX_LATENCY_MS": _opt(self.max_latency_ms),
        }
        return {k: v for k, v in values.items() if v is not None} | dict(self.env)

    def same_processes(self, other: RevisionSpec) -> bool:
        """True when only the replica count or the variant differ: scaling, or a promoted
        canary, whose processes keep their variant label (as pods do in Kubernetes)."""
        same = {"replicas": other.replicas, "variant": other.variant}
        return self.model_copy(update=same) == other


def _opt(value: object | None) -> str | None:
    return None if value is None else str(value)


class ReplicaStatus(BaseModel):
    """One process of a revision, as the supervisor saw it last."""

    index: int
    url: str
    pid: int | None = Field(description="None while waiting to restart after an exit.")
    running: bool
    ready: bool
    restarts: int = Field(description="Times this replica was started again after an exit.")
    exit_code: int | None = Field(
        description="Code of the last exit (negative: killed by that signal); None if none."
    )
    exit_line: str = Field(description="Last line written before that exit: often the why.")
    last_line: str = Field(description="Last line the process wrote (stdout/stderr).")


class RevisionStatus(BaseModel):
    """A revision's processes: what a status line or `serinus local status` shows."""

    revision: str
    variant: str
    replicas: int
    ready: int
    processes: list[ReplicaStatus]

    @property
    def message(self) -> str:
        text = f"{self.ready}/{self.replicas} ready"
        exited = [p for p in self.processes if p.exit_code is not None]
        if exited:
            last = exited[-1]
            text += (
                f"; replica {last.index} exited with {describe_exit(last.exit_code)}"
                f" ({last.restarts} restart(s)): {last.exit_line or 'no output'}"
            )
        return text


def describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"code {code}"


@dataclass(eq=False)
class _Replica:
    revision: str
    index: int
    port: int
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False
    probed_at: float = 0.0
    restarts: int = 0
    exit_code: int | None = None
    exit_line: str = ""
    restart_at: float | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LAST_LINES))
    reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(
            index=self.index,
            url=self.url,
            pid=self.proc.pid if self.running and self.proc else None,
            running=self.running,
            ready=self.ready,
            restarts=self.restarts,
            exit_code=self.exit_code,
            exit_line=self.exit_line,
            last_line=self.lines[-1] if self.lines else "",
        )


@dataclass(eq=False)
class _Revision:
    spec: RevisionSpec
    replicas: list[_Replica] = field(default_factory=list)


class RuntimeFleet:
    """Runtime processes by revision. Thread-safe; one supervisor thread per fleet.

    `restart_backoff` is the first wait before restarting a replica that exited (doubling per
    exit up to `max_backoff`); None never restarts (tests of crash handling)."""

    def __init__(
        self,
        *,
        shutdown_grace: float = 5.0,
        probe_interval: float = 0.25,
        probe_timeout: float = 1.0,
        restart_backoff: float | None = 1.0,
        max_backoff: float = 30.0,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.fleet_id = secrets.token_hex(8)
        self.shutdown_grace = shutdown_grace
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.restart_backoff = restart_backoff
        self.max_backoff = max_backoff
        self.python = python
        self.base_env = dict(os.environ if env is None else env)
        self._revisions: dict[str, _Revision] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._supervisor = threading.Thread(
            target=self._supervise, name=f"serinus-fleet-{self.fleet_id}", daemon=True
        )
        self._supervisor.start()
        track(self)

    # ------------------------------------------------------------------ control
    def start(self, spec: RevisionSpec) -> None:
        """Run `spec.replicas` processes for `spec.revision` (idempotent: a running revision is
        scaled to the count; processes already there are kept, and new ones get the variant the
        revision started with). Readiness comes later: see `ready` and `wait_ready`."""
        self._check_open()
        with self._lock:
            current = self._revisions.get(spec.revision)
            if current is not None and not current.spec.same_processes(spec):
                raise ValueError(
                    f"revision {spec.revision} already runs with other settings: a changed model "
                    "or runtime is a new revision; stop this one first"
                )
            if current is None:
                current = self._revisions[spec.revision] = _Revision(spec)
            current.spec = current.spec.model_copy(update={"replicas": spec.replicas})
            while len(current.replicas) < spec.replicas:
                replica = _Replica(spec.revision, len(current.replicas), self._free_port())
                current.replicas.append(replica)
                self._spawn(current.spec, replica)
            extra = current.replicas[spec.replicas :]
            del current.replicas[spec.replicas :]
        self._terminate(extra, self.shutdown_grace)

    def stop(self, revision: str) -> None:
        """Stop a revision's processes (SIGTERM: they drain, then SIGKILL after the grace)."""
        with self._lock:
            gone = self._revisions.pop(revision, None)
        if gone is not None:
            self._terminate(gone.replicas, self.shutdown_grace)

    def stop_all(self) -> None:
        """Stop every process of every revision, all at once, and wait for them."""
        with self._lock:
            replicas = [r for rev in self._revisions.values() for r in rev.replicas]
            self._revisions.clear()
        self._terminate(replicas, self.shutdown_grace)

    def kill(self, revision: str, sig: int = signal.SIGKILL) -> list[int]:
        """Send `sig` to every process of a revision (a simulated crash) and wait until the
        exits are recorded. Restarts follow the usual back-off. Returns the pids signalled."""
        with self._lock:
            replicas = list(self._replicas(revision))
        pids = []
        for replica in replicas:
            proc = replica.proc
            if proc is not None and proc.returncode is None:
                _signal_group(proc, sig)
                pids.append(proc.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(self.shutdown_grace + 2.0)
        self._check_exits()
        return pids

    def close(self) -> None:
        """stop_all, then end the supervisor. The fleet cannot be used afterwards."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        self.stop_all()
        if threading.current_thread() is not self._supervisor:
            self._supervisor.join(timeout=5.0)
        untrack(self)

    def __enter__(self) -> RuntimeFleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ observe
    def revisions(self) -> list[str]:
        with self._lock:
            return list(self._revisions)

    def ready(self, revision: str) -> int:
        """Processes of `revision` whose /v2/health/ready answered 200 at the last probe."""
        with self._lock:
            return sum(1 for r in self._replicas(revision) if r.ready and r.running)

    def urls(self, revision: str, *, ready_only: bool = False) -> list[str]:
        """Base URLs (http://127.0.0.1:PORT) of a revision's processes, by replica index."""
        with self._lock:
            return [
                r.url for r in self._replicas(revision) if not ready_only or (r.ready and r.running)
            ]

    def status(self, revision: str) -> RevisionStatus | None:
        with self._lock:
            rev = self._revisions.get(revision)
            if rev is None:
                return None
            processes = [r.status() for r in rev.replicas]
            return RevisionStatus(
                revision=revision,
                variant=rev.spec.variant,
                replicas=rev.spec.replicas,
                ready=sum(1 for p in processes if p.ready and p.running),
                processes=processes,
            )

    def pids(self) -> list[int]:
        """Pids (= process-group ids) of every running child, for a controller to record."""
        with self._lock:
            return [
                r.proc.pid
                for rev in self._revisions.values()
                for r in rev.replicas
                if r.proc is not None and r.proc.returncode is None
            ]

    def wait_ready(self, revision: str, count: int | None = None, timeout: float = 60.0) -> int:
        """Block until `count` (default: all replicas) processes are ready; returns the ready
        count. Raises FleetError at the timeout, or as soon as a replica exits meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(revision)
            if status is None:
                raise FleetError(f"revision {revision} is not running: start it first")
            want = status.replicas if count is None else count
            if status.ready >= want:
                return status.ready
            if any(not p.running and p.exit_code is not None for p in status.processes):
                raise FleetError(f"revision {revision}: {status.message}")
            if time.monotonic() > deadline:
                raise FleetError(
                    f"revision {revision} not ready after {timeout:g}s: {status.message}"
                )
            time.sleep(0.05)

    # ------------------------------------------------------------------ internals
    def _replicas(self, revision: str) -> list[_Replica]:
        rev = self._revisions.get(revision)
        return rev.replicas if rev is not None else []

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise RuntimeError("this RuntimeFleet is closed: make a new one")

    def _free_port(self) -> int:
        taken = {r.port for rev in self._revisions.values() for r in rev.replicas}
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in taken:
                return port

    def _spawn(self, spec: RevisionSpec, replica: _Replica) -> None:
        argv = [
            self.python, "-m", RUNTIME_MODULE, "--host", "127.0.0.1",
            "--port", str(replica.port), "--shutdown-grace", f"{self.shutdown_grace:g}",
        ]  # fmt: skip
        env = {**self.base_env, **spec.environment(), FLEET_ENV: self.fleet_id}
        env.pop("SERINUS_HOST", None)
        env.pop("SERINUS_PORT", None)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        replica.proc = proc
        replica.ready = False
        replica.probed_at = 0.0
        replica.restart_at = None
        replica.reader = threading.Thread(
            target=_read_lines,
            args=(proc.stdout, replica.lines, f"{spec.revision}/{replica.index}"),
            name=f"serinus-runtime-{proc.pid}-output",
            daemon=True,
        )
        replica.reader.start()
        log.info(
            "started runtime %s replica %d: pid %d on %s",
            spec.revision, replica.index, proc.pid, replica.url,
        )  # fmt: skip
        self._wake.set()

    def _terminate(self, replicas: Iterable[_Replica], grace: float) -> None:
        replicas = list(replicas)
        live = [(r, r.proc) for r in replicas if r.proc is not None and r.proc.returncode is None]
        for _, proc in live:
            _signal_group(proc, signal.SIGTERM)
        now = time.monotonic()
        for replica, proc in live:
            # A ready runtime drains in-flight requests for `grace` itself. One still loading
            # has nothing to drain, yet exits only once its load finishes (seconds): cut it short.
            deadline = now + (grace + 2.0 if replica.ready else LOADING_STOP_S)
            try:
                proc.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                log.info("runtime pid %d did not stop in time: killing it", proc.pid)
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            # Workers of a `--workers` runtime, should any outlive their parent.
            _signal_group(proc, signal.SIGKILL, leader_reaped=True)
        for replica in replicas:
            replica.ready = False
            if replica.reader is not None:
                replica.reader.join(timeout=1.0)  # output ends once the group is gone
            if replica.proc is not None and replica.proc.stdout is not None:
                with contextlib.suppress(OSError):
                    replica.proc.stdout.close()

    def _supervise(self) -> None:
        while not self._closed.is_set():
            try:
                self._check_exits()
                self._restart_due()
                self._probe_ready()
            except Exception:
                log.exception("runtime fleet supervisor error (it keeps running)")
            self._wake.wait(self.probe_interval)
            self._wake.clear()

    def _check_exits(self) -> None:
        with self._lock:
            for rev in self._revisions.values():
                for replica in rev.replicas:
                    proc = replica.proc
                    if proc is None or replica.restart_at is not None or proc.poll() is None:
                        continue
                    self._exited(rev.spec, replica, proc)

    def _exited(self, spec: RevisionSpec, replica: _Replica, proc: subprocess.Popen[bytes]) -> None:
        _signal_group(proc, signal.SIGKILL, leader_reaped=True)
        if replica.reader is not None:
            replica.reader.join(timeout=1.0)  # the last line is what tells why
        replica.ready = False
        replica.exit_code = proc.returncode
        replica.exit_line = last = replica.lines[-1] if replica.lines else ""
        if BIND_FAILURE in last:
            replica.port = self._free_port()
        if self.restart_backoff is None:
            replica.restart_at = float("inf")
        else:
            wait = min(self.restart_backoff * 2**replica.restarts, self.max_backoff)
            replica.restart_at = time.monotonic() + wait
        log.warning(
            "runtime %s replica %d (pid %d) exited with %s: %s",
            spec.revision, replica.index, proc.pid, describe_exit(proc.returncode),
            last or "no output",
        )  # fmt: skip

    def _restart_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            if self._closed.is_set():
                return
            for rev in self._revisions.values():
                for replica in rev.replicas:
                    if replica.restart_at is not None and replica.restart_at <= now:
                        replica.restarts += 1
                        self._spawn(rev.spec, replica)

    def _probe_ready(self) -> None:
        now = time.monotonic()
        with self._lock:
            # Not-ready processes are probed every tick; ready ones once a second.
            due = [
                r
                for rev in self._revisions.values()
                for r in rev.replicas
                if r.running and (not r.ready or now - r.probed_at >= 1.0)
            ]
        for replica in due:
            ok = self._is_ready(replica.port)
            with self._lock:
                replica.probed_at = time.monotonic()
                replica.ready = ok and replica.running

    def _is_ready(self, port: int) -> bool:
        # http.client, not httpx: a probe per process per tick must not log a line each.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.probe_timeout)
        try:
            conn.request("GET", "/v2/health/ready")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()


def _read_lines(stream: IO[bytes] | None, lines: deque[str], who: str) -> None:
    if stream is None:
        return
    out = logging.getLogger(f"{__name__}.runtime")
    with contextlib.suppress(OSError, ValueError):
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if line:
                lines.append(line)
                out.debug("[%s] %s", who, line)


def _signal_group(proc: subprocess.Popen[bytes], sig: int, *, leader_reaped: bool = False) -> None:
    """Signal the child's process group (it leads its own session)."""
    if proc.returncode is not None and not leader_reaped:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
