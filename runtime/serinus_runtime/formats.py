"""Model file formats: how bytes become a model object, and the safety rules for each.

- skops (default): only types skops trusts by default plus the configured extra trusted types.
- onnx: onnxruntime (optional extra `serinus[onnx]`), CPU provider, one thread.
- joblib/pickle: runs arbitrary code on load, so only with both an expected sha256 and `trust`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, Literal

from serinus_runtime.errors import ModelLoadError

Format = Literal["skops", "onnx", "joblib"]
FORMATS: tuple[Format, ...] = ("skops", "onnx", "joblib")
EXTENSIONS: dict[str, Format] = {
    ".skops": "skops",
    ".onnx": "onnx",
    ".joblib": "joblib",
    ".pkl": "joblib",
    ".pickle": "joblib",
}
FILE_NAMES: dict[Format, str] = {
    "skops": "model.skops",
    "onnx": "model.onnx",
    "joblib": "model.joblib",
}


def normalize_format(value: str | None) -> Format | None:
    """Map a user-given format name (case-insensitive; `pickle` = `joblib`) to a Format."""
    if value is None or value == "":
        return None
    v = value.strip().lower()
    if v == "pickle":
        v = "joblib"
    if v not in FORMATS:
        raise ModelLoadError(f"unknown model format {value!r}; use one of: skops, onnx, joblib")
    return v  # type: ignore[return-value]


def format_from_name(name: str) -> Format | None:
    """The format implied by a file name's extension, or None."""
    return EXTENSIONS.get(PurePosixPath(name).suffix.lower())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(data: bytes, expected: str | None, source: str) -> str:
    """Return the digest of `data`; raise if `expected` is given and differs."""
    actual = sha256_hex(data)
    if expected is not None and expected.strip().lower() != actual:
        raise ModelLoadError(
            f"sha256 mismatch for {source}: expected {expected.strip().lower()}, the file has "
            f"{actual}; the file changed or the expected digest is wrong"
        )
    return actual


def deserialize(
    data: bytes,
    fmt: Format,
    *,
    source: str,
    sha256: str | None = None,
    trust: bool = False,
    trusted_types: Sequence[str] = (),
) -> Any:
    """Turn model bytes into a model object (an estimator, or an onnxruntime session)."""
    if fmt == "skops":
        return _load_skops(data, source, trusted_types)
    if fmt == "joblib":
        if not (sha256 and trust):
            raise ModelLoadError(
                f"refusing to load {source} as joblib/pickle: unpickling runs arbitrary code, "
                "so it "
                "needs both --sha256 <digest> and --trust (spec.model.sha256 and trust: true); "
                "better, convert it to skops with `serinus pack`"
            )
        return _load_joblib(data, source)
    if fmt == "onnx":
        return _load_onnx(data, source)
    raise ModelLoadError(f"unknown model format {fmt!r}; use one of: skops, onnx, joblib")


def untrusted_types(data: bytes, source: str) -> list[str]:
    """Types in a skops file that skops does not trust by default."""
    import skops.io as sio

    try:
        return list(sio.get_untrusted_types(data=data))
    except Exception as e:  # zipfile.BadZipFile, KeyError (no schema), JSON errors ...
        raise ModelLoadError(f"{source} is not a skops model file ({type(e).__name__}: {e})") from e


def _load_skops(data: bytes, source: str, trusted_types: Sequence[str]) -> Any:
    import skops.io as sio

    untrusted = untrusted_types(data, source)
    allowed = set(trusted_types)
    refused = sorted(t for t in untrusted if t not in allowed)
    if refused:
        raise ModelLoadError(
            f"{source} contains types that are not trusted: {', '.join(refused)}; if you trust "
            "this file, allow them with --trusted-types (spec.model.trustedTypes)"
        )
    try:
        return sio.loads(data, trusted=[t for t in untrusted if t in allowed] or None)
    except Exception as e:
        raise ModelLoadError(f"cannot load skops file {source}: {type(e).__name__}: {e}") from e


def _load_joblib(data: bytes, source: str) -> Any:
    import joblib

    try:
        return joblib.load(io.BytesIO(data))
    except Exception as e:
        raise ModelLoadError(
            f"{source} is not a joblib/pickle model file ({type(e).__name__}: {e})"
        ) from e


def _load_onnx(data: bytes, source: str) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelLoadError(
            "ONNX models need onnxruntime: install the `serinus[onnx]` extra"
        ) from e
    opts = ort.SessionOptions()
    # One model per process, scaled by replicas: one thread keeps latency predictable.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelLoadError(
            f"{source} is not a usable ONNX model ({type(e).__name__}: {e})"
        ) from e


def serialize(obj: Any, fmt: Format, sample: Any = None) -> bytes:
    """Model object → bytes in `fmt` (used by `serinus pack`). ONNX needs a sample row."""
    if fmt == "skops":
        import skops.io as sio

        return sio.dumps(obj, compression=8)  # ZIP_DEFLATED
    if fmt == "joblib":
        import joblib

        buf = io.BytesIO()
        joblib.dump(obj, buf)
        return buf.getvalue()
    if fmt == "onnx":
        if not hasattr(obj, "predict"):
            raise ModelLoadError("only scikit-learn estimators can be converted to ONNX")
        try:
            from skl2onnx import to_onnx
        except ImportError as e:
            raise ModelLoadError(
                "converting to ONNX needs skl2onnx: install `serinus[onnx]`"
            ) from e
        import numpy as np

        x = np.asarray(sample)[:1]
        if x.dtype.kind in "fiub":
            x = x.astype(np.float32)
        options = {id(obj): {"zipmap": False}} if hasattr(obj, "predict_proba") else None
        try:
            onx = to_onnx(obj, x, options=options, target_opset=None)
        except Exception as e:
            raise ModelLoadError(
                f"skl2onnx cannot convert this model: {type(e).__name__}: {e}"
            ) from e
        return onx.SerializeToString()
    raise ModelLoadError(f"unknown model format {fmt!r}")
