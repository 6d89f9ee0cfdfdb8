"""The chart's crds/: the generated ModelDeployment CRD and Kopf's peering CRDs, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
from chart_helpers import CHART_DIR, ROOT, chart_crd_files, chart_crds

SERINUS = Path(sys.executable).parent / "serinus"


def test_model_deployment_crd_is_what_serinus_crd_prints() -> None:
    printed = subprocess.run(
        [str(SERINUS), "crd"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    in_chart = (CHART_DIR / "crds" / "serinus.dev_modeldeployments.yaml").read_text()
    assert in_chart == printed, (
        "charts/serinus/crds is stale: run `serinus crd > "
        "charts/serinus/crds/serinus.dev_modeldeployments.yaml`"
    )


def test_chart_crds_are_the_repository_crds() -> None:
    repo = {path.name: path.read_text() for path in sorted((ROOT / "crds").glob("*.yaml"))}
    chart = {path.name: path.read_text() for path in sorted((CHART_DIR / "crds").glob("*.yaml"))}
    assert (
        sorted(chart)
        == sorted(repo)
        == [
            "kopf.dev_peerings.yaml",
            "serinus.dev_modeldeployments.yaml",
        ]
    )
    for name, text in repo.items():
        assert chart[name] == text, f"charts/serinus/crds/{name} differs from crds/{name}"


def test_helm_loads_every_crd_unchanged() -> None:
    loaded = chart_crd_files()
    assert sorted(loaded) == ["kopf.dev_peerings.yaml", "serinus.dev_modeldeployments.yaml"]
    for name, text in loaded.items():
        assert text == (CHART_DIR / "crds" / name).read_text()
    names = sorted(crd["metadata"]["name"] for crd in chart_crds())
    assert names == [
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
        "modeldeployments.serinus.dev",
    ]


def test_every_crd_is_a_valid_apiextensions_v1_object() -> None:
    for crd in chart_crds():
        kubernetes_validate.validate(crd, "1.30.0", strict=True)
