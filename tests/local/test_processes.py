"""RuntimeFleet with real `serinus-runtime` processes: readiness, crashes, stopping, no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from local_helpers import BUNDLES, ROOT, alive, cmdline, port_refuses, spec, wait_until

from serinus.local.orphans import reap
from serinus.local.processes import FleetError, RuntimeFleet

pytestmark = pytest.mark.slow

A, B = "rev-a", "rev-b"


@pytest.fixture(scope="module")
def fleet() -> Iterator[RuntimeFleet]:
    fleet = RuntimeFleet(shutdown_grace=1.0, restart_backoff=0.2)
    yield fleet
    fleet.close()


def ports(urls: list[str]) -> list[int]:
    return [int(url.rsplit(":", 1)[1]) for url in urls]


def test_two_revisions_become_ready_on_their_own_ports(fleet: RuntimeFleet) -> None:
    fleet.start(spec(A, "iris", "stable", replicas=2))
    fleet.start(spec(B, "iris-v2", "canary"))
    # Loading scikit-learn alone takes longer than this: nothing is ready yet.
    assert fleet.ready(A) == 0
    assert fleet.urls(A, ready_only=True) == []
    urls = fleet.urls(A) + fleet.urls(B)
    assert len(set(urls)) == 3
    assert all(url.startswith("http://127.0.0.1:") for url in urls)

    assert fleet.wait_ready(A, timeout=90) == 2
    assert fleet.wait_ready(B, timeout=90) == 1
    assert fleet.urls(A, ready_only=True) == fleet.urls(A)
    status = fleet.status(A)
    assert status is not None
    assert status.message == "2/2 ready"
    assert [p.restarts for p in status.processes] == [0, 0]

    # Each process serves its own revision's model, with the revision and variant labels.
    for revision, variant, version in ((A, "stable", "1"), (B, "canary", "2")):
        for url in fleet.urls(revision):
            assert httpx.get(f"{url}/v2/models/iris").json()["versions"] == [version]
            metrics = httpx.get(f"{url}/metrics").text
            assert f'revision="{revision}"' in metrics
            assert f'variant="{variant}"' in metrics

    pids = fleet.pids()
    assert len(pids) == 3
    for pid in pids:
        assert alive(pid)
        assert os.getpgid(pid) == pid  # its own process group: signalled as one
        assert "serinus_runtime" in cmdline(pid)


def test_start_is_idempotent_and_scales(fleet: RuntimeFleet) -> None:
    before = fleet.pids()
    fleet.start(spec(A, "iris", "stable", replicas=2))
    assert fleet.pids() == before

    first, second = fleet.urls(A)
    second_pid = next(p.pid for p in fleet.status(A).processes if p.url == second)  # type: ignore[union-attr]
    fleet.start(spec(A, "iris", "stable", replicas=1))
    assert fleet.urls(A) == [first]
    assert fleet.ready(A) == 1
    assert second_pid is not None and not alive(second_pid)
    assert port_refuses(ports([second])[0])

    with pytest.raises(ValueError, match="already runs with other settings"):
        fleet.start(spec(A, "iris-v2", "stable"))
    # A promoted canary is started again as "stable": the same processes, nothing restarts.
    b_pids = [p.pid for p in fleet.status(B).processes]  # type: ignore[union-attr]
    fleet.start(spec(B, "iris-v2", "stable"))
    assert [p.pid for p in fleet.status(B).processes] == b_pids  # type: ignore[union-attr]


def test_a_killed_process_is_noticed_then_restarted(fleet: RuntimeFleet) -> None:
    (pid,) = fleet.kill(B)
    assert not alive(pid)
    assert fleet.ready(B) == 0
    status = fleet.status(B)
    assert status is not None
    (process,) = status.processes
    assert process.exit_code == -signal.SIGKILL
    assert "exited with signal SIGKILL" in status.message

    # Like a kubelet, the fleet starts it again after a back-off.
    def restarted() -> bool:
        process = fleet.status(B).processes[0]  # type: ignore[union-attr]
        return process.restarts == 1 and process.running

    wait_until(restarted, 10, "replica restarted")
    assert fleet.wait_ready(B, timeout=90) == 1
    assert fleet.pids() and pid not in fleet.pids()


def test_a_model_that_cannot_load_says_why(fleet: RuntimeFleet) -> None:
    fleet.start(spec("rev-bad", "iris", "canary", sha256="0" * 64))
    with pytest.raises(FleetError) as failure:
        fleet.wait_ready("rev-bad", timeout=90)
    message = str(failure.value)
    assert "exited with code 2" in message
    assert "sha256 mismatch" in message
    fleet.stop("rev-bad")
    assert fleet.status("rev-bad") is None


def test_stop_and_stop_all_leave_no_process_and_free_the_ports(fleet: RuntimeFleet) -> None:
    a_pids = [p.pid for p in fleet.status(A).processes]  # type: ignore[union-attr]
    a_ports = ports(fleet.urls(A))
    fleet.stop(A)
    assert fleet.status(A) is None
    assert fleet.ready(A) == 0
    assert not any(alive(pid) for pid in a_pids if pid is not None)
    assert all(port_refuses(port) for port in a_ports)

    # A revision still loading has nothing to drain: stopped at once, not after its load.
    fleet.start(spec("rev-loading", "iris", "canary"))
    pids, b_ports = fleet.pids(), ports(fleet.urls(B) + fleet.urls("rev-loading"))
    assert len(pids) == 2
    fleet.stop_all()
    assert fleet.pids() == []
    assert not any(alive(pid) for pid in pids)
    assert all(port_refuses(port) for port in b_ports)


CONTROLLER = """
import json, sys, time
from serinus.local.processes import RevisionSpec, RuntimeFleet
fleet = RuntimeFleet(shutdown_grace=1.0)
fleet.start(RevisionSpec(revision="orphans", name="iris", model_uri=sys.argv[1], replicas=2))
print(json.dumps({"pids": fleet.pids(), "fleet": fleet.fleet_id}), flush=True)
time.sleep(120)
"""


def start_controller() -> tuple[subprocess.Popen[str], list[int], str]:
    """A controller process running a fleet of two runtimes; returns it, their pids, its id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, str(BUNDLES / "iris")],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    assert len(info["pids"]) == 2 and all(alive(pid) for pid in info["pids"])
    return proc, info["pids"], info["fleet"]


def test_sigterm_to_the_controller_stops_its_runtimes() -> None:
    controller, pids, _ = start_controller()
    controller.send_signal(signal.SIGTERM)
    assert controller.wait(30) == 128 + signal.SIGTERM
    assert not any(alive(pid) for pid in pids)


def test_reap_stops_what_a_killed_controller_left_behind() -> None:
    controller, pids, fleet_id = start_controller()
    controller.kill()  # SIGKILL: no cleanup can run
    controller.wait(30)
    try:
        assert all(alive(pid) for pid in pids)
        # A pid that is not a runtime of that fleet (reused, or someone else's) is left alone.
        assert reap(pids, fleet_id="another-fleet") == []
        assert reap([os.getpid()], fleet_id=fleet_id) == []
        assert all(alive(pid) for pid in pids)

        stopped = reap([*pids, os.getpid()], fleet_id=fleet_id)
        # Exactly `pids`, unless one ended by itself meanwhile (seen once on a loaded machine):
        # what matters is that nothing foreign is touched and nothing of the fleet is left.
        assert stopped and set(stopped) <= set(pids)
        assert not any(alive(pid) for pid in pids)
    finally:
        for pid in pids:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
