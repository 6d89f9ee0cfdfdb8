"""The dashboard's HTTP server on a real socket: routes, status codes, JSON shapes, read-only."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from dashboard_fixtures import NAME, NS, V2_ROLLOUT, at, rollout_story, stable, with_canary

from serinus.api.status import Phase
from serinus.dashboard import api
from serinus.dashboard.server import CSP, DashboardServer
from serinus.dashboard.timeline import Timeline


@pytest.fixture
def timeline() -> Timeline:
    timeline = Timeline()
    rollout_story(timeline)
    return timeline


@pytest.fixture
def server(timeline: Timeline) -> Iterator[DashboardServer]:
    with DashboardServer(timeline, port=0, clock=lambda: at(60), poll_interval=0.02) as running:
        yield running


@pytest.fixture
def client(server: DashboardServer) -> Iterator[httpx.Client]:
    # Plain HTTP: verify=False only spares loading the CA bundle (0.2 s a client).
    with httpx.Client(base_url=server.url, timeout=10.0, verify=False) as http:
        yield http


def is_json_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and body["error"]
    return str(body["error"])


def test_the_list_api(client: httpx.Client, timeline: Timeline) -> None:
    timeline.record("default", "other", stable(), None, at(1))
    response = client.get("/api/modeldeployments")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    document = api.ModelDeploymentList.model_validate(response.json())
    assert [(i.namespace, i.name, i.phase) for i in document.items] == [
        ("default", "other", Phase.STABLE),
        (NS, NAME, Phase.STABLE),
    ]
    assert client.get("/api/modeldeployments/").json() == response.json()


def test_the_detail_api_and_its_404(client: httpx.Client) -> None:
    response = client.get(f"/api/modeldeployments/{NS}/{NAME}")
    assert response.status_code == 200
    document = api.ModelDeploymentDetail.model_validate(response.json())
    assert document.name == NAME and document.stable is not None
    assert document.stable.version == "2" and len(document.timeline.markers) == 2
    assert [r.id for r in document.rollouts] == [V2_ROLLOUT]
    message = is_json_error(client.get(f"/api/modeldeployments/{NS}/nope"), 404)
    assert message == f"no ModelDeployment {NS}/nope is known here"
    is_json_error(client.get("/api/modeldeployments/nope/nope/extra"), 404)


def test_the_api_follows_what_the_drivers_record(client: httpx.Client, timeline: Timeline) -> None:
    before = client.get(f"/api/modeldeployments/{NS}/{NAME}").json()
    moving = with_canary(stable("2", "rev-v2"), Phase.PROGRESSING, 30, started=70,
                         revision="rev-v3", version="3")  # fmt: skip
    timeline.record(NS, NAME, moving, None, at(71))
    after = client.get(f"/api/modeldeployments/{NS}/{NAME}").json()
    assert after["seq"] > before["seq"]
    assert after["phase"] == "Progressing" and after["canary"]["weight"] == 30
    assert after["stable"]["weight"] == 70
    timeline.forget(NS, NAME)
    is_json_error(client.get(f"/api/modeldeployments/{NS}/{NAME}"), 404)


def test_pages_are_html_with_a_strict_policy(client: httpx.Client) -> None:
    for path in ("/", f"/md/{NS}/{NAME}"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert '<script src="/static/dashboard.js" defer></script>' in response.text
    page = client.get(f"/md/{NS}/{NAME}").text
    assert f'data-namespace="{NS}" data-name="{NAME}"' in page
    is_json_error(client.get(f"/md/{NS}/nope"), 404)


def test_charts_svg_for_the_latest_or_a_chosen_rollout(client: httpx.Client) -> None:
    response = client.get(f"/md/{NS}/{NAME}/charts.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml; charset=utf-8"
    assert response.text.startswith("<svg") and 'data-verdict="Pass"' in response.text
    chosen = client.get(f"/md/{NS}/{NAME}/charts.svg", params={"rollout": V2_ROLLOUT})
    assert chosen.text == response.text
    is_json_error(client.get(f"/md/{NS}/{NAME}/charts.svg", params={"rollout": "rev-x-1"}), 404)
    is_json_error(client.get(f"/md/{NS}/nope/charts.svg"), 404)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("dashboard.js", "text/javascript; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_assets(client: httpx.Client, name: str, content_type: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.content) > 100


def test_nothing_else_is_served(client: httpx.Client) -> None:
    for path in ("/static/server.py", "/static/../server.py", "/static/%2e%2e/server.py",
                 "/favicon.ico", "/api", "/md/ns1"):  # fmt: skip
        is_json_error(client.get(path), 404)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"])
@pytest.mark.parametrize(
    "path", ["/api/modeldeployments", f"/api/modeldeployments/{NS}/{NAME}", "/", "/nope"]
)
def test_every_write_method_is_refused(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path, content=b'{"spec": {}}')
    message = is_json_error(response, 405)
    assert response.headers["allow"] == "GET, HEAD"
    assert "read-only" in message
    # The refused body was read: the same connection still serves the next request.
    assert client.get("/api/modeldeployments").status_code == 200


def test_head_answers_like_get_without_a_body(client: httpx.Client) -> None:
    get = client.get(f"/api/modeldeployments/{NS}/{NAME}")
    head = client.head(f"/api/modeldeployments/{NS}/{NAME}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_names_are_served(server: DashboardServer, host: str) -> None:
    response = httpx.get(
        f"{server.url}/api/modeldeployments",
        headers={"Host": f"{host}:{server.port}"},
        verify=False,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8090", "10.0.0.1", "127.0.0.1.nip.io"]
)
def test_on_loopback_other_host_names_are_refused(server: DashboardServer, host: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the API."""
    response = httpx.get(f"{server.url}/api/modeldeployments", headers={"Host": host}, verify=False)
    assert "not this machine" in is_json_error(response, 403)


def test_where_it_listens() -> None:
    timeline = Timeline()
    assert DashboardServer(timeline, host="127.0.0.1").loopback_only
    assert DashboardServer(timeline, host="::1").loopback_only
    assert DashboardServer(timeline, host="localhost").loopback_only
    assert not DashboardServer(timeline, host="0.0.0.0").loopback_only
    assert DashboardServer(timeline, host="0.0.0.0", port=8082).url == "http://127.0.0.1:8082"


def test_a_taken_port_is_an_oserror_and_stop_frees_it() -> None:
    with DashboardServer(Timeline(), port=0, poll_interval=0.02) as first:
        port = first.port
        with pytest.raises(OSError):
            DashboardServer(Timeline(), port=port).start()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # free again


def test_local_up_serves_it_on_loopback_and_runs_on_without_a_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`serinus local up`'s wiring: the controller gets a timeline, the page URL is printed, and
    a taken port is a warning, not a failed `up`."""
    from types import SimpleNamespace

    from serinus.local.cli import _start_dashboard

    controller = SimpleNamespace(timeline=None)
    server = _start_dashboard(controller, "iris", "127.0.0.1", free_port())  # type: ignore[arg-type]
    assert server is not None
    try:
        assert isinstance(controller.timeline, Timeline) and server.timeline is controller.timeline
        assert server.loopback_only
        assert f"dashboard (read-only) at {server.url}/md/local/iris" in capsys.readouterr().out
        again = _start_dashboard(controller, "iris", "127.0.0.1", server.port)  # type: ignore[arg-type]
        assert again is None
        assert "no dashboard: cannot listen on" in capsys.readouterr().err
    finally:
        server.stop()
    assert _start_dashboard(controller, "iris", "127.0.0.1", 0) is None  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
