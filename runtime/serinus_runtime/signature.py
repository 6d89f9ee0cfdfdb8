"""A model's input signature, and decoding of V2 tensors / V1 instances checked against it.

Everything that can be prepared per model (name → index maps, dtypes, messages) is prepared in
`Signature.__init__`, at load time; the decode functions only look things up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from serinus_runtime.bundle import Feature
from serinus_runtime.errors import InvalidInput
from serinus_runtime.protocol import DATATYPE_KIND, DATATYPE_NAMES

_NUMERIC_KINDS = "fiub"


class Signature:
    """Features (names, dtypes, order), layout (table/text) and the NaN policy of a model."""

    def __init__(
        self,
        features: Sequence[Feature],
        *,
        layout: str = "table",
        allow_nan: bool = False,
        input_dtype: np.dtype | None = None,
    ) -> None:
        self.features = tuple(features)
        self.names = tuple(f.name for f in self.features)
        self.n = len(self.features)
        self.layout = layout
        self.allow_nan = allow_nan
        self.index = {name: i for i, name in enumerate(self.names)}
        self.string_cols = tuple(i for i, f in enumerate(self.features) if f.dtype == "string")
        self.numeric = not self.string_cols
        if input_dtype is None:
            input_dtype = _common_dtype([f.dtype for f in self.features])
        self.dtype = np.dtype(input_dtype)
        self.float_input = self.dtype.kind == "f"
        self.fast_dtype = self.dtype if self.float_input else None
        self.shape_hint = f"[rows, {self.n}]"

    # ------------------------------------------------------------------------------------ V2
    def decode_v2(self, inputs: Any) -> np.ndarray:
        """V2 `inputs` → the array the model takes (2-D rows x features, or 1-D for text)."""
        if type(inputs) is not list or not inputs:
            raise InvalidInput("bad_request", '"inputs" must be a non-empty list of tensors')
        x = self._from_tensor(inputs[0]) if len(inputs) == 1 else self._from_columns(inputs)
        return self._finish(x, "inputs")

    def _from_tensor(self, t: Any) -> np.ndarray:
        arr, shape = _tensor(t, "inputs[0]", self.fast_dtype)
        if self.layout == "text":
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise InvalidInput(
                    "shape", f"inputs[0].shape {shape} must be [rows] for this text model"
                )
            return self._to_strings(arr, "inputs[0]")
        if arr.ndim == 1:
            if self.n != 1:
                raise InvalidInput(
                    "shape",
                    f"inputs[0].shape {shape} is 1-D, but the model takes rows of {self.n} "
                    f"features: use shape {self.shape_hint}",
                )
            arr = arr.reshape(-1, 1)
        if arr.shape[1] != self.n:
            raise InvalidInput(
                "feature_count",
                f"inputs[0].shape {shape} does not match the model's {self.n} features "
                f"(expected {self.shape_hint})",
            )
        return self._convert(arr, "inputs[0]")

    def _from_columns(self, inputs: list[Any]) -> np.ndarray:
        if self.layout == "text":
            raise InvalidInput(
                "feature_names", f"this text model takes one input tensor, got {len(inputs)}"
            )
        cols: list[np.ndarray | None] = [None] * self.n
        unknown: list[str] = []
        rows = -1
        for i, t in enumerate(inputs):
            where = f"inputs[{i}]"
            name = t.get("name") if type(t) is dict else None
            if type(name) is not str:
                raise InvalidInput(
                    "bad_request",
                    f'{where} needs a string "name": with several inputs, each is one feature '
                    "column named after the feature",
                )
            j = self.index.get(name)
            if j is None:
                unknown.append(name)
                continue
            if cols[j] is not None:
                raise InvalidInput("feature_names", f"{where}: feature {name!r} given twice")
            arr, shape = _tensor(t, where)
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise InvalidInput(
                    "shape", f"{where} ({name!r}).shape {shape} must be [rows] or [rows, 1]"
                )
            if rows >= 0 and arr.shape[0] != rows:
                raise InvalidInput(
                    "shape", f"{where} ({name!r}) has {arr.shape[0]} rows, the others have {rows}"
                )
            rows = arr.shape[0]
            cols[j] = arr
        if unknown:
            raise InvalidInput(
                "feature_names",
                f"unknown input name(s) {', '.join(map(repr, unknown))}; the model's features are: "
                f"{', '.join(self.names)}",
            )
        missing = [self.names[j] for j, c in enumerate(cols) if c is None]
        if missing:
            raise InvalidInput(
                "feature_names", f"missing input(s) for feature(s): {', '.join(missing)}"
            )
        return self._assemble(cols, rows, "inputs")  # type: ignore[arg-type]

    # ------------------------------------------------------------------------------------ V1
    def decode_v1(self, instances: Any) -> np.ndarray:
        """V1 `instances` (rows as lists, or as objects keyed by feature name) → model input."""
        if type(instances) is not list or not instances:
            raise InvalidInput("bad_request", '"instances" must be a non-empty list of rows')
        first = instances[0]
        if self.layout == "text":
            arr = np.array(instances, dtype=object)
            if arr.ndim != 1:
                raise InvalidInput(
                    "shape", '"instances" must be a list of strings for this text model'
                )
            return self._finish(self._to_strings(arr, "instances"), "instances")
        if type(first) is dict:
            return self._finish(self._from_records(instances), "instances")
        arr = _array(instances, "instances")
        if arr.ndim == 1 and self.n == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise InvalidInput(
                "shape", f'"instances" must be a list of rows, each a list of {self.n} values'
            )
        if arr.shape[1] != self.n:
            raise InvalidInput(
                "feature_count",
                f'"instances" rows have {arr.shape[1]} values, '
                f"but the model takes {self.n} features",
            )
        kind = arr.dtype.kind
        if kind in "US":
            if self.numeric:
                raise InvalidInput(
                    "value",
                    f'"instances" hold strings; the model takes numeric ({self.dtype}) features',
                )
            arr = arr.astype(object)
        elif kind == "O" and self.numeric:  # null(s) among numbers: missing values
            try:
                arr = np.array(instances, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise InvalidInput("value", f'"instances": {e}') from e
        return self._finish(self._convert(arr, "instances"), "instances")

    def _from_records(self, records: list[Any]) -> np.ndarray:
        cols: list[list[Any]] = [[] for _ in range(self.n)]
        names = set(self.names)
        for r, rec in enumerate(records):
            if type(rec) is not dict:
                raise InvalidInput(
                    "bad_request", f"instances[{r}] must be an object like instances[0]"
                )
            if len(rec) != self.n or rec.keys() != names:
                missing = [n for n in self.names if n not in rec]
                extra = [k for k in rec if k not in names]
                parts = []
                if missing:
                    parts.append(f"missing feature(s): {', '.join(missing)}")
                if extra:
                    parts.append(f"unknown feature(s): {', '.join(map(repr, extra))}")
                raise InvalidInput("feature_names", f"instances[{r}]: {'; '.join(parts)}")
            for j, name in enumerate(self.names):
                cols[j].append(rec[name])
        arrs = []
        for j, col in enumerate(cols):
            a = _array(col, f"instances[*].{self.names[j]}")
            if a.ndim != 1:
                raise InvalidInput("shape", f"instances[*].{self.names[j]} must be a scalar")
            arrs.append(a)
        return self._assemble(arrs, len(records), "instances")

    # ------------------------------------------------------------------------------------ shared
    def _assemble(self, cols: list[np.ndarray], rows: int, where: str) -> np.ndarray:
        if self.numeric:
            for j, c in enumerate(cols):
                if c.dtype.kind not in _NUMERIC_KINDS:
                    raise InvalidInput(
                        "datatype",
                        f"{where}: feature {self.names[j]!r} is numeric "
                        f"({self.features[j].dtype}), "
                        "got strings",
                    )
            return np.column_stack(cols).astype(self.dtype, copy=False)
        x = np.empty((rows, self.n), dtype=object)
        for j, c in enumerate(cols):
            x[:, j] = c
        return self._convert(x, where)

    def _convert(self, arr: np.ndarray, where: str) -> np.ndarray:
        """Rows x features array (any decoded dtype) → the model's input dtype, checked."""
        if self.numeric:
            if arr.dtype.kind == "O":
                raise InvalidInput(
                    "datatype",
                    f"{where}: strings (BYTES) given, but the model's features are numeric "
                    f"({self.dtype})",
                )
            return arr.astype(self.dtype, copy=False)
        # Mixed model: strings in string columns, numbers elsewhere (parsed if sent as text).
        x = arr.astype(object, copy=True) if arr.dtype.kind != "O" else arr
        string_cols = set(self.string_cols)
        for j in range(self.n):
            col = x[:, j]
            if j in string_cols:
                for r, v in enumerate(col):
                    if type(v) is not str:
                        if v is None or (isinstance(v, float) and math.isnan(v)):
                            if not self.allow_nan:
                                raise InvalidInput(
                                    "non_finite",
                                    f"{where}: row {r} feature {self.names[j]!r} is missing, "
                                    "which this model does not accept",
                                )
                            continue
                        x[r, j] = str(v)
            else:
                try:
                    x[:, j] = np.asarray(col, dtype=np.float64)
                except (TypeError, ValueError) as e:
                    raise InvalidInput(
                        "value", f"{where}: feature {self.names[j]!r} must be numeric: {e}"
                    ) from e
        return x

    def _to_strings(self, arr: np.ndarray, where: str) -> np.ndarray:
        for r, v in enumerate(arr):
            if type(v) is not str:
                raise InvalidInput("value", f"{where}: row {r} must be a string, got {v!r}")
        return arr.astype(object, copy=False)

    def _finish(self, x: np.ndarray, where: str) -> np.ndarray:
        if x.shape[0] == 0:
            raise InvalidInput("shape", f"{where}: no rows to predict")
        if self.float_input:
            ok = np.isfinite(x).all() if not self.allow_nan else not np.isinf(x).any()
            if not ok:
                bad = ~np.isfinite(x) if not self.allow_nan else np.isinf(x)
                r, j = (int(v) for v in np.argwhere(bad)[0])
                what = "missing (null/NaN)" if np.isnan(x[r, j]) else "infinite"
                raise InvalidInput(
                    "non_finite",
                    f"{where}: row {r} feature {self.names[j]!r} is {what}, which this model "
                    "does not accept",
                )
        elif not self.numeric and self.layout == "table":
            num_cols = [j for j in range(self.n) if j not in self.string_cols]
            if num_cols:
                sub = x[:, num_cols].astype(np.float64)
                bad = ~np.isfinite(sub) if not self.allow_nan else np.isinf(sub)
                if bad.any():
                    r, k = (int(v) for v in np.argwhere(bad)[0])
                    raise InvalidInput(
                        "non_finite",
                        f"{where}: row {r} feature {self.names[num_cols[k]]!r} is missing or "
                        "infinite, which this model does not accept",
                    )
        return x

    def metadata_inputs(self) -> list[dict[str, Any]]:
        from serinus_runtime.protocol import datatype_of, datatype_of_feature

        if self.layout == "text":
            return [{"name": self.names[0], "datatype": "BYTES", "shape": [-1]}]
        if self.numeric:
            return [{"name": "input-0", "datatype": datatype_of(self.dtype), "shape": [-1, self.n]}]
        return [
            {"name": f.name, "datatype": datatype_of_feature(f.dtype), "shape": [-1]}
            for f in self.features
        ]


def _common_dtype(dtypes: list[str]) -> np.dtype:
    if "string" in dtypes:
        return np.dtype(object)
    if all(d == "float32" for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _array(data: Any, where: str) -> np.ndarray:
    try:
        arr = np.array(data)
    except ValueError as e:
        msg = str(e)
        if "inhomogeneous" in msg or "sequence" in msg:
            raise InvalidInput("shape", f"{where}: nested lists have uneven lengths") from e
        raise InvalidInput("value", f"{where}: {msg}") from e
    if arr.dtype.kind == "O":
        flat = arr.ravel()
        for v in flat:
            if v is not None and type(v) not in (int, float, bool, str):
                raise InvalidInput(
                    "value", f"{where}: values must be numbers or strings, found {type(v).__name__}"
                )
    return arr


def _tensor(t: Any, where: str, fast: np.dtype | None = None) -> tuple[np.ndarray, list[int]]:
    """Decode one V2 tensor: checks datatype, shape and data; returns (array, shape).

    `fast`: for float tensors, the float dtype to convert to in one pass (the model's). A value
    that does not convert falls back to the step-by-step path, which names the problem. Numeric
    strings ("1.5") convert there too, as numpy parses them.
    """
    if type(t) is not dict:
        raise InvalidInput(
            "bad_request", f"{where} must be an object with name, shape, datatype and data"
        )
    datatype = t.get("datatype")
    shape = t.get("shape")
    data = t.get("data")
    if datatype is None or shape is None or data is None:
        missing = [k for k in ("datatype", "shape", "data") if t.get(k) is None]
        raise InvalidInput("bad_request", f"{where} needs {', '.join(map(repr, missing))}")
    kind = DATATYPE_KIND.get(datatype) if type(datatype) is str else None
    if kind is None:
        raise InvalidInput(
            "datatype", f"{where}.datatype {datatype!r} is not one of {DATATYPE_NAMES}"
        )
    if (
        type(shape) is not list
        or not 1 <= len(shape) <= 2
        or any(type(d) is not int or d < 0 for d in shape)
    ):
        raise InvalidInput(
            "shape", f"{where}.shape must be a list of 1 or 2 non-negative integers, got {shape!r}"
        )
    if type(data) is not list:
        raise InvalidInput(
            "bad_request", f"{where}.data must be a list (row-major, flat or nested)"
        )
    if kind == "f" and fast is not None:
        try:
            arr = np.array(data, dtype=fast)
        except (TypeError, ValueError):
            arr = _decode_slow(data, kind, datatype, where)
    else:
        arr = _decode_slow(data, kind, datatype, where)
    size = shape[0] if len(shape) == 1 else shape[0] * shape[1]
    if arr.size != size:
        raise InvalidInput(
            "shape", f"{where}: shape {shape} needs {size} values, data has {arr.size}"
        )
    if arr.ndim != len(shape) or arr.shape != tuple(shape):
        arr = arr.reshape(shape)
    return arr, shape


def _decode_slow(data: list[Any], kind: str, datatype: str, where: str) -> np.ndarray:
    if kind == "O":
        arr = _array(data, f"{where}.data")
        if arr.dtype.kind not in "UO":
            raise InvalidInput("value", f"{where}: datatype BYTES needs strings in data")
        arr = arr.astype(object)
    else:
        arr = _array(data, f"{where}.data")
        ak = arr.dtype.kind
        if ak == "U" or ak == "S":
            first = next(v for v in arr.ravel().tolist() if isinstance(v, str))
            raise InvalidInput(
                "value", f"{where}.data holds a string ({first!r}) but the datatype is {datatype}"
            )
        if ak == "O":  # null(s) mixed with numbers: null is a missing value
            if kind != "f":
                raise InvalidInput("value", f"{where}.data holds null, which {datatype} can't hold")
            try:
                arr = np.array(data, dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise InvalidInput("value", f"{where}.data: {e}") from e
        elif kind in "iu" and ak == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
                raise InvalidInput(
                    "value", f"{where}.data holds non-integer values but the datatype is {datatype}"
                )
        elif kind == "b" and ak not in "bi":
            raise InvalidInput("value", f"{where}.data must hold true/false for BOOL")
    return arr
