"""Fetch a model file or a bundle from a URI into memory (nothing is written to disk).

URIs: plain paths and `file://`, `http://` / `https://`, `s3://bucket/key` (optional extra
`serinus[s3]`, boto3; honours AWS_ENDPOINT_URL and the usual AWS credential chain).
A URI whose last segment has a model extension (.skops, .onnx, .joblib, .pkl, .pickle) is a single
model file; one naming `serinus.json` or anything else is a bundle directory holding serinus.json.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from serinus_runtime.errors import BundleError, ModelLoadError
from serinus_runtime.formats import EXTENSIONS

MANIFEST_FILE = "serinus.json"
HTTP_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a URI held: the model bytes, plus serinus.json and profile bytes for a bundle."""

    source: str  # the URI of the model file, for messages
    model_file: str  # its base name
    model: bytes
    manifest: bytes | None = None
    profile: bytes | None = None
    location: str = ""  # bundle base URI (or the file's URI)


class _Store(Protocol):
    def describe(self, rel: str) -> str: ...
    def read(self, rel: str) -> bytes: ...  # raises FileNotFoundError when absent


def fetch(uri: str) -> Fetched:
    """Read the model (and bundle files) that `uri` points to."""
    store, rel = _store_for(uri)
    if rel is not None:  # a single model file
        return Fetched(
            source=store.describe(rel),
            model_file=rel,
            model=_read(store, rel, "model file"),
            location=store.describe(rel),
        )
    manifest = _read(store, MANIFEST_FILE, "bundle manifest")
    from serinus_runtime.bundle import parse_manifest  # late: keeps pydantic off light paths

    m = parse_manifest(manifest, store.describe(MANIFEST_FILE))
    profile = None
    if m.profile_file:
        profile = _read(store, m.profile_file, "reference profile")
    return Fetched(
        source=store.describe(m.model_file),
        model_file=m.model_file,
        model=_read(store, m.model_file, "model file"),
        manifest=manifest,
        profile=profile,
        location=store.describe(""),
    )


def _read(store: _Store, rel: str, what: str) -> bytes:
    try:
        return store.read(rel)
    except FileNotFoundError as e:
        raise BundleError(f"{what} not found: {store.describe(rel)}") from e
    except ModelLoadError:
        raise
    except Exception as e:  # network, permissions ...
        raise ModelLoadError(f"cannot read {store.describe(rel)}: {type(e).__name__}: {e}") from e


def _is_model_name(name: str) -> bool:
    return any(name.lower().endswith(ext) for ext in EXTENSIONS)


def _store_for(uri: str) -> tuple[_Store, str | None]:
    """(store rooted at the bundle dir or the file's dir, file name if a single model file)."""
    if not uri:
        raise ModelLoadError("no model URI given: pass --model-uri or set SERINUS_MODEL_URI")
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        path = Path(urllib.parse.unquote(parsed.path) if scheme == "file" else uri)
        if path.is_dir():
            if not (path / MANIFEST_FILE).is_file():
                raise BundleError(
                    f"{path} is a directory without {MANIFEST_FILE}: point --model-uri at a bundle "
                    "made by `serinus pack` or at a model file (.skops, .onnx, .joblib)"
                )
            return _LocalStore(path), None
        if path.name == MANIFEST_FILE:
            return _LocalStore(path.parent), None
        if not path.exists():
            raise ModelLoadError(f"model not found: {path} does not exist")
        return _LocalStore(path.parent), path.name
    if scheme in ("http", "https"):
        base, name = _split_remote(parsed.path)
        root = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, base, "", ""))
        return _HttpStore(root, parsed.query), name
    if scheme == "s3":
        if not parsed.netloc:
            raise ModelLoadError(f"s3 URI {uri!r} has no bucket: use s3://bucket/key")
        base, name = _split_remote(parsed.path)
        return _S3Store(parsed.netloc, base.lstrip("/")), name
    raise ModelLoadError(
        f"unsupported model URI scheme {scheme!r} in {uri!r}: use a path, file://, "
        "http(s):// or s3://"
    )


def _split_remote(path: str) -> tuple[str, str | None]:
    """(directory path ending in '/', model file name or None for a bundle)."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if path.endswith("/") or not last:
        return path if path.endswith("/") else path + "/", None
    parent = path[: len(path) - len(last)]
    if _is_model_name(last):
        return parent, last
    if last == MANIFEST_FILE:
        return parent, None
    return path + "/", None


class _LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self, rel: str) -> str:
        return str(self.root / rel) if rel else str(self.root)

    def read(self, rel: str) -> bytes:
        _check_rel(rel)
        return (self.root / rel).read_bytes()


class _HttpStore:
    def __init__(self, root: str, query: str) -> None:
        self.root = root
        self.query = query  # e.g. a presigned-URL signature, kept on the model file request

    def describe(self, rel: str) -> str:
        return self.root + rel

    def read(self, rel: str) -> bytes:
        _check_rel(rel)
        url = self.root + urllib.parse.quote(rel)
        if self.query:
            url += "?" + self.query
        req = urllib.request.Request(url, headers={"User-Agent": "serinus-runtime"})
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise FileNotFoundError(url) from e
            raise ModelLoadError(f"GET {self.root + rel} answered HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:
            raise ModelLoadError(f"cannot reach {self.root + rel}: {e.reason}") from e


class _S3Store:
    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix
        try:
            import boto3
        except ImportError as e:
            raise ModelLoadError(
                "s3:// model URIs need boto3: install the `serinus[s3]` extra"
            ) from e
        self.client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)

    def describe(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{rel}"

    def read(self, rel: str) -> bytes:
        _check_rel(rel)
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self.prefix + rel)
            return obj["Body"].read()
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(self.describe(rel)) from e
            raise ModelLoadError(f"cannot read {self.describe(rel)}: {code or e}") from e
        except BotoCoreError as e:
            raise ModelLoadError(f"cannot read {self.describe(rel)}: {e}") from e


def _check_rel(rel: str) -> None:
    # Names inside a bundle come from serinus.json: never let them climb out of the bundle.
    if rel.startswith("/") or ".." in rel.split("/") or "\\" in rel:
        raise BundleError(f"bundle file name {rel!r} must be a plain name inside the bundle")
