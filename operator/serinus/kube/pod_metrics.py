"""Runtime pods' /metrics read through the API server's pod proxy (the `scrape` provider's source).

The proxy works wherever the operator runs (in the cluster or on a laptop with a kubeconfig) and
needs only `get` on `pods/proxy` in the deployment's namespace.
"""

from __future__ import annotations

import json

import kubernetes
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from serinus.metrics.provider import ScrapeError
from serinus.traffic import naming


def _why(error: Exception) -> str:
    """The API server's own message (e.g. why the pod proxy could not connect)."""
    body = getattr(error, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message", body))[:300]
        except (ValueError, AttributeError):
            return str(body)[:300]
    return str(getattr(error, "reason", None) or error)


class PodMetricsSource:
    def __init__(
        self, api_client: kubernetes.client.ApiClient, namespace: str, name: str, port: int
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.port = port

    def scrape(self, revision: str) -> dict[str, str]:
        selector = ",".join(f"{k}={v}" for k, v in naming.selector_for(self.name, revision).items())
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        except (ApiException, HTTPError) as error:
            raise ScrapeError(f"cannot list pods of revision {revision}: {error}") from error
        texts, failures = {}, []
        for pod in pods:
            if not pod.status or pod.status.phase != "Running":
                continue
            try:
                texts[pod.metadata.name] = self.core.connect_get_namespaced_pod_proxy_with_path(
                    f"{pod.metadata.name}:{self.port}", self.namespace, "metrics"
                )
            except (ApiException, HTTPError) as error:
                failures.append(f"{pod.metadata.name}: {_why(error)}")
        if not texts:
            detail = "; ".join(failures) or "no running pod"
            raise ScrapeError(f"no /metrics from revision {revision} in {self.namespace}: {detail}")
        return texts
