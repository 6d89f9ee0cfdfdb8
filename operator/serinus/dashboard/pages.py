"""The two HTML pages: shells that /static/dashboard.js fills from the JSON API every 2 s.

No inline script or style (the server sends a Content-Security-Policy that forbids them); the
page knows what to show from data attributes on <body>.
"""

from __future__ import annotations

from html import escape

_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head>
"""

_FOOT = """<footer>
  Read-only. Data: <a id="api-link" href="{api}">{api}</a> &middot;
  <span id="refresh">loading&hellip;</span>
</footer>
<noscript><p>This page draws itself with JavaScript; the same data is at
<a href="{api}">{api}</a>.</p></noscript>
</body>
</html>
"""


def list_page(title: str) -> str:
    api = "/api/modeldeployments"
    return (
        _HEAD.format(title=escape(f"{title}: ModelDeployments"))
        + f"""<body data-page="list">
<header><a href="/" class="brand">{escape(title)}</a> <span class="crumb">ModelDeployments</span>
</header>
<main>
<table id="deployments" class="grid">
  <thead><tr><th>Namespace</th><th>Name</th><th>Phase</th><th>Stable</th><th>Canary</th>
  <th>Traffic</th><th>Last verdict</th><th>Message</th></tr></thead>
  <tbody><tr><td colspan="8" class="muted">loading&hellip;</td></tr></tbody>
</table>
</main>
"""
        + _FOOT.format(api=escape(api))
    )


def detail_page(title: str, namespace: str, name: str) -> str:
    ns, nm = escape(namespace), escape(name)
    api = f"/api/modeldeployments/{ns}/{nm}"
    return (
        _HEAD.format(title=escape(f"{name} ({namespace}): {title}"))
        + f"""<body data-page="detail" data-namespace="{ns}" data-name="{nm}">
<header><a href="/" class="brand">{escape(title)}</a>
<span class="crumb"><a href="/">ModelDeployments</a> / {ns} / {nm}</span></header>
<main>
<section class="summary">
  <div class="field"><span class="label">Phase</span>
    <span id="phase" class="phase">&hellip;</span></div>
  <div class="field"><span class="label">Stable</span>
    <span id="stable-version">&ndash;</span> <span id="stable-weight" class="weight"></span></div>
  <div class="field"><span class="label">Canary</span>
    <span id="canary-version">&ndash;</span> <span id="canary-weight" class="weight"></span>
    <span id="canary-step" class="muted"></span></div>
  <div class="bar" title="traffic split"><div id="bar-stable" class="bar-stable"></div>
    <div id="bar-canary" class="bar-canary"></div></div>
  <p id="message" class="message"></p>
</section>
<section>
  <h2>Timeline <span id="rollout-label" class="muted"></span></h2>
  <div id="charts" class="charts"></div>
</section>
<section>
  <h2>Analysis checks <span class="muted">(this rollout, newest first)</span></h2>
  <table id="checks" class="grid">
    <thead><tr><th>Window end</th><th>Step</th><th>Weight</th><th>Verdict</th>
    <th>Canary requests</th><th>Metrics: canary / stable / bound &mdash; reason</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<section>
  <h2>Rollouts</h2>
  <table id="rollouts" class="grid">
    <thead><tr><th>Version</th><th>Revision</th><th>Started</th><th>Finished</th>
    <th>Result</th><th>Reason</th><th>Timeline</th></tr></thead>
    <tbody></tbody>
  </table>
</section>
<section>
  <h2>Conditions</h2>
  <table id="conditions" class="grid">
    <thead><tr><th>Type</th><th>Status</th><th>Reason</th><th>Message</th><th>Since</th></tr>
    </thead>
    <tbody></tbody>
  </table>
</section>
</main>
"""
        + _FOOT.format(api=api)
    )
