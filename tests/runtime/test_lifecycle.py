"""Model loading (formats, safety rules, failures), readiness, reload and slow predictions."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import skops.io as sio
from runtime_helpers import BUNDLES, IRIS_ROWS, RuntimeProcess, metric_sum, v2
from serinus_test_models import SlowClassifier

pytestmark = pytest.mark.slow


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def expect_exit(start_runtime, *args: str) -> str:
    rp: RuntimeProcess = start_runtime(*args, ready=False)
    code, err = rp.wait_exit()
    assert code != 0
    lines = [line for line in err.splitlines() if "serinus-runtime: error:" in line]
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- refusals
def test_bad_model_exits_non_zero_with_one_line(start_runtime) -> None:
    line = expect_exit(start_runtime, "--model-uri", str(BUNDLES / "iris"), "--sha256", "0" * 64)
    assert "sha256 mismatch" in line and "expected 0000" in line


def test_untrusted_skops_types_need_configuration(start_runtime, tmp_path: Path) -> None:
    f = tmp_path / "model.skops"
    f.write_bytes(sio.dumps(SlowClassifier(0.0)))
    line = expect_exit(start_runtime, "--model-uri", str(f))
    assert "not trusted: serinus_test_models.SlowClassifier" in line and "--trusted-types" in line
    rp = start_runtime(
        "--model-uri", str(f), "--trusted-types", "serinus_test_models.SlowClassifier"
    )
    r = rp.client.post("/v2/models/model/infer", json=v2([1.0, 2.0], [1, 2]))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1]


def test_joblib_served_with_sha256_and_trust(start_runtime, tmp_path: Path) -> None:
    f = tmp_path / "m.joblib"
    joblib.dump(SlowClassifier(0.0), f)
    assert "--trust" in expect_exit(start_runtime, "--model-uri", str(f), "--sha256", sha(f))
    rp = start_runtime("--model-uri", str(f), "--sha256", sha(f), "--trust", "--name", "slow")
    assert rp.client.post("/v2/models/slow/infer", json=v2([1, 2], [1, 2])).status_code == 200


def test_env_vars_configure_the_runtime(start_runtime) -> None:
    rp = start_runtime(env={"SERINUS_MODEL_URI": str(BUNDLES / "diabetes"),
                            "SERINUS_MODEL_NAME": "sugar", "SERINUS_MODEL_VERSION": "7",
                            "SERINUS_VARIANT": "canary", "SERINUS_REVISION": "abc"})  # fmt: skip
    assert rp.client.get("/v2/models/sugar/versions/7").status_code == 200
    m = rp.metrics()
    assert metric_sum(m, "serinus_model_ready", model="sugar", version="7", variant="canary",
                      revision="abc") == 1  # fmt: skip


# ----------------------------------------------------------------------------- readiness
class _SlowFiles(http.server.SimpleHTTPRequestHandler):
    delay = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_bundles() -> Iterator[tuple[str, type[_SlowFiles]]]:
    handler = type("H", (_SlowFiles,), {})
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(BUNDLES))
    )
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", handler
    srv.shutdown()


def test_ready_only_after_load_and_live_meanwhile(start_runtime, http_bundles) -> None:
    base, handler = http_bundles
    handler.delay = 0.7  # each bundle file takes 0.7 s to arrive
    rp = start_runtime("--model-uri", f"{base}/iris/", ready=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if rp.client.get("/v2/health/live").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    assert rp.client.get("/v2/health/live").status_code == 200
    r = rp.client.get("/v2/health/ready")
    assert r.status_code == 503 and r.json()["ready"] is False
    r = rp.client.post("/v2/models/iris/infer", json=v2(IRIS_ROWS[0], [1, 4]))
    assert r.status_code == 503 and "loading" in r.json()["error"]
    rp.wait_ready()
    assert rp.client.post("/v2/models/iris/infer", json=v2(IRIS_ROWS[0], [1, 4])).status_code == 200


def test_http_single_file_and_404(start_runtime, http_bundles) -> None:
    base, _ = http_bundles
    rp = start_runtime("--model-uri", f"{base}/diabetes/model.skops")
    assert rp.client.get("/v2/models/model").status_code == 200
    assert "not found" in expect_exit(start_runtime, "--model-uri", f"{base}/missing/")


# ----------------------------------------------------------------------------- reload
def test_sighup_reload_swaps_model_or_keeps_the_old_one(start_runtime, tmp_path: Path) -> None:
    b = tmp_path / "bundle"
    shutil.copytree(BUNDLES / "iris", b)
    rp = start_runtime("--model-uri", str(b))
    assert rp.client.get("/v2/models/iris").json()["versions"] == ["1"]

    shutil.rmtree(b)
    shutil.copytree(BUNDLES / "iris-v2", b)
    rp.signal(signal.SIGHUP)
    _wait_for(lambda: rp.client.get("/v2/models/iris/versions/2").status_code == 200)
    assert rp.client.post("/v2/models/iris/infer", json=v2(IRIS_ROWS[0], [1, 4])).json()[
        "model_version"] == "2"  # fmt: skip

    (b / "model.skops").write_text("corrupted")
    rp.signal(signal.SIGHUP)
    _wait_for(lambda: metric_sum(rp.metrics(), "serinus_reloads_total", outcome="failed") == 1)
    r = rp.client.post("/v2/models/iris/infer", json=v2(IRIS_ROWS[0], [1, 4]))
    assert r.status_code == 200 and r.json()["model_version"] == "2"
    assert rp.client.get("/v2/health/ready").status_code == 200


def _wait_for(cond, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


# ----------------------------------------------------------------------------- slow predict
def _slow_model(tmp_path: Path, delay: float) -> tuple[Path, Path]:
    marker = tmp_path / "predict-started"
    f = tmp_path / "slow.joblib"
    joblib.dump(SlowClassifier(delay, marker=str(marker)), f)
    return f, marker


def _start_infer(rp: RuntimeProcess, marker: Path) -> tuple[threading.Thread, dict]:
    """Send one request to the slow model and return once its prediction has started."""
    marker.unlink(missing_ok=True)  # the warm-up created it
    result: dict[str, httpx.Response] = {}

    def infer() -> None:
        with httpx.Client(base_url=rp.url, timeout=20) as c:
            result["r"] = c.post("/v2/models/slow/infer", json=v2([1, 2], [1, 2]))

    t = threading.Thread(target=infer)
    t.start()
    _wait_for(marker.exists, timeout=10)
    return t, result


def test_long_predict_does_not_stall_health_or_other_routes(start_runtime, tmp_path: Path) -> None:
    f, marker = _slow_model(tmp_path, 1.0)
    rp = start_runtime("--model-uri", str(f), "--sha256", sha(f), "--trust", "--name", "slow")
    t, result = _start_infer(rp, marker)
    worst = 0.0
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/slow", "/metrics"):
        t0 = time.perf_counter()
        assert rp.client.get(path).status_code == 200
        worst = max(worst, time.perf_counter() - t0)
    assert "r" not in result, "the prediction should still be running"
    t.join()
    assert result["r"].status_code == 200
    assert worst < 0.3, f"a health/metadata request took {worst:.3f}s during a 1 s predict"


def test_sigterm_finishes_in_flight_requests(start_runtime, tmp_path: Path) -> None:
    f, marker = _slow_model(tmp_path, 1.0)
    rp = start_runtime("--model-uri", str(f), "--sha256", sha(f), "--trust", "--name", "slow")
    t, result = _start_infer(rp, marker)
    rp.signal(signal.SIGTERM)
    t.join()
    assert result["r"].status_code == 200
    code, _ = rp.wait_exit()
    assert code == 0


def test_predictions_match_local_model(iris: RuntimeProcess) -> None:
    data = (BUNDLES / "iris" / "model.skops").read_bytes()
    model = sio.loads(data, trusted=sio.get_untrusted_types(data=data) or None)
    rng = np.random.default_rng(1)
    x = rng.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(50, 4))
    r = iris.client.post("/v2/models/iris/infer", json=v2(x.ravel().tolist(), [50, 4]))
    assert r.json()["outputs"][0]["data"] == model.predict(x).tolist()


def test_body_over_the_limit_is_413(start_runtime) -> None:
    rp: RuntimeProcess = start_runtime("--model-uri", str(BUNDLES / "iris"),
                                       "--max-body-bytes", "300")  # fmt: skip
    big = v2([5.1, 3.5, 1.4, 0.2] * 20, [20, 4])
    r = rp.client.post("/v2/models/iris/infer", json=big)
    assert r.status_code == 413 and "limit of 300 bytes" in r.json()["error"]
    r = rp.client.post("/v2/models/iris/infer", json=big, headers={"expect": "100-continue"})
    assert r.status_code == 413
    assert rp.client.post("/v2/models/iris/infer", json=v2(IRIS_ROWS[0], [1, 4])).status_code == 200
    assert metric_sum(rp.metrics(), "serinus_invalid_inputs_total", reason="too_large") == 2


def test_refused_body_sent_with_its_headers_counts_once(start_runtime) -> None:
    """Expect: 100-continue over the limit is refused at the headers; a client that sends the
    body in the same packet anyway made one request, not two."""
    rp: RuntimeProcess = start_runtime("--model-uri", str(BUNDLES / "iris"),
                                       "--max-body-bytes", "300")  # fmt: skip
    body = b"x" * 400
    head = (
        "POST /v2/models/iris/infer HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        f"expect: 100-continue\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = rp.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body)
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert metric_sum(rp.metrics(), "serinus_invalid_inputs_total", reason="too_large") == 1


def test_workers_share_the_port_and_report_pod_wide_metrics(start_runtime) -> None:
    rp: RuntimeProcess = start_runtime("--model-uri", str(BUNDLES / "iris"), "--workers", "2")
    children = Path(f"/proc/{rp.proc.pid}/task/{rp.proc.pid}/children").read_text().split()
    assert len(children) == 2
    for _ in range(30):
        with httpx.Client(base_url=rp.url, timeout=10) as c:  # a new connection: any worker
            assert c.post("/v2/models/iris/infer", json=v2(IRIS_ROWS, [3, 4])).status_code == 200
    time.sleep(1.2)  # > the workers' publish interval
    for _ in range(4):  # whichever worker answers the scrape sees all 30 requests
        with httpx.Client(base_url=rp.url, timeout=10) as c:
            m = _parse(c.get("/metrics").text)
        assert metric_sum(m, "serinus_requests_total", endpoint="infer", code="200") == 30
        assert metric_sum(m, "serinus_rows_total") == 90
    rp.signal(signal.SIGTERM)
    code, _ = rp.wait_exit()
    assert code == 0


def test_workers_stop_with_one_line_when_the_model_is_bad(start_runtime) -> None:
    line = expect_exit(start_runtime, "--model-uri", str(BUNDLES / "iris"), "--workers", "3",
                       "--sha256", "0" * 64)  # fmt: skip
    assert "sha256 mismatch" in line


def _parse(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
