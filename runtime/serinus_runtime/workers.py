"""`--workers N` (N > 1): N server processes sharing one listening socket.

The parent binds the socket, creates an anonymous shared-memory region and forks the workers
before importing numpy or scikit-learn (nothing thread-bearing exists at fork time); it then only
forwards signals and replaces workers that crash. Each worker loads the model itself (N times the
model's memory: that is the price) and serves on the shared socket. Every worker publishes a
snapshot of its counters into its own slot of the shared region twice a second, and a /metrics
scrape answered by any worker sums its live counters with the others' latest snapshots, so one
scrape sees the whole pod (the other workers' part may lag by up to PUBLISH_INTERVAL_S).
No file is written: this works on a read-only root filesystem.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import pickle
import signal
import socket
import struct
import sys
import time
from typing import Any

from serinus_runtime.config import Settings

log = logging.getLogger("serinus.runtime")

SLOT_BYTES = 8 * 1024 * 1024  # per worker; pages are only allocated when written
PUBLISH_INTERVAL_S = 0.5
ERROR_BYTES = 4096
_HEADER = struct.Struct("QQ")  # sequence (odd while writing), payload length


class SharedSnapshots:
    """One seqlock-protected slot per worker in an anonymous shared mapping (inherited by fork)."""

    def __init__(self, workers: int, slot_bytes: int = SLOT_BYTES) -> None:
        self.workers = workers
        self.slot = slot_bytes
        self.buf = mmap.mmap(-1, workers * slot_bytes)
        self.ready_flags = mmap.mmap(-1, workers)
        self.errors = mmap.mmap(-1, workers * ERROR_BYTES)

    def set_error(self, index: int, message: str) -> None:
        data = message.encode()[: ERROR_BYTES - 1]
        base = index * ERROR_BYTES
        self.errors[base : base + ERROR_BYTES] = data.ljust(ERROR_BYTES, b"\0")

    def error(self, index: int) -> str:
        base = index * ERROR_BYTES
        return self.errors[base : base + ERROR_BYTES].rstrip(b"\0").decode(errors="replace")

    def set_ready(self, index: int, ready: bool) -> None:
        self.ready_flags[index] = 1 if ready else 0

    def all_ready(self) -> bool:
        """The pod is ready when every worker is: a probe may reach any of them."""
        return all(self.ready_flags[:])

    def write(self, index: int, obj: Any) -> bool:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > self.slot - _HEADER.size:
            return False
        base = index * self.slot
        seq, _ = _HEADER.unpack_from(self.buf, base)
        _HEADER.pack_into(self.buf, base, seq + 1, 0)  # odd: being written
        self.buf[base + _HEADER.size : base + _HEADER.size + len(data)] = data
        _HEADER.pack_into(self.buf, base, seq + 2, len(data))
        return True

    def read(self, index: int) -> Any | None:
        base = index * self.slot
        for _ in range(10):
            seq, length = _HEADER.unpack_from(self.buf, base)
            if seq == 0:
                return None  # never written
            if seq % 2:
                time.sleep(0.0005)
                continue
            data = bytes(self.buf[base + _HEADER.size : base + _HEADER.size + length])
            if _HEADER.unpack_from(self.buf, base)[0] == seq:
                # Written by our own forked workers into a private anonymous mapping.
                return pickle.loads(data)
        return None

    def others(self, index: int) -> list[Any]:
        out = []
        for j in range(self.workers):
            if j != index:
                snap = self.read(j)
                if snap is not None:
                    out.append(snap)
        return out


def _listen(host: str, port: int) -> socket.socket:
    family, type_, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _child(s: Settings, sock: socket.socket, shared: SharedSnapshots, index: int) -> int:
    from serinus_runtime.runner import run_worker

    return run_worker(s, sock, shared, index)


def run_workers(s: Settings) -> int:
    logging.basicConfig(
        level=getattr(logging, s.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        sock = _listen(s.host, s.port)
    except OSError as e:
        print(f"serinus-runtime: error: cannot listen on {s.host}:{s.port}: {e.strerror or e}",
              file=sys.stderr)  # fmt: skip
        return 2
    shared = SharedSnapshots(s.workers)
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            code = 1
            try:
                code = _child(s, sock, shared, index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for i in range(s.workers):
        spawn(i)
    log.info("started %d workers on %s:%d (parent pid %d)", s.workers, s.host, s.port, os.getpid())

    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            continue
        if code == 2:  # the model could not be loaded: configuration, not a crash
            message = shared.error(index) or f"worker {index} could not start"
            print(f"serinus-runtime: error: {message}", file=sys.stderr, flush=True)
            exit_code = 2
            stopping = True
            forward(signal.SIGTERM, None)
            continue
        log.error("worker %d (pid %d) exited with %d; starting a new one", index, pid, code)
        shared.set_ready(index, False)  # the pod is not ready until the new one has loaded
        time.sleep(0.5)
        spawn(index)
    return exit_code
