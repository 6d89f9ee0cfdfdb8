"""HTTP/1.1 mechanics of the local router's proxy (see `serinus.local.proxy` for the design):
client connections (parse, queue pipelined requests, answer in order), one request's exchange
(backend choice, retries, streaming the answer back, errors) and pooled upstream connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

import httptools
import orjson

if TYPE_CHECKING:
    from serinus.local.proxy import Backend, ProxyServer

HOP_BY_HOP = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te",
        b"trailer", b"upgrade",
    }
)  # fmt: skip
REQUEST_DROP = HOP_BY_HOP | {b"content-length", b"expect"}
NO_BODY_METHODS = frozenset({b"GET", b"HEAD", b"DELETE", b"OPTIONS", b"TRACE"})
IDEMPOTENT_METHODS = NO_BODY_METHODS | {b"PUT"}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
MAX_PIPELINED = 64


@dataclass
class Request:
    """A parsed client request (its body read whole)."""

    method: bytes
    url: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep: bool
    http10: bool
    too_large: bool


# ---------------------------------------------------------------------- client side


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests, answers them in order."""

    def __init__(self, proxy: ProxyServer) -> None:
        self.proxy = proxy
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request] = deque()
        self.current: Exchange | None = None
        self.reading_paused = False
        self.writing_paused = False
        self._begin()

    def _begin(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.expect = False
        self.too_large = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _nodelay(transport)
        self.proxy.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.clients.discard(self)
        self.transport = None
        self.queue.clear()
        if self.current is not None:
            self.current.abandon()
            self.current = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fatal(400, "protocol upgrades are not supported by the local router")
        except httptools.HttpParserError as problem:
            self._fatal(400, f"malformed HTTP request: {problem}")

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self.current is not None:
            self.current.pause_upstream()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.current is not None:
            self.current.resume_upstream()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._begin()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lower = name.lower()
        if lower == b"content-length":
            with contextlib.suppress(ValueError):
                self.too_large = int(value) > self.proxy.max_body
        elif lower == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        # Interleaving a 100 with an earlier pipelined answer would corrupt it: only when idle.
        idle = self.current is None and not self.queue
        if self.expect and idle and not self.too_large and self.transport is not None:
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.proxy.max_body:
            self.too_large = True
            self.body = []
        elif not self.too_large:
            self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        self.queue.append(
            Request(
                method=parser.get_method(),
                url=self.url,
                headers=self.headers,
                body=b"".join(self.body),
                keep=parser.should_keep_alive(),
                http10=parser.get_http_version() == "1.0",
                too_large=self.too_large,
            )
        )
        if len(self.queue) > MAX_PIPELINED and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        if self.current is None:
            self._next()

    # answering
    def _next(self) -> None:
        while self.current is None and self.queue and self.transport is not None:
            request = self.queue.popleft()
            if self.reading_paused and len(self.queue) <= MAX_PIPELINED // 2:
                self.reading_paused = False
                self.transport.resume_reading()
            if request.too_large:
                request.keep = False  # the rest of the body may still be on the wire
                self.answer_error(
                    request, None, 413,
                    f"request body is larger than the local router's limit of "
                    f"{self.proxy.max_body} bytes",
                )  # fmt: skip
                continue
            side, backends, start = self.proxy.pick(self.proxy.table)
            if not backends:
                self.answer_error(
                    request, side, 503,
                    f"no {side} backend is set in the local router: is the {side} revision "
                    "running?",
                )  # fmt: skip
                continue
            exchange = Exchange(self, request, side, backends, start)
            self.current = exchange
            exchange.attempt()

    def finished(self, exchange: Exchange, keep: bool) -> None:
        if self.current is exchange:
            self.current = None
        if not keep:
            self.close()
            return
        self._next()

    def answer_error(self, request: Request, side: str | None, status: int, message: str) -> None:
        """An answer of the router's own; counted for `side` (None: not routed)."""
        variant = b""
        if side is not None:
            self.proxy.stats.count(side, status)
            variant = b"x-serinus-variant: " + side.encode() + b"\r\n"
        body = orjson.dumps({"error": message})
        self.write(
            _status_line(status)
            + b"content-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n"
            + variant
            + _connection_header(request)
            + b"\r\n"
            + (b"" if request.method == b"HEAD" else body)
        )  # fmt: skip
        if not request.keep:
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def _fatal(self, status: int, message: str) -> None:
        self.queue.clear()
        body = orjson.dumps({"error": message})
        self.write(
            _status_line(status)
            + b"content-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + body
        )
        self.close()


# ---------------------------------------------------------------------- one request


class Exchange:
    """One request's trip: pick a backend, send, stream the answer back."""

    __slots__ = (
        "backends", "chunked", "client", "close_delimited", "done", "head_sent", "reasons",
        "request", "retried", "side", "start", "status", "timer", "tried", "upstream",
    )  # fmt: skip

    def __init__(
        self,
        client: ClientConnection,
        request: Request,
        side: str,
        backends: tuple[Backend, ...],
        start: int,
    ) -> None:
        self.client = client
        self.request = request
        self.side = side
        self.backends = backends
        self.start = start
        self.tried = 0
        self.reasons: list[str] = []
        self.upstream: UpstreamConnection | None = None
        self.retried = False
        self.head_sent = False
        self.chunked = False
        self.close_delimited = False
        self.status = 0
        self.done = False
        proxy = client.proxy
        assert proxy.loop is not None
        self.timer = proxy.loop.call_later(proxy.response_timeout, self._timed_out)

    # choosing a backend
    def attempt(self) -> None:
        if self.tried >= len(self.backends):
            self.fail(502, "; ".join(self.reasons))
            return
        backend = self.backends[(self.start + self.tried) % len(self.backends)]
        self.tried += 1
        upstream = self.client.proxy.take_idle(backend)
        if upstream is not None:
            upstream.send(self, reused=True)
        else:
            self.client.proxy.spawn(self._connect(backend))

    async def _connect(self, backend: Backend) -> None:
        try:
            upstream = await self.client.proxy.connect(backend)
        except TimeoutError:
            self.reasons.append(f"{backend.describe()}: no connection within "
                                f"{self.client.proxy.connect_timeout:g}s")  # fmt: skip
            if not self.done:
                self.attempt()
            return
        except OSError as problem:
            self.reasons.append(f"{backend.describe()}: {_describe_os_error(problem)}")
            if not self.done:
                self.attempt()
            return
        if self.done:
            upstream.close()
            return
        upstream.send(self, reused=False)

    # upstream callbacks
    def head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        request = self.request
        self.status = status
        self.client.proxy.stats.count(self.side, status)
        out = [b"HTTP/1.1 %d %s\r\n" % (status, reason or _phrase(status))]
        drop = _connection_tokens(headers)
        length_known = False
        upstream_chunked = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"transfer-encoding":
                upstream_chunked = b"chunked" in value.lower()
            if lower in drop or lower in HOP_BY_HOP:
                continue
            if lower == b"content-length":
                length_known = True
            out.append(name + b": " + value + b"\r\n")
        bodiless = request.method == b"HEAD" or status in (204, 304)
        if not length_known and not bodiless:
            if request.http10:
                request.keep = False  # the end of the body is the end of the connection
            else:
                self.chunked = True
                out.append(b"transfer-encoding: chunked\r\n")
        self.close_delimited = not length_known and not upstream_chunked and not bodiless
        out.append(b"x-serinus-variant: " + self.side.encode() + b"\r\n")
        out.append(_connection_header(request))
        out.append(b"\r\n")
        self.head_sent = True
        self.client.write(b"".join(out))
        if request.method == b"HEAD":
            # The response parser cannot know this answer has no body: don't reuse it.
            self._end(keep_upstream=False)

    def body(self, data: bytes) -> None:
        if self.chunked:
            self.client.write(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            self.client.write(data)

    def complete(self, keep_upstream: bool) -> None:
        if self.chunked:
            self.client.write(b"0\r\n\r\n")
        self._end(keep_upstream)

    def upstream_lost(
        self, upstream: UpstreamConnection, exc: Exception | None, got_bytes: bool
    ) -> None:
        if self.done:
            return
        backend = upstream.backend
        if not self.head_sent:
            idempotent = self.request.method in IDEMPOTENT_METHODS
            if upstream.reused and not got_bytes and idempotent and not self.retried:
                # Most likely the backend closed this pooled connection as idle just as the
                # request went out. Only idempotent requests are sent again (nginx's rule):
                # a POST may have been acted on.
                self.retried = True
                self.upstream = None
                self.client.proxy.spawn(self._connect(backend))
                return
            why = _describe_os_error(exc) if isinstance(exc, OSError) else "connection closed"
            self.fail(502, f"{backend.describe()}: {why} before answering")
            return
        if self.close_delimited:
            self.complete(keep_upstream=False)
            return
        self.request.keep = False  # the client sees a truncated body and a closed connection
        self._end(keep_upstream=False)

    def upstream_garbled(self, upstream: UpstreamConnection, problem: Exception) -> None:
        if self.head_sent:
            self.request.keep = False
            self._end(keep_upstream=False)
        else:
            self.fail(502, f"{upstream.backend.describe()}: malformed response: {problem}")

    # ending
    def fail(self, status: int, message: str) -> None:
        if self.done:
            return
        self._release(keep_upstream=False)
        self.client.answer_error(self.request, self.side, status, message)
        self.client.finished(self, self.request.keep)

    def _timed_out(self) -> None:
        if self.done:
            return
        timeout = self.client.proxy.response_timeout
        if not self.head_sent:
            target = self.upstream.backend.describe() if self.upstream else f"{self.side} backends"
            self.fail(504, f"{target}: no answer within {timeout:g}s")
            return
        self.request.keep = False
        self._end(keep_upstream=False)

    def _end(self, keep_upstream: bool) -> None:
        if self.done:
            return
        self._release(keep_upstream)
        self.client.finished(self, self.request.keep)

    def _release(self, keep_upstream: bool) -> None:
        self.done = True
        self.timer.cancel()
        upstream, self.upstream = self.upstream, None
        if upstream is None:
            return
        upstream.exchange = None
        upstream.resume()
        if keep_upstream:
            self.client.proxy.give_back(upstream)
        else:
            upstream.close()

    def abandon(self) -> None:
        """The client went away: drop the upstream connection mid-answer."""
        self._release(keep_upstream=False)

    def pause_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.pause()

    def resume_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.resume()


# ---------------------------------------------------------------------- upstream side


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to a backend; serves one exchange at a time."""

    def __init__(self, proxy: ProxyServer, backend: Backend) -> None:
        self.proxy = proxy
        self.backend = backend
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.reused = False
        self.got_bytes = False
        self.paused = False
        self.idle_since = 0.0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.informational = False
        self.fd = -1

    def usable(self) -> bool:
        """Open, and nothing to read: an idle connection that is readable holds either the
        backend's EOF (it closed or died; the loop may not have run connection_lost yet) or
        bytes nobody asked for. Either way a request must not go out on it."""
        if self.transport is None or self.transport.is_closing() or self.fd < 0:
            return False
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return not poller.poll(0)

    def send(self, exchange: Exchange, *, reused: bool) -> None:
        self.exchange = exchange
        exchange.upstream = self
        self.reused = reused
        self.got_bytes = False
        request = exchange.request
        out = [request.method, b" ", request.url, b" HTTP/1.1\r\n"]
        drop = _connection_tokens(request.headers)
        for name, value in request.headers:
            lower = name.lower()
            if lower not in REQUEST_DROP and lower not in drop:
                out.append(name + b": " + value + b"\r\n")
        if request.body or request.method not in NO_BODY_METHODS:
            out.append(b"content-length: " + str(len(request.body)).encode() + b"\r\n")
        out.append(b"\r\n")
        out.append(request.body)
        assert self.transport is not None
        self.transport.write(b"".join(out))
        if exchange.client.writing_paused:
            self.pause()

    def pause(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _nodelay(transport)
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        self.proxy.upstreams.add(self)

    def connected_to_itself(self) -> bool:
        """Linux can pick a dead backend's own port as the source port of a connection to it,
        and that connection succeeds (TCP simultaneous open): it must count as refused."""
        sock = self.transport.get_extra_info("socket") if self.transport else None
        return sock is not None and sock.getsockname() == sock.getpeername()

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy.upstreams.discard(self)
        self.transport = None
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_lost(self, exc, self.got_bytes)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.exchange is None:
            self.close()  # bytes nobody asked for: this connection can't be trusted
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as problem:
            exchange, self.exchange = self.exchange, None
            self.close()
            if exchange is not None:
                exchange.upstream_garbled(self, problem)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.reason = b""
        self.headers = []

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.informational = status < 200
        if not self.informational and self.exchange is not None:
            self.exchange.head(status, self.reason, self.headers)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.body(body)

    def on_message_complete(self) -> None:
        if self.informational:
            return  # a 1xx: the real answer follows on the same connection
        exchange = self.exchange
        if exchange is not None:
            exchange.complete(keep_upstream=self.parser.should_keep_alive())


# ---------------------------------------------------------------------- helpers


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, _phrase(status))


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


def _connection_header(request: Request) -> bytes:
    if not request.keep:
        return b"connection: close\r\n"
    return b"connection: keep-alive\r\n" if request.http10 else b""


def _connection_tokens(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def _describe_os_error(problem: OSError) -> str:
    if isinstance(problem, ConnectionRefusedError):
        return "connection refused: is its runtime process running?"
    if isinstance(problem, ConnectionResetError):
        return "connection reset by the backend"
    return problem.strerror or str(problem) or type(problem).__name__


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
