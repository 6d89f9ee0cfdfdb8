"""The installed `serinus` and `kubectl-serinus` commands, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd,
        timeout=60,
    )


def test_crd_prints_the_committed_file():
    result = run("serinus", "crd")
    assert result.returncode == 0
    assert result.stdout == (ROOT / "crds/serinus.dev_modeldeployments.yaml").read_text()


def test_validate_accepts_a_good_manifest():
    result = run("serinus", "validate", "-f", str(ROOT / "examples/manifests/iris.yaml"))
    assert result.returncode == 0, result.stderr
    assert "1 ModelDeployment valid" in result.stdout


def test_validate_names_each_problem_with_its_field_path_and_fails():
    result = run("serinus", "validate", "-f", str(ROOT / "examples/manifests/invalid-joblib.yaml"))
    assert result.returncode == 1
    assert "(ModelDeployment risky): spec.model: format joblib (pickle)" in result.stderr
    assert "set model.sha256" in result.stderr
    assert "spec.rollout.steps: setWeight values must strictly increase" in result.stderr


def test_validate_reads_stdin_multi_document_and_skips_other_kinds():
    text = (ROOT / "examples/manifests/iris.yaml").read_text()
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    result = run("serinus", "validate", "-f", "-", stdin=f"{other}---\n{text}")
    assert result.returncode == 0, result.stderr
    assert "1 ModelDeployment valid" in result.stdout


def test_validate_reports_unreadable_and_broken_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    result = run("serinus", "validate", "-f", str(broken), "-f", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert f"{broken}: not valid YAML" in result.stderr
    assert "missing.yaml: cannot read it: No such file or directory" in result.stderr


def test_validate_of_a_file_without_modeldeployments_says_so(tmp_path):
    empty = tmp_path / "cm.yaml"
    empty.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = run("serinus", "validate", "-f", str(empty))
    assert result.returncode == 1
    assert "no ModelDeployment found" in result.stderr


def test_validate_walks_a_directory():
    result = run("serinus", "validate", "-f", str(ROOT / "examples/manifests"))
    assert result.returncode == 1  # the directory holds the invalid example too
    assert "risky" in result.stderr and "iris" not in result.stderr


def test_kubectl_plugin_validates_too():
    result = run("kubectl-serinus", "validate", "-f", str(ROOT / "examples/manifests/iris.yaml"))
    assert result.returncode == 0, result.stderr


def test_both_packages_import_from_any_directory(tmp_path):
    code = "import serinus, serinus_runtime, operator; print(operator.__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    stdlib_operator = result.stdout.strip()
    assert stdlib_operator.endswith("operator.py")  # the standard library's, never ours
    assert not stdlib_operator.startswith(str(ROOT))
