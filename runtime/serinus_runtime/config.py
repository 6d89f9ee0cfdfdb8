"""Command-line flags of `serinus-runtime`, each also settable as a SERINUS_* variable."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_MAX_BATCH_SIZE = 1024
DEFAULT_MAX_LATENCY_MS = 0.0
"""Batching defaults; the operator's spec defaults (`spec.runtime.batching`) are these too."""


@dataclass(frozen=True)
class Settings:
    model_uri: str
    format: str | None = None
    sha256: str | None = None
    trust: bool = False
    trusted_types: tuple[str, ...] = ()
    name: str | None = None
    version: str | None = None
    revision: str = ""
    variant: str = ""
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_latency_ms: float = DEFAULT_MAX_LATENCY_MS
    inline_predict_ms: float = 1.0
    max_queue_rows: int = 100_000
    max_body_bytes: int = 64 * 1024 * 1024
    feedback_capacity: int = 10_000
    feedback_max_rows: int = 1_000_000
    keepalive_timeout_s: float = 75.0
    shutdown_grace_s: float = 10.0
    access_log: bool = False
    log_level: str = "info"
    server: str = "native"
    extra: dict[str, str] = field(default_factory=dict)


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _nonneg_float(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


# flag, env var, type, default, help
_OPTIONS: list[tuple[str, str, object, object, str]] = [
    ("--model-uri", "SERINUS_MODEL_URI", str, None,
     "bundle directory (with serinus.json) or model file: path, file://, http(s)://, s3://"),
    ("--format", "SERINUS_MODEL_FORMAT", str, None,
     "skops | onnx | joblib (default: from serinus.json or the file extension)"),
    ("--sha256", "SERINUS_MODEL_SHA256", str, None, "expected sha256 of the model file"),
    ("--name", "SERINUS_MODEL_NAME", str, None, "model name in URLs (default: the bundle's)"),
    ("--version", "SERINUS_MODEL_VERSION", str, None, "model version (default: the bundle's)"),
    ("--revision", "SERINUS_REVISION", str, "", "deployment revision, a metrics label"),
    ("--variant", "SERINUS_VARIANT", str, "", "stable | canary ..., a metrics label"),
    ("--host", "SERINUS_HOST", str, "0.0.0.0", "address to listen on"),
    ("--port", "SERINUS_PORT", int, 8080, "port to listen on"),
    ("--workers", "SERINUS_WORKERS", _positive_int, 1, "server processes sharing the port"),
    ("--max-batch-size", "SERINUS_MAX_BATCH_SIZE", _positive_int, DEFAULT_MAX_BATCH_SIZE,
     "most rows per model call when batching concurrent requests"),
    ("--max-latency-ms", "SERINUS_MAX_LATENCY_MS", _nonneg_float, DEFAULT_MAX_LATENCY_MS,
     "longest a request waits for others to join its batch (0: batch only what is queued)"),
    ("--inline-predict-ms", "SERINUS_INLINE_PREDICT_MS", _nonneg_float, 1.0,
     "batches estimated faster than this run on the event loop, slower ones on the predict thread"),
    ("--max-queue-rows", "SERINUS_MAX_QUEUE_ROWS", _positive_int, 100_000,
     "rows waiting for the model beyond which requests get 503"),
    ("--max-body-bytes", "SERINUS_MAX_BODY_BYTES", _positive_int, 64 * 1024 * 1024,
     "largest request body (413 above)"),
    ("--feedback-capacity", "SERINUS_FEEDBACK_CAPACITY", int, 10_000,
     "recent requests whose predictions are kept for feedback labels (0: off)"),
    ("--keepalive-timeout", "SERINUS_KEEPALIVE_TIMEOUT_S", _nonneg_float, 75.0,
     "seconds an idle keep-alive connection stays open"),
    ("--shutdown-grace", "SERINUS_SHUTDOWN_GRACE_S", _nonneg_float, 10.0,
     "seconds to finish in-flight requests after SIGTERM"),
    ("--log-level", "SERINUS_LOG_LEVEL", str, "info", "debug | info | warning | error"),
    ("--server", "SERINUS_SERVER", str, "native", "native (default) | uvicorn (ASGI, to compare)"),
]  # fmt: skip


def parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(
        prog="serinus-runtime",
        description="Serinus inference server for scikit-learn models (V2 Open Inference "
        "Protocol + V1). Every flag can also be set with the environment variable shown.",
    )
    for flag, var, typ, default, help_ in _OPTIONS:
        d = env.get(var)
        if d is not None and d != "":
            try:
                d = typ(d)  # type: ignore[operator]
            except (ValueError, argparse.ArgumentTypeError) as e:
                p.error(f"{var}={env[var]!r}: {e}")
        else:
            d = default
        p.add_argument(flag, type=typ, default=d, help=f"{help_} [{var}]")  # type: ignore[arg-type]
    trust_default = env.get("SERINUS_MODEL_TRUST")
    p.add_argument(
        "--trust", action="store_true",
        default=_bool(trust_default) if trust_default else False,
        help="allow joblib/pickle files (also needs --sha256): loading them can run code "
        "[SERINUS_MODEL_TRUST]",
    )  # fmt: skip
    tt = env.get("SERINUS_MODEL_TRUSTED_TYPES", "")
    p.add_argument(
        "--trusted-types", nargs="*", metavar="TYPE",
        default=[t for t in tt.replace(",", " ").split() if t],
        help="extra types a skops file may contain, fully qualified [SERINUS_MODEL_TRUSTED_TYPES, "
        "comma or space separated]",
    )  # fmt: skip
    al = env.get("SERINUS_ACCESS_LOG")
    p.add_argument(
        "--access-log", action="store_true", default=_bool(al) if al else False,
        help="log one line per request (off by default: it costs throughput) [SERINUS_ACCESS_LOG]",
    )  # fmt: skip
    return p


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    p = parser(env)
    a = p.parse_args(argv)
    if not a.model_uri:
        p.error("--model-uri (or SERINUS_MODEL_URI) is required")
    if a.server not in ("native", "uvicorn"):
        p.error(f"--server must be native or uvicorn, got {a.server!r}")
    return Settings(
        model_uri=a.model_uri,
        format=a.format,
        sha256=a.sha256,
        trust=a.trust,
        trusted_types=tuple(a.trusted_types or ()),
        name=a.name,
        version=a.version,
        revision=a.revision,
        variant=a.variant,
        host=a.host,
        port=a.port,
        workers=a.workers,
        max_batch_size=a.max_batch_size,
        max_latency_ms=a.max_latency_ms,
        inline_predict_ms=a.inline_predict_ms,
        max_queue_rows=a.max_queue_rows,
        max_body_bytes=a.max_body_bytes,
        feedback_capacity=a.feedback_capacity,
        keepalive_timeout_s=a.keepalive_timeout,
        shutdown_grace_s=a.shutdown_grace,
        access_log=a.access_log,
        log_level=a.log_level,
        server=a.server,
    )
