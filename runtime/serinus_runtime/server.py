"""The native HTTP/1.1 server: asyncio (uvloop) + httptools, no framework in between.

Measured against uvicorn + raw ASGI (bench/runtime/README): the per-request work of an ASGI
server (scope dicts, receive/send coroutines, a Task per request) costs more than a 1-row
LogisticRegression prediction, so the runtime parses HTTP itself and calls App.handle directly.
Keep-alive, pipelining (answers kept in order), `Expect: 100-continue`, chunked bodies, a body
size limit (413), back-pressure on slow readers and idle-connection reaping are handled here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING

import httptools

from serinus_runtime.app import JSON, App, Response, error_body

if TYPE_CHECKING:
    from serinus_runtime.config import Settings

log = logging.getLogger("serinus.runtime")

STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
MAX_PIPELINED = 64
_perf = time.perf_counter
_mono = time.monotonic


class _Slot:
    """One request's place in its connection's answer order (pipelining)."""

    __slots__ = ("http10", "keep", "proto", "resp")

    def __init__(self, proto: HttpProtocol, keep: bool, http10: bool) -> None:
        self.proto = proto
        self.keep = keep
        self.http10 = http10
        self.resp: Response | None = None

    def __call__(self, resp: Response) -> None:
        self.resp = resp
        self.proto._drain()


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "answered", "app", "body", "ctype", "expect", "last_active", "max_body", "parser",
        "paused", "pending", "server", "size", "t0", "too_large", "transport", "url",
    )  # fmt: skip

    def __init__(self, server: NativeServer) -> None:
        self.server = server
        self.app = server.app
        self.max_body = server.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Slot] = deque()
        self.paused = False
        self.last_active = _mono()
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.ctype: bytes | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.expect = False
        self.answered = False
        self.t0 = 0.0

    # --------------------------------------------------------------------- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = _mono()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fatal(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as e:
            self._fatal(400, f"malformed HTTP request: {e}")

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its requests meanwhile.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.paused:
            self.transport.resume_reading()

    # --------------------------------------------------------------------- httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()
        self.t0 = _perf()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        n = name.lower()
        if n == b"content-type":
            self.ctype = value
        elif n == b"content-length":
            try:
                if int(value) > self.max_body:
                    self.too_large = True
            except ValueError:
                pass  # httptools itself rejects a malformed length
        elif n == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        if self.transport is None or not self.expect:
            return
        if not self.too_large:
            self.transport.write(CONTINUE)
        elif not self.pending:
            # The client waits for our go-ahead: answer now instead of reading a body we refuse.
            self.app.metrics.observe_invalid("too_large")
            self.answered = True
            self._write(self._too_large(), False, False)

    def _too_large(self) -> Response:
        return Response(
            413,
            error_body(
                f"request body is larger than the limit of {self.max_body} bytes "
                "(--max-body-bytes / SERINUS_MAX_BODY_BYTES)"
            ),
        )

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return
        self.size += len(body)
        if self.size > self.max_body:
            self.too_large = True
            self.body = []
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.answered:
            # Refused with 413 at its headers (Expect: 100-continue) and the connection closed;
            # a client that sent the body anyway had it in the same read: it is no new request.
            return
        parser = self.parser
        slot = _Slot(self, parser.should_keep_alive(), parser.get_http_version() == "1.0")
        self.pending.append(slot)
        if len(self.pending) > MAX_PIPELINED and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        url = self.url
        q = url.find(b"?")
        path = (url if q < 0 else url[:q]).decode("latin-1")
        method = parser.get_method().decode("latin-1")
        if self.too_large:
            self.app.metrics.observe_invalid("too_large")
            slot.keep = False  # the rest of the body may still be on the wire
            slot(self._too_large())
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.app.handle(method, path, self.ctype, body, self.t0, slot)

    # --------------------------------------------------------------------- writing
    def _drain(self) -> None:
        q = self.pending
        while q and q[0].resp is not None:
            slot = q.popleft()
            self._write(slot.resp, slot.keep, slot.http10)  # type: ignore[arg-type]
        if self.paused and len(q) <= MAX_PIPELINED // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _write(self, resp: Response, keep: bool, http10: bool) -> None:
        t = self.transport
        if t is None:
            return
        body = resp.body
        conn = (
            b""
            if keep and not http10
            else (b"connection: keep-alive\r\n" if keep else b"connection: close\r\n")
        )
        t.write(
            STATUS_LINES[resp.status] + b"content-type: " + resp.content_type
            + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n" + resp.headers + conn
            + b"\r\n" + body
        )  # fmt: skip
        self.last_active = _mono()
        if not keep:
            t.close()
            self.transport = None

    def _fatal(self, status: int, message: str) -> None:
        t = self.transport
        if t is None:
            return
        body = error_body(message)
        t.write(
            STATUS_LINES[status] + b"content-type: " + JSON + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )  # fmt: skip
        t.close()
        self.transport = None

    def idle_for(self, now: float) -> float:
        return 0.0 if self.pending else now - self.last_active

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class NativeServer:
    def __init__(self, app: App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.max_body = settings.max_body_bytes
        self.connections: set[HttpProtocol] = set()
        self.server: asyncio.base_events.Server | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def start(self, sock: object | None = None) -> None:
        loop = asyncio.get_running_loop()
        if sock is not None:
            self.server = await loop.create_server(
                lambda: HttpProtocol(self), sock=sock, backlog=2048
            )
        else:
            self.server = await loop.create_server(
                lambda: HttpProtocol(self), self.settings.host, self.settings.port, backlog=2048,
                reuse_address=True,
            )  # fmt: skip
        self._reaper = loop.create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        timeout = self.settings.keepalive_timeout_s
        while True:
            await asyncio.sleep(min(5.0, max(timeout / 2, 0.5)))
            now = _mono()
            for c in list(self.connections):
                if c.idle_for(now) > timeout:
                    c.close()

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    def busy(self) -> bool:
        return any(c.pending for c in self.connections)

    def close_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for c in list(self.connections):
            c.close()
