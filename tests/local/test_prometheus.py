"""LocalPrometheus with the real `prometheus` binary scraping real runtime processes: targets
through file_sd, queries through the `prometheus` metrics provider, crash and restart, readable
start failures, and no orphans (a SIGKILLed controller's Prometheus is reaped, nothing else)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from local_helpers import (
    CANARY_REV,
    MODEL,
    ROOT,
    STABLE_REV,
    alive,
    infer_body,
    port_refuses,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

from serinus.local import orphans
from serinus.local.processes import RuntimeFleet
from serinus.local.prometheus import LocalPrometheus, PrometheusError, find_binary
from serinus.metrics.prometheus import PrometheusProvider
from serinus_runtime import metric_names as mn

pytestmark = pytest.mark.slow

SCRAPE_S = 0.5
TARGETS_S = 30.0
"""Prometheus applies target changes every 5 s after a 5 s discovery throttle: allow plenty."""


def prometheus_binary() -> str:
    """The `prometheus` executable; fails in CI without it, skips elsewhere."""
    found = find_binary()
    if found:
        return found
    message = (
        "the prometheus binary is not installed: apt-get install -y --no-install-recommends "
        "prometheus (Debian), or put it on PATH"
    )
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"CI must run the Prometheus integration tests, but {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def binary() -> str:
    return prometheus_binary()


@pytest.fixture(scope="module")
def prometheus(
    binary: str, serving: RuntimeFleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPrometheus]:
    """One Prometheus scraping the stable runtime, shared by the tests below in file order."""
    prom = LocalPrometheus(
        tmp_path_factory.mktemp("prometheus"), binary=binary, scrape_interval=SCRAPE_S
    )
    try:
        prom.set_targets({STABLE_REV: serving.urls(STABLE_REV)})
        prom.start()
        yield prom
    finally:
        prom.stop()


def infer_200(revision: str) -> str:
    return (
        f'{mn.REQUESTS_TOTAL}{{{mn.REVISION}="{revision}",{mn.ENDPOINT}="infer",{mn.CODE}="200"}}'
    )


def stored_count(prom: LocalPrometheus, revision: str, at: float | None = None) -> float | None:
    """Successful inference requests of `revision` as Prometheus has them (None: no series),
    read by the provider local mode judges with."""
    provider = PrometheusProvider(prom.address)
    try:
        samples = provider.query(f"sum({infer_200(revision)})", time.time() if at is None else at)
    finally:
        provider.close()
    return samples[0].number if samples else None


def runtime_count(url: str) -> float:
    """The same count from the runtime's own /metrics: the truth Prometheus must catch up to."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == mn.REQUESTS_TOTAL
        and sample.labels.get(mn.ENDPOINT) == "infer"
        and sample.labels.get(mn.CODE) == "200"
    )


def send(url: str, times: int) -> None:
    for _ in range(times):
        response = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=infer_body(), timeout=10)
        assert response.status_code == 200, response.text


def active_instances(prom: LocalPrometheus) -> set[str]:
    response = httpx.get(f"{prom.address}/api/v1/targets", params={"state": "active"}, timeout=5)
    return {t["labels"]["instance"] for t in response.json()["data"]["activeTargets"]}


def wait_count(prom: LocalPrometheus, revision: str, expected: float) -> None:
    wait_until(
        lambda: stored_count(prom, revision) == expected,
        10,
        f"Prometheus counting {expected:g} requests of {revision}",
    )


# --- files ---------------------------------------------------------------------------------------


def test_config_and_targets_files(tmp_path: Path) -> None:
    prom = LocalPrometheus(tmp_path / "work", binary="/nowhere/prometheus", scrape_interval=0.5)
    assert prom.workdir.is_dir()

    assert prom.set_targets({"rev-b": ["127.0.0.1:2002"], "rev-a": ["http://127.0.0.1:2001/"]})
    written = prom.targets_path.read_text()
    assert yaml.safe_load(written) == [  # JSON is YAML
        {"labels": {"serinus_revision": "rev-a"}, "targets": ["127.0.0.1:2001"]},
        {"labels": {"serinus_revision": "rev-b"}, "targets": ["127.0.0.1:2002"]},
    ]
    inode = prom.targets_path.stat().st_ino
    # The same targets in another order or form: nothing is rewritten.
    same = {"rev-a": ["127.0.0.1:2001"], "rev-b": ["http://127.0.0.1:2002"], "rev-c": []}
    assert not prom.set_targets(same)
    assert prom.targets_path.stat().st_ino == inode
    # A change replaces the file by rename (a new inode, never a half-written file).
    assert prom.set_targets({"rev-a": ["127.0.0.1:2001", "127.0.0.1:2003"]})
    assert prom.targets_path.stat().st_ino != inode
    assert sorted(p.name for p in prom.workdir.iterdir()) == ["targets.json"]
    for bad in ("https://127.0.0.1:1", "127.0.0.1", "http://127.0.0.1:1/metrics", "host:port"):
        with pytest.raises(ValueError, match="target"):
            prom.set_targets({"rev-a": [bad]})

    config = prom.config()
    assert config["global"] == {
        "scrape_interval": "500ms",
        "scrape_timeout": "500ms",
        "evaluation_interval": "500ms",
    }
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "serinus"
    assert job["file_sd_configs"][0]["files"] == [str(prom.targets_path)]
    assert "relabel_configs" not in job  # the runtime labels its series itself
    assert (
        LocalPrometheus(tmp_path, scrape_interval=2).config()["global"]["scrape_interval"] == "2s"
    )


# --- a running Prometheus ----------------------------------------------------------------------


def test_scrapes_a_runtime_and_counts_its_requests(
    prometheus: LocalPrometheus, serving: RuntimeFleet
) -> None:
    assert prometheus.running
    assert prometheus.address == f"http://127.0.0.1:{prometheus.port}"
    assert httpx.get(f"{prometheus.address}/-/ready", timeout=5).status_code == 200
    (url,) = serving.urls(STABLE_REV)
    prometheus.wait_scraped(url, timeout=TARGETS_S)

    before = runtime_count(url)
    send(url, 5)
    wait_count(prometheus, STABLE_REV, before + 5)

    response = httpx.get(
        f"{prometheus.address}/api/v1/query", params={"query": infer_200(STABLE_REV)}, timeout=5
    )
    (series,) = response.json()["data"]["result"]
    labels = series["metric"]
    assert labels[mn.MODEL] == MODEL
    assert labels[mn.VARIANT] == "stable"
    assert labels["job"] == "serinus"
    assert labels["serinus_revision"] == STABLE_REV
    assert labels["instance"] == url.removeprefix("http://")


def test_changed_targets_are_scraped_without_a_restart(
    prometheus: LocalPrometheus, serving: RuntimeFleet
) -> None:
    pid = prometheus.pid
    (stable,) = serving.urls(STABLE_REV)
    (canary,) = serving.urls(CANARY_REV)
    assert prometheus.set_targets({CANARY_REV: [canary]})
    prometheus.wait_scraped(canary, timeout=TARGETS_S)
    wait_until(
        lambda: stable.removeprefix("http://") not in active_instances(prometheus),
        TARGETS_S,
        "the stable runtime dropped from the targets",
    )
    assert prometheus.pid == pid  # the same process all along

    send(canary, 3)
    wait_count(prometheus, CANARY_REV, runtime_count(canary))

    with pytest.raises(PrometheusError) as unknown:
        prometheus.wait_scraped("http://127.0.0.1:1", timeout=0.5)
    assert "has not scraped 127.0.0.1:1 within 0.5s" in str(unknown.value)
    assert "not among Prometheus' targets" in str(unknown.value)


def test_kill_then_restart_keeps_the_address_and_the_data(
    prometheus: LocalPrometheus, serving: RuntimeFleet
) -> None:
    (canary,) = serving.urls(CANARY_REV)
    send(canary, 2)
    expected = runtime_count(canary)
    wait_count(prometheus, CANARY_REV, expected)
    seen_at = time.time()
    address, port, pid = prometheus.address, prometheus.port, prometheus.pid
    assert pid is not None

    prometheus.kill()
    assert not prometheus.running
    assert prometheus.pid is None
    assert not alive(pid)
    assert port_refuses(port)
    with pytest.raises(PrometheusError, match="not running"):
        prometheus.wait_scraped(canary, timeout=1)

    prometheus.restart()
    assert prometheus.address == address
    assert prometheus.pid not in (None, pid)
    assert httpx.get(f"{address}/-/ready", timeout=5).status_code == 200
    # Samples from before the crash are still there (evaluated at a moment before it)...
    assert stored_count(prometheus, CANARY_REV, at=seen_at) == expected
    # ...and scraping resumes from the targets file.
    prometheus.wait_scraped(canary, timeout=TARGETS_S)


def test_stop_and_context_manager_leave_nothing_running(binary: str, tmp_path: Path) -> None:
    with LocalPrometheus(tmp_path, binary=binary) as prom:
        pid, port = prom.pid, prom.port
        assert pid is not None and alive(pid)
        assert os.getpgid(pid) == pid  # its own process group: Ctrl-C reaches the controller only
        assert prom.pid_path.read_text().strip() == str(pid)
        assert orphans.is_prometheus(pid, tmp_path)
        prom.start()  # already running: nothing happens
        assert prom.pid == pid
    assert not prom.running
    assert not alive(pid)
    assert port_refuses(port)
    assert not prom.pid_path.exists()
    assert (tmp_path / "data").is_dir()
    assert "Server is ready to receive web requests" in prom.log_path.read_text()


# --- failures ------------------------------------------------------------------------------------


def expect_start_failure(prom: LocalPrometheus, timeout: float = 30.0) -> str:
    with pytest.raises(PrometheusError) as failure:
        prom.start(timeout=timeout)
    assert not prom.running
    assert prom.pid is None
    assert not prom.pid_path.exists()
    return str(failure.value)


def test_a_missing_binary_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = tmp_path / "no-such-prometheus"
    message = expect_start_failure(LocalPrometheus(tmp_path, binary=str(bogus)))
    assert f"cannot run {bogus}: No such file or directory" in message
    assert "apt-get install prometheus" in message

    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binary() is None
    message = expect_start_failure(LocalPrometheus(tmp_path))
    assert "no `prometheus` executable on PATH" in message


class RejectedConfig(LocalPrometheus):
    def config(self) -> dict[str, Any]:
        return {"global": {"scrape_interval": "soon"}}


def test_a_rejected_config_quotes_the_log(binary: str, tmp_path: Path) -> None:
    # An earlier run's lines in the log are not quoted: only this attempt's.
    (tmp_path / "prometheus.log").write_text("an old line of an earlier run\n")
    message = expect_start_failure(RejectedConfig(tmp_path, binary=binary))
    assert re.search(rf"prometheus \({binary}\) exited with code \d+ before it was ready", message)
    assert f"rejected the generated {tmp_path / 'prometheus.yml'}" in message
    assert f"Last lines of {tmp_path / 'prometheus.log'}:" in message
    assert "Error loading config" in message
    assert "not a valid duration string" in message  # Prometheus' own words
    assert "an old line" not in message


def test_a_taken_port_is_named(binary: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = expect_start_failure(LocalPrometheus(tmp_path, binary=binary, port=port))
    assert f"127.0.0.1:{port} is taken by another process" in message
    assert "address already in use" in message


def test_not_ready_in_time_stops_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "fake.pid"
    fake = tmp_path / "prometheus"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\necho 'pretending to start'\nexec sleep 60\n")
    fake.chmod(0o755)
    message = expect_start_failure(LocalPrometheus(tmp_path, binary=str(fake)), timeout=1.0)
    assert "did not become ready on 127.0.0.1:" in message
    assert "within 1s" in message
    assert "pretending to start" in message
    assert not alive(int(pid_file.read_text()))


# --- orphans -------------------------------------------------------------------------------------

CONTROLLER = """
import sys, time
from pathlib import Path
from serinus.local.prometheus import LocalPrometheus
prometheus = LocalPrometheus(Path(sys.argv[1]), binary=sys.argv[2])
prometheus.start()
print(prometheus.pid, prometheus.port, flush=True)
time.sleep(120)
"""


def start_controller(workdir: Path, binary: str) -> tuple[subprocess.Popen[str], int, int]:
    """A controller process running a LocalPrometheus; returns it, Prometheus' pid and port."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, str(workdir), binary],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    pid, port = (int(word) for word in proc.stdout.readline().split())
    assert alive(pid)
    return proc, pid, port


def kill_leftover(pid: int) -> None:
    if orphans.alive(pid):
        os.killpg(pid, signal.SIGKILL)


def test_sigterm_to_the_controller_stops_its_prometheus(binary: str, tmp_path: Path) -> None:
    controller, pid, port = start_controller(tmp_path, binary)
    try:
        controller.send_signal(signal.SIGTERM)
        assert controller.wait(30) == 128 + signal.SIGTERM
        assert not alive(pid)
        assert port_refuses(port)
    finally:
        controller.kill()
        kill_leftover(pid)


def test_reap_stops_a_killed_controllers_prometheus_and_nothing_else(
    binary: str, tmp_path: Path
) -> None:
    workdir, elsewhere = tmp_path / "ours", tmp_path / "elsewhere"
    controller, pid, port = start_controller(workdir, binary)
    controller.kill()  # SIGKILL: no cleanup can run
    controller.wait(30)
    config = f"--config.file={workdir / 'prometheus.yml'}"
    # Not a prometheus, though its command line names our config.
    impostor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", config])
    other = LocalPrometheus(elsewhere, binary=binary)
    try:
        other.start()
        assert alive(pid)  # it outlived its controller: its own session
        other_pid = other.pid
        assert other_pid is not None
        assert not orphans.reap_prometheus(pid, elsewhere)  # not the Prometheus of that dir
        assert not orphans.reap_prometheus(other_pid, workdir)
        assert not orphans.reap_prometheus(impostor.pid, workdir)
        assert not orphans.reap_prometheus(os.getpid(), workdir)
        assert alive(pid) and alive(other_pid) and alive(impostor.pid)

        assert orphans.reap_prometheus(pid, workdir)
        assert not alive(pid)
        assert port_refuses(port)
        assert other.running and alive(impostor.pid)
        assert not orphans.reap_prometheus(pid, workdir)  # gone: nothing to do
    finally:
        impostor.kill()
        impostor.wait()
        other.stop()
        kill_leftover(pid)


def test_start_reaps_a_leftover_in_its_workdir(binary: str, tmp_path: Path) -> None:
    controller, pid, _ = start_controller(tmp_path, binary)
    controller.kill()
    controller.wait(30)
    successor = LocalPrometheus(tmp_path, binary=binary)
    try:
        assert alive(pid)
        successor.start()  # its pid file named the leftover: stopped before the new start
        assert not alive(pid)
        assert successor.pid not in (None, pid)
        assert successor.pid_path.read_text().strip() == str(successor.pid)
    finally:
        successor.stop()
        kill_leftover(pid)


def test_find_binary_is_the_one_on_path() -> None:
    assert find_binary() == shutil.which("prometheus")
