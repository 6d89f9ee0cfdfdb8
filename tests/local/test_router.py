"""LocalRouter with real runtime processes (and a fake backend for answers the runtime never
gives): the split per request, weights, promotion, pass-through, failures.

Split tolerances: with weight w the canary's count out of n requests is Binomial(n, w/100); each
test accepts the central interval holding all but 1e-6 of that distribution, so a correct router
fails it about once in a million runs, while a router that ignored the weight, split per
connection, or sent a fixed side would be far outside it (for n=400, w=30: 120 expected, 80..162
accepted). The router is seeded, so a run is also reproducible.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from functools import partial

import httpx
import pytest
from local_helpers import (
    CANARY_REV,
    CHUNKS,
    STABLE_REV,
    FakeBackend,
    alive,
    infer_body,
    spec,
    wait_until,
)
from scipy.stats import binom

from serinus.api.spec import TrafficSpec
from serinus.local.processes import RuntimeFleet
from serinus.local.router import LocalRouter
from serinus.traffic.router import RouteContext

ROUTE = RouteContext(
    name="iris", stable=STABLE_REV, canary=CANARY_REV, replicas=2, traffic=TrafficSpec()
)
VERSION = {"stable": "1", "canary": "2"}
INFER = "/v2/models/iris/infer"


def bounds(n: int, weight: int) -> tuple[float, float]:
    low, high = binom.interval(1 - 1e-6, n, weight / 100)
    return float(low), float(high)


@pytest.fixture(scope="module")
def router(serving: RuntimeFleet) -> Iterator[LocalRouter]:
    router = LocalRouter(partial(serving.urls, ready_only=True), seed=7)
    router.start()
    yield router
    router.stop()


def send(client: httpx.Client, n: int) -> Counter[str]:
    """n infer requests; the variant that answered, checked against the model version."""
    seen: Counter[str] = Counter()
    for _ in range(n):
        response = client.post(INFER, json=infer_body())
        assert response.status_code == 200, response.text
        variant = response.headers["x-serinus-variant"]
        assert response.json()["model_version"] == VERSION[variant]
        seen[variant] += 1
    return seen


@pytest.mark.slow
def test_weight_splits_requests_by_percent(router: LocalRouter) -> None:
    router.reset_counts()
    assert router.set_weight(ROUTE, 30) == 30
    assert router.observed_weight(ROUTE) == 30
    with httpx.Client(base_url=router.url) as client:
        seen = send(client, 400)
    low, high = bounds(400, 30)
    assert low <= seen["canary"] <= high
    counts = router.counts()
    assert counts.stable == {200: seen["stable"]}
    assert counts.canary == {200: seen["canary"]}


@pytest.mark.slow
def test_weight_0_sends_nothing_to_the_canary_and_100_everything(router: LocalRouter) -> None:
    with httpx.Client(base_url=router.url) as client:
        assert router.set_weight(ROUTE, 0) == 0
        assert send(client, 100) == {"stable": 100}
        assert router.set_weight(ROUTE, 100) == 100
        assert router.observed_weight(ROUTE) == 100
        assert send(client, 100) == {"canary": 100}
    router.set_weight(ROUTE, 0)


@pytest.mark.slow
def test_one_keep_alive_connection_is_split_per_request(router: LocalRouter) -> None:
    router.set_weight(ROUTE, 50)
    host, port = router.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    seen: Counter[str] = Counter()
    sockets = set()
    body = json.dumps(infer_body())
    try:
        for _ in range(100):
            conn.request("POST", INFER, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200
            variant = response.getheader("x-serinus-variant")
            assert variant is not None
            assert json.loads(response.read())["model_version"] == VERSION[variant]
            seen[variant] += 1
            sockets.add(id(conn.sock))
    finally:
        conn.close()
        router.set_weight(ROUTE, 0)
    assert len(sockets) == 1  # one TCP connection throughout
    low, high = bounds(100, 50)
    assert low <= seen["canary"] <= high


@pytest.mark.slow
def test_promote_gives_the_canary_all_traffic_as_the_new_stable(router: LocalRouter) -> None:
    router.set_weight(ROUTE, 20)
    router.promote(ROUTE)
    assert router.weight == 0
    assert router.observed_weight(ROUTE) == 100
    with httpx.Client(base_url=router.url) as client:
        for _ in range(30):
            response = client.post(INFER, json=infer_body())
            assert response.headers["x-serinus-variant"] == "stable"
            assert response.json()["model_version"] == "2"
    # The next rollout starts from the promoted revision; here, back to the original split.
    assert router.set_weight(ROUTE, 0) == 0
    assert router.observed_weight(ROUTE) == 0


@pytest.mark.slow
def test_runtime_answers_pass_through_unchanged(router: LocalRouter, serving: RuntimeFleet) -> None:
    router.set_weight(ROUTE, 0)
    direct = serving.urls(STABLE_REV)[0]
    requests = [
        ("POST", "/v2/models/nope/infer", json.dumps(infer_body())),
        ("POST", INFER, json.dumps({"inputs": [{"name": "input-0", "shape": [1, 3],
                                                "datatype": "FP64", "data": [1, 2, 3]}]})),
        ("GET", "/v2/models/iris", None),
        ("DELETE", "/v2/models/iris/infer", None),
    ]  # fmt: skip
    with httpx.Client(base_url=router.url) as via, httpx.Client(base_url=direct) as straight:
        for method, path, body in requests:
            headers = {"content-type": "application/json"}
            proxied = via.request(method, path, content=body, headers=headers)
            expected = straight.request(method, path, content=body, headers=headers)
            assert proxied.status_code == expected.status_code
            assert proxied.content == expected.content
            for name, value in expected.headers.items():
                assert proxied.headers.get(name) == value, name

        # A chunked request body arrives whole.
        chunked = (part for part in [json.dumps(infer_body()).encode()[:20],
                                     json.dumps(infer_body()).encode()[20:]])  # fmt: skip
        response = via.post(INFER, content=chunked, headers={"content-type": "application/json"})
        assert response.status_code == 200
        assert response.json()["outputs"][0]["data"] == ["setosa"]


def test_chunked_and_close_delimited_answers_stream_through() -> None:
    fake = FakeBackend()
    router = LocalRouter()
    router.set_backends([fake.url])
    router.start()
    try:
        with httpx.Client(base_url=router.url) as client:
            response = client.get("/chunked")
            assert response.status_code == 201
            assert response.headers["x-custom"] == "kept"
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.content == b"".join(CHUNKS)

            # A body ended by the backend closing: re-chunked, the client's connection stays.
            response = client.get("/close")
            assert response.content == b"".join(CHUNKS)
            assert response.headers["transfer-encoding"] == "chunked"
            hop = {"connection": "x-custom", "x-custom": "hop"}
            seen = client.post("/echo", content=b"x" * 10, headers=hop).json()
            assert seen["content_length"] == "10"
            assert seen["body"] == "x" * 10
            assert seen["x_custom"] is None  # named in Connection: hop-by-hop, dropped
            assert seen["host"] == f"127.0.0.1:{router.port}"

        # HTTP/1.0 clients cannot take chunks: the body ends with the connection.
        with socket.create_connection(("127.0.0.1", router.port), timeout=5) as raw:
            raw.sendall(b"GET /chunked HTTP/1.0\r\n\r\n")
            answer = b""
            while data := raw.recv(65536):
                answer += data
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 201")
        assert b"transfer-encoding" not in head.lower()
        assert body == b"".join(CHUNKS)
        assert router.counts().stable == {201: 2, 200: 2}
    finally:
        router.stop()
        fake.close()


def test_backend_failures_are_json_errors_naming_the_backend() -> None:
    fake = FakeBackend()
    router = LocalRouter(response_timeout=0.5)
    router.start()
    try:
        with httpx.Client(base_url=router.url) as client:
            response = client.get("/anything")
            assert response.status_code == 503
            assert "no stable backend" in response.json()["error"]

            router.set_backends([fake.url])
            response = client.get("/slow")
            assert response.status_code == 504
            assert response.json()["error"] == f"stable backend {fake.url}: no answer within 0.5s"

            response = client.get("/drop")
            assert response.status_code == 502
            error = response.json()["error"]
            assert fake.url in error and "before answering" in error

            assert client.get("/echo").status_code == 200  # and it goes on serving
    finally:
        router.stop()
        fake.close()


def test_only_idempotent_requests_are_sent_again_after_a_dropped_pooled_connection() -> None:
    fake = FakeBackend()
    router = LocalRouter()
    router.set_backends([fake.url])
    router.start()
    try:
        with httpx.Client(base_url=router.url) as client:
            for method in ("GET", "POST"):
                assert client.get("/echo").status_code == 200  # leaves a pooled connection
                # The backend reads the request on that connection and hangs up: from here it
                # looks like an idle connection closed in the race; GET may go again, POST not.
                assert client.request(method, "/drop").status_code == 502
        assert fake.hits[("GET", "/drop")] == 2
        assert fake.hits[("POST", "/drop")] == 1
    finally:
        router.stop()
        fake.close()


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}.*choose another"):
            LocalRouter().start(port)


@pytest.fixture(scope="module")
def doomed() -> Iterator[RuntimeFleet]:
    """Processes the next test kills (the session's `serving` ones must stay up)."""
    fleet = RuntimeFleet(restart_backoff=None, shutdown_grace=1.0)
    fleet.start(spec(STABLE_REV, "iris", "stable", replicas=2))
    fleet.start(spec(CANARY_REV, "iris-v2", "canary"))
    fleet.wait_ready(STABLE_REV, timeout=120)
    fleet.wait_ready(CANARY_REV, timeout=120)
    yield fleet
    fleet.close()


@pytest.mark.slow
def test_killed_backends(doomed: RuntimeFleet) -> None:
    # All URLs, not only ready ones: the driver refreshes the router on its own tick, so
    # requests do meet dead processes in between.
    router = LocalRouter(doomed.urls, seed=11)
    router.start()
    try:
        router.set_weight(ROUTE, 50)
        # One of two stable replicas dies: clients never see it (connection refused → the
        # request goes to the other replica; nothing had been sent).
        victim = doomed.status(STABLE_REV).processes[0].pid  # type: ignore[union-attr]
        assert victim is not None
        os.killpg(victim, signal.SIGKILL)
        wait_until(lambda: not alive(victim), 10, "stable replica killed")
        with httpx.Client(base_url=router.url) as client:
            seen = send(client, 100)
        assert seen["stable"] > 0 and seen["canary"] > 0
        assert router.counts().server_errors("stable") == 0

        # The only canary process dies: its share gets 502 naming it; stable carries on.
        doomed.kill(CANARY_REV)
        canary_url = doomed.urls(CANARY_REV)[0]
        statuses: Counter[tuple[str, int]] = Counter()
        with httpx.Client(base_url=router.url) as client:
            for _ in range(100):
                response = client.post(INFER, json=infer_body())
                variant = response.headers["x-serinus-variant"]
                statuses[(variant, response.status_code)] += 1
                if variant == "canary":
                    error = response.json()["error"]
                    assert canary_url in error and "connection refused" in error
                    assert f"revision {CANARY_REV}" in error
        assert set(statuses) == {("stable", 200), ("canary", 502)}
        assert router.counts().server_errors("stable") == 0

        # The router itself is fine: back to stable only, everything answers.
        router.set_weight(ROUTE, 0)
        with httpx.Client(base_url=router.url) as client:
            assert send(client, 20) == {"stable": 20}
    finally:
        router.stop()
