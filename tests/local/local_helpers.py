"""Helpers for the local-mode tests: bundles, revision specs, process checks, a fake backend."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from serinus.local.processes import RevisionSpec

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ROOT / "examples" / "bundles"
MODEL = "iris"
STABLE_REV, CANARY_REV = "rev-iris-1", "rev-iris-2"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


def spec(revision: str, bundle: str, variant: str, replicas: int = 1, **extra: Any) -> RevisionSpec:
    return RevisionSpec(
        revision=revision, name=MODEL, model_uri=str(BUNDLES / bundle), variant=variant,
        replicas=replicas, **extra,
    )  # fmt: skip


def infer_body(rows: list[list[float]] | None = None) -> dict[str, Any]:
    rows = rows or [IRIS_ROW]
    flat = [v for row in rows for v in row]
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64",
                        "data": flat}]}  # fmt: skip


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (psutil-free: /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_refuses(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port any more."""
    with socket.socket() as s:
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


CHUNKS = [b"first piece, ", b"second piece, ", b"the end"]


class _FakeHandler(BaseHTTPRequestHandler):
    """Answers the router can meet besides the runtime's: chunked, close-delimited, slow,
    dropped. Everything else echoes what arrived."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits[("GET", self.path)] += 1  # type: ignore[attr-defined]
        if self.path == "/chunked":
            self.send_response(201)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("X-Custom", "kept")
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for chunk in CHUNKS:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            # HTTP/1.0 style: no length, the body ends when the connection does.
            self.close_connection = True
            self.wfile.write(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"".join(CHUNKS)
            )
        elif self.path == "/slow":
            time.sleep(2.0)
            self._json(200, {"slow": True})
        elif self.path == "/drop":
            self.close_connection = True  # read the request, answer nothing, hang up
        else:
            self._json(200, self._seen(b""))

    def do_POST(self) -> None:
        self.server.hits[("POST", self.path)] += 1  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/drop":
            self.close_connection = True
            return
        self._json(200, self._seen(body))

    def _seen(self, body: bytes) -> dict[str, Any]:
        headers = self.headers
        return {
            "path": self.path,
            "body": body.decode(),
            "content_length": headers.get("Content-Length"),
            "transfer_encoding": headers.get("Transfer-Encoding"),
            "host": headers.get("Host"),
            "connection": headers.get("Connection"),
            "x_custom": headers.get("X-Custom"),
        }

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # e.g. /slow answering after the router gave up: expected, not worth a traceback


class FakeBackend:
    """A threaded HTTP/1.1 server on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.server = _QuietServer(("127.0.0.1", 0), _FakeHandler)
        self.server.daemon_threads = True
        self.server.hits = Counter()  # type: ignore[attr-defined]
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> Counter[tuple[str, str]]:
        """Requests received, by (method, path)."""
        return self.server.hits  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
