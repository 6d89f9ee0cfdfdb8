"""Process lifecycle: listen, load + warm up (then ready), reload on SIGHUP, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

from serinus_runtime.app import App
from serinus_runtime.batcher import Batcher
from serinus_runtime.config import Settings
from serinus_runtime.errors import ModelLoadError
from serinus_runtime.loading import ModelSource, load_model
from serinus_runtime.metrics import snapshot
from serinus_runtime.model import ServedModel, configure_sklearn
from serinus_runtime.server import NativeServer
from serinus_runtime.workers import PUBLISH_INTERVAL_S, SharedSnapshots

log = logging.getLogger("serinus.runtime")


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def fail(message: str) -> None:
    print(f"serinus-runtime: error: {message}", file=sys.stderr, flush=True)


def report(message: str, shared: SharedSnapshots | None, index: int) -> None:
    """The one line a failed start prints; with workers, the parent prints it (only once)."""
    if shared is None:
        fail(message)
    else:
        shared.set_error(index, message)


def source_of(s: Settings) -> ModelSource:
    return ModelSource(
        uri=s.model_uri,
        format=s.format,
        sha256=s.sha256,
        trust=s.trust,
        trusted_types=s.trusted_types,
        name=s.name,
        version=s.version,
    )


def build_app(
    s: Settings, executor: ThreadPoolExecutor, shared: SharedSnapshots | None = None, index: int = 0
) -> App:
    def batcher(app: App) -> Batcher:
        return Batcher(
            app.current_model,
            max_rows=s.max_batch_size,
            max_latency_s=s.max_latency_ms / 1000.0,
            inline_budget_s=s.inline_predict_ms / 1000.0,
            max_queue_rows=s.max_queue_rows,
            on_batch=app.on_batch,
            executor=executor,
        )

    return App(
        name=s.name,
        version=s.version,
        revision=s.revision,
        variant=s.variant,
        batcher_factory=batcher,
        feedback_capacity=s.feedback_capacity,
        feedback_max_rows=s.feedback_max_rows,
        access_log_enabled=s.access_log,
        other_workers=(lambda: shared.others(index)) if shared is not None else None,
        workers_ready=shared.all_ready if shared is not None else None,
    )


def settle_gc() -> None:
    """Move the (large, long-lived) heap of imports and model into the permanent generation, so
    the collections that request garbage triggers don't rescan it: a full collection of an
    sklearn process otherwise shows up as a multi-millisecond p99 spike."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 20, 100)


def describe(m: ServedModel) -> str:
    mode = f"~{m.cost_call_s * 1e3:.2f} ms/call + {m.cost_row_s * 1e6:.1f} us/row"
    return (
        f"model {m.name!r} version {m.version!r} ({m.kind}, {m.format}, {m.platform}, "
        f"{m.signature.n} features, sha256 {m.sha256[:12]}…, {mode})"
    )


async def serve(
    s: Settings,
    sock: socket.socket | None = None,
    shared: SharedSnapshots | None = None,
    index: int = 0,
) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code. With `shared`, this is worker `index`
    of several sharing `sock`, publishing its counters for the others' scrapes."""
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(1, "serinus-predict", initializer=configure_sklearn)
    app = build_app(s, executor, shared, index)
    server = NativeServer(app, s)
    try:
        await server.start(sock)
    except OSError as e:
        fail(f"cannot listen on {s.host}:{s.port}: {e.strerror or e}")
        return 2
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on %s:%d (pid %d); loading %s", s.host, s.port, os.getpid(), s.model_uri)

    src = source_of(s)
    load = loop.run_in_executor(None, load_model, src)
    stopper = loop.create_task(stop.wait())
    await asyncio.wait({load, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not load.done():  # stopped while loading
        server.close_all()
        return 0
    try:
        model = load.result()
    except ModelLoadError as e:
        report(one_line(e), shared, index)
        server.stop_accepting()
        server.close_all()
        return 2
    except Exception as e:  # a bug, or a library error we did not anticipate
        report(f"cannot load the model: {type(e).__name__}: {one_line(e)}", shared, index)
        server.stop_accepting()
        server.close_all()
        return 2
    app.set_model(model)
    settle_gc()
    if shared is not None:
        shared.set_ready(index, True)
    log.info("ready: %s", describe(model))

    reloading = False

    async def reload() -> None:
        nonlocal reloading
        if reloading:
            log.warning("reload already in progress; SIGHUP ignored")
            return
        reloading = True
        try:
            new = await loop.run_in_executor(None, load_model, src)
        except Exception as e:
            app.metrics.reloads["failed"] = app.metrics.reloads.get("failed", 0) + 1
            log.error("reload failed, still serving the previous model: %s", one_line(e))
        else:
            app.metrics.reloads["succeeded"] = app.metrics.reloads.get("succeeded", 0) + 1
            app.set_model(new)
            settle_gc()
            log.info("reloaded: %s", describe(new))
        finally:
            reloading = False

    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
    publisher = loop.create_task(_publish(app, shared, index)) if shared is not None else None
    await stopper
    if publisher is not None:
        publisher.cancel()

    # Drain: fail readiness, stop accepting, let in-flight requests finish.
    app.draining = True
    if shared is not None:
        shared.set_ready(index, False)
    server.stop_accepting()
    deadline = loop.time() + s.shutdown_grace_s
    while (server.busy() or app.batcher.pending()) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    server.close_all()
    executor.shutdown(wait=False, cancel_futures=True)
    if shared is not None:
        shared.write(index, snapshot(app.metrics))
    log.info("stopped")
    return 0


async def _publish(app: App, shared: SharedSnapshots, index: int) -> None:
    while True:
        try:
            if not shared.write(index, snapshot(app.metrics)):
                log.warning("metrics snapshot too large for the shared slot; not published")
        except Exception:
            log.exception("cannot publish metrics for the other workers")
        await asyncio.sleep(PUBLISH_INTERVAL_S)


def run_worker(s: Settings, sock: socket.socket, shared: SharedSnapshots, index: int) -> int:
    """Entry of a forked worker (serinus_runtime.workers)."""
    _install_uvloop()
    return asyncio.run(serve(s, sock, shared, index))


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(s: Settings) -> int:
    logging.basicConfig(
        level=getattr(logging, s.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if s.server == "uvicorn":
        from serinus_runtime.asgi import run_uvicorn

        return run_uvicorn(s)
    if s.workers > 1:
        from serinus_runtime.workers import run_workers

        return run_workers(s)  # normally reached through __main__, before numpy is imported
    _install_uvloop()
    return asyncio.run(serve(s))
