"""Validators for rendered chart objects: Kubernetes' own schemas for core kinds, the published
CRD schemas in ../shared/schemas (plus the chart's crds/) for everything else, and promtool."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from chart_helpers import CHART_DIR, SHARED_SCHEMAS

KUBERNETES_VERSION = "1.30.0"
CUSTOM_GROUPS = ("monitoring.coreos.com/", "kopf.dev/", "serinus.dev/")
"""apiVersion prefixes validated against CRD schemas; every other kind is a core kind."""


def _crd_store() -> Any:
    if not (SHARED_SCHEMAS / "validate_cr.py").exists():
        pytest.fail(
            f"{SHARED_SCHEMAS}/validate_cr.py is missing: ../shared must sit beside the repo"
        )
    sys.path.insert(0, str(SHARED_SCHEMAS))
    try:
        import validate_cr
    finally:
        sys.path.remove(str(SHARED_SCHEMAS))
    return validate_cr.CRDStore([SHARED_SCHEMAS, CHART_DIR / "crds"])


@pytest.fixture(scope="session")
def validate_object() -> Callable[[dict[str, Any]], list[str]]:
    """Errors of one rendered object ([] when valid), by the right validator for its kind."""
    store = _crd_store()

    def validate(obj: dict[str, Any]) -> list[str]:
        if obj["apiVersion"].startswith(CUSTOM_GROUPS):
            assert store.has_schema(obj), f"no CRD schema for {obj['apiVersion']} {obj['kind']}"
            return list(store.validate(obj))
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            return [f"{'.'.join(map(str, error.path))}: {error.message}"]
        return []

    return validate


@pytest.fixture(scope="session")
def promtool() -> str:
    """The real promtool (Debian package `prometheus`; ./dev setup installs it)."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: apt-get install prometheus (./dev setup)")
        pytest.skip("promtool is not installed (apt-get install prometheus; ./dev setup does)")
    return path


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str, Any], Path]:
    import yaml

    def write(name: str, data: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
