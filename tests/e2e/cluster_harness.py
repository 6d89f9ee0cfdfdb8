"""The operator as a real process against a real kube-apiserver, under least-privilege RBAC.

- `install_operator_rbac()` binds the chart's rules (charts/serinus/files/rbac-rules.yaml, the one
  source) to a ServiceAccount and writes a kubeconfig with that account's token.
- `OperatorProcess` runs `serinus operator` with it; every 403 shows up in its log.
- `Kubelet` plays the missing kubelet: pods of runtime Deployments become Running and Ready,
  pods of validation Jobs succeed (or fail) with a termination message.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "serinus" / "files" / "rbac-rules.yaml"
SERINUS = Path(sys.executable).parent / "serinus"


def rbac_rules(clusterwide: bool = True) -> list[dict[str, Any]]:
    """The chart's rules for an operator watching every namespace, with peering (the tests run
    two replicas); `clusterwide=False`: the namespaced rules alone."""
    rules = yaml.safe_load(RULES.read_text())
    if not clusterwide:
        return list(rules["namespaced"])
    return rules["namespaced"] + rules["clusterwide"] + rules["peeringClusterwide"]


def install_operator_rbac(
    api: kubernetes.client.ApiClient,
    namespace: str,
    admin_kubeconfig: Path,
    workdir: Path,
    rules: list[dict[str, Any]] | None = None,
    name: str = "serinus-operator",
) -> Path:
    """A ServiceAccount bound to the operator's ClusterRole; returns its kubeconfig."""
    core = kubernetes.client.CoreV1Api(api)
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    role_name = f"{name}-{namespace}"
    rbac.create_cluster_role(
        {"metadata": {"name": role_name}, "rules": rules if rules is not None else rbac_rules()}
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role_name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role_name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    return service_account_kubeconfig(
        api, admin_kubeconfig, namespace, name, workdir / f"{role_name}.kubeconfig"
    )


def service_account_kubeconfig(
    api: kubernetes.client.ApiClient, admin_kubeconfig: Path, namespace: str, name: str, path: Path
) -> Path:
    """A kubeconfig at `path` with the token of ServiceAccount `namespace/name` (which must
    exist: its token Secret is waited for)."""
    core = kubernetes.client.CoreV1Api(api)
    token = _service_account_token(core, namespace, name)
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]["server"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "envtest", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "envtest", "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _service_account_token(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        account = core.read_namespaced_service_account(name, namespace)
        for ref in account.secrets or []:
            secret = core.read_namespaced_secret(ref.name, namespace)
            if secret.data and "token" in secret.data:
                return base64.b64decode(secret.data["token"]).decode()
        time.sleep(0.2)
    raise AssertionError(f"no token Secret for ServiceAccount {namespace}/{name}")


class OperatorProcess:
    """`serinus operator` in its own process; its log is kept for assertions."""

    def __init__(self, kubeconfig: Path, log: Path, *args: str, **env: str) -> None:
        self.log_path = log
        self._log = log.open("w")
        given = any(arg == "--liveness" or arg.startswith("--liveness=") for arg in args)
        liveness = [] if given else ["--liveness", ""]
        self.proc = subprocess.Popen(
            [str(SERINUS), "operator", *liveness, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "KUBECONFIG": str(kubeconfig),
                "SERINUS_TICK_SECONDS": "0.5",
                "SERINUS_METRICS_PORT": "0",
                "SERINUS_DASHBOARD_PORT": "0",
                **env,
            },
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Kubelet(threading.Thread):
    """Marks pods Running/Ready (runtimes) or Succeeded/Failed (validation Jobs)."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True)
        self.core = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace
        self.validation_passes: Callable[[str], bool] = lambda _job: True
        self.hold: set[str] = set()  # revisions whose pods must stay unready
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                for pod in self.core.list_namespaced_pod(self.namespace).items:
                    self._play(pod)
            except ApiException:
                pass  # the namespace may be going away
            self._halt.wait(0.3)

    def _play(self, pod: Any) -> None:
        if pod.status and pod.status.phase not in (None, "Pending"):
            return
        labels = pod.metadata.labels or {}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        container = pod.spec.containers[0].name
        if "job-name" in labels:
            passed = self.validation_passes(labels["job-name"])
            state = {
                "terminated": {
                    "exitCode": 0 if passed else 1,
                    "reason": "Completed" if passed else "Error",
                    "message": "passed: 1 smoke requests answered as expected"
                    if passed
                    else "failed: smoke request 1: expected [0], got [2]",
                    "startedAt": now,
                    "finishedAt": now,
                }
            }
            status = {
                "phase": "Succeeded" if passed else "Failed",
                "containerStatuses": [_container_status(container, state, ready=False)],
            }
        elif labels.get("serinus.dev/revision") in self.hold:
            return
        else:
            status = {
                "phase": "Running",
                "podIP": "10.0.0.10",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                ],
                "containerStatuses": [
                    _container_status(container, {"running": {"startedAt": now}}, ready=True)
                ],
            }
        with contextlib.suppress(ApiException):  # deleted meanwhile
            self.core.patch_namespaced_pod_status(
                pod.metadata.name, self.namespace, {"status": status}
            )


def _container_status(name: str, state: dict[str, Any], ready: bool) -> dict[str, Any]:
    return {
        "name": name,
        "ready": ready,
        "restartCount": 0,
        "image": "serinus",
        "imageID": "serinus@sha256:" + "0" * 64,
        "state": state,
    }


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
