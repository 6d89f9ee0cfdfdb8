"""No orphaned runtime processes: exit hooks for live fleets, and reaping a dead controller's.

A fleet's children lead their own process groups (see `serinus.local.processes`), so they do
not die with the controller by themselves. While the controller runs, `track`ed fleets are
closed at interpreter exit and on SIGTERM / SIGHUP (when the application left those signals at
their default, which would kill it without running any cleanup). A controller killed with
SIGKILL cannot clean up at all: it recorded its fleet's `pids()` and `fleet_id`, and the next
one calls `reap`. Every child carries `SERINUS_LOCAL_FLEET=<fleet_id>` in its environment, so a
pid the system has reused since, even for another runtime, is never touched.

A local Prometheus (`serinus.local.prometheus`) also leads its own session and is `track`ed the
same way. After a SIGKILLed controller, `reap_prometheus(pid, workdir)` recognises it by its
command line: a `prometheus` executable whose `--config.file` is the one in that work directory,
a path nothing unrelated is started with.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

FLEET_ENV = "SERINUS_LOCAL_FLEET"
"""Set in every child's environment: `reap` only kills processes carrying the right value."""
RUNTIME_MODULE = "serinus_runtime"
PROMETHEUS_NAME = "prometheus"
"""Executable name `reap_prometheus` accepts (besides an explicitly given binary path)."""
PROMETHEUS_CONFIG = "prometheus.yml"
"""The config file a local Prometheus is started with, in its work directory."""


class Closeable(Protocol):
    def close(self) -> None: ...


def reap(pids: Iterable[int], fleet_id: str | None = None, timeout: float = 5.0) -> list[int]:
    """Stop leftovers of a controller that died without cleaning up (e.g. SIGKILL): each pid
    that is still a `serinus-runtime` (by its command line), and, when `fleet_id` is given,
    was started by that fleet. SIGTERM to its group, SIGKILL after `timeout`. Anything else
    with a recorded pid (reused by the system since) is left alone. Returns the pids stopped."""
    targets = [pid for pid in pids if is_runtime(pid, fleet_id)]
    _terminate(targets, timeout, "runtime")
    return targets


def reap_prometheus(
    pid: int, workdir: Path, timeout: float = 5.0, *, binary: str | None = None
) -> bool:
    """Stop the Prometheus a dead controller left running for `workdir`, if `pid` is still that
    Prometheus (see `is_prometheus`); SIGTERM to its group, SIGKILL after `timeout`. A pid the
    system gave to anything else since is left alone. Returns whether it was stopped."""
    if not is_prometheus(pid, workdir, binary=binary):
        return False
    _terminate([pid], timeout, "prometheus")
    return True


def is_prometheus(pid: int, workdir: Path, *, binary: str | None = None) -> bool:
    """The process runs a `prometheus` executable (by name, or exactly `binary`) with
    `--config.file=<workdir>/prometheus.yml`: the local Prometheus of that work directory,
    which no unrelated process would be started with."""
    args = cmdline(pid)
    if not args:
        return False
    program = args[0]
    if Path(program).name != PROMETHEUS_NAME and program != binary:
        return False
    config = Path(workdir).resolve() / PROMETHEUS_CONFIG
    return f"--config.file={config}" in args[1:]


def is_runtime(pid: int, fleet_id: str | None = None) -> bool:
    """The process is a `serinus-runtime` (and, with `fleet_id`, one that fleet started)."""
    proc = Path(f"/proc/{pid}")
    args = cmdline(pid)
    by_script = any(Path(a).name == "serinus-runtime" for a in args[:2])
    if RUNTIME_MODULE not in args[1:3] and not by_script:
        return False
    if fleet_id is None:
        return True
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{FLEET_ENV}={fleet_id}".encode() in environ


def cmdline(pid: int) -> list[str]:
    """The process' argv ([] if it is gone, a zombie, or not ours to read)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    return [a.decode(errors="replace") for a in argv if a]


def _terminate(pids: list[int], timeout: float, what: str) -> None:
    """SIGTERM each pid's group (or the pid), then SIGKILL whatever outlives `timeout`."""
    for pid in pids:
        _kill_group_or_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            log.warning("stale %s pid %d ignored SIGTERM: killing it", what, pid)
            _kill_group_or_pid(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill_group_or_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


# ---------------------------------------------------------------------- exit hooks

_LIVE: weakref.WeakSet[Closeable] = weakref.WeakSet()
_LOCK = threading.Lock()
_hooks = {"atexit": False, "signals": False}


def track(fleet: Closeable) -> None:
    """Close `fleet` at interpreter exit and on SIGTERM / SIGHUP, unless closed before."""
    _LIVE.add(fleet)
    with _LOCK:
        if not _hooks["atexit"]:
            atexit.register(_close_all)
            _hooks["atexit"] = True
        # Signal handlers can only be set from the main thread: try again with each fleet.
        if not _hooks["signals"] and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                # An application that handles these itself (kopf, asyncio) exits normally
                # afterwards, and atexit still runs; only the default (die at once) is replaced.
                if signal.getsignal(sig) == signal.SIG_DFL:
                    signal.signal(sig, _exit_on_signal)
            _hooks["signals"] = True


def untrack(fleet: Closeable) -> None:
    _LIVE.discard(fleet)


def _close_all() -> None:
    for fleet in list(_LIVE):
        with contextlib.suppress(Exception):
            fleet.close()


def _exit_on_signal(signum: int, _frame: object) -> None:
    # SystemExit unwinds the main thread, and atexit (_close_all) stops the children.
    raise SystemExit(128 + signum)
