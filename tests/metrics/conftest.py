"""Fixtures for the metrics providers: real `serinus-runtime` processes and a real Prometheus.

Three runtimes serve model `iris` for the whole session, each as its own revision:
- STABLE: the iris example bundle;
- CANARY_BAD: `PetalRule` (metrics_test_models.py), which answers 500 to rows with a negative
  first feature — the canary with errors;
- CANARY_GOOD: the iris-v2 example bundle.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from metrics_test_models import PetalRule

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ROOT / "examples" / "bundles"
HERE = Path(__file__).resolve().parent
MODEL = "iris"
FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]

STABLE, CANARY_BAD, CANARY_GOOD = "rev-stable", "rev-petal", "rev-v2"

SETOSA_ROW = [5.1, 3.5, 1.4, 0.2]
VERSICOLOR_ROW = [5.9, 3.0, 4.2, 1.5]
VIRGINICA_ROW = [6.7, 3.0, 5.2, 2.3]
FAILING_ROW = [-1.0, 3.0, 1.4, 0.2]
"""PetalRule raises on it: HTTP 500."""
SHORT_ROW = [5.1, 3.5, 1.4]
"""Three features for a four-feature model: HTTP 400."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)


class Runtime:
    """A `serinus-runtime` subprocess serving one revision on a free port."""

    def __init__(self, revision: str, variant: str, *args: str) -> None:
        self.revision = revision
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serinus_runtime", "--host", "127.0.0.1",
             "--port", str(self.port), "--name", MODEL, "--revision", revision,
             "--variant", variant, *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        self.client = httpx.Client(base_url=self.url, timeout=10.0)

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                assert self.proc.stderr is not None
                raise AssertionError(f"runtime exited: {self.proc.stderr.read().decode()}")
            try:
                return self.client.get("/v2/health/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout, f"runtime {self.revision} ready")

    def infer(self, rows: list[list[float]]) -> httpx.Response:
        data = [value for row in rows for value in row]
        tensor = {"name": "x", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": data}
        body = {"inputs": [tensor]}
        return self.client.post(f"/v2/models/{MODEL}/infer", json=body)

    def send(self, rows: list[list[float]], times: int, expect: int) -> None:
        """`times` identical requests, each answered with status `expect`."""
        for _ in range(times):
            status = self.infer(rows).status_code
            assert status == expect, f"{self.revision}: expected {expect}, got {status}"

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class Runtimes:
    stable: Runtime
    canary_bad: Runtime
    canary_good: Runtime

    @property
    def all(self) -> tuple[Runtime, Runtime, Runtime]:
        return (self.stable, self.canary_bad, self.canary_good)

    def urls(self, revision: str) -> list[str]:
        """A ProcessMetricsSource's view: the base URLs serving `revision`."""
        return [runtime.url for runtime in self.all if runtime.revision == revision]


@pytest.fixture(scope="session")
def petal_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_iris

    from serinus_runtime.pack import pack

    out = tmp_path_factory.mktemp("bundles") / "petal"
    pack(PetalRule(), load_iris().data, out, name=MODEL, version="2", feature_names=FEATURES)
    return out


@pytest.fixture(scope="session")
def runtimes(petal_bundle: Path) -> Iterator[Runtimes]:
    trusted = f"{PetalRule.__module__}.{PetalRule.__qualname__}"
    petal = ["--model-uri", str(petal_bundle), "--trusted-types", trusted]
    started = Runtimes(
        stable=Runtime(STABLE, "stable", "--model-uri", str(BUNDLES / "iris")),
        canary_bad=Runtime(CANARY_BAD, "canary", *petal),
        canary_good=Runtime(CANARY_GOOD, "canary", "--model-uri", str(BUNDLES / "iris-v2")),
    )
    try:
        for runtime in started.all:
            runtime.wait_ready()
        yield started
    finally:
        for runtime in started.all:
            runtime.stop()


# --- Prometheus ----------------------------------------------------------------------------------


def prometheus_binary() -> str:
    """The `prometheus` executable; fails in CI without it, skips elsewhere."""
    found = shutil.which("prometheus")
    if found:
        return found
    message = (
        "the prometheus binary is not installed: apt-get install -y --no-install-recommends "
        "prometheus (Debian), or put it on PATH"
    )
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must run the Prometheus integration tests, but {message}")
    pytest.skip(message)


class PrometheusServer:
    """A real Prometheus scraping `targets` (host:port) every second."""

    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        quoted = ", ".join(f'"{target}"' for target in targets)
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: serinus\n    static_configs:\n"
            f"      - targets: [{quoted}]\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        log = (self.workdir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        wait_until(self._ready, 30, f"Prometheus ready at {self.address}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {log}")
        try:
            return httpx.get(f"{self.address}/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def start_prometheus(
    runtimes: Runtimes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], PrometheusServer]]:
    """Starts Prometheus servers scraping the three runtimes; stops them all at the end."""
    binary = prometheus_binary()
    targets = [runtime.url.removeprefix("http://") for runtime in runtimes.all]
    servers: list[PrometheusServer] = []

    def start() -> PrometheusServer:
        server = PrometheusServer(binary, tmp_path_factory.mktemp("prometheus"), targets)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
