"""A real control plane (etcd + kube-apiserver + kube-controller-manager) from ../shared/kube."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENVTEST = Path(os.environ.get("SERINUS_ENVTEST", ROOT.parent / "shared" / "kube" / "envtest.sh"))


@pytest.fixture(scope="session")
def envtest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A freshly started control plane; yields its directory (admin kubeconfig inside)."""
    if not ENVTEST.exists():
        pytest.fail(
            f"{ENVTEST} is missing: the end-to-end tests need ../shared/kube beside the repo"
        )
    if shutil.which("etcd") is None and os.geteuid() != 0:
        pytest.skip("etcd is not installed and we are not root to install it (run ./dev setup)")
    workdir = tmp_path_factory.mktemp("envtest")
    started = subprocess.run(
        ["bash", str(ENVTEST), "start", str(workdir)], capture_output=True, text=True, timeout=180
    )
    try:
        assert started.returncode == 0, (
            f"envtest did not start:\n{started.stdout}\n{started.stderr}"
        )
        yield workdir
    finally:
        subprocess.run(
            ["bash", str(ENVTEST), "stop", str(workdir)], capture_output=True, timeout=60
        )


@pytest.fixture(scope="session")
def kube_api(envtest: Path) -> Iterator[kubernetes.client.ApiClient]:
    """An ApiClient with the control plane's admin token."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(envtest / "kubeconfig"), client_configuration=configuration
    )
    with kubernetes.client.ApiClient(configuration) as client:
        yield client


@pytest.fixture
def namespace(kube_api: kubernetes.client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
