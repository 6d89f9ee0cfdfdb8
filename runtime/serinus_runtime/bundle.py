"""The bundle format: `serinus.json` (Manifest) and the reference profile (ReferenceProfile).

A bundle is a directory (or the same files under an http(s):// or s3:// prefix):

    serinus.json    Manifest: name, version, format, model file + sha256, signature, classes,
                    training metrics
    model.skops     the model (or model.onnx / model.joblib)
    profile.json    ReferenceProfile: per-feature bins + frequencies, prediction distribution

`serinus pack` (serinus_runtime.pack) writes bundles; `verify_bundle` is what a validation job
calls before traffic; the runtime loads bundles through serinus_runtime.loading.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from serinus_runtime.errors import BundleError
from serinus_runtime.formats import Format, check_sha256

SCHEMA_VERSION = 1
MANIFEST_FILE = "serinus.json"
PROFILE_FILE = "profile.json"

FeatureDtype = Literal["float32", "float64", "int32", "int64", "bool", "string"]
NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
VERSION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
ClassLabel = StrictBool | StrictInt | StrictFloat | StrictStr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    """One input column of the model, in the order the model takes them."""

    name: Annotated[str, Field(min_length=1)]
    dtype: FeatureDtype


class Manifest(_Strict):
    """`serinus.json`: what the model is and how to call it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[str, Field(pattern=VERSION_PATTERN)]
    format: Format
    model_file: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    profile_file: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")] | None = PROFILE_FILE
    output_kind: Literal["classification", "regression"]
    classes: list[ClassLabel] | None = None
    has_predict_proba: bool = False
    input: Literal["table", "text"] = "table"
    """`table`: rows of features (2-D); `text`: one string per row (1-D, e.g. a text pipeline)."""
    features: Annotated[list[Feature], Field(min_length=1)]
    allow_nan: bool = False
    """Whether the model accepts NaN / missing values (from the estimator's tags at pack time)."""
    estimator: str = ""
    training_metrics: dict[str, float] = Field(default_factory=dict)
    trusted_types: list[str] = Field(default_factory=list)
    """Extra skops types this model needs. Informational: the runtime trusts only the types its
    own configuration lists (--trusted-types), never what a bundle says about itself."""
    created: str = ""
    serinus_version: str = ""
    sklearn_version: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.output_kind == "classification" and not self.classes:
            raise ValueError("a classification model needs its `classes`")
        if self.output_kind == "regression" and self.has_predict_proba:
            raise ValueError("a regression model has no predict_proba")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        if self.input == "text" and (len(self.features) != 1 or self.features[0].dtype != "string"):
            raise ValueError("a text model has exactly one feature, of dtype string")
        return self


class FeatureProfile(_Strict):
    """Reference distribution of one feature over the training sample."""

    name: str
    kind: Literal["numeric", "categorical"]
    edges: list[float] | None = None
    """numeric: k+1 ascending edges for k bins (see serinus_runtime.profile for bin rules)."""
    categories: list[str] | None = None
    """categorical: the most frequent categories; everything else is bin `other` (last)."""
    frequencies: list[float]
    missing: float = 0.0
    """Fraction of rows where the value was missing (NaN/None)."""

    @model_validator(mode="after")
    def _consistent(self) -> FeatureProfile:
        if self.kind == "numeric":
            if not self.edges or len(self.edges) < 2:
                raise ValueError(f"feature {self.name!r}: numeric profile needs >= 2 edges")
            if any(b < a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                raise ValueError(f"feature {self.name!r}: edges must be ascending")
            if len(self.frequencies) != len(self.edges) - 1:
                raise ValueError(f"feature {self.name!r}: needs one frequency per bin")
        else:
            if self.categories is None:
                raise ValueError(f"feature {self.name!r}: categorical profile needs categories")
            if len(self.frequencies) != len(self.categories) + 1:
                raise ValueError(f"feature {self.name!r}: one frequency per category + other")
        return self

    @property
    def bin_count(self) -> int:
        return len(self.frequencies)


class PredictionProfile(_Strict):
    """Distribution of the model's predictions on the training sample."""

    kind: Literal["classes", "values"]
    classes: list[ClassLabel] | None = None
    edges: list[float] | None = None
    frequencies: list[float]

    @model_validator(mode="after")
    def _consistent(self) -> PredictionProfile:
        if self.kind == "classes" and len(self.classes or []) != len(self.frequencies):
            raise ValueError("prediction profile: one frequency per class")
        if self.kind == "values" and len(self.edges or []) != len(self.frequencies) + 1:
            raise ValueError("prediction profile: one frequency per value bin")
        return self


class ReferenceProfile(_Strict):
    """`profile.json`: the training-time distributions that drift is measured against."""

    schema_version: Literal[1] = SCHEMA_VERSION
    rows: int
    features: list[FeatureProfile]
    predictions: PredictionProfile


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(root)"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{loc}: {err['msg']}{more}"


def parse_manifest(data: bytes, source: str = MANIFEST_FILE) -> Manifest:
    """Validate serinus.json bytes; raise BundleError naming the first problem."""
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as e:
        raise BundleError(f"{source} is not a valid Serinus manifest: {_first_error(e)}") from e


def parse_profile(data: bytes, source: str = PROFILE_FILE) -> ReferenceProfile:
    """Validate profile.json bytes; raise BundleError naming the first problem."""
    try:
        return ReferenceProfile.model_validate_json(data)
    except ValidationError as e:
        raise BundleError(f"{source} is not a valid reference profile: {_first_error(e)}") from e


def read_bundle(path: str | Path) -> tuple[Manifest, ReferenceProfile | None]:
    """Manifest and profile of a local bundle directory (the model file is not read)."""
    root = Path(path)
    mpath = root / MANIFEST_FILE
    if not mpath.is_file():
        raise BundleError(f"{root} is not a bundle: {MANIFEST_FILE} not found")
    manifest = parse_manifest(mpath.read_bytes(), str(mpath))
    profile = None
    if manifest.profile_file:
        ppath = root / manifest.profile_file
        if not ppath.is_file():
            raise BundleError(f"reference profile not found: {ppath}")
        profile = parse_profile(ppath.read_bytes(), str(ppath))
    return manifest, profile


def verify_bundle(path: str | Path, expected_sha256: str | None = None) -> Manifest:
    """Check a local bundle without loading the model: the manifest and profile validate, the
    model file exists and its sha256 matches serinus.json (and `expected_sha256` if given).

    Raises BundleError / ModelLoadError with a message naming the problem; returns the manifest.
    """
    root = Path(path)
    manifest, profile = read_bundle(root)
    mfile = root / manifest.model_file
    if not mfile.is_file():
        raise BundleError(f"model file not found: {mfile}")
    data = mfile.read_bytes()
    check_sha256(data, manifest.sha256, f"{mfile} (digest recorded in {MANIFEST_FILE})")
    if expected_sha256:
        check_sha256(data, expected_sha256, str(mfile))
    if profile is not None:
        names = [f.name for f in manifest.features]
        pnames = [f.name for f in profile.features]
        if pnames and pnames != names:
            raise BundleError(f"{root}: profile features {pnames} differ from manifest {names}")
    return manifest


def write_json(path: Path, model: BaseModel) -> None:
    path.write_text(json.dumps(model.model_dump(mode="json"), indent=2) + "\n")


def is_valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None
