"""Session fixture for the local-mode tests: real runtime processes of two iris revisions.

`serving` runs the stable revision (examples/bundles/iris, version 1) and the canary (iris-v2,
version 2), one process each; tests must not kill them (tests that do, start their own).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_helpers import CANARY_REV, STABLE_REV, spec

from serinus.local.processes import RuntimeFleet


@pytest.fixture(scope="session")
def serving() -> Iterator[RuntimeFleet]:
    fleet = RuntimeFleet(restart_backoff=None, shutdown_grace=1.0)
    try:
        fleet.start(spec(STABLE_REV, "iris", "stable"))
        fleet.start(spec(CANARY_REV, "iris-v2", "canary"))
        fleet.wait_ready(STABLE_REV, timeout=120)
        fleet.wait_ready(CANARY_REV, timeout=120)
        yield fleet
    finally:
        fleet.close()
