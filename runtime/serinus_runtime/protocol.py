"""Open Inference Protocol (V2) and V1 wire types: datatypes, output names, JSON helpers."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

# V2 datatype → numpy kind it decodes to ("O" = BYTES, strings).
DATATYPE_KIND: dict[str, str] = {
    "BOOL": "b",
    "UINT8": "u",
    "UINT16": "u",
    "UINT32": "u",
    "UINT64": "u",
    "INT8": "i",
    "INT16": "i",
    "INT32": "i",
    "INT64": "i",
    "FP16": "f",
    "FP32": "f",
    "FP64": "f",
    "BYTES": "O",
}
DATATYPE_NAMES = ", ".join(DATATYPE_KIND)

OUTPUT_PREDICT = "predict"
OUTPUT_PROBA = "predict_proba"

JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def datatype_of(dtype: np.dtype) -> str:
    """V2 datatype name for a numpy dtype (strings and objects are BYTES)."""
    k = dtype.kind
    if k == "f":
        return {2: "FP16", 4: "FP32"}.get(dtype.itemsize, "FP64")
    if k == "i":
        return f"INT{dtype.itemsize * 8}"
    if k == "u":
        return f"UINT{dtype.itemsize * 8}"
    if k == "b":
        return "BOOL"
    return "BYTES"


def datatype_of_feature(dtype: str) -> str:
    """V2 datatype of a bundle feature dtype (float64 → FP64, string → BYTES...)."""
    return {
        "float32": "FP32",
        "float64": "FP64",
        "int32": "INT32",
        "int64": "INT64",
        "bool": "BOOL",
        "string": "BYTES",
    }[dtype]


def json_ready(a: np.ndarray) -> Any:
    """Something orjson can serialise for this array (numeric arrays go through as they are)."""
    if a.dtype.kind in "fiub" and a.flags.c_contiguous:
        return a
    if a.dtype.kind in "fiub":
        return np.ascontiguousarray(a)
    return a.tolist()


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=JSON_OPTS)
