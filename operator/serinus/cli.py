"""The `serinus` command (also installed as `kubectl-serinus`, so `kubectl serinus ...` works)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from serinus import __version__
from serinus.api.crd import render_crd
from serinus.api.resource import API_VERSION, KIND
from serinus.api.rules import Problem, check_manifest
from serinus.local.cli import (
    DEFAULT_DASHBOARD_PORT,
    DashboardPortOption,
    LiveOption,
    PrometheusOption,
    local_app,
)

app = typer.Typer(
    name="serinus",
    help="Serinus: scikit-learn models from a trained file to production, and kept there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(local_app, name="local")
kubectl_app = typer.Typer(
    name="kubectl serinus",
    help="Serinus as a kubectl plugin.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version() -> None:
    out.print(f"serinus {__version__}")


def _crd() -> None:
    sys.stdout.write(render_crd())


def _manifest_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def _documents(path: Path) -> tuple[list[Any], str | None]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as error:
        return [], f"cannot read it: {error.strerror}"
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None], None
    except yaml.YAMLError as error:
        return [], f"not valid YAML: {error}"


def validate_files(paths: list[Path]) -> tuple[int, list[str]]:
    """(ModelDeployments checked, problem lines) for files and directories of manifests."""
    checked, lines = 0, []
    for path in _manifest_files(paths):
        documents, trouble = _documents(path)
        if trouble:
            lines.append(f"{path}: {trouble}")
            continue
        for index, document in enumerate(documents, start=1):
            if not isinstance(document, dict):
                lines.append(f"{path} document {index}: not a mapping")
                continue
            if document.get("kind") != KIND or not str(document.get("apiVersion", "")).startswith(
                API_VERSION.split("/")[0]
            ):
                continue
            checked += 1
            name = (document.get("metadata") or {}).get("name", "?")
            problems: list[Problem] = check_manifest(document)
            lines.extend(f"{path} ({KIND} {name}): {problem}" for problem in problems)
    return checked, lines


def _validate(files: list[Path]) -> None:
    checked, lines = validate_files(files)
    for line in lines:
        err.print(f"[red]✗[/red] {line}")
    if lines:
        raise typer.Exit(code=1)
    if checked == 0:
        err.print(f"no {KIND} found in {', '.join(map(str, files))}")
        raise typer.Exit(code=1)
    out.print(f"[green]✓[/green] {checked} {KIND}{'s' if checked != 1 else ''} valid")


FilesOption = Annotated[
    list[Path],
    typer.Option(
        "-f",
        "--filename",
        help="Manifest file or directory (repeatable); - reads standard input.",
    ),
]


@app.command("version")
def version_command() -> None:
    """Print the version."""
    _version()


@app.command("crd")
def crd_command() -> None:
    """Print the ModelDeployment CustomResourceDefinition (generated from the API models)."""
    _crd()


@app.command("validate")
def validate_command(files: FilesOption) -> None:
    """Check ModelDeployment manifests offline, as the API server would (schema and CEL rules)."""
    _validate(files)


@app.command(
    "pack",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def pack_command(context: typer.Context) -> None:
    """Build a model bundle (model file, serinus.json, reference profile). `serinus pack --help`."""
    from serinus_runtime.pack import pack_main

    raise typer.Exit(code=pack_main(list(context.args)))


@app.command("check")
def check_command(
    plan: Annotated[str, typer.Option(help="JSON: {model, url, stableUrl?, validation}.")],
) -> None:
    """Validate a running new version: smoke requests and the dataset gate (used by the
    validation Job). Exit 0 when it passes, 1 when not; the printed line says why."""
    from pydantic import ValidationError

    from serinus.checks import check_main

    try:
        code = check_main(plan)
    except ValidationError as error:
        err.print(f"--plan is not a valid check plan: {error}")
        raise typer.Exit(code=2) from error
    raise typer.Exit(code=code)


@app.command("demo")
def demo_command(
    workdir: Annotated[
        Path | None, typer.Option(help="Where bundles and state go (default: a new temp dir).")
    ] = None,
    port: Annotated[int, typer.Option(help="Router port.")] = 8080,
    prometheus: PrometheusOption = None,
    live: LiveOption = None,
    dashboard_port: DashboardPortOption = DEFAULT_DASHBOARD_PORT,
) -> None:
    """Serve iris v1, roll out a good v2 (promoted), a skewed v3 and an erroring v4 (both rolled
    back), under steady traffic, in a few minutes; then a summary of every decision."""
    from serinus.demo.run import outcome_as_expected, run_demo

    script, _ = run_demo(
        workdir, port=port, prometheus=prometheus, live=live, dashboard_port=dashboard_port
    )
    if not outcome_as_expected(script):
        err.print("[red]the demo did not end as expected: see the summary above[/red]")
        raise typer.Exit(code=1)


@app.command("operator")
def operator_command(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Watch only these namespaces (repeatable)."),
    ] = None,
    standalone: Annotated[bool, typer.Option(help="No peering: for exactly one replica.")] = False,
    peering: Annotated[str, typer.Option(help="Peering object name (two replicas).")] = "serinus",
    priority: Annotated[int, typer.Option(help="Peering priority of this replica.")] = 0,
    liveness: Annotated[
        str, typer.Option(help="Liveness endpoint URL; empty disables it.")
    ] = "http://0.0.0.0:8080/healthz",
    verbose: Annotated[bool, typer.Option(help="Debug logging.")] = False,
) -> None:
    """Run the operator (in-cluster config, or KUBECONFIG)."""
    import kopf
    import kubernetes

    import serinus.kube.handlers  # noqa: F401  -- registers the handlers
    from serinus.notify import NotifyConfigError, load_default_targets
    from serinus.notify.targets import DEFAULT_TARGETS_ENV

    try:
        load_default_targets(os.environ.get(DEFAULT_TARGETS_ENV))
    except NotifyConfigError as error:
        err.print(f"default notification targets: {error}")
        raise typer.Exit(code=2) from None
    kopf.configure(verbose=verbose)
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        try:
            kubernetes.config.load_kube_config()
        except (kubernetes.config.ConfigException, OSError) as error:
            err.print(f"no Kubernetes credentials: not in a pod and no usable kubeconfig ({error})")
            raise typer.Exit(code=2) from error
    kopf.run(
        clusterwide=not namespace,
        namespaces=namespace or (),
        standalone=standalone,
        # naming a peering makes kopf wait for it; a standalone operator must not name one
        peering_name=None if standalone else peering,
        priority=priority,
        liveness_endpoint=liveness or None,
    )


@kubectl_app.command("version")
def kubectl_version_command() -> None:
    """Print the version."""
    _version()


@kubectl_app.command("validate")
def kubectl_validate_command(files: FilesOption) -> None:
    """Check ModelDeployment manifests offline before `kubectl apply`."""
    _validate(files)


NamespaceOption = Annotated[
    str | None,
    typer.Option("-n", "--namespace", help="Namespace (default: the context's, else default)."),
]
KubeconfigOption = Annotated[
    str | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file.")
]
ContextOption = Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")]


def _cluster(kubeconfig: str | None, context: str | None, namespace: str | None) -> tuple[Any, str]:
    from serinus.kubectl import KubectlError, connect

    try:
        api, default_namespace = connect(kubeconfig, context)
    except KubectlError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from error
    return api, namespace or default_namespace


def _kubectl_action(
    name: str, action: str, kubeconfig: str | None, context: str | None, namespace: str | None
) -> None:
    from serinus.api.status import ActionKind
    from serinus.kubectl import KubectlError, request_action

    api, ns = _cluster(kubeconfig, context, namespace)
    try:
        value = request_action(api, ns, name, ActionKind(action))
    except KubectlError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from error
    out.print(f"{KIND} {ns}/{name}: asked for {action} ({value}); the operator acts on it once")


def _kubectl_status(
    kubeconfig: str | None, context: str | None, namespace: str | None, name: str
) -> tuple[Any, str, Any]:
    """(api client, namespace, status) of one ModelDeployment, or exit 1 saying why."""
    from serinus.kubectl import KubectlError, get_deployment, read_status

    api, ns = _cluster(kubeconfig, context, namespace)
    try:
        return api, ns, read_status(get_deployment(api, ns, name))
    except KubectlError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=1) from error


@kubectl_app.command("status")
def kubectl_status_command(
    name: str,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Phase, versions and weight, the last verdicts, recent Events and the rollout history."""
    from serinus.kubectl import events
    from serinus.local.display import render_status

    api, ns, status = _kubectl_status(kubeconfig, context, namespace, name)
    out.print(render_status(name, status, events=events(api, ns, name)))


@kubectl_app.command("logs-analysis")
def kubectl_logs_analysis_command(
    name: str,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Every analysis check of the current rollout, metric by metric, with its reason."""
    from serinus.kubectl import analysis_lines, events

    api, ns, status = _kubectl_status(kubeconfig, context, namespace, name)
    for line in analysis_lines(status, events(api, ns, name)):
        out.print(line, markup=False)


@kubectl_app.command("promote")
def kubectl_promote_command(
    name: str,
    full: Annotated[bool, typer.Option("--full", help="Skip the remaining steps.")] = False,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Move the canary to its next step now (--full: make it stable now)."""
    _kubectl_action(name, "promote-full" if full else "promote", kubeconfig, context, namespace)


def _register_action(action: str, help_text: str) -> None:
    def command(
        name: str,
        namespace: NamespaceOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
    ) -> None:
        _kubectl_action(name, action, kubeconfig, context, namespace)

    command.__doc__ = help_text
    kubectl_app.command(action)(command)


for _action, _help in (
    ("abort", "Roll the canary back; stable keeps serving."),
    ("retry", "Start the failed or rolled-back version's rollout again."),
    ("pause", "Hold the rollout at its current weight."),
    ("resume", "Continue a paused rollout."),
):
    _register_action(_action, _help)


def main() -> None:
    app()


def kubectl_main() -> None:
    kubectl_app()
