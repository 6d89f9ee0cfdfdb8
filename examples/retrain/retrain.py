#!/usr/bin/env python3
"""Retrain a model when Serinus monitoring raises an alarm, and report the new bundle.

    SERINUS_RESULT_FILE=/tmp/r.json python examples/retrain/retrain.py --output-dir /tmp/out

The operator runs this as the Job of `spec.retrain.jobTemplate` (local mode: as a local command)
with the reason and the current model in SERINUS_* variables. It fits a fresh scikit-learn
pipeline (StandardScaler + LogisticRegression) on one of scikit-learn's bundled datasets, packs it
with `serinus_runtime.pack` into `<output-dir>/<name>-v<version>` (model file, serinus.json,
reference profile, plus retrain.json saying why it was trained) and writes one JSON object to
SERINUS_RESULT_FILE, the Kubernetes termination message:

    {"uri": "/abs/path/iris-v2", "sha256": "<64 hex digits>", "version": "2"}

On any failure it prints one line `retrain: error: ...` on stderr, exits 1 (2 for a usage error)
and leaves the result file alone. A real training image would read recent labelled rows (for
example feedback logged during SERINUS_WINDOW_START .. SERINUS_WINDOW_END) instead of the bundled
data; the rest (versioning, packing, reporting) stays the same.

Needs only numpy, scikit-learn and serinus_runtime (the runtime image has all three); copy it
into your own training image as it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASETS = ("iris", "wine")
DEFAULT_RESULT_FILE = "/dev/termination-log"
DEFAULT_OUTPUT_DIR = "retrained"
MAX_RESULT_BYTES = 4096  # Kubernetes' limit for a termination message
TEST_SIZE = 0.2
MAX_VERSION_SKIPS = 1000
PROVENANCE_FILE = "retrain.json"

IRIS_FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
"""The iris column names of examples/make_bundles.py and `serinus demo`: a retrained iris model
takes the same inputs as the served one."""


class RetrainError(Exception):
    """A failure the person running the Job can act on; printed as one line."""


@dataclass(frozen=True)
class Context:
    """Why the operator started this run, from the SERINUS_* environment."""

    reason: str
    trigger: str
    model_uri: str
    model_sha256: str
    model_version: str
    window_start: str
    window_end: str
    prometheus: str
    result_file: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Context:
        def get(key: str, default: str = "") -> str:
            return (env.get(key) or default).strip()

        return cls(
            reason=get("SERINUS_RETRAIN_REASON"),
            trigger=get("SERINUS_RETRAIN_TRIGGER"),
            model_uri=get("SERINUS_MODEL_URI"),
            model_sha256=get("SERINUS_MODEL_SHA256"),
            model_version=get("SERINUS_MODEL_VERSION"),
            window_start=get("SERINUS_WINDOW_START"),
            window_end=get("SERINUS_WINDOW_END"),
            prometheus=get("SERINUS_PROMETHEUS_ADDRESS"),
            result_file=Path(get("SERINUS_RESULT_FILE", DEFAULT_RESULT_FILE)),
        )


def log(message: str) -> None:
    print(message, flush=True)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="retrain",
        description="Train a replacement model, pack it as a Serinus bundle and write "
        '{"uri", "sha256", "version"} to $SERINUS_RESULT_FILE (default /dev/termination-log).',
    )
    p.add_argument(
        "--output-dir",
        default=os.environ.get("SERINUS_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR,
        help="where the bundle directory <name>-v<version> is written "
        "(default: $SERINUS_OUTPUT_DIR, else ./retrained)",
    )
    p.add_argument(
        "--version",
        help="version of the new model (default: $SERINUS_MODEL_VERSION + 1 when that is an "
        "integer, skipping versions whose directory exists; else a UTC timestamp)",
    )
    p.add_argument(
        "--dataset", choices=DATASETS, default="iris", help="training data (default iris)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the train/hold-out split (default 0)"
    )
    p.add_argument("--name", help="model name in the bundle (default: the dataset's name)")
    p.add_argument(
        "--min-accuracy",
        type=float,
        default=0.8,
        help="fail instead of reporting a model whose hold-out accuracy is lower (default 0.8)",
    )
    p.add_argument(
        "--uri-base",
        default=os.environ.get("SERINUS_URI_BASE") or None,
        help="report <uri-base>/<name>-v<version> instead of the bundle's absolute path, when "
        "the runtime reads --output-dir under another URI, e.g. s3://models/iris for a mounted "
        "bucket (default: $SERINUS_URI_BASE)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing bundle directory of an explicit or timestamp --version",
    )
    return p


def derived_version(current: str, output_dir: Path, name: str, now: dt.datetime) -> str:
    """The current version + 1 when it is an integer (the first whose directory is free), else
    a UTC timestamp such as 20261123T120000."""
    if current.isascii() and current.isdigit():
        n = int(current) + 1
        for _ in range(MAX_VERSION_SKIPS):
            if not (output_dir / f"{name}-v{n}").exists():
                return str(n)
            log(f"  {name}-v{n} exists in {output_dir}: trying version {n + 1}")
            n += 1
        raise RetrainError(f"versions {int(current) + 1}..{n - 1} all exist in {output_dir}")
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")


# ---------------------------------------------------------------- checks before training


def check_result_file(path: Path) -> None:
    """Fail now, not after training, when the result cannot be written."""
    if path.is_dir():
        raise RetrainError(f"SERINUS_RESULT_FILE {path} is a directory")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise RetrainError(f"cannot write the result file {path} (SERINUS_RESULT_FILE)")
        return
    parent = path.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        hint = (
            " (outside Kubernetes, set SERINUS_RESULT_FILE)"
            if str(path) == DEFAULT_RESULT_FILE
            else ""
        )
        raise RetrainError(f"cannot create the result file {path}{hint}")


def prepare_output_dir(out: Path) -> Path:
    """Create `out` if needed and a private staging directory inside it (proves it writable)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RetrainError(f"output directory {out} is a file") from None
    except OSError as e:
        raise RetrainError(f"cannot create output directory {out}: {e.strerror or e}") from e
    try:
        return Path(tempfile.mkdtemp(prefix=".retrain-", dir=out))
    except OSError as e:
        raise RetrainError(f"cannot write to output directory {out}: {e.strerror or e}") from e


def current_features(uri: str) -> tuple[str, list[str], list[Any] | None] | None:
    """(name, feature names, classes) of the bundle now serving, or None when it cannot be read
    from here (a model file without serinus.json, an unreachable URI): only a check."""
    if not uri:
        return None
    from serinus_runtime.errors import ModelLoadError
    from serinus_runtime.fetch import fetch

    try:
        fetched = fetch(uri)
    except (ModelLoadError, OSError) as e:
        log(f"  cannot read the current model here ({one_line(e)}): not comparing inputs")
        return None
    if fetched.manifest is None:
        return None
    from serinus_runtime.bundle import parse_manifest

    try:
        m = parse_manifest(fetched.manifest, f"{fetched.location}serinus.json")
    except ModelLoadError as e:
        log(f"  the current model's serinus.json is not readable ({one_line(e)}): not comparing")
        return None
    return m.name, [f.name for f in m.features], m.classes


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class Trained:
    model: Any
    x_train: Any
    y_train: Any
    features: tuple[str, ...]
    accuracy: float
    holdout_rows: int


def load_dataset(name: str) -> tuple[Any, Any, tuple[str, ...]]:
    """(X float64, y as class-name strings, feature names): the demo's label type."""
    import numpy as np
    from sklearn.datasets import load_iris, load_wine

    data = load_iris() if name == "iris" else load_wine()
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target_names)[data.target]
    features = IRIS_FEATURES if name == "iris" else tuple(data.feature_names)
    return x, y, features


def train(x: Any, y: Any, features: tuple[str, ...], seed: int) -> Trained:
    """StandardScaler + LogisticRegression (the demo's v1/v2 recipe) on a stratified 80 % split;
    the other 20 % measure it."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=seed, stratify=y
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    accuracy = float(np.mean(model.predict(x_test) == y_test))
    return Trained(model, x_train, y_train, features, accuracy, len(y_test))


# ---------------------------------------------------------------- packing and reporting


def pack_bundle(
    trained: Trained, staging: Path, final: Path, *, name: str, version: str, provenance: dict
) -> Any:
    """Pack into `staging`, then move it to `final` in one rename: the runtime never sees half a
    bundle. Returns the manifest."""
    from serinus_runtime.bundle import verify_bundle
    from serinus_runtime.errors import ModelLoadError, PackError
    from serinus_runtime.pack import pack

    try:
        manifest = pack(
            trained.model,
            trained.x_train,
            staging,
            name=name,
            version=version,
            y=trained.y_train,
            feature_names=trained.features,
        )
    except PackError as e:
        raise RetrainError(f"cannot pack the model: {one_line(e)}") from e
    except OSError as e:
        raise RetrainError(f"cannot write the bundle in {staging}: {e.strerror or e}") from e
    try:
        (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        staging.chmod(0o755)  # mkdtemp makes it private; runtimes may read it as another user
        old = None
        if final.exists():  # only with --force
            old = Path(tempfile.mkdtemp(prefix=".retrain-old-", dir=final.parent))
            final.rename(old / final.name)
        staging.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise RetrainError(f"cannot write the bundle {final}: {e.strerror or e}") from e
    try:
        verify_bundle(final, manifest.sha256)
    except ModelLoadError as e:
        raise RetrainError(f"the bundle written to {final} does not verify: {one_line(e)}") from e
    return manifest


def write_result(path: Path, result: dict[str, str]) -> None:
    text = json.dumps(result, separators=(", ", ": ")) + "\n"
    if len(text.encode()) > MAX_RESULT_BYTES:
        raise RetrainError(
            f"the result is {len(text.encode())} bytes, more than the {MAX_RESULT_BYTES} a "
            "termination message holds: use a shorter --output-dir or --uri-base"
        )
    try:
        with path.open("w") as f:
            f.write(text)
    except OSError as e:
        raise RetrainError(f"cannot write the result file {path}: {e.strerror or e}") from e


def parse_time(value: str, what: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        log(f"  {what} {value!r} is not an RFC 3339 time: ignored")
        return None


# ---------------------------------------------------------------- main


def run(args: argparse.Namespace, ctx: Context) -> dict[str, str]:
    from serinus_runtime.bundle import VERSION_PATTERN, is_valid_name

    started = dt.datetime.now(dt.UTC)
    log(f"retrain: {ctx.reason or 'no reason given (SERINUS_RETRAIN_REASON is empty)'}")
    if ctx.trigger:
        log(f"  trigger: {ctx.trigger}")
    current = ctx.model_version or "-"
    log(f"  current model: {ctx.model_uri or '-'} (version {current}, "
        f"sha256 {ctx.model_sha256[:12] or '-'})")  # fmt: skip
    start = parse_time(ctx.window_start, "SERINUS_WINDOW_START")
    end = parse_time(ctx.window_end, "SERINUS_WINDOW_END")
    if start and end:
        log(f"  alarm window: {ctx.window_start} .. {ctx.window_end} ({end - start} long)")
    if ctx.prometheus:
        log(f"  prometheus: {ctx.prometheus} (not queried by this example)")

    name = args.name or args.dataset
    if not is_valid_name(name):
        raise RetrainError(
            f"model name {name!r} must be lower-case letters, digits, '.', '_' or '-'"
        )
    if args.version is not None and not re.match(VERSION_PATTERN, args.version):
        raise RetrainError(
            f"version {args.version!r} must be letters, digits, '.', '_' or '-' (max 63), "
            "starting and ending with a letter or digit"
        )
    check_result_file(ctx.result_file)
    out = Path(args.output_dir).expanduser().absolute()
    staging = prepare_output_dir(out)
    try:
        version = args.version or derived_version(ctx.model_version, out, name, started)
        final = out / f"{name}-v{version}"
        if final.exists() and not args.force:
            raise RetrainError(
                f"{final} already exists: pass another --version, or --force to replace it"
            )

        x, y, features = load_dataset(args.dataset)
        serving = current_features(ctx.model_uri)
        if serving is not None:
            cur_name, cur_features, cur_classes = serving
            if cur_features and list(features) != cur_features:
                raise RetrainError(
                    f"the current model {cur_name!r} takes features {', '.join(cur_features)}; "
                    f"the {args.dataset} data has {', '.join(features)}: not a drop-in "
                    "replacement, pick the matching --dataset"
                )
            if cur_classes is not None and sorted(map(str, cur_classes)) != sorted(set(y)):
                log(f"  note: the current model's classes differ: {cur_classes}")
        log(f"training on {args.dataset} (seed {args.seed}) as {name} version {version}")
        trained = train(x, y, features, args.seed)
        log(f"  hold-out accuracy {trained.accuracy:.3f} on {trained.holdout_rows} rows, "
            f"trained on {len(trained.y_train)}")  # fmt: skip
        if trained.accuracy < args.min_accuracy:
            raise RetrainError(
                f"hold-out accuracy {trained.accuracy:.3f} is below --min-accuracy "
                f"{args.min_accuracy:g}: not reporting this model"
            )

        provenance = {
            "reason": ctx.reason,
            "trigger": ctx.trigger or None,
            "window": {"start": ctx.window_start or None, "end": ctx.window_end or None},
            "previous": {
                "uri": ctx.model_uri or None,
                "sha256": ctx.model_sha256 or None,
                "version": ctx.model_version or None,
            },
            "dataset": args.dataset,
            "seed": args.seed,
            "holdout_accuracy": trained.accuracy,
            "holdout_rows": trained.holdout_rows,
            "trained_at": started.replace(microsecond=0).isoformat(),
        }
        manifest = pack_bundle(
            trained, staging, final, name=name, version=version, provenance=provenance
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    if manifest.trusted_types:
        log(f"  note: the runtime must trust {', '.join(manifest.trusted_types)}")
    uri = f"{args.uri_base.rstrip('/')}/{final.name}" if args.uri_base else str(final)
    result = {"uri": uri, "sha256": manifest.sha256, "version": version}
    log(f"packed {final}")
    log(f"  sha256 {manifest.sha256}")
    write_result(ctx.result_file, result)
    log(f"  wrote {json.dumps(result)} to {ctx.result_file}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 with a usage line on a bad option
    try:
        try:
            import serinus_runtime  # noqa: F401
        except ImportError:
            raise RetrainError(
                "serinus_runtime is not installed: use the runtime image, or pip install serinus"
            ) from None
        run(args, Context.from_env(os.environ))
    except RetrainError as e:
        return fail(str(e))
    except Exception as e:  # a bug or an unexpected library error: the trace, then one line
        traceback.print_exc()
        return fail(f"{type(e).__name__}: {e}")
    return 0


def fail(message: str) -> int:
    """The last line of the log: Kubernetes shows it as the termination message (with
    terminationMessagePolicy FallbackToLogsOnError) since no result was written."""
    sys.stdout.flush()
    print(f"retrain: error: {one_line(message)}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
