"""`serinus local ...`: one ModelDeployment on this machine, no cluster.

`up` runs the controller in the foreground (live progress; Ctrl-C stops every child process and
keeps the state, so the next `up` resumes the rollout). The other commands only touch the state
directory, as kubectl only touches the API server: `apply` stores a manifest, the action
commands set the action annotation, `status` reads what the controller wrote.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console

from serinus.api.resource import API_VERSION, KIND
from serinus.api.rules import check_manifest
from serinus.api.status import ActionKind, ModelDeploymentStatus
from serinus.local.state import DEFAULT_STATE_DIR, StateDir, StateError, resolve_local_paths

if TYPE_CHECKING:
    from serinus.dashboard.server import DashboardServer
    from serinus.local.controller import LocalController

local_app = typer.Typer(
    name="local",
    help="Run a ModelDeployment on this machine: processes, a router, the same engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StateOption = Annotated[
    Path,
    typer.Option("--state-dir", help="Where the ModelDeployment and its status are kept."),
]
FileOption = Annotated[
    Path | None, typer.Option("-f", "--filename", help="ModelDeployment manifest (YAML).")
]
PrometheusOption = Annotated[
    bool | None,
    typer.Option(
        "--prometheus/--no-prometheus",
        help="Real Prometheus for the analysis (default: when the binary is on PATH).",
    ),
]
LiveOption = Annotated[
    bool | None, typer.Option("--live/--no-live", help="Live view (default: on a terminal).")
]
DashboardPortOption = Annotated[
    int,
    typer.Option(
        "--dashboard-port", min=0, help="Port of the read-only web dashboard (0 turns it off)."
    ),
]
DashboardHostOption = Annotated[
    str,
    typer.Option(
        "--dashboard-host",
        help="Address the dashboard binds; the default keeps it to this machine.",
    ),
]
DEFAULT_DASHBOARD_PORT = 8090
DEFAULT_DASHBOARD_HOST = "127.0.0.1"


class Stop(Exception):
    """SIGTERM or SIGHUP: leave the loop as Ctrl-C does."""


def read_manifest(path: Path) -> dict[str, Any]:
    """The one ModelDeployment in `path`, its relative paths made absolute, checked like an API
    server would (schema and CEL rules); raises StateError saying what is wrong."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as error:
        raise StateError(f"cannot read {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise StateError(f"{path} is not valid YAML: {error}") from error
    found = [d for d in documents if isinstance(d, dict) and d.get("kind") == KIND]
    if len(found) != 1:
        raise StateError(
            f"{path} holds {len(found)} {KIND} documents ({API_VERSION}); local mode runs one "
            "per state directory"
        )
    manifest = resolve_local_paths(found[0], path.resolve().parent)
    problems = check_manifest(manifest)
    if problems:
        lines = "\n  ".join(str(p) for p in problems)
        raise StateError(f"{path} is not a valid {KIND}; nothing was applied:\n  {lines}")
    return manifest


def apply_file(state: StateDir, path: Path) -> None:
    stored, changed = state.apply(read_manifest(path))
    what = f"generation {stored.generation}" if changed else "unchanged"
    out.print(f"{KIND} {stored.name} applied ({what})")


def _fail(error: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {error}")
    return typer.Exit(code=1)


@local_app.command("apply")
def apply_command(filename: FileOption = None, state_dir: StateOption = DEFAULT_STATE_DIR) -> None:
    """Store a ModelDeployment; a running `serinus local up` acts on it at its next tick."""
    if filename is None:
        raise _fail(StateError("give the manifest with -f FILE"))
    try:
        apply_file(StateDir(state_dir), filename)
    except StateError as error:
        raise _fail(error) from error


@local_app.command("up")
def up_command(
    filename: FileOption = None,
    state_dir: StateOption = DEFAULT_STATE_DIR,
    port: Annotated[int, typer.Option(help="Router port: clients send requests here.")] = 8080,
    prometheus: PrometheusOption = None,
    tick: Annotated[float, typer.Option(help="Seconds between two looks.", min=0.1)] = 1.0,
    live: LiveOption = None,
    dashboard_port: DashboardPortOption = DEFAULT_DASHBOARD_PORT,
    dashboard_host: DashboardHostOption = DEFAULT_DASHBOARD_HOST,
) -> None:
    """Start (or resume) the ModelDeployment here and drive it until Ctrl-C."""
    state = StateDir(state_dir)
    try:
        if filename is not None:
            apply_file(state, filename)
        elif state.read_desired() is None:
            raise StateError(f"nothing applied in {state_dir} yet: give the manifest with -f FILE")
    except StateError as error:
        raise _fail(error) from error
    run(
        state, port=port, prometheus=prometheus, tick=tick, live=live,
        dashboard_port=dashboard_port, dashboard_host=dashboard_host,
    )  # fmt: skip


def run(
    state: StateDir,
    *,
    port: int,
    prometheus: bool | None,
    tick: float,
    live: bool | None,
    on_tick: Callable[[LocalController], bool] | None = None,
    dashboard_port: int = 0,
    dashboard_host: str = DEFAULT_DASHBOARD_HOST,
) -> ModelDeploymentStatus:
    """The controller loop of `up` (and of the demo): returns the last status. `on_tick` is
    called after every tick (the demo applies its next version from it) and ends the loop by
    returning True. `dashboard_port` (0: none) serves the read-only dashboard meanwhile."""
    # Imported here: `serinus operator` shares this CLI and should not pay for local mode.
    from rich.live import Live
    from rich.logging import RichHandler

    from serinus.local.controller import LocalController

    # Imported here: `serinus operator` shares this CLI and should not pay for local mode.
    from serinus.local.display import format_event, render
    from serinus.local.processes import FleetError
    from serinus.local.prometheus import PrometheusError

    logging.basicConfig(
        level=logging.WARNING, handlers=[RichHandler(console=err, show_path=False)], force=True
    )
    live = out.is_terminal if live is None else live
    printer = None if live else (lambda event: out.print(format_event(event)))
    controller = LocalController(state, router_port=port, prometheus=prometheus, on_event=printer)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    dashboard = None
    try:
        controller.start()
        desired = state.read_desired()
        name = desired.name if desired else "MODEL"
        out.print(
            f"serving {name} at {controller.router.url}/v2/models/{name}/infer "
            f"(analysis metrics: {controller.record.provider})"
        )
        dashboard = _start_dashboard(controller, name, dashboard_host, dashboard_port)
        view = Live(console=out, refresh_per_second=4, transient=False) if live else None
        if view is not None:
            view.start()
        try:
            while True:
                controller.tick()
                if view is not None:
                    view.update(render(state.read_desired(), controller.record))
                if on_tick is not None and on_tick(controller):
                    break
                time.sleep(tick)
        finally:
            if view is not None:
                view.stop()
    except (KeyboardInterrupt, Stop):
        out.print("stopping: every child process is stopped; `serinus local up` resumes")
    except (StateError, FleetError, PrometheusError, OSError) as error:
        raise _fail(error) from error
    finally:
        if dashboard is not None:
            dashboard.stop()
        controller.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return controller.status


def _start_dashboard(
    controller: LocalController, name: str, host: str, port: int
) -> DashboardServer | None:
    """The dashboard over this controller's decisions; a port that cannot be bound is a
    warning (the rollout matters more than its picture)."""
    if not port:
        return None
    from serinus.dashboard.server import DashboardServer
    from serinus.dashboard.timeline import Timeline
    from serinus.local.controller import NAMESPACE

    if controller.timeline is None:
        controller.timeline = Timeline()
    try:
        server = DashboardServer(controller.timeline, host=host, port=port, title="Serinus local")
        server.start()
    except OSError as error:
        err.print(
            f"[yellow]warning:[/yellow] no dashboard: cannot listen on {host}:{port} "
            f"({error.strerror or error}); choose another --dashboard-port, or 0 for none"
        )
        return None
    out.print(f"dashboard (read-only) at {server.url}/md/{NAMESPACE}/{name}")
    if not server.loopback_only:
        err.print(
            f"[yellow]warning:[/yellow] the dashboard listens on {host}: other machines can "
            "read this deployment's status (it has no login)"
        )
    return server


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


@local_app.command("status")
def status_command(
    state_dir: StateOption = DEFAULT_STATE_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="The stored status as JSON.")] = False,
) -> None:
    """Phase, weights, traffic per variant, the last verdicts, Events and history."""
    state = StateDir(state_dir)
    try:
        desired, record = state.read_desired(), state.read_controller()
    except StateError as error:
        raise _fail(error) from error
    if as_json:
        out.print_json(data=record.status)
        return
    from serinus.local.display import render

    out.print(render(desired, record))


def _act(state_dir: Path, action: ActionKind) -> None:
    try:
        value = StateDir(state_dir).request_action(action.value)
    except StateError as error:
        raise _fail(error) from error
    out.print(f"asked for {action.value} ({value}); the controller acts on it at its next tick")


@local_app.command("promote")
def promote_command(
    state_dir: StateOption = DEFAULT_STATE_DIR,
    full: Annotated[bool, typer.Option("--full", help="Skip the remaining steps.")] = False,
) -> None:
    """Move the canary to its next step now (--full: make it stable now)."""
    _act(state_dir, ActionKind.PROMOTE_FULL if full else ActionKind.PROMOTE)


@local_app.command("abort")
def abort_command(state_dir: StateOption = DEFAULT_STATE_DIR) -> None:
    """Roll the canary back; stable keeps serving."""
    _act(state_dir, ActionKind.ABORT)


@local_app.command("retry")
def retry_command(state_dir: StateOption = DEFAULT_STATE_DIR) -> None:
    """Start the failed or rolled-back version's rollout again."""
    _act(state_dir, ActionKind.RETRY)


@local_app.command("pause")
def pause_command(state_dir: StateOption = DEFAULT_STATE_DIR) -> None:
    """Hold the rollout at its current weight."""
    _act(state_dir, ActionKind.PAUSE)


@local_app.command("resume")
def resume_command(state_dir: StateOption = DEFAULT_STATE_DIR) -> None:
    """Continue a paused rollout."""
    _act(state_dir, ActionKind.RESUME)
