"""URI → verified, deserialised, warmed-up ServedModel (or ModelLoadError with one clear line)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from serinus_runtime.bundle import Manifest, ReferenceProfile, parse_manifest, parse_profile
from serinus_runtime.errors import ModelLoadError
from serinus_runtime.fetch import fetch
from serinus_runtime.formats import (
    Format,
    check_sha256,
    deserialize,
    format_from_name,
    normalize_format,
)
from serinus_runtime.model import (
    EstimatorFacts,
    OnnxPredictor,
    ServedModel,
    SklearnPredictor,
    configure_sklearn,
    describe_estimator,
    signature_for,
)


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from and how far to trust it (from flags / env)."""

    uri: str
    format: str | None = None
    sha256: str | None = None
    trust: bool = False
    trusted_types: Sequence[str] = ()
    name: str | None = None
    version: str | None = None


def load_model(src: ModelSource, *, warm_up: bool = True) -> ServedModel:
    """Fetch, verify, deserialise and warm up the model described by `src`."""
    configure_sklearn()
    fetched = fetch(src.uri)
    manifest: Manifest | None = None
    profile: ReferenceProfile | None = None
    if fetched.manifest is not None:
        manifest = parse_manifest(fetched.manifest, f"{fetched.location}serinus.json")
    if fetched.profile is not None and manifest is not None:
        profile = parse_profile(fetched.profile, f"{fetched.location}{manifest.profile_file}")
    fmt = _pick_format(src.format, manifest, fetched.model_file)

    digest = check_sha256(fetched.model, src.sha256, fetched.source)
    if manifest is not None:
        check_sha256(fetched.model, manifest.sha256, f"{fetched.source} (digest in serinus.json)")
    obj = deserialize(
        fetched.model,
        fmt,
        source=fetched.source,
        sha256=src.sha256,
        trust=src.trust,
        trusted_types=src.trusted_types,
    )
    onnx: OnnxPredictor | None = None
    facts: EstimatorFacts | None = None
    predictor: SklearnPredictor | OnnxPredictor
    if fmt == "onnx":
        predictor = onnx = OnnxPredictor(obj)
    else:
        predictor = SklearnPredictor(obj)
        facts = describe_estimator(obj)
    signature = signature_for(facts, manifest, onnx)
    if manifest is not None:
        kind = manifest.output_kind
        classes = np.asarray(manifest.classes) if manifest.classes is not None else None
        has_proba = manifest.has_predict_proba and predictor.has_proba
        if facts is not None and facts.n_features is not None and facts.n_features != signature.n:
            raise ModelLoadError(
                f"serinus.json lists {signature.n} features but the model takes "
                f"{facts.n_features}: the bundle does not belong to this model"
            )
    elif facts is not None:
        kind = facts.kind
        classes = np.asarray(getattr(obj, "classes_", None)) if kind == "classification" else None
        has_proba = facts.has_proba
    else:  # bare ONNX file: labels come from the model, class names are unknown
        kind = "classification" if predictor.has_proba else "regression"
        classes = None
        has_proba = predictor.has_proba
    if facts is not None and facts.feature_names is not None:
        # Fitted on a DataFrame, served with arrays in the same column order: the warning
        # sklearn would print on every call says nothing useful here.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")

    model = ServedModel(
        name=src.name or (manifest.name if manifest else _name_from_file(fetched.model_file)),
        version=src.version or (manifest.version if manifest else "1"),
        format=fmt,
        sha256=digest,
        predictor=predictor,
        signature=signature,
        kind=kind,
        classes=classes,
        has_proba=has_proba,
        manifest=manifest,
        profile=profile,
        source=fetched.source,
    )
    if warm_up:
        _warm_up(model)
    return model


def _warm_up(model: ServedModel) -> None:
    try:
        model.warm_up()
    except ModelLoadError as e:
        p = model.predictor
        names = getattr(getattr(p, "est", None), "feature_names_in_", None)
        if not isinstance(p, SklearnPredictor) or names is None or p.as_frame is not None:
            raise
        # Fitted on a DataFrame with column selectors by name: it needs a DataFrame back.
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise ModelLoadError(
                f"{e}; the model was fitted on a pandas DataFrame and may need one: install pandas "
                "in the runtime image"
            ) from e
        p.as_frame = [str(n) for n in names]
        model.warm_up()


def _pick_format(flag: str | None, manifest: Manifest | None, file_name: str) -> Format:
    explicit = normalize_format(flag)
    if manifest is not None:
        if explicit is not None and explicit != manifest.format:
            raise ModelLoadError(
                f"--format {explicit} contradicts the bundle, whose serinus.json says "
                f"{manifest.format}"
            )
        return manifest.format
    if explicit is not None:
        return explicit
    guessed = format_from_name(file_name)
    if guessed is None:
        raise ModelLoadError(
            f"cannot tell the format of {file_name!r} from its name: "
            "pass --format skops|onnx|joblib"
        )
    return guessed


def _name_from_file(file_name: str) -> str:
    stem = PurePosixPath(file_name).stem.lower()
    stem = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._")
    return stem or "model"
