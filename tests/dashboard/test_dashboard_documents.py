"""The JSON documents (api.py), their documented example, and the SVG charts (charts.py)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
from dashboard_fixtures import (
    NAME,
    NS,
    V1,
    V2,
    V2_ROLLOUT,
    at,
    check,
    rollout_story,
    stable,
    window,
    with_canary,
)

from serinus.api.status import Phase, RolloutResult, Verdict
from serinus.dashboard import api, charts
from serinus.dashboard.api import as_json
from serinus.dashboard.timeline import Timeline

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


def mid_rollout() -> Timeline:
    """v2 held at 60 % after one passing check and one measured window."""
    timeline = Timeline()
    v1 = stable()
    timeline.record(NS, NAME, v1, None, at(0))
    timeline.record(NS, NAME, with_canary(v1, Phase.VALIDATING, 0), None, at(10))
    timeline.record(NS, NAME, with_canary(v1, Phase.PROGRESSING, 30), None, at(15))
    first = check(25, 30, Verdict.PASS)
    status = with_canary(v1, Phase.PROGRESSING, 60, checks=[first])
    timeline.record(NS, NAME, status, window(300, 700), at(25))
    return timeline


def detail(timeline: Timeline) -> api.ModelDeploymentDetail:
    snapshot = timeline.get(NS, NAME)
    assert snapshot is not None
    return api.detail_document(snapshot)


# ---------------------------------------------------------------------- JSON


def test_list_items_say_phase_and_both_weights() -> None:
    timeline = mid_rollout()
    timeline.record("a-first", "other", stable(), None, at(1))
    document = as_json(api.list_document(timeline.all()))
    assert [(i["namespace"], i["name"]) for i in document["items"]] == [
        ("a-first", "other"),
        (NS, NAME),
    ]
    item = document["items"][1]
    assert item["phase"] == "Progressing"
    assert item["stable"] == {"revision": V1, "version": "1", "weight": 40}
    assert item["canary"]["weight"] == 60 and item["canary"]["desiredWeight"] == 60
    assert item["canary"]["version"] == "2" and item["canary"]["step"] == 1
    assert item["lastVerdict"] == "Pass" and item["lastCheckAt"] == "2026-01-01T12:00:25Z"
    settled = document["items"][0]
    assert settled["canary"] is None and settled["stable"]["weight"] == 100
    assert settled["lastVerdict"] is None
    # The wire shape is exactly the documented model (unknown fields are rejected).
    assert as_json(api.ModelDeploymentList.model_validate(document)) == document


def test_detail_has_rollouts_timeline_and_the_stored_status() -> None:
    timeline = Timeline()
    final = rollout_story(timeline)
    document = detail(timeline)
    wire = as_json(document)
    assert wire["status"] == final.to_wire()
    assert wire["phase"] == "Stable" and wire["canary"] is None
    [rollout] = document.rollouts
    assert rollout.id == V2_ROLLOUT and rollout.revision == V2 and rollout.version == "2"
    assert rollout.result == RolloutResult.PROMOTED and rollout.reason == "all 4 steps passed"
    assert rollout.finished_at == at(45)
    assert (rollout.points, rollout.markers) == (6, 2)
    assert len(wire["timeline"]["points"]) == 7 and len(wire["timeline"]["markers"]) == 2
    measured = [p for p in wire["timeline"]["points"] if p["canary"] is not None]
    assert [p["canary"]["requestRate"] for p in measured] == [30.0, 60.0]
    assert [p["canary"]["errorRate"] for p in measured] == [0.0, 0.01]
    assert wire["seq"] == timeline.get(NS, NAME).seq  # type: ignore[union-attr]
    assert as_json(api.ModelDeploymentDetail.model_validate(wire)) == wire
    json.dumps(wire)  # plain JSON all the way down


def test_the_current_rollout_is_listed_after_the_finished_ones() -> None:
    timeline = Timeline()
    final = rollout_story(timeline)
    third = with_canary(final, Phase.PROGRESSING, 30, started=60, revision="rev-v3", version="3")
    timeline.record(NS, NAME, third, None, at(61))
    rollouts = detail(timeline).rollouts
    assert [(r.version, r.result, r.finished_at) for r in rollouts] == [
        ("2", RolloutResult.PROMOTED, at(45)),
        ("3", None, None),
    ]
    assert rollouts[-1].points == 1


def test_the_page_shows_the_latest_rollout_with_points_unless_asked() -> None:
    timeline = Timeline()
    final = rollout_story(timeline)
    document = detail(timeline)
    shown = api.shown_rollout(document, None)
    assert shown is not None and shown.id == V2_ROLLOUT
    assert api.shown_rollout(document, V2_ROLLOUT) == shown
    assert api.shown_rollout(document, "rev-nope-1") is None
    # After a restart the history is known but no point of it: it is still offered.
    fresh = Timeline()
    fresh.record(NS, NAME, final, None, at(100))
    fallback = api.shown_rollout(detail(fresh), None)
    assert fallback is not None and fallback.id == V2_ROLLOUT and fallback.points == 0


def _json_blocks(markdown: str) -> list[dict]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", markdown, re.S)]


def test_the_documented_examples_are_valid_documents() -> None:
    """docs/dashboard.md shows one list and one detail document; both must parse as the
    models the server answers with (unknown or missing fields fail)."""
    blocks = _json_blocks((ROOT / "docs" / "dashboard.md").read_text())
    lists = [b for b in blocks if set(b) == {"items"}]
    details = [b for b in blocks if "timeline" in b]
    errors = [b for b in blocks if set(b) == {"error"}]
    assert lists and details and errors, "docs/dashboard.md lost an example"
    for block in lists:
        assert as_json(api.ModelDeploymentList.model_validate(block)) == block
    for block in details:
        assert as_json(api.ModelDeploymentDetail.model_validate(block)) == block
    for block in errors:
        api.ApiError.model_validate(block)


def test_the_schema_names_every_field_of_the_documents() -> None:
    schema = api.api_schema()
    detail_props = schema["ModelDeploymentDetail"]["properties"]
    for field in ("phase", "stable", "canary", "rollouts", "timeline", "status", "seq"):
        assert field in detail_props
    point = schema["ModelDeploymentDetail"]["$defs"]["VariantPoint"]["properties"]
    assert set(point) == {
        "requests", "requestRate", "errors", "errorRate", "p99Seconds", "predictionMix"
    }  # fmt: skip


# ---------------------------------------------------------------------- SVG


def svg_of(timeline: Timeline, rollout: str | None = None, now_s: float = 50) -> ET.Element:
    document = detail(timeline)
    text = charts.render_charts(document, api.shown_rollout(document, rollout), at(now_s))
    return ET.fromstring(text)


def test_charts_draw_weight_markers_and_every_metric_per_variant() -> None:
    timeline = Timeline()
    rollout_story(timeline)
    root = svg_of(timeline)
    [weight] = root.iter(f"{SVG}path")
    assert weight.get("data-weights") == "0,30,60,60,100,100"
    markers = [c for c in root.iter(f"{SVG}circle") if "marker" in (c.get("class") or "")]
    assert [m.get("data-verdict") for m in markers] == ["Pass", "Inconclusive"]
    tips = [m.find(f"{SVG}title").text or "" for m in markers]  # type: ignore[union-attr]
    assert tips[0].startswith("Pass at 12:00:25 (step 2, weight 30%, 120 canary requests): ")
    assert "error-rate 0.0% within max 5.0%" in tips[0]
    assert "fewer than minRequests 50" in tips[1]
    series = [p.get("data-series") for p in root.iter(f"{SVG}polyline")]
    # request rate, error rate, p99: stable and canary; then the mix: three classes x two.
    assert series[:6] == ["stable", "canary"] * 3
    assert sorted(series[6:]) == sorted(f"{c} {v}" for c in "012" for v in ("stable", "canary"))
    phases = [r.get("data-phase") for r in root.iter(f"{SVG}rect") if r.get("data-phase")]
    assert phases == ["Validating", "Progressing", "Promoting", "Stable"]
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "Rollout of version 2 (revision rev-v2)" in texts and "Promoted" in texts
    for title in ("Canary weight", "Requests per second", "Error rate", "p99 latency"):
        assert title in texts


def test_a_measured_window_lands_where_its_value_is() -> None:
    """The canary's request-rate polyline passes through 30 and 60 req/s on a 0-100 axis."""
    timeline = Timeline()
    rollout_story(timeline)
    root = svg_of(timeline)

    def ys_of(series: str) -> list[float]:
        line = next(p for p in root.iter(f"{SVG}polyline") if p.get("data-series") == series)
        return [float(xy.split(",")[1]) for xy in (line.get("points") or "").split()]

    ys, stable_ys = ys_of("canary"), ys_of("stable")
    # stable 70 then 40 req/s, canary 30 then 60: in SVG, higher values are smaller y.
    assert ys[0] > ys[1] and stable_ys[0] < stable_ys[1]
    height = 110
    top = ys[0] - (1 - 30 / 100) * height  # the panel's top from the first value
    assert ys[1] == pytest.approx(top + (1 - 60 / 100) * height, abs=0.2)
    assert stable_ys[0] == pytest.approx(top + (1 - 70 / 100) * height, abs=0.2)


def test_text_from_the_data_is_escaped() -> None:
    timeline = Timeline()
    evil = check(25, 30, Verdict.FAIL)
    evil.metrics[1].verdict = Verdict.FAIL
    evil.metrics[1].reason = 'latency <script>alert("x")</script> & more'
    status = with_canary(stable(), Phase.PROGRESSING, 30, checks=[evil], version="<b>2</b>")
    timeline.record(NS, NAME, status, window(100, 100), at(25))
    text = charts.render_charts(detail(timeline), api.shown_rollout(detail(timeline), None), at(30))
    assert "<script>" not in text and "<b>" not in text
    root = ET.fromstring(text)
    [marker] = [c for c in root.iter(f"{SVG}circle") if c.get("data-verdict")]
    tip = marker.find(f"{SVG}title").text or ""  # type: ignore[union-attr]
    assert 'latency-p99: latency <script>alert("x")</script> & more' in tip


def test_nothing_to_draw_says_so() -> None:
    timeline = Timeline()
    timeline.record(NS, NAME, stable(), None, at(0))
    root = svg_of(timeline)
    assert "no rollout yet" in "".join(root.itertext())
    fresh = Timeline()
    fresh.record(NS, NAME, rollout_story(Timeline()), None, at(100))
    assert "holds no timeline points of this rollout" in "".join(svg_of(fresh).itertext())


def test_a_long_running_rollout_keeps_a_small_svg() -> None:
    timeline = mid_rollout()
    document = detail(timeline)
    shown = api.shown_rollout(document, None)
    months = at(25) + timedelta(days=90)
    text = charts.render_charts(document, shown, months)
    assert len(text) < 40_000
    assert len(ET.fromstring(text).findall(f".//{SVG}line")) < 200
