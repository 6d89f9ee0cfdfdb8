"""Routes, handlers and error mapping, independent of the HTTP server that carries them.

`App.handle(method, path, content_type, body, t0, respond)` answers one request by calling
`respond(Response)` exactly once — at once for most routes, later for inference (after its
batch ran). The native server (serinus_runtime.server) and the ASGI adapter (serinus_runtime.asgi)
both drive it. Per-model route tables and metadata bodies are built once per (re)load.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from serinus_runtime import __version__
from serinus_runtime import metric_names as mn
from serinus_runtime.batcher import Batcher
from serinus_runtime.errors import InvalidInput, NotFound, Unavailable
from serinus_runtime.feedback import FeedbackStore
from serinus_runtime.metrics import Metrics, exposition, make_registry
from serinus_runtime.model import ServedModel
from serinus_runtime.protocol import OUTPUT_PREDICT, OUTPUT_PROBA, datatype_of, dumps, json_ready

log = logging.getLogger("serinus.runtime")
access_log = logging.getLogger("serinus.access")

JSON = b"application/json"
PROM_TEXT = b"text/plain; version=0.0.4; charset=utf-8"
_DEFAULT_OUTPUTS = (OUTPUT_PREDICT,)


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self, status: int, body: bytes, content_type: bytes = JSON, headers: bytes = b""
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers  # extra header lines, each ending in \r\n


Respond = Callable[[Response], None]
Handler = Callable[[bytes, float, Respond], None]


class Route:
    __slots__ = ("endpoint", "methods", "protocol")

    def __init__(self, protocol: str, endpoint: str, methods: dict[str, Handler]) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self.methods = methods


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


_V2_MODEL = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(?:/([^/]+))?/?$")
_V1_MODEL = re.compile(r"^/v1/models/([^/:]+)(:[a-z]+)?/?$")


class App:
    def __init__(
        self,
        *,
        name: str | None,
        version: str | None,
        revision: str,
        variant: str,
        batcher_factory: Callable[[App], Batcher],
        feedback_capacity: int = 10_000,
        feedback_max_rows: int = 1_000_000,
        access_log_enabled: bool = False,
        other_workers: Callable[[], list[Any]] | None = None,
        workers_ready: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.revision = revision
        self.variant = variant
        self.model: ServedModel | None = None
        self.ready = False
        self.draining = False
        self.metrics = Metrics((name or "", version or "", revision, variant), None)
        self.registry = make_registry(lambda: self.metrics, other_workers)
        self.workers_ready = workers_ready
        self.feedback = FeedbackStore(feedback_capacity, feedback_max_rows)
        self.access_log = access_log_enabled
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4) + "-"
        self.routes: dict[str, Route] = {}
        self._build_routes()
        self.batcher = batcher_factory(self)

    # ------------------------------------------------------------------------- model lifecycle
    def set_model(self, model: ServedModel) -> None:
        """Serve `model` (first load or reload): fresh counters, routes, metadata."""
        reloads = self.metrics.reloads
        self.model = model
        self.name, self.version = model.name, model.version
        self.metrics = Metrics((model.name, model.version, self.revision, self.variant), model)
        self.metrics.reloads = reloads
        self.metrics.ready = True
        self.feedback.items.clear()
        self.feedback.rows = 0
        self._build_routes()
        self.ready = True

    def current_model(self) -> ServedModel:
        assert self.model is not None
        return self.model

    def on_batch(self, model: ServedModel, x: np.ndarray, y: np.ndarray) -> None:
        stats = self.metrics.stats
        if stats is not None and stats.model is model:
            stats.observe_batch(x, y)

    # ------------------------------------------------------------------------- routing
    def _build_routes(self) -> None:
        r: dict[str, Route] = {
            "/v2/health/live": Route(mn.PROTOCOL_V2, "health_live", {"GET": self._live}),
            "/v2/health/ready": Route(mn.PROTOCOL_V2, "health_ready", {"GET": self._ready}),
            "/v2": Route(mn.PROTOCOL_V2, "server_metadata", {"GET": self._server_meta}),
            "/metrics": Route(mn.PROTOCOL_OTHER, "metrics", {"GET": self._metrics}),
        }
        self._server_meta_body = dumps(
            {"name": "serinus", "version": __version__, "extensions": ["serinus_feedback"]}
        )
        m = self.model
        if m is not None:
            self._model_meta_body = dumps(self._model_metadata(m))
            self._model_ready_body = dumps({"name": m.name, "ready": True})
            self._v1_model_body = dumps({"name": m.name, "ready": True})
            bases = [f"/v2/models/{m.name}", f"/v2/models/{m.name}/versions/{m.version}"]
            for base in bases:
                r[base] = Route(mn.PROTOCOL_V2, "model_metadata", {"GET": self._model_meta})
                r[base + "/ready"] = Route(
                    mn.PROTOCOL_V2, "model_ready", {"GET": self._model_ready}
                )
                r[base + "/infer"] = Route(mn.PROTOCOL_V2, mn.ENDPOINT_INFER, {"POST": self._infer})
                r[base + "/feedback"] = Route(mn.PROTOCOL_V2, "feedback", {"POST": self._feedback})
            r[f"/v1/models/{m.name}"] = Route(
                mn.PROTOCOL_V1, "model_ready", {"GET": self._v1_model}
            )
            r[f"/v1/models/{m.name}:predict"] = Route(
                mn.PROTOCOL_V1, mn.ENDPOINT_PREDICT, {"POST": self._predict_v1}
            )
        self.routes = r

    def handle(
        self,
        method: str,
        path: str,
        content_type: bytes | None,
        body: bytes,
        t0: float,
        respond: Respond,
    ) -> None:
        """Answer one request through `respond` (exactly once; never raises)."""
        route = self.routes.get(path)
        if route is None:
            route = self._fallback_route(path)
        head = method == "HEAD"
        handler = route.methods.get("GET" if head else method)
        proto, endpoint = route.protocol, route.endpoint

        def done(resp: Response) -> None:
            try:
                self.metrics.observe_request(proto, endpoint, resp.status, time.perf_counter() - t0)
                if self.access_log:
                    access_log.info(
                        "%s %s %d %.2fms",
                        method,
                        path,
                        resp.status,
                        (time.perf_counter() - t0) * 1000,
                    )
            finally:
                respond(
                    Response(resp.status, b"", resp.content_type, resp.headers) if head else resp
                )

        if handler is None:
            allow = ", ".join(
                sorted({*route.methods, *(["HEAD"] if "GET" in route.methods else [])})
            )
            done(Response(
                405,
                error_body(f"method {method} is not allowed on {path}; use {allow}"),
                headers=b"allow: " + allow.encode() + b"\r\n",
            ))  # fmt: skip
            return
        if method == "POST" and content_type is not None and not _is_json(content_type):
            self.metrics.observe_invalid("content_type")
            done(Response(415, error_body(
                f"Content-Type {content_type.decode('latin-1')!r} is not supported: send JSON with "
                "'Content-Type: application/json'"
            )))  # fmt: skip
            return
        try:
            handler(body, t0, done)
        except InvalidInput as e:
            self.metrics.observe_invalid(e.reason)
            done(Response(e.status, error_body(str(e))))
        except NotFound as e:
            done(Response(404, error_body(str(e))))
        except Unavailable as e:
            done(Response(503, error_body(str(e)), headers=b"retry-after: 1\r\n"))
        except Exception:
            log.exception("bug while handling %s %s", method, path)
            done(Response(500, error_body("internal error; the server log has the details")))

    def _fallback_route(self, path: str) -> Route:
        """Unknown path: a route whose handlers explain what is wrong (404/503)."""
        p = urllib.parse.unquote(path)
        if p != path and p in self.routes:
            return self.routes[p]
        mv2 = _V2_MODEL.match(p)
        mv1 = _V1_MODEL.match(p)
        if mv2 or mv1:
            proto = mn.PROTOCOL_V2 if mv2 else mn.PROTOCOL_V1
            name = (mv2 or mv1).group(1)  # type: ignore[union-attr]
            version = mv2.group(2) if mv2 else None
            msg = self._model_miss(name, version)

            def miss(_body: bytes, _t0: float, _respond: Respond) -> None:
                if self.model is None:
                    raise Unavailable(msg)
                raise NotFound(msg)

            return Route(proto, "not_found", {"GET": miss, "POST": miss})

        def no_route(_body: bytes, _t0: float, _respond: Respond) -> None:
            raise NotFound(
                f"no route {path!r}; see GET /v2 (server), /v2/models/{self.name or '{model}'} "
                "(model metadata), POST .../infer"
            )

        return Route(
            mn.PROTOCOL_OTHER,
            "not_found",
            {"GET": no_route, "POST": no_route, "PUT": no_route, "DELETE": no_route},
        )

    def _model_miss(self, name: str, version: str | None) -> str:
        if self.model is None:
            return f"model {name!r} is not loaded yet (loading); retry when /v2/health/ready is 200"
        if name != self.model.name:
            return f"model {name!r} not found; this server serves {self.model.name!r}"
        if version is not None and version != self.model.version:
            return (
                f"model {name!r} has no version {version!r}; this server serves version "
                f"{self.model.version!r}"
            )
        return f"no such endpoint for model {name!r}"

    # ------------------------------------------------------------------------- simple routes
    def _live(self, _body: bytes, _t0: float, respond: Respond) -> None:
        respond(Response(200, b'{"live":true}'))

    def _ready(self, _body: bytes, _t0: float, respond: Respond) -> None:
        if (
            self.ready
            and not self.draining
            and (self.workers_ready is None or self.workers_ready())
        ):
            respond(Response(200, b'{"ready":true}'))
        else:
            why = (
                "shutting down" if self.draining
                else "loading the model" if not self.ready
                else "other workers are still loading the model"
            )  # fmt: skip
            respond(Response(503, orjson.dumps({"ready": False, "reason": why})))

    def _server_meta(self, _body: bytes, _t0: float, respond: Respond) -> None:
        respond(Response(200, self._server_meta_body))

    def _model_meta(self, _body: bytes, _t0: float, respond: Respond) -> None:
        respond(Response(200, self._model_meta_body))

    def _model_ready(self, _body: bytes, _t0: float, respond: Respond) -> None:
        respond(Response(200, self._model_ready_body))

    def _v1_model(self, _body: bytes, _t0: float, respond: Respond) -> None:
        respond(Response(200, self._v1_model_body))

    def _metrics(self, _body: bytes, _t0: float, respond: Respond) -> None:
        respond(Response(200, exposition(self.registry), PROM_TEXT))

    @staticmethod
    def _model_metadata(m: ServedModel) -> dict[str, Any]:
        params: dict[str, Any] = {
            "kind": m.kind,
            "format": m.format,
            "sha256": m.sha256,
            "features": [{"name": f.name, "dtype": f.dtype} for f in m.signature.features],
            "allow_nan": m.signature.allow_nan,
        }
        if m.classes is not None:
            params["classes"] = m.classes.tolist()
        if m.manifest is not None and m.manifest.training_metrics:
            params["training_metrics"] = m.manifest.training_metrics
        return {
            "name": m.name,
            "versions": [m.version],
            "platform": m.platform,
            "inputs": m.signature.metadata_inputs(),
            "outputs": m.outputs_metadata(),
            "parameters": params,
        }

    # ------------------------------------------------------------------------- inference
    def _json(self, body: bytes) -> Any:
        if not body:
            raise InvalidInput("bad_request", "the request has no body; send a JSON object")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise InvalidInput("malformed_json", f"body is not valid JSON: {e}") from e

    def _infer(self, body: bytes, _t0: float, respond: Respond) -> None:
        model = self.model
        if model is None or not self.ready:
            raise Unavailable("the model is loading; retry when /v2/health/ready is 200")
        req = self._json(body)
        if type(req) is not dict:
            raise InvalidInput("bad_request", 'body must be a JSON object with "inputs"')
        x = model.signature.decode_v2(req.get("inputs"))
        rid = req.get("id")
        if rid is None:
            rid = self._id_prefix + str(next(self._ids))
        elif type(rid) is not str:
            raise InvalidInput("bad_request", '"id" must be a string')
        outs = req.get("outputs")
        names = _DEFAULT_OUTPUTS if outs is None else self._output_names(outs, model)
        want_proba = OUTPUT_PROBA in names
        mname, mversion = model.name, model.version
        feedback = self.feedback

        def done(y: np.ndarray | None, p: np.ndarray | None, err: BaseException | None) -> None:
            if err is not None:
                respond(self._error_response(err))
                return
            assert y is not None
            outputs = []
            for n in names:
                a = y if n == OUTPUT_PREDICT else p
                assert a is not None
                outputs.append({
                    "name": n, "datatype": datatype_of(a.dtype), "shape": list(a.shape),
                    "data": json_ready(a),
                })  # fmt: skip
            respond(Response(200, dumps({
                "model_name": mname, "model_version": mversion, "id": rid, "outputs": outputs,
            })))  # fmt: skip
            feedback.remember(rid, y)

        self.batcher.submit(x, want_proba, done)

    def _predict_v1(self, body: bytes, _t0: float, respond: Respond) -> None:
        model = self.model
        if model is None or not self.ready:
            raise Unavailable("the model is loading; retry when /v1/models/{name} is ready")
        req = self._json(body)
        if type(req) is not dict or "instances" not in req:
            raise InvalidInput("bad_request", 'body must be a JSON object with "instances": [rows]')
        x = model.signature.decode_v1(req["instances"])
        rid = req.get("id")
        if rid is not None and type(rid) is not str:
            raise InvalidInput("bad_request", '"id" must be a string')
        feedback = self.feedback

        def done(y: np.ndarray | None, _p: np.ndarray | None, err: BaseException | None) -> None:
            if err is not None:
                respond(self._error_response(err))
                return
            assert y is not None
            out: dict[str, Any] = {"predictions": json_ready(y)}
            if rid is not None:
                out["id"] = rid
                feedback.remember(rid, y)
            respond(Response(200, dumps(out)))

        self.batcher.submit(x, False, done)

    def _output_names(self, outs: Any, model: ServedModel) -> tuple[str, ...]:
        if type(outs) is not list or not outs:
            raise InvalidInput("bad_request", '"outputs" must be a non-empty list of {"name": ...}')
        names = []
        for i, o in enumerate(outs):
            name = o.get("name") if type(o) is dict else None
            if name not in model.output_names:
                raise InvalidInput(
                    "output",
                    f"outputs[{i}].name {name!r} is not an output of this model; it has: "
                    f"{', '.join(model.output_names)}",
                )
            names.append(name)
        return tuple(names)

    def _error_response(self, err: BaseException) -> Response:
        if isinstance(err, InvalidInput):
            self.metrics.observe_invalid(err.reason)
            return Response(err.status, error_body(str(err)))
        if isinstance(err, Unavailable):
            return Response(503, error_body(str(err)), headers=b"retry-after: 1\r\n")
        log.error("model call failed: %s: %s", type(err).__name__, err, exc_info=err)
        return Response(
            500, error_body(f"the model failed: {type(err).__name__}; see the server log")
        )

    # ------------------------------------------------------------------------- feedback
    def _feedback(self, body: bytes, _t0: float, respond: Respond) -> None:
        model = self.model
        if model is None:
            raise Unavailable("the model is loading")
        res = self.feedback.score(self._json(body), model.kind == "classification")
        m = self.metrics
        if res.correct:
            m.observe_feedback("correct", res.correct)
        if res.incorrect:
            m.observe_feedback("incorrect", res.incorrect)
        if res.confusion:
            m.observe_confusion(res.confusion)
        if res.scored:
            m.observe_feedback("scored", res.scored)
            m.feedback_abs += res.abs_error
            m.feedback_sq += res.sq_error
        if res.unknown_ids:
            m.observe_feedback("unknown_id", len(res.unknown_ids))
        if res.invalid:
            m.observe_feedback("invalid", len(res.invalid))
        respond(Response(200, dumps(res.as_json())))


def _is_json(ct: bytes) -> bool:
    ct = ct.split(b";", 1)[0].strip().lower()
    return ct in (b"application/json", b"text/json", b"") or ct.endswith(b"+json")
