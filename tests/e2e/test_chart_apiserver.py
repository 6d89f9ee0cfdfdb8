"""The chart as Helm installs it, on a real kube-apiserver, with RBAC enforced.

The chart's CRDs, ServiceAccount, ClusterRole/Role and bindings (and, for several replicas, its
peering object) are applied exactly as the Helm engine renders them (tests/chart/chart_helpers).
The operator does not run as the chart's Deployment — envtest has no kubelet — but as a local
`serinus operator` process with the container's rendered args and env, under the token of the
chart's ServiceAccount. So every permission the chart forgot is a 403 in its log, and every
permission it grants is checked for being needed:

- a full rollout (v1 stable, v2 promoted, v3 failing validation) with zero 403s, watching every
  namespace and watching only `watchNamespaces`;
- minimality: for each rule of the rendered ClusterRole/Role, the same RBAC without that rule
  makes the operator hit a 403 naming that rule's resource (a spare rule would not). The
  scenario does everything the operator does: one ModelDeployment per traffic provider
  (replicas, Gateway API HTTPRoute, Istio VirtualService/DestinationRule, CRDs from
  ../shared/schemas), validation Jobs, analysis through the pod proxy, promotion and scale-down,
  Events, a notification URL read from a Secret, and — with the HA args — Kopf's peering.

Left out, because this control plane cannot run them: the operator's Deployment/StatefulSet,
its metrics Service, the PodDisruptionBudget (policy/v1 is Kubernetes 1.21+) and the Prometheus
Operator objects. Several replicas need Kubernetes 1.28 (pod-index label) for the StatefulSet:
their rendered args (--peering, --priority=$(POD_INDEX)) run here as one local replica, index 0.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml
from cluster_harness import Kubelet, OperatorProcess, service_account_kubeconfig, wait_until
from kubernetes.client.exceptions import ApiException

from serinus.api.resource import GROUP, PLURAL, VERSION

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "schemas"
sys.path.insert(0, str(ROOT / "tests" / "chart"))
from chart_helpers import of_kind, operator_container, render  # noqa: E402

ROUTE_CRDS = (
    "gateway.networking.k8s.io_httproutes.yaml",
    "networking.istio.io_virtualservices.yaml",
    "networking.istio.io_destinationrules.yaml",
)
APPLIED_KINDS = {
    "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
    "ClusterKopfPeering", "KopfPeering",
}  # fmt: skip
NOT_RUN_KINDS = {
    "Deployment", "StatefulSet", "Service", "PodDisruptionBudget",
    "ServiceMonitor", "PodMonitor", "PrometheusRule",
}  # fmt: skip
"""What the control plane cannot run (the operator runs as a local process instead)."""
ROLE_KINDS = ("ClusterRole", "Role")
WATCHED = "watched"
"""Placeholder namespace for rendering at collection time (each run renders its own)."""
MODES = {"cluster-wide": False, "namespaced": True}

DENIAL = re.compile(
    r'is forbidden: User \\*"(?P<user>[^"\\]+)\\*" cannot (?P<verb>[\w-]+) resource '
    r'\\*"(?P<resource>[^"\\]+)\\*" in API group \\*"(?P<group>[^"\\]*)\\*"'
)
"""The API server's own words for an RBAC denial, as the operator (or Kopf) logs them."""
OPERATOR_DENIALS = {
    # a notification URL from a Secret: the operator logs no API response body there
    ("", "secrets"): re.compile(r"may not read Secret \S+ \(403\)"),
}
"""403s the operator reports in its own words (the API server's message is not logged)."""

# --- the chart, rendered and applied ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chart_values(
    watched: list[str] | None, replicas: int = 1, health_port: int = 8080
) -> dict[str, Any]:
    """Values fitting envtest: a fast tick, no metrics endpoint (nothing scrapes it here)."""
    values: dict[str, Any] = {
        "replicaCount": replicas,
        "operator": {"tickSeconds": 0.5, "healthPort": health_port},
        "metrics": {"enabled": False},
    }
    if watched:
        values["watchNamespaces"] = watched
    return values


def rbac_of(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"].startswith(("ClusterRole", "Role"))]


def one_of(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objects, kind)
    assert len(found) == 1, found
    return found[0]


def role_rules(namespaced: bool) -> list[tuple[str, int, dict[str, Any]]]:
    """(kind, index, rule) of every rule the chart grants in that mode, with two replicas (the
    most it grants: a single replica's rules are the same less the peering ones at the end)."""
    objects = render(chart_values([WATCHED] if namespaced else None, replicas=2))
    seen: list[tuple[str, int, dict[str, Any]]] = []
    for kind in ROLE_KINDS:
        roles = of_kind(objects, kind)
        if roles:
            assert len(roles) == 1, f"one {kind} per watched namespace: {roles}"
            seen += [(kind, index, rule) for index, rule in enumerate(roles[0]["rules"])]
    return seen


def rule_id(kind: str, index: int, rule: dict[str, Any]) -> str:
    return f"{kind}[{index}]-{'+'.join(rule['resources'])}"


def install_crd(api: kubernetes.client.ApiClient, body: dict[str, Any]) -> bool:
    """POST the CRD as it is (no client model in between); False when it exists already."""
    request = api.param_serialize(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    if response.status not in (201, 409):
        raise AssertionError(f"CRD {body['metadata']['name']}: {response.read()[:500]!r}")
    return response.status == 201


def without_empty_defaults(node: Any) -> Any:
    """The v1.20 API server refuses `default: ""` (Gateway API's schemas have it)."""
    if isinstance(node, dict):
        return {
            key: without_empty_defaults(value)
            for key, value in node.items()
            if not (key == "default" and value == "")
        }
    if isinstance(node, list):
        return [without_empty_defaults(item) for item in node]
    return node


@pytest.fixture(scope="module")
def chart_crds(kube_api: kubernetes.client.ApiClient) -> Iterator[None]:
    """The chart's crds/ (as `helm install` creates them first) and the traffic providers' CRDs;
    those created here are deleted at the end, so other modules find the session as it was."""
    bodies = [obj for obj in render(crds=True) if obj["kind"] == "CustomResourceDefinition"]
    assert {b["metadata"]["name"] for b in bodies} == {
        "modeldeployments.serinus.dev", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev",
    }  # fmt: skip
    for file in ROUTE_CRDS:
        if not (SCHEMAS / file).is_file():
            pytest.fail(f"{SCHEMAS / file} is missing: the published CRDs are installed from there")
        bodies.append(without_empty_defaults(yaml.safe_load((SCHEMAS / file).read_text())))
    created = [b["metadata"]["name"] for b in bodies if install_crd(kube_api, b)]
    extensions = kubernetes.client.ApiextensionsV1Api(kube_api)

    def established(name: str) -> bool:
        crd = extensions.read_custom_resource_definition(name)
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_until(
        lambda: all(established(b["metadata"]["name"]) for b in bodies), what="CRDs established"
    )
    time.sleep(1)  # discovery catches up
    yield
    for name in created:
        with contextlib.suppress(ApiException):
            extensions.delete_custom_resource_definition(name)

    def gone() -> bool:
        names = {crd.metadata.name for crd in extensions.list_custom_resource_definition().items}
        return not names.intersection(created)

    wait_until(gone, timeout=90, what="the CRDs created here deleted")


@dataclass
class Release:
    """One `helm install` of the chart, applied except what cannot run; the operator process
    gets the rendered container's args and env."""

    api: kubernetes.client.ApiClient
    namespace: str
    watched: list[str]
    objects: list[dict[str, Any]]
    args: list[str]
    env: dict[str, str]
    kubeconfig: Path
    health_port: int
    operators: list[OperatorProcess] = field(default_factory=list)
    kubelets: dict[str, Kubelet] = field(default_factory=dict)

    @property
    def user(self) -> str:
        account = of_kind(self.objects, "ServiceAccount")[0]["metadata"]["name"]
        return f"system:serviceaccount:{self.namespace}:{account}"

    def start(self, log: Path) -> OperatorProcess:
        # the rendered env, and no dashboard on its default port unless the chart sets one
        env = {"SERINUS_DASHBOARD_PORT": "0", **self.env}
        process = OperatorProcess(self.kubeconfig, log, *self.args, **env)
        self.operators.append(process)
        return process

    def uninstall(self) -> None:
        for process in self.operators:
            process.stop()
        for kubelet in self.kubelets.values():
            kubelet.stop()
        rbac = kubernetes.client.RbacAuthorizationV1Api(self.api)
        custom = kubernetes.client.CustomObjectsApi(self.api)
        for obj in self.objects:
            name = obj["metadata"]["name"]
            with contextlib.suppress(ApiException):
                if obj["kind"] == "ClusterRole":
                    rbac.delete_cluster_role(name)
                elif obj["kind"] == "ClusterRoleBinding":
                    rbac.delete_cluster_role_binding(name)
                elif obj["kind"] == "ClusterKopfPeering":
                    custom.delete_cluster_custom_object(
                        "kopf.dev", "v1", "clusterkopfpeerings", name
                    )
        core = kubernetes.client.CoreV1Api(self.api)
        for namespace in [*self.watched, self.namespace]:
            # ModelDeployments first, at once: a cluster-wide operator of the next test must not
            # find them in a namespace still being deleted. Kopf's timers put a finalizer on
            # them that no stopped operator takes off.
            with contextlib.suppress(ApiException):
                listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
                for item in listed["items"]:
                    custom.patch_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, item["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )  # fmt: skip
                custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            with contextlib.suppress(ApiException):
                core.delete_namespace(namespace)


def apply(api: kubernetes.client.ApiClient, obj: dict[str, Any]) -> None:
    kind, metadata = obj["kind"], obj["metadata"]
    namespace = metadata.get("namespace")
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    match kind:
        case "ServiceAccount":
            kubernetes.client.CoreV1Api(api).create_namespaced_service_account(namespace, obj)
        case "ClusterRole":
            rbac.create_cluster_role(obj)
        case "ClusterRoleBinding":
            rbac.create_cluster_role_binding(obj)
        case "Role":
            rbac.create_namespaced_role(namespace, obj)
        case "RoleBinding":
            rbac.create_namespaced_role_binding(namespace, obj)
        case "ClusterKopfPeering":
            custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", obj)
        case "KopfPeering":
            custom.create_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", obj)
        case _:
            raise AssertionError(f"no way to apply {kind}")


def container_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The rendered env; the downward API gives what the pod would have (replica index 0)."""
    fields = {
        "metadata.name": pod_name,
        "metadata.labels['apps.kubernetes.io/pod-index']": "0",
    }
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"].get("fieldRef")
            assert ref, f"only the downward API can be played here: {item}"
            env[item["name"]] = fields[ref["fieldPath"]]
    return env


def install(
    api: kubernetes.client.ApiClient,
    admin_kubeconfig: Path,
    workdir: Path,
    *,
    namespaced: bool,
    replicas: int = 1,
    watched_count: int = 1,
    without: tuple[str, int, dict[str, Any]] | None = None,
) -> Release:
    """Fresh namespaces, the chart rendered for them and applied (less the rule `without`)."""
    suffix = uuid.uuid4().hex[:6]
    release_namespace = f"rel-{suffix}"
    watched = [f"w{i}-{suffix}" for i in range(watched_count)]
    core = kubernetes.client.CoreV1Api(api)
    for namespace in [release_namespace, *watched]:
        core.create_namespace({"metadata": {"name": namespace}})
    health_port = free_port()
    values = chart_values(watched if namespaced else None, replicas, health_port)
    objects = render(values, namespace=release_namespace)
    kinds = {obj["kind"] for obj in objects}
    assert kinds <= APPLIED_KINDS | NOT_RUN_KINDS, f"a kind this test does not know: {kinds}"
    applied = [obj for obj in objects if obj["kind"] in APPLIED_KINDS]
    if without is not None:
        kind, index, rule = without
        roles = of_kind(applied, kind)
        assert roles, f"no {kind} rendered"
        for role in roles:
            assert role["rules"][index] == rule, "the rendered rules changed since collection"
            del role["rules"][index]
    release = Release(
        api=api,
        namespace=release_namespace,
        watched=watched,
        objects=applied,
        args=[],
        env={},
        kubeconfig=workdir / f"{release_namespace}.kubeconfig",
        health_port=health_port,
    )
    try:
        for obj in applied:
            apply(api, obj)
        workload = next(obj for obj in objects if obj["kind"] in ("Deployment", "StatefulSet"))
        container = operator_container(objects)
        assert container["command"] == ["serinus", "operator"]
        env = container_env(container, f"{workload['metadata']['name']}-0")
        release.env = env
        release.args = [
            re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in container["args"]
        ]
        account = workload["spec"]["template"]["spec"]["serviceAccountName"]
        service_account_kubeconfig(
            api, admin_kubeconfig, release_namespace, account, release.kubeconfig
        )
    except BaseException:
        release.uninstall()
        raise
    return release


@pytest.fixture
def releases(
    kube_api: kubernetes.client.ApiClient, chart_crds: None, envtest: Path, tmp_path: Path
) -> Iterator[Callable[..., Release]]:
    """Installs the chart (each call: fresh namespaces); everything is stopped and removed."""
    made: list[Release] = []

    def make(**kwargs: Any) -> Release:
        release = install(kube_api, envtest / "kubeconfig", tmp_path, **kwargs)
        made.append(release)
        for namespace in release.watched:
            release.kubelets[namespace] = Kubelet(kube_api, namespace)
            release.kubelets[namespace].start()
        return release

    yield make
    for release in made:
        release.uninstall()


# --- ModelDeployments and what the operator makes of them ------------------------------------


@dataclass
class Webhook:
    url: str
    received: list[bytes]


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    """A notification receiver: answers 204 and keeps what it was sent."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Webhook(f"http://127.0.0.1:{server.server_address[1]}/hook", received)
    server.shutdown()
    server.server_close()


TRAFFIC = {
    "iris": {},  # replicas
    "routed": {"provider": "gateway-api", "gatewayAPI": {"parentRefs": [{"name": "gw"}]}},
    "meshed": {"provider": "istio", "istio": {}},
}
"""One ModelDeployment per traffic provider: between them, every kind the operator writes."""


WEBHOOKS = "webhooks"
"""The Secret holding the notification URL of `iris` (read with the operator's `get secrets`)."""


def model(name: str, version: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"uri": f"file:///models/{version}", "version": version},
        "runtime": {"replicas": 2 if name == "iris" else 1},
        "rollout": {
            "interval": "1s",
            "scaleDownDelay": "1s",
            "steps": [{"setWeight": 50}, {"analysis": {}}],
        },
    }
    if TRAFFIC[name]:
        spec["traffic"] = TRAFFIC[name]
    if name == "iris":
        url_from = {"secretKeyRef": {"name": WEBHOOKS, "key": "url"}}
        spec["notifications"] = [{"name": "team", "urlFrom": url_from}]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": spec,
    }


def custom(api: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


def status(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    body = custom(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return body.get("status") or {}


def set_version(api: kubernetes.client.ApiClient, namespace: str, name: str, version: str) -> None:
    spec = model(name, version)["spec"]
    custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
    )


def annotate(api: kubernetes.client.ApiClient, namespace: str, name: str, value: str) -> None:
    custom(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name,
        {"metadata": {"annotations": {"serinus.dev/action": value}}},
    )  # fmt: skip


def deployments(api: kubernetes.client.ApiClient, namespace: str) -> dict[str, int]:
    items = kubernetes.client.AppsV1Api(api).list_namespaced_deployment(namespace).items
    return {d.metadata.name: d.spec.replicas for d in items}


def webhook_secret(api: kubernetes.client.ApiClient, namespace: str, url: str) -> None:
    data = {"url": base64.b64encode(url.encode()).decode()}
    kubernetes.client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": WEBHOOKS}, "data": data}
    )


class Rollouts:
    """Drives every ModelDeployment of TRAFFIC from v1 to a promoted v2, one poll at a time:
    v1 validated and stable; v2 validated, at 50 % with an analysis check (pods read through
    the pod proxy: Inconclusive without a kubelet), promoted by annotation, v1 scaled away.
    `iris` notifies a webhook whose URL is in a Secret, on every phase change."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, webhook: str) -> None:
        self.api, self.namespace = api, namespace
        self.stage = dict.fromkeys(TRAFFIC, "v1")
        self.first: dict[str, str] = {}
        webhook_secret(api, namespace, webhook)
        for name in TRAFFIC:
            custom(api).create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, model(name, "1.0.0")
            )

    def poll(self) -> bool:
        """One step where one is due; True when every rollout is done."""
        for name, stage in self.stage.items():
            now = status(self.api, self.namespace, name)
            if stage == "v1" and now.get("phase") == "Stable":
                self.first[name] = now["stable"]["revision"]
                set_version(self.api, self.namespace, name, "2.0.0")
                self.stage[name] = "v2"
            elif stage == "v2" and (now.get("analysis") or {}).get("checks"):
                annotate(self.api, self.namespace, name, "promote-full/1")
                self.stage[name] = "promoted"
            elif (
                stage == "promoted"
                and now.get("phase") == "Stable"
                and now["stable"]["revision"] != self.first[name]
                and f"{name}-{self.first[name]}" not in deployments(self.api, self.namespace)
            ):
                self.stage[name] = "done"
        return all(stage == "done" for stage in self.stage.values())


def denials(log: str, user: str) -> set[tuple[str, str]]:
    """(API group, resource) of every RBAC denial of `user` the operator logged."""
    found = {(m["group"], m["resource"]) for m in DENIAL.finditer(log) if m["user"] == user}
    return found | {resource for resource, words in OPERATOR_DENIALS.items() if words.search(log)}


def tail(process: OperatorProcess, chars: int = 3000) -> str:
    """The end of the operator's log, without the harness' self-signed-certificate warnings."""
    noise = ("InsecureRequestWarning", "warnings.warn(")
    lines = process.log().splitlines()
    return "\n".join(line for line in lines if not any(n in line for n in noise))[-chars:]


def drive(rollouts: Rollouts, process: OperatorProcess, timeout: float = 150) -> None:
    def step() -> bool:
        assert process.proc.poll() is None, f"the operator exited:\n{tail(process)}"
        return rollouts.poll()

    wait_until(step, timeout=timeout, what=f"v1 → v2 promoted: {rollouts.stage}")


def assert_no_denial(process: OperatorProcess, release: Release) -> None:
    log = process.log()
    assert "is forbidden: User" not in log, tail(process)
    assert not denials(log, release.user), tail(process)


# --- 1. the chart's RBAC runs the operator through whole rollouts ----------------------------


@pytest.mark.parametrize("namespaced", MODES.values(), ids=MODES.keys())
def test_rollout_promotion_and_rollback_under_the_charts_rbac(
    kube_api, releases, webhook, namespaced, tmp_path
):
    release = releases(namespaced=namespaced, watched_count=2)
    ns, other = release.watched
    if namespaced:
        assert [a for a in release.args if a.startswith("--namespace")] == [
            f"--namespace={ns}",
            f"--namespace={other}",
        ]
        assert {r["metadata"]["namespace"] for r in of_kind(release.objects, "Role")} == {ns, other}
    else:
        assert not [a for a in release.args if a.startswith("--namespace")]
    assert "--standalone" in release.args
    process = release.start(tmp_path / "operator.log")

    rollouts = Rollouts(kube_api, ns, webhook.url)
    # a second watched namespace: its own Role (namespaced mode) serves it as well
    webhook_secret(kube_api, other, webhook.url)
    custom(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, other, PLURAL, model("iris", "1.0.0")
    )
    if namespaced:  # not watched: the operator must not even look (nor be refused)
        custom(kube_api).create_namespaced_custom_object(
            GROUP, VERSION, release.namespace, PLURAL, model("iris", "1.0.0")
        )
    drive(rollouts, process)
    for name in TRAFFIC:
        promoted = status(kube_api, ns, name)
        assert promoted["lastAction"]["result"] == "promoting now"
        assert promoted["history"][-1]["result"] == "Promoted"
    wait_until(lambda: status(kube_api, other, "iris").get("phase") == "Stable", what="other ns")
    wait_until(  # the URL came from a Secret: `get secrets` works where the Role grants it
        lambda: any(ns.encode() in body and b"iris" in body for body in webhook.received),
        what="a notification of iris",
    )

    # v3 fails its validation: it never gets traffic, v2 stays stable and serving
    second = status(kube_api, ns, "iris")["stable"]["revision"]
    release.kubelets[ns].validation_passes = lambda _job: False
    set_version(kube_api, ns, "iris", "3.0.0")
    failed = wait_until(
        lambda: (s := status(kube_api, ns, "iris")).get("phase") == "Failed" and s,
        timeout=90,
        what="v3 Failed",
    )
    assert "smoke request 1: expected [0], got [2]" in failed["message"]
    assert failed["stable"]["revision"] == second
    assert failed["canary"]["weight"] == 0
    main = kubernetes.client.CoreV1Api(kube_api).read_namespaced_service("iris", ns)
    assert main.spec.selector["serinus.dev/revision"] == second
    third = failed["canary"]["revision"]
    wait_until(
        lambda: (
            {k: v for k, v in deployments(kube_api, ns).items() if k.startswith("iris-")}
            == {f"iris-{second}": 2, f"iris-{third}": 0}
        ),
        what="v1 gone, v2 serving, the failed v3 scaled to zero",
    )

    # the rendered --liveness endpoint answers (the chart's probes use it)
    health = httpx.get(f"http://127.0.0.1:{release.health_port}/healthz", timeout=5)
    assert health.status_code == 200
    if namespaced:
        assert status(kube_api, release.namespace, "iris") == {}
    assert_no_denial(process, release)


@pytest.mark.parametrize("namespaced", MODES.values(), ids=MODES.keys())
def test_several_replicas_peer_under_the_charts_rbac(
    kube_api, releases, webhook, namespaced, tmp_path
):
    """The HA args (--peering, --priority) and the chart's peering object: the replica announces
    itself there and rolls out with zero 403s (the control run of the peering rules below)."""
    release = releases(namespaced=namespaced, replicas=2)
    peering = one_of(release.objects, "KopfPeering" if namespaced else "ClusterKopfPeering")
    name = peering["metadata"]["name"]
    assert f"--peering={name}" in release.args and "--priority=0" in release.args
    assert "--standalone" not in release.args
    process = release.start(tmp_path / "operator.log")
    api = custom(kube_api)

    def announced() -> dict[str, Any]:
        if namespaced:
            body = api.get_namespaced_custom_object(
                "kopf.dev", "v1", release.watched[0], "kopfpeerings", name
            )
        else:
            body = api.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)
        return body.get("status") or {}

    wait_until(lambda: release.env["POD_ID"] in announced(), what="the replica in the peering")
    rollouts = Rollouts(kube_api, release.watched[0], webhook.url)
    drive(rollouts, process)
    assert_no_denial(process, release)


def test_several_replicas_add_only_the_peering_rules_at_the_end() -> None:
    """What lets each minimality case run with one replica (two for peering rules): the rule
    indexes of a single replica's render are those of the two-replica one."""
    for watched in (None, [WATCHED]):
        single = rbac_of(render(chart_values(watched, replicas=1)))
        several = rbac_of(render(chart_values(watched, replicas=2)))
        assert [obj["metadata"]["name"] for obj in single] == [
            obj["metadata"]["name"] for obj in several
        ]
        for one_replica, two_replicas in zip(single, several, strict=True):
            rules, more = one_replica.get("rules"), two_replicas.get("rules")
            if rules is None:  # bindings
                assert one_replica == two_replicas
                continue
            assert more[: len(rules)] == rules
            assert all(peering_rule(rule) for rule in more[len(rules) :])


# --- 2. minimality: no rule of the chart is spare --------------------------------------------

CASES = [
    pytest.param(namespaced, rule, id=f"{mode}-{rule_id(*rule)}")
    for mode, namespaced in MODES.items()
    for rule in role_rules(namespaced)
]


def peering_rule(rule: dict[str, Any]) -> bool:
    return any(resource.endswith("kopfpeerings") for resource in rule["resources"])


@pytest.mark.parametrize(("namespaced", "without"), CASES)
def test_every_rule_is_needed(kube_api, releases, webhook, namespaced, without, tmp_path):
    """Without the rule, the operator is refused (403) something the rule grants — and
    nothing else: the rest of the chart's RBAC suffices for the same scenario."""
    kind, _, rule = without
    # peering rules can only be needed by several replicas: the chart's HA args (--peering);
    # every other rule is checked on a single replica's RBAC, which has the same indexes
    # (test_several_replicas_add_only_the_peering_rules_at_the_end)
    release = releases(
        namespaced=namespaced, replicas=2 if peering_rule(rule) else 1, without=without
    )
    expected = {(group, resource) for group in rule["apiGroups"] for resource in rule["resources"]}
    process = release.start(tmp_path / "operator.log")
    rollouts = Rollouts(kube_api, release.watched[0], webhook.url)
    deadline = time.monotonic() + 120
    finished = False
    exited = False
    while not (seen := denials(process.log(), release.user)) & expected:
        exited = process.proc.poll() is not None
        if finished or exited or time.monotonic() > deadline:
            break
        finished = rollouts.poll()
        time.sleep(0.25)
    if process.proc.poll() is None:
        process.proc.kill()  # seen what was needed: no graceful shutdown (it may be refused too)
        process.proc.wait()
    seen = denials(process.log(), release.user)
    log = tail(process)
    mode = "namespaced" if namespaced else "cluster-wide"
    if finished:
        what = f"{mode} {kind} rule {rule} looks spare: the whole scenario ran without it"
    elif exited:
        what = "the operator exited"
    else:
        what = f"no 403 for {rule} within 120 s; the scenario got to {rollouts.stage}"
    assert seen & expected, f"{what}\n{log}"
    assert seen <= expected, f"403s for rules still granted: {seen - expected}\n{log}"
