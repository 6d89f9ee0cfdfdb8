"""`serinus demo` — the README's first command — end to end, as a user runs it.

Without Prometheus here (`--no-prometheus`, the scrape provider): the scenario tests run the
same controller with the real Prometheus."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

SERINUS = Path(sys.executable).with_name("serinus")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_demo_promotes_v2_and_rolls_back_v3_and_v4(tmp_path: Path):
    result = subprocess.run(
        [str(SERINUS), "demo", "--workdir", str(tmp_path), "--port", str(free_port()),
         "--no-prometheus", "--no-live"],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env=os.environ | {"COLUMNS": "200"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rows = {line.split("│")[1].strip(): line for line in output.splitlines() if "│ v" in line}
    assert set(rows) == {"v1", "v2", "v3", "v4"}, output
    assert "Promoted" in rows["v1"] and "Promoted" in rows["v2"]
    assert "RolledBack" in rows["v3"] and "prediction-drift" in rows["v3"]
    assert "RolledBack" in rows["v4"] and "error-rate" in rows["v4"]
    clients = next(line for line in output.splitlines() if line.startswith("clients:"))
    assert "(0 5xx), canaries" in clients, clients  # stable never answered a 5xx
    assert "analysis metrics: scrape" in output
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert not leftovers, f"processes of the demo still running: {leftovers}"
