"""What `serinus local status` prints and `serinus local up` keeps live: rich renderables built
from the state files alone (the status, the router's counts, the last analysis window)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from serinus.api.status import Check, ModelDeploymentStatus, MonitoringStatus, Verdict
from serinus.core.judge import format_seconds
from serinus.core.stats import histogram_quantile, histogram_total
from serinus.core.window import AnalysisWindow, VariantWindow
from serinus.local.state import ControllerState, DesiredState, LocalEvent
from serinus.traffic import naming

VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.INCONCLUSIVE: "yellow"}
PHASE_STYLE = {
    "Stable": "green",
    "Progressing": "cyan",
    "Validating": "cyan",
    "Promoting": "green",
    "RollingBack": "red",
    "RolledBack": "red",
    "Failed": "bold red",
    "Degraded": "bold red",
    "Paused": "yellow",
}
EVENTS_SHOWN = 6


def render(desired: DesiredState | None, record: ControllerState) -> RenderableType:
    """The local view: the status plus what only local mode knows (router counts, Events)."""
    if desired is None:
        return Text("nothing applied yet: serinus local apply -f FILE")
    status = ModelDeploymentStatus.model_validate(record.status or {})
    return render_status(desired.name, status, record)


def render_status(
    name: str,
    status: ModelDeploymentStatus,
    record: ControllerState | None = None,
    events: list[LocalEvent] | None = None,
) -> RenderableType:
    """Phase, versions and weight, the last check's verdicts, Events and history; with a local
    `record`, also where things run and the traffic per variant."""
    parts: list[RenderableType] = [_headline(name, status, record)]
    if record is not None:
        parts.append(_variants(status, record))
    if status.analysis.checks:
        parts.append(_check_table(status.analysis.checks[-1]))
    if status.monitoring is not None and status.monitoring.results:
        parts.append(_monitoring_table(status.monitoring))
    shown = events if events is not None else (record.events if record is not None else [])
    if shown:
        parts.append(_events(shown[-EVENTS_SHOWN:]))
    if status.history:
        parts.append(_history(status))
    return Group(*parts)


def _headline(
    name: str, status: ModelDeploymentStatus, record: ControllerState | None
) -> RenderableType:
    phase = status.phase.value
    line = Text.assemble(
        (name, "bold"),
        "  ",
        (phase, PHASE_STYLE.get(phase, "")),
        f"  {status.message}" if status.message else "",
    )
    facts = []
    if status.stable is not None:
        facts.append(f"stable v{status.stable.version or '?'} ({status.stable.revision})")
    if status.canary is not None:
        canary = status.canary
        facts.append(
            f"canary v{canary.version or '?'} ({canary.revision}) weight {canary.weight}% "
            f"step {canary.step}"
        )
    lines: list[RenderableType] = [line, Text("  ".join(facts), style="dim")]
    if record is not None:
        lines.append(Text("  ".join(_where(record)), style="dim"))
    return Group(*lines)


def _where(record: ControllerState) -> list[str]:
    where = []
    if record.router_url:
        where.append(f"router {record.router_url}")
    if record.provider:
        where.append(
            f"metrics {record.provider}"
            + (f" {record.prometheus_url}" if record.prometheus_url else "")
        )
    if not record.controller_pid:
        where.append("controller not running (serinus local up)")
    return where


def _variants(status: ModelDeploymentStatus, record: ControllerState) -> RenderableType:
    table = Table(title="traffic", title_justify="left", expand=False)
    for column in ("variant", "responses", "5xx", "window req", "err rate", "p99", "predictions"):
        table.add_column(
            column, justify="left" if column in ("variant", "predictions") else "right"
        )
    window = record.last_window
    for variant in (naming.STABLE, naming.CANARY):
        counts = record.traffic.get(variant, {})
        if not counts and (variant == naming.CANARY and status.canary is None):
            continue
        total = sum(counts.values())
        errors = sum(n for code, n in counts.items() if code >= 500)
        table.add_row(variant, str(total), str(errors), *_window_cells(window, variant))
    return table


def _window_cells(window: AnalysisWindow | None, variant: str) -> list[str]:
    observed: VariantWindow | None = getattr(window, variant, None) if window else None
    if observed is None:
        return ["-", "-", "-", "-"]
    rate = f"{observed.errors / observed.requests:.1%}" if observed.requests else "-"
    p99 = "-"
    buckets = observed.latency_buckets
    if buckets and histogram_total(buckets) > 0:
        p99 = format_seconds(histogram_quantile(0.99, buckets))
    return [str(observed.requests), rate, p99, _mix(observed.prediction_counts)]


def _mix(counts: Mapping[str, float] | None) -> str:
    if not counts:
        return "-"
    total = sum(counts.values())
    if total <= 0:
        return "-"
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    return " ".join(f"{label} {n / total:.0%}" for label, n in ranked[:4])


def _check_table(check: Check) -> RenderableType:
    verdict = check.verdict
    table = Table(
        title=Text.assemble(
            f"last check (step {check.step}, weight {check.weight}%): ",
            (verdict.value, VERDICT_STYLE[verdict]),
        ),
        title_justify="left",
    )
    for column in ("metric", "verdict", "reason"):
        table.add_column(column)
    for metric in check.metrics:
        table.add_row(
            metric.name, Text(metric.verdict.value, VERDICT_STYLE[metric.verdict]), metric.reason
        )
    return table


def _monitoring_table(monitoring: MonitoringStatus) -> RenderableType:
    """The stable version's last monitoring check, then its top drifting features."""
    at = monitoring.last_check_at.strftime("%H:%M:%S") if monitoring.last_check_at else "-"
    alarms = ", ".join(monitoring.alarms) or "no alarm"
    table = Table(title=f"monitoring (last check {at}): {alarms}", title_justify="left")
    for column in ("check", "verdict", "reason"):
        table.add_column(column)
    for result in monitoring.results:
        table.add_row(
            result.name, Text(result.verdict.value, VERDICT_STYLE[result.verdict]), result.reason
        )
    for drift in monitoring.top_drifters:
        mark = Text("drifted", VERDICT_STYLE[Verdict.FAIL]) if drift.drifted else Text("")
        table.add_row(f"  {drift.feature}", mark, f"PSI {drift.psi:.3g}, {drift.shift}")
    return table


def _events(events: list[LocalEvent]) -> RenderableType:
    lines = [format_event(event) for event in events]
    return Group(Text("events", style="bold"), *lines)


def format_event(event: LocalEvent) -> Text:
    style = "red" if event.type == "Warning" else ""
    return Text.assemble(
        (event.time.strftime("%H:%M:%S "), "dim"), (f"{event.reason}: ", style), event.message
    )


def _history(status: ModelDeploymentStatus) -> RenderableType:
    table = Table(title="history", title_justify="left")
    for column in ("version", "result", "reason"):
        table.add_column(column)
    for entry in status.history[-5:]:
        table.add_row(f"v{entry.version or '?'}", entry.result.value, entry.reason)
    return table
