// Serinus dashboard: fills the page from the JSON API every 2 s. No library, no build step.
// Charts are SVG drawn by the server (/md/{ns}/{name}/charts.svg); everything else is text set
// with textContent, so nothing from the data is ever parsed as HTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const body = document.body;
  const page = body.dataset.page;
  const refresh = document.getElementById("refresh");

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function link(href, text) {
    const a = el("a", text);
    a.href = href;
    return a;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell);
      else td.textContent = cell === undefined || cell === null ? "\u2013" : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }

  function fill(tbody, rows, empty, columns) {
    tbody.replaceChildren(...rows);
    if (!rows.length) {
      const td = el("td", empty, "muted");
      td.colSpan = columns;
      const tr = document.createElement("tr");
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  function time(iso) {
    if (!iso) return "\u2013";
    const d = new Date(iso);
    return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function clock(iso) {
    return iso ? new Date(iso).toISOString().slice(11, 19) : "\u2013";
  }

  function number(v) {
    if (v === null || v === undefined) return "\u2013";
    return Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(3)).toString();
  }

  function phaseBadge(phase) {
    return el("span", phase, "phase phase-" + phase);
  }

  function trafficBar(stableWeight, canaryWeight) {
    const bar = el("div", null, "bar");
    const s = el("div", null, "bar-stable");
    const c = el("div", null, "bar-canary");
    s.style.width = stableWeight + "%";
    c.style.width = canaryWeight + "%";
    bar.title = "stable " + stableWeight + "%, canary " + canaryWeight + "%";
    bar.append(s, c);
    return bar;
  }

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        message = (await response.json()).error || message;
      } catch (_) {
        /* not JSON */
      }
      throw new Error(message);
    }
    return response.json();
  }

  // ------------------------------------------------------------------ the list page

  async function updateList() {
    const doc = await getJSON("/api/modeldeployments");
    const rows = doc.items.map((md) => {
      const canaryWeight = md.canary ? md.canary.weight : 0;
      const stableWeight = md.stable ? md.stable.weight : 0;
      const verdict = md.lastVerdict
        ? el("span", md.lastVerdict, "verdict-" + md.lastVerdict)
        : null;
      const href = "/md/" + encodeURIComponent(md.namespace) + "/" + encodeURIComponent(md.name);
      return row([
        md.namespace,
        link(href, md.name),
        phaseBadge(md.phase),
        md.stable ? (md.stable.version || md.stable.revision) + " (" + stableWeight + "%)" : null,
        md.canary ? (md.canary.version || md.canary.revision) + " (" + canaryWeight + "%)" : null,
        md.stable || md.canary ? trafficBar(stableWeight, canaryWeight) : null,
        verdict,
        md.message,
      ]);
    });
    fill(document.querySelector("#deployments tbody"), rows, "no ModelDeployment yet", 8);
  }

  // ------------------------------------------------------------------ the deployment page

  const wanted = new URLSearchParams(window.location.search).get("rollout");
  let chartsKey = null;

  function shownRollout(doc) {
    if (wanted) return doc.rollouts.find((r) => r.id === wanted) || null;
    const withPoints = doc.rollouts.filter((r) => r.points > 0);
    if (withPoints.length) return withPoints[withPoints.length - 1];
    return doc.rollouts.length ? doc.rollouts[doc.rollouts.length - 1] : null;
  }

  function setText(id, text) {
    document.getElementById(id).textContent = text;
  }

  function renderSummary(doc) {
    const phase = document.getElementById("phase");
    phase.textContent = doc.phase;
    phase.className = "phase phase-" + doc.phase;
    const canaryWeight = doc.canary ? doc.canary.weight : 0;
    const stableWeight = doc.stable ? doc.stable.weight : 0;
    setText("stable-version", doc.stable ? doc.stable.version || doc.stable.revision : "\u2013");
    setText("stable-weight", doc.stable ? stableWeight + "%" : "");
    setText("canary-version", doc.canary ? doc.canary.version || doc.canary.revision : "\u2013");
    setText("canary-weight", doc.canary ? canaryWeight + "%" : "");
    let step = "";
    if (doc.canary) {
      step = "step " + (doc.canary.step + 1) + ", asked " + doc.canary.desiredWeight + "%";
      if (doc.canary.pausedBy) step += ", held (" + doc.canary.pausedBy + ")";
    }
    setText("canary-step", step);
    document.getElementById("bar-stable").style.width = stableWeight + "%";
    document.getElementById("bar-canary").style.width = canaryWeight + "%";
    setText("message", doc.message);
  }

  function metricLine(m) {
    const line = el("div", null, "metric");
    line.append(el("span", m.verdict, "verdict-" + m.verdict));
    line.append(
      document.createTextNode(
        " " + m.name + ": " + number(m.canary) + " / " + number(m.stable) + " / " +
          number(m.threshold) + " \u2014 " + m.reason,
      ),
    );
    return line;
  }

  function renderChecks(doc, rollout) {
    const markers = doc.timeline.markers.filter((m) => rollout && m.rollout === rollout.id);
    const rows = markers.reverse().map((m) => {
      const metrics = document.createElement("div");
      metrics.append(...m.metrics.map(metricLine));
      return row([
        time(m.at), m.step + 1, m.weight + "%", el("span", m.verdict, "verdict-" + m.verdict),
        m.canaryRequests, metrics,
      ]);
    });
    fill(document.querySelector("#checks tbody"), rows, "no analysis check in this rollout", 6);
  }

  function renderRollouts(doc, rollout) {
    const rows = doc.rollouts.slice().reverse().map((r) => {
      const view = r.points > 0 ? link("?rollout=" + encodeURIComponent(r.id), "show") : "\u2013";
      const tr = row([
        r.version, r.revision, time(r.startedAt), time(r.finishedAt),
        r.result || "in progress", r.reason, view,
      ]);
      if (rollout && r.id === rollout.id) tr.className = "selected";
      return tr;
    });
    fill(document.querySelector("#rollouts tbody"), rows, "no rollout yet", 7);
  }

  function renderConditions(doc) {
    const rows = (doc.status.conditions || []).map((c) =>
      row([c.type, c.status, c.reason, c.message, time(c.lastTransitionTime)]),
    );
    fill(document.querySelector("#conditions tbody"), rows, "no condition", 5);
  }

  async function renderCharts(doc, rollout) {
    // Redraw when something changed, or while the rollout runs (its time axis grows).
    const key = doc.seq + "|" + (rollout ? rollout.id : "");
    const running = rollout && !rollout.finishedAt;
    if (key === chartsKey && !running) return;
    let url = "/md/" + encodeURIComponent(doc.namespace) + "/" + encodeURIComponent(doc.name);
    url += "/charts.svg";
    if (rollout) url += "?rollout=" + encodeURIComponent(rollout.id);
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error("charts: " + response.status + " " + response.statusText);
    // Trusted markup: the server draws it and escapes every string from the data.
    document.getElementById("charts").innerHTML = await response.text();
    chartsKey = key;
  }

  async function updateDetail() {
    const ns = encodeURIComponent(body.dataset.namespace);
    const name = encodeURIComponent(body.dataset.name);
    const doc = await getJSON("/api/modeldeployments/" + ns + "/" + name);
    const rollout = shownRollout(doc);
    renderSummary(doc);
    setText(
      "rollout-label",
      rollout ? "version " + (rollout.version || rollout.revision) +
        (rollout.finishedAt ? ", " + (rollout.result || "") : ", in progress") : "",
    );
    renderChecks(doc, rollout);
    renderRollouts(doc, rollout);
    renderConditions(doc);
    await renderCharts(doc, rollout);
    body.dataset.seq = String(doc.seq);
  }

  // ------------------------------------------------------------------ polling

  async function poll() {
    try {
      await (page === "detail" ? updateDetail() : updateList());
      refresh.textContent = "updated " + clock(new Date().toISOString()) + " UTC, every 2 s";
      refresh.className = "";
    } catch (error) {
      refresh.textContent = "could not update (" + error.message + "); retrying every 2 s";
      refresh.className = "error";
    }
    window.setTimeout(poll, POLL_MS);
  }

  poll();
})();
