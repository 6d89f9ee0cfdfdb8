"""`serinus demo`: the whole loop on this machine in a few minutes.

Builds the four iris versions (`bundles.py`), serves v1 through `serinus local`'s controller,
sends steady traffic from the bounded load generator, then applies v2 (good: promoted), v3
(skewed predictions: rolled back by prediction-drift) and v4 (errors on some inputs: rolled back
by error-rate), one after the other, each as a new manifest — exactly what a user does with
`serinus local apply`. Ends with a summary of every decision and what the clients saw.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from serinus.api.resource import API_VERSION, KIND
from serinus.api.status import ModelDeploymentStatus, Phase, RolloutResult
from serinus.demo.bundles import FEATURES, MODEL_NAME, DemoBundles, DemoModel, build_demo_bundles
from serinus.local.cli import run
from serinus.local.controller import LocalController
from serinus.local.load import LoadGenerator, LoadStats, rows_from_profile
from serinus.local.state import StateDir

out = Console(highlight=False, soft_wrap=True)

INTERVAL = "5s"
REQUESTS_PER_SECOND = 80.0
SETTLED = {Phase.STABLE, Phase.ROLLED_BACK, Phase.FAILED}


def demo_manifest(model: DemoModel) -> dict[str, Any]:
    """A ModelDeployment for one demo version: short intervals so a rollout takes ~30 s."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": MODEL_NAME},
        "spec": {
            "model": {
                "uri": str(model.bundle),
                "version": model.version,
                "sha256": model.sha256,
                "trustedTypes": model.trusted_types,
            },
            "validation": {
                "smoke": [{"inputs": [[5.1, 3.5, 1.4, 0.2]], "expect": ["setosa"]}],
            },
            "rollout": {
                "interval": INTERVAL,
                "steps": [
                    {"setWeight": 30},
                    {"analysis": {"passes": 1}},
                    {"setWeight": 60},
                    {"analysis": {"passes": 1}},
                ],
                "analysis": {
                    "minRequests": 50,
                    "failureLimit": 1,
                    "metrics": [
                        {"name": "error-rate", "max": 0.05},
                        {"name": "latency-p99", "maxRatioToStable": 2.0},
                        {"name": "prediction-drift", "max": 0.1},
                    ],
                },
            },
        },
    }


@dataclass
class DemoScript:
    """Applies the next version whenever the previous one has settled."""

    state: StateDir
    bundles: DemoBundles
    rate: float = REQUESTS_PER_SECOND
    step: int = 0
    load: LoadGenerator | None = None
    stats: LoadStats | None = None
    results: list[tuple[DemoModel, ModelDeploymentStatus]] = field(default_factory=list)

    def __call__(self, controller: LocalController) -> bool:
        status = controller.status
        version = self.bundles.versions[self.step]
        if not self._settled_on(version, status):
            return False
        self.results.append((version, status.model_copy(deep=True)))
        if self.load is None:
            self._start_load(controller)
        self.step += 1
        if self.step == len(self.bundles.versions):
            self.stats = self.load.stop() if self.load is not None else None
            return True
        following = self.bundles.versions[self.step]
        out.print(f"[bold]→ v{following.version}[/bold]: {following.description}")
        self.state.apply(demo_manifest(following))
        return False

    def _settled_on(self, version: DemoModel, status: ModelDeploymentStatus) -> bool:
        last = status.history[-1] if status.history else None
        # A rolled-back canary stays in the status (for a retry); the history says it ended.
        return status.phase in SETTLED and last is not None and last.version == version.version

    def _start_load(self, controller: LocalController) -> None:
        rows = rows_from_profile(self.bundles.v1.bundle, n=500, seed=0)
        self.load = LoadGenerator(
            controller.router.url, MODEL_NAME, rows, self.rate, concurrency=4,
            features=list(FEATURES), seed=0,
        ).start()  # fmt: skip
        out.print(f"traffic: {self.rate:g} requests/s to {controller.router.url}")


def run_demo(
    workdir: Path | None = None,
    *,
    port: int = 8080,
    prometheus: bool | None = None,
    live: bool | None = None,
    rate: float = REQUESTS_PER_SECOND,
    dashboard_port: int = 0,
) -> tuple[DemoScript, LoadStats | None]:
    """Runs the demo; returns the script (versions and their final status) and the traffic."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="serinus-demo-"))
    out.print(f"building four iris versions in {workdir / 'bundles'}")
    bundles = build_demo_bundles(workdir / "bundles")
    state = StateDir(workdir / "state")
    state.apply(demo_manifest(bundles.v1))
    script = DemoScript(state=state, bundles=bundles, rate=rate)
    out.print(f"[bold]→ v1[/bold]: {bundles.v1.description}")
    try:
        run(
            state, port=port, prometheus=prometheus, tick=0.5, live=live, on_tick=script,
            dashboard_port=dashboard_port,
        )  # fmt: skip
    finally:
        if script.stats is None and script.load is not None:
            script.stats = script.load.stop()
    print_summary(script, script.stats)
    return script, script.stats


def print_summary(script: DemoScript, stats: LoadStats | None) -> None:
    table = Table(title="what happened", title_justify="left")
    for column in ("version", "expected", "result", "why"):
        table.add_column(column)
    for model, status in script.results:
        last = status.history[-1] if status.history else None
        expected = f"rolled back by {model.caught_by}" if model.caught_by else "promoted"
        result = last.result.value if last else status.phase.value
        why = last.reason.split(" — ", 1)[-1] if last else ""  # the verdict, not the policy
        table.add_row(f"v{model.version}", expected, result, why)
    out.print(table)
    if stats is not None:
        stable = stats.by_variant.get("stable", {})
        canary = stats.by_variant.get("canary", {})
        out.print(
            f"clients: {stats.sent} requests; stable answered {sum(stable.values())} "
            f"({_server_errors(stable)} 5xx), canaries {sum(canary.values())} "
            f"({_server_errors(canary)} 5xx)"
        )


def _server_errors(by_status: dict[int, int]) -> int:
    return sum(n for code, n in by_status.items() if code >= 500)


def outcome_as_expected(script: DemoScript) -> bool:
    """Every version ended as the demo says it should."""
    if len(script.results) != len(script.bundles.versions):
        return False
    for model, status in script.results:
        last = status.history[-1]
        wanted = RolloutResult.PROMOTED if model.caught_by is None else RolloutResult.ROLLED_BACK
        if last.result != wanted:
            return False
    return True
