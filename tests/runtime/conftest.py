"""Fixtures: real `serinus-runtime` processes on free ports (helpers in runtime_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from runtime_helpers import BUNDLES, RuntimeProcess


@pytest.fixture
def start_runtime() -> Iterator:
    started: list[RuntimeProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> RuntimeProcess:
        rp = RuntimeProcess(list(args), env)
        started.append(rp)
        return rp.wait_ready() if ready else rp

    yield start
    for rp in started:
        rp.stop()


@pytest.fixture(scope="session")
def iris() -> Iterator[RuntimeProcess]:
    """The iris example bundle, served with defaults (shared: don't assert exact counters)."""
    rp = RuntimeProcess(["--model-uri", str(BUNDLES / "iris"), "--revision", "r1",
                         "--variant", "stable"]).wait_ready()  # fmt: skip
    yield rp
    rp.stop()


@pytest.fixture(scope="session")
def diabetes() -> Iterator[RuntimeProcess]:
    rp = RuntimeProcess(["--model-uri", str(BUNDLES / "diabetes")]).wait_ready()
    yield rp
    rp.stop()
