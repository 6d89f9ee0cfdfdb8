"""Random malformed bodies: never a 5xx, always a JSON error, and the server stays live."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_helpers import BUNDLES, RuntimeProcess

pytestmark = pytest.mark.slow

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=8),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)
datatypes = st.sampled_from(["FP32", "FP64", "INT32", "INT64", "BYTES", "BOOL", "UINT8", "FP16",
                             "fp32", "", "STRING"])  # fmt: skip
shapes = st.one_of(st.lists(st.integers(-3, 6), max_size=4), json_values)
tensors = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["input-0", "sepal_length_cm", "petal_width_cm"]),
                       json_values),
     "shape": shapes, "datatype": st.one_of(datatypes, json_values),
     "data": st.one_of(st.lists(st.one_of(scalars, st.lists(scalars, max_size=5)), max_size=24),
                       json_values)},
    optional={"parameters": json_values},
)  # fmt: skip
v2_bodies = st.fixed_dictionaries(
    {"inputs": st.one_of(st.lists(tensors, max_size=5), json_values)},
    optional={"id": json_values, "outputs": st.one_of(
        st.lists(st.fixed_dictionaries({"name": st.one_of(
            st.sampled_from(["predict", "predict_proba", "x"]), json_values)}), max_size=3),
        json_values), "parameters": json_values},
)  # fmt: skip
v1_bodies = st.fixed_dictionaries({"instances": json_values}, optional={"id": json_values})
feedback_bodies = st.one_of(
    st.fixed_dictionaries({"id": json_values, "labels": json_values}),
    st.fixed_dictionaries({"feedback": json_values}),
    json_values,
)


def _encode(v: object) -> bytes:
    return json.dumps(v).encode()  # inf becomes the non-JSON token Infinity: also worth sending


bodies = st.one_of(
    v2_bodies.map(_encode), v1_bodies.map(_encode), feedback_bodies.map(_encode),
    json_values.map(_encode), st.binary(max_size=200),
)  # fmt: skip
paths = st.sampled_from([
    "/v2/models/iris/infer", "/v1/models/iris:predict", "/v2/models/iris/feedback",
    "/v2/models/iris/versions/1/infer",
])  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[RuntimeProcess]:
    rp = RuntimeProcess(["--model-uri", str(BUNDLES / "iris")]).wait_ready()
    yield rp
    rp.stop()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=paths, body=bodies)
def test_malformed_bodies_never_5xx(fuzz_server: RuntimeProcess, path: str, body: bytes) -> None:
    r = fuzz_server.client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, (path, body, r.text)
    if r.status_code >= 400:
        assert isinstance(r.json()["error"], str) and r.json()["error"]


def test_still_live_after_fuzzing(fuzz_server: RuntimeProcess) -> None:
    assert fuzz_server.client.get("/v2/health/live").status_code == 200
    assert fuzz_server.proc.poll() is None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(min_size=1, max_size=300))
def test_garbage_http_never_kills_the_server(fuzz_server: RuntimeProcess, raw: bytes) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=5) as s:
        s.sendall(raw + b"\r\n\r\n")
        s.settimeout(0.3)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            s.recv(4096)
    with httpx.Client(base_url=fuzz_server.url, timeout=5) as c:
        assert c.get("/v2/health/live").status_code == 200
