"""The dashboard's HTTP server: read-only, GET (and HEAD) only, stdlib, in its own threads.

Routes:
  /                                     the list page
  /md/{namespace}/{name}                one deployment's page
  /md/{namespace}/{name}/charts.svg     its timeline as SVG (?rollout=ID, default the latest)
  /api/modeldeployments                 JSON: every ModelDeployment (api.ModelDeploymentList)
  /api/modeldeployments/{namespace}/{name}   JSON: one, with its timeline (ModelDeploymentDetail)
  /static/dashboard.js, dashboard.css, favicon.svg

There is no write endpoint at all, so there is nothing to authenticate: any other method is
answered 405. Errors are JSON, `{"error": "..."}`. Bound to a loopback address (local mode's
default), requests must name a loopback host in `Host`, so a web page elsewhere cannot read the
data through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from serinus.dashboard import api, charts, pages
from serinus.dashboard.api import as_json
from serinus.dashboard.timeline import Timeline

log = logging.getLogger("serinus.dashboard")

DEFAULT_LOCAL_PORT = 8090
DEFAULT_OPERATOR_PORT = 8082
STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}
_SEGMENT = r"([^/]+)"
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/"), "list_page"),
    (re.compile(rf"/md/{_SEGMENT}/{_SEGMENT}/?"), "detail_page"),
    (re.compile(rf"/md/{_SEGMENT}/{_SEGMENT}/charts\.svg"), "charts"),
    (re.compile(r"/api/modeldeployments/?"), "api_list"),
    (re.compile(rf"/api/modeldeployments/{_SEGMENT}/{_SEGMENT}/?"), "api_detail"),
    (re.compile(r"/static/([A-Za-z0-9_.-]+)"), "static"),
]


class DashboardServer:
    """Serves `timeline` on host:port (port 0: a free one) until `stop()`."""

    def __init__(
        self,
        timeline: Timeline,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        title: str = "Serinus",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_interval: float = 0.5,
    ) -> None:
        self.timeline = timeline
        self.poll_interval = poll_interval
        """How often the serving thread looks for `stop()` (what a stop may wait)."""
        self.host = host
        self.port = port
        self.title = title
        self.clock = clock
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> DashboardServer:
        """Bind (OSError when the port is taken) and serve in a daemon thread."""
        httpd = _Server((self.host, self.port), _Handler)
        httpd.daemon_threads = True
        httpd.dashboard = self
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name="serinus-dashboard",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def loopback_only(self) -> bool:
        return _is_loopback(self.host)

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    dashboard: DashboardServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "serinus-dashboard"
    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return self.server_version

    # ------------------------------------------------------------------ methods
    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _not_allowed(self) -> None:
        self._drain()
        self._error(
            HTTPStatus.METHOD_NOT_ALLOWED,
            f"{self.command} is not allowed: the dashboard is read-only (GET and HEAD only)",
            extra={"Allow": "GET, HEAD"},
        )

    def __getattr__(self, name: str) -> Any:
        # Every other method (POST, PUT, DELETE, PATCH, OPTIONS, PROPFIND, ...): 405.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ routing
    def _serve(self, *, head: bool) -> None:
        self._head = head
        dashboard = self.server.dashboard
        if dashboard.loopback_only and not _loopback_host(self.headers.get("Host")):
            self._error(
                HTTPStatus.FORBIDDEN,
                f"Host {self.headers.get('Host')!r} is not this machine: the dashboard listens "
                "on a loopback address and answers only requests for localhost",
            )
            return
        url = urlsplit(self.path)
        for pattern, route in _ROUTES:
            match = pattern.fullmatch(url.path)
            if match is not None:
                args = [unquote(group) for group in match.groups()]
                try:
                    getattr(self, f"_{route}")(dashboard, *args, query=parse_qs(url.query))
                except Exception as error:  # a bug must not kill the server thread silently
                    log.exception("dashboard: %s failed", self.path)
                    self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {error}")
                return
        self._error(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")

    def _list_page(self, dashboard: DashboardServer, *, query: Any) -> None:
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", pages.list_page(dashboard.title))

    def _detail_page(self, dashboard: DashboardServer, ns: str, name: str, *, query: Any) -> None:
        if dashboard.timeline.get(ns, name) is None:
            self._unknown(ns, name)
            return
        page = pages.detail_page(dashboard.title, ns, name)
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", page)

    def _charts(self, dashboard: DashboardServer, ns: str, name: str, *, query: Any) -> None:
        snapshot = dashboard.timeline.get(ns, name)
        if snapshot is None:
            self._unknown(ns, name)
            return
        detail = api.detail_document(snapshot)
        wanted = (query.get("rollout") or [None])[0]
        rollout = api.shown_rollout(detail, wanted)
        if wanted and rollout is None:
            self._error(HTTPStatus.NOT_FOUND, f"{ns}/{name} has no rollout {wanted!r}")
            return
        svg = charts.render_charts(detail, rollout, dashboard.clock())
        self._send(HTTPStatus.OK, "image/svg+xml; charset=utf-8", svg)

    def _api_list(self, dashboard: DashboardServer, *, query: Any) -> None:
        document = api.list_document(dashboard.timeline.all())
        self._json(HTTPStatus.OK, as_json(document))

    def _api_detail(self, dashboard: DashboardServer, ns: str, name: str, *, query: Any) -> None:
        snapshot = dashboard.timeline.get(ns, name)
        if snapshot is None:
            self._unknown(ns, name)
            return
        self._json(HTTPStatus.OK, as_json(api.detail_document(snapshot)))

    def _static(self, dashboard: DashboardServer, filename: str, *, query: Any) -> None:
        content_type = STATIC.get(filename)
        if content_type is None:
            self._error(HTTPStatus.NOT_FOUND, f"no such file: /static/{filename}")
            return
        data = (resources.files("serinus.dashboard") / "static" / filename).read_bytes()
        self._send(HTTPStatus.OK, content_type, data)

    # ------------------------------------------------------------------ answers
    def _unknown(self, ns: str, name: str) -> None:
        self._error(HTTPStatus.NOT_FOUND, f"no ModelDeployment {ns}/{name} is known here")

    def _error(self, status: HTTPStatus, message: str, extra: dict[str, str] | None = None) -> None:
        self._json(status, as_json(api.ApiError(error=message)), extra)

    def _json(
        self, status: HTTPStatus, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self._send(status, "application/json", data, extra)

    def _send(
        self,
        status: HTTPStatus,
        content_type: str,
        content: str | bytes,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Frame-Options", "DENY")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not getattr(self, "_head", False):
            self.wfile.write(data)

    def _drain(self) -> None:
        """Read a request body we will not use, so the connection stays in step."""
        self._head = self.command == "HEAD"
        length = self.headers.get("Content-Length")
        if length and length.isdigit():
            self.rfile.read(min(int(length), 1 << 20))
            if int(length) > 1 << 20:
                self.close_connection = True
        elif self.headers.get("Transfer-Encoding"):
            self.close_connection = True


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_host(header: str | None) -> bool:
    """The Host header names this machine (any port), or there is none (HTTP/1.0)."""
    if header is None:
        return True
    host = header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return _is_loopback(host.lower())
