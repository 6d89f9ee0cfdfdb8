"""Micro-batching: concurrent requests share one model call.

Requests queue up while the event loop is busy (reading other requests, or waiting for the
predict thread); a flush takes up to `max_rows` queued rows, calls the model once and hands each
caller its own slice. Cheap batches run inline on the event loop (a thread hop would cost more
than the call); batches estimated above `inline_budget_s` run on one predict thread, so health
checks and request parsing go on meanwhile. With `max_latency_s` > 0 a lone small batch waits
up to that long for company.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from serinus_runtime.errors import InvalidInput, Unavailable
from serinus_runtime.model import ServedModel

log = logging.getLogger("serinus.runtime")

# (predictions, probabilities or None, error or None) for one request's rows
Callback = Callable[[np.ndarray | None, np.ndarray | None, BaseException | None], None]
Result = tuple[np.ndarray, np.ndarray | None] | BaseException

AUTO_WINDOW_FRACTION = 0.2
AUTO_WINDOW_MAX_S = 0.005


class _Item:
    __slots__ = ("callback", "proba", "rows", "x")

    def __init__(self, x: np.ndarray, proba: bool, callback: Callback) -> None:
        self.x = x
        self.rows = x.shape[0]
        self.proba = proba
        self.callback = callback


def run_items(model: ServedModel, xs: list[np.ndarray], want_proba: bool) -> list[Result]:
    """One model call for all `xs`; if it fails, one call each so one bad request fails alone."""
    x = xs[0] if len(xs) == 1 else np.concatenate(xs)
    try:
        t0 = time.perf_counter()
        y, p = model.run(x, want_proba)
        model.observe_call(x.shape[0], time.perf_counter() - t0)
    except Exception as e:
        if len(xs) == 1:
            return [_as_error(e)]
        return [run_items(model, [xi], want_proba)[0] for xi in xs]
    out: list[Result] = []
    start = 0
    for xi in xs:
        end = start + xi.shape[0]
        out.append((y[start:end], p[start:end] if p is not None else None))
        start = end
    return out


def _as_error(e: Exception) -> BaseException:
    if isinstance(e, (ValueError, TypeError, KeyError)):
        # The model refused this input (e.g. an unknown category): the client's to fix.
        return InvalidInput(
            "model_rejected", f"the model could not predict on this input: {type(e).__name__}: {e}"
        )
    return e


class Batcher:
    def __init__(
        self,
        model_getter: Callable[[], ServedModel],
        *,
        max_rows: int,
        max_latency_s: float,
        inline_budget_s: float,
        max_queue_rows: int,
        on_batch: Callable[[ServedModel, np.ndarray, np.ndarray], None],
        executor: ThreadPoolExecutor,
    ) -> None:
        self.model_getter = model_getter
        self.max_rows = max_rows
        self.max_latency_s = max_latency_s
        self.inline_budget_s = inline_budget_s
        self.max_queue_rows = max_queue_rows
        self.on_batch = on_batch
        self.executor = executor
        self.queue: deque[_Item] = deque()
        self.queued_rows = 0
        self.busy = False  # a batch is on the predict thread
        self.scheduled = False  # a flush is queued on the loop (soon, or after max_latency)
        self.timer: asyncio.TimerHandle | None = None
        self.last_batch_items = 0  # requests in the previous batch: a hint of concurrency
        self.loop = asyncio.get_running_loop()

    def _window(self) -> float:
        """How long a partial batch waits for company: the configured max latency, or for
        models whose call is expensive (thread batches) while several callers are active, a fifth
        of one call, so clients answered by the previous batch can join the next one instead of
        waiting a whole call more."""
        if self.max_latency_s > 0:
            return self.max_latency_s
        cost = self.model_getter().cost_call_s
        if cost <= self.inline_budget_s or self.last_batch_items < 2:
            return 0.0  # cheap calls, or no sign of concurrent callers: don't make anyone wait
        return min(AUTO_WINDOW_FRACTION * cost, AUTO_WINDOW_MAX_S)

    def submit(self, x: np.ndarray, want_proba: bool, callback: Callback) -> None:
        if self.queued_rows >= self.max_queue_rows:
            raise Unavailable(
                f"overloaded: {self.queued_rows} rows already wait for the model; retry later"
            )
        self.queue.append(_Item(x, want_proba, callback))
        self.queued_rows += x.shape[0]
        if self.busy:
            return
        if not self.scheduled:
            self._schedule()
        elif self.timer is not None and self.queued_rows >= self.max_rows:
            self.timer.cancel()
            self.timer = None
            self.loop.call_soon(self._flush)

    def _schedule(self) -> None:
        self.scheduled = True
        window = self._window() if self.queued_rows < self.max_rows else 0.0
        if window > 0:
            self.timer = self.loop.call_later(window, self._flush)
        else:
            self.loop.call_soon(self._flush)

    def _take(self) -> list[_Item]:
        items = [self.queue.popleft()]
        rows = items[0].rows
        q = self.queue
        while q and rows + q[0].rows <= self.max_rows:
            it = q.popleft()
            rows += it.rows
            items.append(it)
        self.queued_rows -= rows
        return items

    def _flush(self) -> None:
        self.scheduled = False
        self.timer = None
        if self.busy or not self.queue:
            return
        items = self._take()
        self.last_batch_items = len(items)
        model = self.model_getter()
        want = any(it.proba for it in items)
        xs = [it.x for it in items]
        rows = sum(it.rows for it in items)
        if model.estimate_s(rows) <= self.inline_budget_s:
            self._deliver(model, items, xs, run_items(model, xs, want))
            if self.queue and not self.scheduled:
                # Let the loop read sockets (and answer health checks) before the next batch.
                self.scheduled = True
                self.loop.call_soon(self._flush)
            return
        self.busy = True
        fut = self.loop.run_in_executor(self.executor, run_items, model, xs, want)
        fut.add_done_callback(lambda f: self._thread_done(f, model, items, xs))

    def _thread_done(
        self,
        fut: asyncio.Future[list[Result]],
        model: ServedModel,
        items: list[_Item],
        xs: list[np.ndarray],
    ) -> None:
        self.busy = False
        try:
            results = fut.result()
        except BaseException as e:  # executor shut down, or a bug
            results = [e] * len(items)
        self._deliver(model, items, xs, results)
        if self.queue and not self.scheduled:
            self._schedule()

    def _deliver(
        self, model: ServedModel, items: list[_Item], xs: list[np.ndarray], results: list[Result]
    ) -> None:
        ok_x: list[np.ndarray] = []
        ok_y: list[np.ndarray] = []
        for it, xi, res in zip(items, xs, results, strict=True):
            try:
                if isinstance(res, BaseException):
                    it.callback(None, None, res)
                else:
                    it.callback(res[0], res[1], None)
                    ok_x.append(xi)
                    ok_y.append(res[0])
            except Exception:  # a callback bug must not lose the other callers' answers
                log.exception("error while answering a request")
        if ok_y:
            try:
                x = ok_x[0] if len(ok_x) == 1 else np.concatenate(ok_x)
                y = ok_y[0] if len(ok_y) == 1 else np.concatenate(ok_y)
                self.on_batch(model, x, y)
            except Exception:
                log.exception("error while recording batch metrics")

    def fail_all(self, error: BaseException) -> None:
        while self.queue:
            it = self.queue.popleft()
            it.callback(None, None, error)
        self.queued_rows = 0

    def pending(self) -> bool:
        return bool(self.queue) or self.busy

    def describe(self) -> dict[str, Any]:
        return {"queued_rows": self.queued_rows, "busy": self.busy}
