"""ASGI adapter: the same App under any ASGI server (uvicorn). Kept for embedding and for the
benchmark that compares it with the native server; `serinus-runtime --server uvicorn` uses it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serinus_runtime.app import App, Response
from serinus_runtime.config import Settings
from serinus_runtime.errors import ModelLoadError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def make_asgi(settings: Settings) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI application that builds the App and loads the model at lifespan startup."""
    holder: dict[str, App] = {}

    async def lifespan(receive: Receive, send: Send) -> None:
        from serinus_runtime.loading import load_model
        from serinus_runtime.model import configure_sklearn
        from serinus_runtime.runner import build_app, one_line, source_of

        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                executor = ThreadPoolExecutor(1, "serinus-predict", initializer=configure_sklearn)
                app = build_app(settings, executor)
                holder["app"] = app
                try:
                    model = await asyncio.get_running_loop().run_in_executor(
                        None, load_model, source_of(settings)
                    )
                except ModelLoadError as e:
                    await send({"type": "lifespan.startup.failed", "message": one_line(e)})
                    return
                app.set_model(model)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        t0 = time.perf_counter()
        app = holder["app"]
        chunks = []
        more = True
        while more:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        ctype = None
        for k, v in scope["headers"]:
            if k == b"content-type":
                ctype = v
                break
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        app.handle(scope["method"], scope["path"], ctype, b"".join(chunks), t0, fut.set_result)
        resp = await fut
        headers = [
            (b"content-type", resp.content_type),
            (b"content-length", str(len(resp.body)).encode()),
        ]
        for line in resp.headers.split(b"\r\n"):
            if line:
                k, _, v = line.partition(b":")
                headers.append((k.strip(), v.strip()))
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        await send({"type": "http.response.body", "body": resp.body})

    return asgi


def run_uvicorn(settings: Settings) -> int:
    try:
        import uvicorn
    except ImportError:
        from serinus_runtime.runner import fail

        fail("--server uvicorn needs uvicorn installed (pip install uvicorn)")
        return 2
    uvicorn.run(
        make_asgi(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=settings.access_log,
        log_level="warning",
        lifespan="on",
    )
    return 0
