"""The `local` TrafficRouter: one front port on 127.0.0.1 splitting requests by weight.

`LocalRouter` runs the proxy of `serinus.local.proxy` in a background thread with its own event
loop, so a synchronous controller drives it with plain calls. It carries out the engine's
SetWeight and Promote like the Kubernetes routers do, and can reach any whole percent, so
`set_weight` achieves exactly what it is asked (a first version without a stable one is the
exception: it serves alone, weight 100, as with the `replicas` router).

Backends are runtime base URLs. Give them either with `set_backends(...)`, or once as a
`resolve(revision) -> urls` function (e.g. `RuntimeFleet.urls`), which `set_weight`, `promote`
and `refresh` then call for the route's revisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from serinus.local.proxy import CANARY, SIDES, STABLE, Backend, ProxyServer, RouteTable, Stats
from serinus.traffic.router import RouteContext

Resolve = Callable[[str], Sequence[str]]


class VariantCounts(BaseModel):
    """Responses the router sent to clients, per side of the split and status code (its own
    502/503/504 answers included: they are what clients saw)."""

    stable: dict[int, int] = Field(default_factory=dict)
    canary: dict[int, int] = Field(default_factory=dict)

    def total(self, side: str) -> int:
        return sum(getattr(self, side).values())

    def server_errors(self, side: str) -> int:
        return sum(n for code, n in getattr(self, side).items() if code >= 500)


class LocalRouter:
    """TrafficRouter for local mode. `start()` before sending traffic; `stop()` at the end."""

    def __init__(
        self,
        resolve: Resolve | None = None,
        *,
        host: str = "127.0.0.1",
        connect_timeout: float = 2.0,
        response_timeout: float = 60.0,
        seed: int | None = None,
    ) -> None:
        self.resolve = resolve
        self.host = host
        self.connect_timeout = connect_timeout
        self.response_timeout = response_timeout
        self.seed = seed
        self._table = RouteTable()
        self._stable_revision: str | None = None
        self._canary_revision: str | None = None
        self._stats = Stats()
        self._proxy: ProxyServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self, port: int = 0) -> int:
        """Listen on host:port (0: a free port) and return the port. Raises OSError saying
        what to change when the port is taken."""
        if self._thread is not None:
            raise RuntimeError(f"the local router already listens on {self.url}")
        started = threading.Event()
        outcome: dict[str, object] = {}
        thread = threading.Thread(
            target=self._run, args=(port, started, outcome), name="serinus-local-router",
            daemon=True,
        )  # fmt: skip
        thread.start()
        started.wait()
        problem = outcome.get("error")
        if isinstance(problem, OSError):
            thread.join()
            raise OSError(
                problem.errno,
                f"the local router cannot listen on {self.host}:{port}: "
                f"{problem.strerror or problem}; choose another port (0 picks a free one)",
            )
        self._thread = thread
        self._port = int(outcome["port"])  # type: ignore[call-overload]
        return self._port

    def stop(self) -> None:
        """Stop listening, close every connection, end the thread. Weight, backends and counts
        are kept for a later `start`."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10.0)
        self._thread = None
        self._port = None

    def __enter__(self) -> LocalRouter:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the local router is not running: call start() first")
        return f"http://{self.host}:{self._port}"

    def _run(self, port: int, started: threading.Event, outcome: dict[str, object]) -> None:
        loop = _new_loop()
        asyncio.set_event_loop(loop)
        proxy = ProxyServer(
            connect_timeout=self.connect_timeout,
            response_timeout=self.response_timeout,
            seed=self.seed,
        )
        proxy.table = self._table
        proxy.stats = self._stats
        try:
            outcome["port"] = loop.run_until_complete(proxy.start(self.host, port))
        except OSError as problem:
            outcome["error"] = problem
            loop.close()
            started.set()
            return
        self._proxy, self._loop = proxy, loop
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(proxy.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._proxy, self._loop = None, None

    # ------------------------------------------------------------------ the split
    @property
    def weight(self) -> int:
        return self._table.weight

    def set_backends(
        self,
        stable: Sequence[str],
        canary: Sequence[str] = (),
        *,
        stable_revision: str | None = None,
        canary_revision: str | None = None,
    ) -> None:
        """Replace both sides' backend URLs (e.g. after a replica restarted on a new port);
        the weight stays. Requests in flight finish on the backends they started on."""
        with self._lock:
            self._stable_revision = stable_revision
            self._canary_revision = canary_revision
            self._apply(
                RouteTable(
                    weight=self._table.weight,
                    stable=_backends(stable, STABLE, stable_revision),
                    canary=_backends(canary, CANARY, canary_revision),
                )
            )

    def set_weight(self, route: RouteContext, weight: int) -> int:
        """Send `weight` percent of requests to the canary; returns the weight achieved."""
        if not 0 <= weight <= 100:
            raise ValueError(f"weight must be a percent between 0 and 100, got {weight}")
        canary = _require_canary(route)
        if route.stable is None and weight > 0:
            weight = 100  # a first version has nothing to split with: it serves alone
        with self._lock:
            table = self._table
            stable_backends, canary_backends = table.stable, table.canary
            if self.resolve is not None:
                stable_backends = self._resolved(route.stable, STABLE)
                canary_backends = self._resolved(canary, CANARY)
                self._stable_revision, self._canary_revision = route.stable, canary
            self._apply(RouteTable(weight=weight, stable=stable_backends, canary=canary_backends))
        return weight

    def promote(self, route: RouteContext) -> None:
        """All traffic to `route.canary`, which becomes the stable side; no canary remains."""
        canary = _require_canary(route)
        with self._lock:
            if self.resolve is not None:
                stable = self._resolved(canary, STABLE)
            else:
                stable = tuple(b.model_copy(update={"side": STABLE}) for b in self._table.canary)
            self._stable_revision, self._canary_revision = canary, None
            self._apply(RouteTable(weight=0, stable=stable))

    def observed_weight(self, route: RouteContext) -> int | None:
        """The canary percent in effect for `route.canary`; None while the router is down."""
        if self._thread is None:
            return None
        if route.canary is None:
            return 0
        if route.canary == self._stable_revision:
            return 100  # promoted: the revision takes everything
        if self._canary_revision not in (None, route.canary):
            return 0  # another revision is the canary here: this one gets nothing
        return self._table.weight

    def refresh(self, route: RouteContext) -> None:
        """Re-resolve both sides' URLs for the route's revisions (needs `resolve`); the weight
        stays. Call it when a revision's processes changed (a restart, a scale)."""
        if self.resolve is None:
            raise RuntimeError("refresh needs a resolve function: use set_backends instead")
        with self._lock:
            table = self._table
            self._apply(
                RouteTable(
                    weight=table.weight,
                    stable=self._resolved(route.stable, STABLE),
                    canary=self._resolved(route.canary, CANARY),
                )
            )
            self._stable_revision, self._canary_revision = route.stable, route.canary

    # ------------------------------------------------------------------ counts
    def counts(self) -> VariantCounts:
        """Responses so far by side and status code (a snapshot)."""
        by_side = self._stats.by_side
        return VariantCounts(stable=dict(by_side[STABLE]), canary=dict(by_side[CANARY]))

    def reset_counts(self) -> None:
        for side in SIDES:
            self._stats.by_side[side] = {}

    # ------------------------------------------------------------------ internals
    def _resolved(self, revision: str | None, side: str) -> tuple[Backend, ...]:
        if revision is None or self.resolve is None:
            return ()
        return _backends(self.resolve(revision), side, revision)

    def _apply(self, table: RouteTable) -> None:
        self._table = table
        proxy, loop = self._proxy, self._loop
        if proxy is not None and loop is not None:
            proxy.table = table  # one reference swap: requests see the old or the new split
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(proxy.prune)


def _backends(urls: Sequence[str], side: str, revision: str | None) -> tuple[Backend, ...]:
    return tuple(Backend.parse(url, side, revision) for url in urls)


def _require_canary(route: RouteContext) -> str:
    if route.canary is None:
        raise ValueError(f"{route.namespace}/{route.name}: no canary revision to route to")
    return route.canary


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is not built for Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
