"""Metrics sources for the scrape provider that read runtime processes over plain HTTP.

`ProcessMetricsSource` serves local mode and tests: runtime processes on this machine, found by
revision. (Pods in Kubernetes are read through the API server's proxy: serinus.kube.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx

from serinus.metrics.provider import ScrapeError

log = logging.getLogger(__name__)


class ProcessMetricsSource:
    """Reads `<url>/metrics` of each runtime process of a revision; the process's id is its URL.

    `urls_by_revision` gives the base URLs (e.g. http://127.0.0.1:8081) serving a revision,
    [] for none. Processes that do not answer are left out (logged); ScrapeError only when
    none of a revision's processes answered."""

    def __init__(self, urls_by_revision: Callable[[str], list[str]], timeout: float = 2.0) -> None:
        self.urls_by_revision = urls_by_revision
        self._client = httpx.Client(timeout=timeout)

    def scrape(self, revision: str) -> dict[str, str]:
        urls = self.urls_by_revision(revision)
        texts: dict[str, str] = {}
        failures: list[str] = []
        for url in urls:
            base = url.rstrip("/")
            try:
                response = self._client.get(f"{base}/metrics")
                response.raise_for_status()
            except httpx.HTTPError as problem:
                failures.append(f"{base}/metrics: {problem or type(problem).__name__}")
                continue
            texts[base] = response.text
        if failures and not texts:
            raise ScrapeError(
                f"no runtime process of revision {revision} answered: {'; '.join(failures)}: "
                "check that they are running"
            )
        for failure in failures:
            log.warning("left out of revision %s's metrics: %s", revision, failure)
        return texts

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ProcessMetricsSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
