"""A real webhook receiver for the notification tests: http.server on 127.0.0.1 in a thread.

It records every POST (path, JSON body, arrival time) and answers by script: a list of status
codes per path (200 once the list is used up), an optional Retry-After, a delay before the
answer, and a gate that holds requests to some paths until the test opens it (a receiver that
hangs). `free_port()` gives a port nothing listens on (a receiver that is down).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    body: dict[str, Any]
    at: float


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: dict[str, list[int]] = {}
        self.retry_after: str | None = None
        self.delay = 0.0
        self.held_prefix: str | None = None
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.requests.append(Received(self.path, body, time.monotonic()))
                    script = receiver.answers.get(self.path) or []
                    status = script.pop(0) if script else 200
                if receiver.held_prefix and self.path.startswith(receiver.held_prefix):
                    receiver.gate.wait(120)
                time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    if receiver.retry_after is not None:
                        self.send_header("Retry-After", receiver.retry_after)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client gave up (a timeout): nothing to answer

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def hold(self, prefix: str) -> None:
        """Requests to paths starting with `prefix` wait until `release()`."""
        self.held_prefix = prefix
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests if r.path == path]

    def times(self, path: str) -> list[float]:
        with self._lock:
            return [r.at for r in self.requests if r.path == path]


def free_port() -> int:
    """A port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)
