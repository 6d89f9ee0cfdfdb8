"""`LocalPrometheus`: a real Prometheus scraping local mode's runtime processes.

Local mode judges canaries with the same `prometheus` metrics provider as the operator when the
`prometheus` binary is on PATH: this module runs that Prometheus. Everything lives in one work
directory, which belongs to one controller:

- `prometheus.yml`, generated at each start: one job `serinus` whose targets come from
  `targets.json` through `file_sd_configs`. Prometheus watches that file, so `set_targets`
  changes what is scraped without a restart (it takes effect within about 5-10 s: Prometheus
  throttles discovery updates and applies scrape changes every 5 s). The runtime labels its
  series with model, revision and variant itself, so there is no relabelling.
- `data/` (the TSDB, kept across restarts, retention 1 day) and `prometheus.log` (its output,
  appended to; a failed start quotes the lines of that attempt).
- `prometheus.pid` while it runs: `start` reaps what a SIGKILLed predecessor left there.

No orphans, as for runtime processes: Prometheus leads its own session (a terminal's Ctrl-C
reaches the controller only, which stops it in order), it is `track`ed so interpreter exit and
SIGTERM / SIGHUP stop it, and a controller that died by SIGKILL is cleaned up after by
`serinus.local.orphans.reap_prometheus(pid, workdir)`, which checks the command line first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from serinus.local.orphans import PROMETHEUS_CONFIG, reap_prometheus, track, untrack

log = logging.getLogger(__name__)

BINARY_NAME = "prometheus"
JOB = "serinus"
REVISION_LABEL = "serinus_revision"
"""Added to each target group (and so to its series): which revision Serinus scrapes there."""
TARGETS_FILE = "targets.json"
LOG_FILE = "prometheus.log"
PID_FILE = "prometheus.pid"
DATA_DIR = "data"
RETENTION = "1d"
SD_REFRESH = "5s"
"""file_sd re-reads targets.json this often besides watching it (a lost inotify event)."""
PORT_ATTEMPTS = 5
"""Free ports tried when port=0 and another process took the chosen one meanwhile."""
LOG_LINES = 12
POLL_S = 0.1
HTTP_TIMEOUT_S = 2.0
BIND_FAILURE = "address already in use"


class PrometheusError(Exception):
    """The local Prometheus did not start or did not scrape; the message quotes its log and
    says what to do."""


class _PortTaken(Exception):
    """This attempt lost its port to another process: another free port may do."""


def find_binary() -> str | None:
    """The `prometheus` executable on PATH, or None: local mode then uses the scrape provider."""
    return shutil.which(BINARY_NAME)


class LocalPrometheus:
    """One Prometheus process on 127.0.0.1 over `workdir`. Thread-safe.

    `binary` defaults to `find_binary()`. `port` 0 picks a free port at the first start; every
    later start (`restart`) keeps the address, so providers and URLs stay valid. Also a context
    manager: started on entry when not running, stopped on exit."""

    def __init__(
        self,
        workdir: Path,
        *,
        binary: str | None = None,
        scrape_interval: float = 1.0,
        port: int = 0,
    ) -> None:
        if scrape_interval < 0.001:
            raise ValueError(f"scrape_interval must be at least 1 ms, got {scrape_interval}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or a TCP port, got {port}")
        # Resolved: the path on Prometheus' command line is what `reap_prometheus` matches.
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary if binary is not None else find_binary()
        self.scrape_interval = scrape_interval
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        """Size of the log when the current process started: its own lines come after."""
        self._lock = threading.RLock()
        self._targets_lock = threading.Lock()

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.workdir / PROMETHEUS_CONFIG

    @property
    def targets_path(self) -> Path:
        return self.workdir / TARGETS_FILE

    @property
    def data_dir(self) -> Path:
        return self.workdir / DATA_DIR

    @property
    def log_path(self) -> Path:
        return self.workdir / LOG_FILE

    @property
    def pid_path(self) -> Path:
        return self.workdir / PID_FILE

    # ------------------------------------------------------------------ observe
    @property
    def port(self) -> int:
        """The listening port; 0 until the first start when it was left to choose."""
        return self._port

    @property
    def address(self) -> str:
        """Base URL for the `prometheus` metrics provider: http://127.0.0.1:PORT."""
        if not self._port:
            raise PrometheusError("this LocalPrometheus has no address yet: start it first")
        return f"http://127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        """The running process' pid (= its process group), for a controller to record."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    # ------------------------------------------------------------------ targets
    def set_targets(self, targets: Mapping[str, Sequence[str]]) -> bool:
        """Scrape exactly these processes: revision -> ["host:port" or "http://host:port"].
        Written atomically (Prometheus never reads half a file) and only when it changes, so
        calling it on every tick costs nothing. Works before `start` too. Returns whether the
        file changed; ValueError for an address that is neither form."""
        groups = [
            {"targets": sorted({_host_port(t) for t in addresses}), "labels": {REVISION_LABEL: rev}}
            for rev, addresses in sorted(targets.items())
            if addresses
        ]
        text = json.dumps(groups, indent=2, sort_keys=True) + "\n"
        with self._targets_lock:
            with contextlib.suppress(OSError):
                if self.targets_path.read_text() == text:
                    return False
            _write_atomically(self.targets_path, text)
        log.debug("prometheus targets now: %s", text.replace("\n", " "))
        return True

    def wait_scraped(self, target: str, timeout: float = 30.0) -> None:
        """Block until Prometheus reports `target` ("host:port" or its URL) as up: scraped
        successfully at least once, so its series are queryable. Raises PrometheusError at the
        timeout (saying how the target looks to Prometheus) or if Prometheus exits."""
        want = _host_port(target)
        deadline = time.monotonic() + timeout
        seen = "it is not among Prometheus' targets yet (set_targets, then allow 5-10 s)"
        with httpx.Client(base_url=self.address, timeout=HTTP_TIMEOUT_S) as client:
            while True:
                self._check_alive()
                found = _find_target(client, want)
                if found is not None:
                    if found.get("health") == "up":
                        return
                    error = found.get("lastError") or "not scraped yet"
                    seen = f"its health is {found.get('health')!r}: {error}"
                if time.monotonic() > deadline:
                    raise PrometheusError(
                        f"Prometheus at {self.address} has not scraped {want} within "
                        f"{timeout:g}s: {seen}. Check that http://{want}/metrics answers and "
                        f"that {self.targets_path} lists it"
                    )
                time.sleep(POLL_S * 2)

    def scraped(self) -> set[str]:
        """The targets ("host:port") Prometheus has scraped successfully; empty while it does
        not answer. One request: cheap enough for every tick of a controller."""
        try:
            with httpx.Client(base_url=self.address, timeout=HTTP_TIMEOUT_S) as client:
                response = client.get("/api/v1/targets", params={"state": "active"})
                response.raise_for_status()
                active = response.json()["data"]["activeTargets"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, RuntimeError):
            return set()
        return {
            str(target.get("labels", {}).get("instance"))
            for target in active
            if target.get("health") == "up"
        }

    # ------------------------------------------------------------------ control
    def start(self, timeout: float = 30.0) -> None:
        """Start Prometheus and wait until /-/ready answers. A no-op when running. Raises
        PrometheusError, quoting the log, when it exits first or is not ready in time."""
        with self._lock:
            if self.running:
                return
            binary = self._require_binary()
            self._reap_stale()
            self._write_config()
            if not self.targets_path.exists():
                self.set_targets({})
            self.data_dir.mkdir(exist_ok=True)
            deadline = time.monotonic() + timeout
            attempts = 1 if self._port else PORT_ATTEMPTS
            for attempt in range(1, attempts + 1):
                port = self._port or _free_port()
                try:
                    self._launch(binary, port, deadline, timeout)
                except _PortTaken as taken:
                    if attempt == attempts:
                        raise PrometheusError(str(taken)) from None
                    log.info("port %d was taken meanwhile: trying another", port)
                    continue
                self._port = port
                log.info("prometheus ready at %s (pid %d)", self.address, self.pid)
                return

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (Prometheus flushes and exits), SIGKILL after `grace`; waits for the exit."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                _stop_process(proc, grace)
                # Only our own record: one left by a dead predecessor is for `start` to reap.
                with contextlib.suppress(OSError):
                    self.pid_path.unlink()
            untrack(self)

    def kill(self) -> None:
        """SIGKILL and wait: a crash, for tests. The pid file stays, as after a real crash."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            untrack(self)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop if running, start again on the same port over the same data: the address stays
        valid and earlier samples stay queryable."""
        with self._lock:
            self.stop()
            self.start(timeout)

    def close(self) -> None:
        """`stop`, under the name `serinus.local.orphans.track` calls at exit."""
        self.stop()

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def config(self) -> dict[str, Any]:
        """The generated prometheus.yml, as data (the scrape timeout equals the interval,
        which Prometheus requires to be no longer)."""
        interval = _duration(self.scrape_interval)
        return {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "file_sd_configs": [
                        {"files": [str(self.targets_path)], "refresh_interval": SD_REFRESH}
                    ],
                }
            ],
        }

    def _write_config(self) -> None:
        header = "# Generated by Serinus local mode at each start: edits are lost.\n"
        _write_atomically(self.config_path, header + yaml.safe_dump(self.config(), sort_keys=False))

    def _require_binary(self) -> str:
        if self.binary is None:
            raise PrometheusError(
                "no `prometheus` executable on PATH: install it (apt-get install prometheus) "
                "or pass its path as binary="
            )
        return self.binary

    def _reap_stale(self) -> None:
        """A Prometheus left on this work directory by a SIGKILLed controller would write the
        same data directory: stop it (only if it really is that Prometheus)."""
        try:
            stale = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        if reap_prometheus(stale, self.workdir, binary=self.binary):
            log.warning("stopped a leftover prometheus (pid %d) of %s", stale, self.workdir)
        with contextlib.suppress(OSError):
            self.pid_path.unlink()

    def _launch(self, binary: str, port: int, deadline: float, timeout: float) -> None:
        argv = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.retention.time={RETENTION}",
        ]
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            except OSError as error:
                raise PrometheusError(
                    f"cannot run {binary}: {error.strerror or error}. Install prometheus "
                    "(apt-get install prometheus) or pass the path of a working binary"
                ) from error
        # Tracked and recorded at once: a controller stopped or killed while Prometheus starts
        # up leaves nothing behind (exit hooks) or something `start` and the reaper recognise.
        self._proc = proc
        track(self)
        _write_atomically(self.pid_path, f"{proc.pid}\n")
        try:
            self._wait_ready(proc, port, deadline, timeout)
        except BaseException:
            # Not ready (or interrupted while waiting): leave no process and no record behind.
            self._proc = None
            untrack(self)
            _stop_process(proc, grace=1.0)
            with contextlib.suppress(OSError):
                self.pid_path.unlink()
            raise

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], port: int, deadline: float, timeout: float
    ) -> None:
        url = f"http://127.0.0.1:{port}/-/ready"
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            while True:
                if proc.poll() is not None:
                    raise self._exited(proc.returncode, port)
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise PrometheusError(
                        f"prometheus did not become ready on 127.0.0.1:{port} within "
                        f"{timeout:g}s (a large write-ahead log takes a while to replay: allow "
                        f"more time, or delete {self.data_dir} to start empty). "
                        + self._log_excerpt()
                    )
                time.sleep(POLL_S)

    def _exited(self, code: int, port: int) -> Exception:
        """The error for a Prometheus that exited before it was ready."""
        excerpt = self._log_excerpt()
        text = self._log_since_start()
        what = f"prometheus ({self.binary}) exited with code {code} before it was ready"
        if BIND_FAILURE in text:
            message = (
                f"{what}: 127.0.0.1:{port} is taken by another process. Free that port, or use "
                f"port=0 for any free one. {excerpt}"
            )
            return _PortTaken(message)
        if "Error loading config" in text:
            advice = (
                f"It rejected the generated {self.config_path}: this prometheus may be too old "
                "for it (Serinus is tested with 2.42)."
            )
        else:
            advice = "Fix what its log says, then start again."
        return PrometheusError(f"{what}. {advice} {excerpt}")

    def _log_since_start(self) -> str:
        """What the current (or last) process wrote: earlier runs' lines are not its story."""
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(self._log_offset)
                return log_file.read().decode(errors="replace")
        except OSError:
            return ""

    def _log_excerpt(self) -> str:
        """The last lines the current process wrote, indented, and where the rest is."""
        lines = [line for line in self._log_since_start().splitlines() if line.strip()]
        lines = lines[-LOG_LINES:]
        if not lines:
            return f"It wrote nothing to {self.log_path}."
        quoted = "\n".join(f"  {line}" for line in lines)
        return f"Last lines of {self.log_path}:\n{quoted}"

    def _check_alive(self) -> None:
        proc = self._proc
        if proc is None:
            raise PrometheusError(f"prometheus is not running on {self.workdir}: start it first")
        if proc.poll() is not None:
            raise PrometheusError(
                f"prometheus (pid {proc.pid}) exited with code {proc.returncode}: "
                f"restart it. {self._log_excerpt()}"
            )


def _find_target(client: httpx.Client, want: str) -> dict[str, Any] | None:
    """The active target scraped at `want` (host:port), as /api/v1/targets describes it."""
    try:
        response = client.get("/api/v1/targets", params={"state": "active"})
        response.raise_for_status()
        active = response.json()["data"]["activeTargets"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None  # not answering yet, or restarting: the caller's timeout decides
    for target in active:
        if target.get("labels", {}).get("instance") == want:
            return dict(target)
    return None


def _host_port(target: str) -> str:
    """ "host:port" from "host:port" or "http://host:port[/]"; ValueError for anything else."""
    value = target.strip()
    if "://" in value:
        scheme, value = value.split("://", 1)
        if scheme != "http":
            raise ValueError(f"target {target!r}: local runtimes are scraped over http")
        value = value.rstrip("/")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or "/" in value:
        raise ValueError(f"target {target!r}: expected host:port or http://host:port")
    return value


def _duration(seconds: float) -> str:
    """A Prometheus duration: whole seconds as "2s", anything else in milliseconds."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _write_atomically(path: Path, text: str) -> None:
    """Write a sibling temporary file, then rename it over `path`: readers see the old file
    or the new one, never a part (Prometheus re-reads targets.json as soon as it changes)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to the group (Prometheus flushes and exits), SIGKILL after `grace`; waits."""
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        log.warning("prometheus pid %d did not stop in %gs: killing it", proc.pid, grace)
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal Prometheus' process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
