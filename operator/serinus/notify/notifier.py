"""Delivery in the background: `send` only queues, worker threads post with retries.

A tick calls `send` and moves on: nothing here can hold, fail or change a rollout. Each
(ModelDeployment, target) pair is a lane delivered in order, one request at a time, so a dead
receiver delays only its own lane; a few daemon workers serve all lanes. Attempts that fail in
a way worth repeating (no connection, a timeout, HTTP 429 or 5xx) are retried with exponential
backoff and jitter (Retry-After is honoured up to the cap); other answers are final. The queue
is bounded: when full, the oldest waiting notification is dropped and counted.

Results, counted through `on_delivery(target, result)`: delivered, failed (given up after the
retries), rejected (the receiver answered 4xx), unresolved (no usable URL: a missing Secret,
an unset variable) and dropped (queue full). A problem is reported through `on_problem` once
until it changes or a delivery to that target succeeds again. Logs and reports name the target
and the HTTP status or error class — never the URL, which may carry a token.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from serinus.notify.payloads import Notice, payload_for
from serinus.notify.targets import SecretReader, Target, TargetError, resolve_url

log = logging.getLogger("serinus.notify")

WORKER_PREFIX = "serinus-notify"
DELIVERED, FAILED, REJECTED, UNRESOLVED, DROPPED = (
    "delivered", "failed", "rejected", "unresolved", "dropped",
)  # fmt: skip
RESULTS = (DELIVERED, FAILED, REJECTED, UNRESOLVED, DROPPED)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    """Tries in all: the first and three retries."""
    backoff: float = 1.0
    """Wait before the first retry, doubled for each next one (1 s, 2 s, 4 s)."""
    max_backoff: float = 30.0
    jitter: float = 0.2
    """Each wait is scaled by a random factor in [1 - jitter, 1 + jitter]."""

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        base = min(self.backoff * 2 ** (retry - 1), self.max_backoff)
        wait = base * random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff))
        return wait


Problem = Callable[[str, str, str, str], None]
"""on_problem(namespace, name, target, message)."""


@dataclass(eq=False)
class _Job:
    seq: int
    lane: tuple[str, str, str, str]
    target: Target
    notice: Notice
    attempt: int = 0
    due: float = 0.0
    in_flight: bool = False


@dataclass(frozen=True)
class _Result:
    result: str | None
    """None: try again (if attempts remain)."""
    detail: str
    retry_after: float | None = None


@dataclass
class Notifier:
    secrets: SecretReader | None = None
    """Reads urlFrom.secretKeyRef; None where there are no Secrets (local mode)."""
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)
    """Where urlEnv is looked up (never printed: it may hold the URLs)."""
    on_delivery: Callable[[str, str], None] = lambda _target, _result: None
    on_problem: Problem | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    max_pending: int = 1000
    workers: int = 4
    transport: httpx.BaseTransport | None = None
    _lanes: dict[tuple[str, str, str, str], deque[_Job]] = field(
        default_factory=dict, init=False, repr=False
    )
    _pending: int = field(default=0, init=False)
    _seq: int = field(default=0, init=False, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False, repr=False)
    _closed: bool = field(default=False, init=False)
    _reported: dict[tuple[str, str, str, str], str] = field(
        default_factory=dict, init=False, repr=False
    )
    _cond: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    # --- the caller's side -------------------------------------------------------------------

    def send(self, targets: Sequence[Target], notices: Sequence[Notice]) -> None:
        """Queue each notice for each target that wants its category; returns at once."""
        dropped: list[_Job] = []
        with self._cond:
            if self._closed:
                return
            for notice in notices:
                for target in targets:
                    if not target.wants(notice.categories):
                        continue
                    self._seq += 1
                    lane = (notice.namespace, notice.name, target.origin, target.name)
                    job = _Job(seq=self._seq, lane=lane, target=target, notice=notice)
                    if self._pending >= self.max_pending:
                        oldest = self._drop_oldest()
                        if oldest is None:  # everything waiting is in flight: drop this one
                            dropped.append(job)
                            continue
                        dropped.append(oldest)
                    self._lanes.setdefault(lane, deque()).append(job)
                    self._pending += 1
            if self._pending:
                self._start()
                self._cond.notify_all()
        for job in dropped:
            log.warning(
                "notification %s of %s/%s to target %s dropped: %d notifications waiting",
                job.notice.reason, job.notice.namespace, job.notice.name, job.target.name,
                self.max_pending,
            )  # fmt: skip
            self.on_delivery(job.target.name, DROPPED)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is waiting or in flight (every outcome counted), False after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def forget(self, namespace: str, name: str) -> None:
        """The ModelDeployment is gone: drop the problems remembered for its targets (what is
        still queued for it is sent)."""
        with self._cond:
            for key in [k for k in self._reported if k[:2] == (namespace, name)]:
                del self._reported[key]

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is waiting for up to `timeout` seconds, then stop; whatever is left
        (a receiver still down) is abandoned. The workers are daemon threads: one stuck in a
        slow request never holds the process."""
        self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            abandoned = self._pending
            self._cond.notify_all()
        if abandoned:
            log.warning("%d notifications not delivered at shutdown", abandoned)
        for thread in self._threads:
            thread.join(timeout=0.1)
        if self._client is not None and not any(t.is_alive() for t in self._threads):
            self._client.close()

    # --- the workers -------------------------------------------------------------------------

    def _start(self) -> None:
        if self._threads:
            return
        self._client = httpx.Client(transport=self.transport, follow_redirects=False)
        for index in range(self.workers):
            thread = threading.Thread(
                target=self._work, name=f"{WORKER_PREFIX}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _drop_oldest(self) -> _Job | None:
        oldest: _Job | None = None
        for jobs in self._lanes.values():
            for job in jobs:
                if not job.in_flight:
                    if oldest is None or job.seq < oldest.seq:
                        oldest = job
                    break  # later ones in a lane are younger
        if oldest is not None:
            self._remove(oldest)
        return oldest

    def _remove(self, job: _Job) -> None:
        jobs = self._lanes[job.lane]
        jobs.remove(job)
        if not jobs:
            del self._lanes[job.lane]
        self._pending -= 1

    def _next(self) -> _Job | None:
        """Called with the lock held: the next due job, or None after waiting for one."""
        now = time.monotonic()
        soonest: float | None = None
        for jobs in self._lanes.values():
            head = jobs[0]
            if head.in_flight:
                continue
            if head.due <= now:
                head.in_flight = True
                return head
            soonest = head.due if soonest is None else min(soonest, head.due)
        self._cond.wait(None if soonest is None else soonest - now)
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                job = None
                while job is None:
                    if self._closed:
                        return
                    job = self._next()
            outcome = self._attempt(job)
            self._finish(job, outcome)

    def _attempt(self, job: _Job) -> _Result:
        target, notice = job.target, job.notice
        try:
            url = resolve_url(target, notice.namespace, environ=self.environ, secrets=self.secrets)
        except TargetError as error:
            return _Result(None if error.retryable else UNRESOLVED, error.message)
        assert self._client is not None
        try:
            response = self._client.post(
                url, json=payload_for(target.type, notice), timeout=target.timeout
            )
        except httpx.TransportError as error:  # no connection, timeouts, a dropped connection
            return _Result(None, type(error).__name__)
        except Exception as error:  # a bad URL, a closed client: report, never raise
            return _Result(FAILED, type(error).__name__)
        status = response.status_code
        if 200 <= status < 300:
            return _Result(DELIVERED, f"HTTP {status}")
        if status == 429 or status >= 500:
            return _Result(None, f"HTTP {status}", _retry_after(response))
        return _Result(REJECTED, f"HTTP {status}")

    def _finish(self, job: _Job, outcome: _Result) -> None:
        """A retry goes back in its lane with its due time; a final result is reported, and
        only then leaves the queue (so `wait_idle` means everything has been counted)."""
        target, notice = job.target, job.notice
        what = f"notification {notice.reason} of {notice.namespace}/{notice.name}"
        if outcome.result is None and job.attempt + 1 < self.policy.attempts:
            with self._cond:
                job.in_flight = False
                job.attempt += 1
                job.due = time.monotonic() + self.policy.delay(job.attempt, outcome.retry_after)
                self._cond.notify_all()
            log.info(
                "%s to target %s: attempt %d failed (%s), retrying",
                what, target.name, job.attempt, outcome.detail,
            )  # fmt: skip
            return
        try:
            self._report(job, outcome.result or FAILED, outcome.detail, what)
        finally:
            with self._cond:
                self._remove(job)
                self._cond.notify_all()

    def _report(self, job: _Job, result: str, detail: str, what: str) -> None:
        target, notice = job.target, job.notice
        self.on_delivery(target.name, result)
        key = (notice.namespace, notice.name, target.origin, target.name)
        if result == DELIVERED:
            with self._cond:
                self._reported.pop(key, None)
            log.debug("%s delivered to target %s", what, target.name)
            return
        if result == FAILED:
            problem = f"gave up after {job.attempt + 1} attempts ({detail})"
        elif result == REJECTED:
            problem = f"the receiver refused it ({detail}); not retried"
        else:
            problem = f"no URL: {detail}"
        with self._cond:
            new = self._reported.get(key) != problem
            self._reported[key] = problem
        level = logging.WARNING if new else logging.DEBUG
        log.log(level, "%s to target %s not delivered: %s", what, target.name, problem)
        if new and self.on_problem is not None:
            try:
                self.on_problem(notice.namespace, notice.name, target.name, problem)
            except Exception:  # a report must not kill a worker
                log.exception("reporting a notification problem failed")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class _QuietNotifyThreads(logging.Filter):
    """HTTP libraries log request URLs (httpx at INFO, httpcore at DEBUG): from the notifier's
    threads those lines could carry a token, so they are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName.startswith(WORKER_PREFIX)


_QUIET = _QuietNotifyThreads()
for _name in (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
):
    logging.getLogger(_name).addFilter(_QUIET)
