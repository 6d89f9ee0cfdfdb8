"""The timeline of one rollout as an SVG document, drawn on the server from the JSON document.

Panels share one time axis (seconds since the rollout began): the phase band and the canary
weight with a marker per analysis verdict (its reason in the marker's tooltip), then stable and
canary per window: request rate, error rate, p99 latency and prediction mix (one colour per
class; canary solid, stable dashed). No JavaScript and no library: plain SVG text, every string
from the data escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from serinus.api.status import Phase, Verdict
from serinus.dashboard.api import (
    ModelDeploymentDetail,
    RolloutSummary,
    TimelinePoint,
    VariantPoint,
    VerdictMarker,
)

WIDTH = 960
LEFT, RIGHT = 64, 24
PLOT = WIDTH - LEFT - RIGHT
HEADER = 44
BAND = 18
GAP = 40
AXIS = 28
MIN_SPAN_S = 10.0

TEXT = "#333"
MUTED = "#666"
GRID = 'stroke="#e5e5e5" stroke-width="1"'
STABLE_COLOUR = "#1f77b4"
CANARY_COLOUR = "#ff7f0e"
VERDICT_COLOURS = {
    Verdict.PASS: "#2ca02c",
    Verdict.FAIL: "#d62728",
    Verdict.INCONCLUSIVE: "#8c8c8c",
}
PHASE_COLOURS = {
    Phase.PENDING: "#e0e0e0",
    Phase.VALIDATING: "#c6dbef",
    Phase.PROGRESSING: "#fdd0a2",
    Phase.PAUSED: "#fff3b0",
    Phase.PROMOTING: "#c7e9c0",
    Phase.ROLLING_BACK: "#fcbba1",
    Phase.ROLLED_BACK: "#fb6a4a",
    Phase.STABLE: "#a1d99b",
    Phase.FAILED: "#de2d26",
    Phase.DEGRADED: "#fdae6b",
}
CLASS_COLOURS = ["#6a3d9a", "#33a02c", "#e31a1c", "#1f78b4", "#b15928", "#fb9a99", "#a6cee3"]
TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400]

Getter = Callable[[VariantPoint], float | None]


@dataclass(frozen=True)
class _Series:
    label: str
    colour: str
    dashed: bool
    values: list[tuple[datetime, float]]


@dataclass(frozen=True)
class _Axis:
    start: datetime
    end: datetime

    @property
    def span(self) -> float:
        return (self.end - self.start).total_seconds()

    def x(self, at: datetime) -> float:
        return LEFT + (at - self.start).total_seconds() / self.span * PLOT


def render_charts(
    detail: ModelDeploymentDetail, rollout: RolloutSummary | None, now: datetime
) -> str:
    """The SVG of `rollout` of `detail` (an empty-state SVG when there is nothing to draw)."""
    points = [p for p in detail.timeline.points if rollout and p.rollout == rollout.id]
    markers = [m for m in detail.timeline.markers if rollout and m.rollout == rollout.id]
    if rollout is None or not points:
        text = (
            "no rollout yet: the timeline starts with the next new version"
            if rollout is None
            else "the dashboard holds no timeline points of this rollout (it keeps the "
            "recent ones in memory)"
        )
        return _document(
            120, [f'<text x="{LEFT}" y="60" font-size="13" fill="{MUTED}">{escape(text)}</text>']
        )
    axis = _time_axis(rollout, points, markers, now)
    parts = [_title(rollout), _legend()]
    y = HEADER
    parts.append(_phase_band(axis, points, y))
    y += BAND + 8
    panels: list[tuple[str, int, Callable[[float, int], list[str]]]] = [
        ("Canary weight (%)", 150, lambda top, h: _weight_panel(axis, points, markers, top, h)),
        ("Requests per second", 110, _metric(axis, points, lambda v: v.request_rate)),
        ("Error rate (%)", 110, _metric(axis, points, _error_percent)),
        ("p99 latency (ms)", 110, _metric(axis, points, _p99_ms)),
        ("Prediction mix (share of predictions)", 130, _mix_panel(axis, points)),
    ]
    for title, height, draw in panels:
        y += GAP - 14
        parts.append(
            f'<text x="{LEFT}" y="{y - 6}" font-size="12" font-weight="600">{escape(title)}</text>'
        )
        parts.extend(draw(y, height))
        parts.extend(_marker_lines(axis, markers, y, height))
        parts.extend(_time_grid(axis, y, height, labels=title.startswith("Prediction")))
        y += height
    return _document(y + AXIS, parts)


# ---------------------------------------------------------------------- layout


def _document(height: float, parts: Sequence[str]) -> str:
    # Presentation attributes only (no <style>, no style=""): the page's Content-Security-Policy
    # allows no inline styles, and the SVG looks the same opened on its own.
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" class="timeline" '
        f'font-family="system-ui, sans-serif" font-size="11" fill="{TEXT}">\n{body}\n</svg>'
    )


def _time_axis(
    rollout: RolloutSummary,
    points: list[TimelinePoint],
    markers: list[VerdictMarker],
    now: datetime,
) -> _Axis:
    times = [p.at for p in points] + [m.at for m in markers]
    start = min([rollout.started_at, *times])
    end = max(times)
    if rollout.finished_at is None:
        end = max(end, now)
    if (end - start).total_seconds() < MIN_SPAN_S:
        end = start + timedelta(seconds=MIN_SPAN_S)
    return _Axis(start, end)


def _title(rollout: RolloutSummary) -> str:
    version = rollout.version or rollout.revision
    text = (
        f"Rollout of version {version} (revision {rollout.revision}), started "
        f"{rollout.started_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    if rollout.result is not None:
        text += f": {rollout.result.value}"
        if rollout.reason:
            text += f", {rollout.reason}"
    else:
        text += ": in progress"
    return f'<text x="{LEFT}" y="16" font-size="13" font-weight="600">{escape(text)}</text>'


def _legend() -> str:
    line = '<line x1="0" y1="0" x2="18" y2="0" stroke="{}" stroke-width="2"/>'
    items = [
        (line.format(STABLE_COLOUR), "stable"),
        (line.format(CANARY_COLOUR), "canary"),
        *[
            (f'<circle cx="9" cy="0" r="5" fill="{colour}"/>', f"{verdict.value}")
            for verdict, colour in VERDICT_COLOURS.items()
        ],
    ]  # fmt: skip
    out, x = [], LEFT
    for glyph, label in items:
        out.append(
            f'<g transform="translate({x},32)">{glyph}<text x="24" y="4">{escape(label)}</text></g>'
        )
        x += 34 + 7 * len(label)
    return "\n".join(out)


def _phase_band(axis: _Axis, points: list[TimelinePoint], top: float) -> str:
    out = []
    for i, point in enumerate(points):
        end = points[i + 1].at if i + 1 < len(points) else axis.end
        if i + 1 < len(points) and points[i + 1].phase == point.phase:
            continue  # merged into the next rectangle
        begin = point.at
        j = i
        while j > 0 and points[j - 1].phase == point.phase:
            j -= 1
            begin = points[j].at
        x0, x1 = axis.x(begin), axis.x(end)
        colour = PHASE_COLOURS.get(point.phase, "#ddd")
        label = escape(point.phase.value)
        out.append(
            f'<rect class="phase" data-phase="{label}" x="{x0:.1f}" y="{top}" '
            f'width="{max(x1 - x0, 1.0):.1f}" height="{BAND}" fill="{colour}">'
            f"<title>{label} from {begin:%H:%M:%S}</title></rect>"
        )
        if x1 - x0 > 8 * len(label) + 6:
            out.append(f'<text x="{x0 + 4:.1f}" y="{top + 13}">{label}</text>')
    return "\n".join(out)


def _time_grid(axis: _Axis, top: float, height: int, *, labels: bool) -> list[str]:
    day = TIME_STEPS[-1]
    step = next((s for s in TIME_STEPS if axis.span / s <= 8), math.ceil(axis.span / 8 / day) * day)
    out = [
        f'<rect x="{LEFT}" y="{top}" width="{PLOT}" height="{height}" fill="none" stroke="#bbb"/>'
    ]
    offset = 0.0
    while offset <= axis.span + 1e-9:
        x = LEFT + offset / axis.span * PLOT
        out.append(f'<line {GRID} x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + height}"/>')
        if labels:
            out.append(
                f'<text fill="{MUTED}" x="{x:.1f}" y="{top + height + 14}" text-anchor="middle">'
                f"+{_elapsed(offset)}</text>"
            )
        offset += step
    return out


def _y_grid(top: float, height: int, maximum: float, unit: Callable[[float], str]) -> list[str]:
    out = []
    for fraction in (0.0, 0.5, 1.0):
        y = top + height - fraction * height
        out.append(f'<line {GRID} x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT}" y2="{y:.1f}"/>')
        out.append(
            f'<text fill="{MUTED}" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(unit(fraction * maximum))}</text>"
        )
    return out


# ---------------------------------------------------------------------- panels


def _weight_panel(
    axis: _Axis,
    points: list[TimelinePoint],
    markers: list[VerdictMarker],
    top: float,
    height: int,
) -> list[str]:
    def y(weight: float) -> float:
        return top + height - weight / 100 * height

    out = _y_grid(top, height, 100, lambda v: f"{v:.0f}")
    path = []
    for i, point in enumerate(points):
        x, level = axis.x(point.at), y(point.weight)
        path.append(f"M{x:.1f},{level:.1f}" if i == 0 else f"H{x:.1f}V{level:.1f}")
    path.append(f"H{axis.x(axis.end):.1f}")
    weights = ",".join(str(p.weight) for p in points)
    out.append(
        f'<path class="weight" data-weights="{weights}" d="{"".join(path)}" fill="none" '
        f'stroke="{CANARY_COLOUR}" stroke-width="2.5"/>'
    )
    for marker in markers:
        colour = VERDICT_COLOURS[marker.verdict]
        verdict = marker.verdict.value
        tip = (
            f"{verdict} at {marker.at:%H:%M:%S} (step {marker.step + 1}, weight "
            f"{marker.weight}%, {marker.canary_requests or 0} canary requests): {marker.reason}"
        )
        out.append(
            f'<circle class="marker marker-{verdict.lower()}" data-verdict="{verdict}" '
            f'cx="{axis.x(marker.at):.1f}" cy="{y(marker.weight):.1f}" r="6" fill="{colour}" '
            f'stroke="#fff" stroke-width="1.5"><title>{escape(tip)}</title></circle>'
        )
    return out


def _marker_lines(axis: _Axis, markers: list[VerdictMarker], top: float, height: int) -> list[str]:
    return [
        f'<line x1="{axis.x(m.at):.1f}" y1="{top}" x2="{axis.x(m.at):.1f}" y2="{top + height}" '
        f'stroke="{VERDICT_COLOURS[m.verdict]}" stroke-dasharray="2,3" stroke-opacity="0.7"/>'
        for m in markers
    ]


def _error_percent(v: VariantPoint) -> float | None:
    return None if v.error_rate is None else v.error_rate * 100


def _p99_ms(v: VariantPoint) -> float | None:
    return None if v.p99_seconds is None else v.p99_seconds * 1000


def _metric(
    axis: _Axis, points: list[TimelinePoint], get: Getter
) -> Callable[[float, int], list[str]]:
    def draw(top: float, height: int) -> list[str]:
        series = [
            _Series("stable", STABLE_COLOUR, False, _values(points, "stable", get)),
            _Series("canary", CANARY_COLOUR, False, _values(points, "canary", get)),
        ]
        return _lines(axis, series, top, height, None)

    return draw


def _mix_panel(axis: _Axis, points: list[TimelinePoint]) -> Callable[[float, int], list[str]]:
    labels = sorted(
        {
            label
            for p in points
            for v in (p.stable, p.canary)
            if v is not None and v.prediction_mix
            for label in v.prediction_mix
        }
    )

    def draw(top: float, height: int) -> list[str]:
        series = []
        for i, label in enumerate(labels):
            colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]

            def share(v: VariantPoint, label: str = label) -> float | None:
                return (v.prediction_mix or {}).get(label, 0.0) if v.prediction_mix else None

            series.append(
                _Series(f"{label} stable", colour, True, _values(points, "stable", share))
            )
            series.append(
                _Series(f"{label} canary", colour, False, _values(points, "canary", share))
            )
        out = _lines(axis, series, top, height, 1.0)
        x = LEFT + PLOT
        for i, label in enumerate(labels):
            colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
            out.append(
                f'<text x="{x - 4}" y="{top + 14 + 13 * i}" text-anchor="end" fill="{colour}" '
                f'font-weight="600">{escape(label)}</text>'
            )
        return out

    return draw


def _values(points: list[TimelinePoint], variant: str, get: Getter) -> list[tuple[datetime, float]]:
    out = []
    for point in points:
        figures: VariantPoint | None = getattr(point, variant)
        if figures is None:
            continue
        value = get(figures)
        if value is not None and math.isfinite(value):
            out.append((point.at, value))
    return out


def _lines(
    axis: _Axis, series: list[_Series], top: float, height: int, fixed_max: float | None
) -> list[str]:
    values = [v for s in series for _, v in s.values]
    if not values:
        return [
            *_y_grid(top, height, 1.0, lambda _: ""),
            f'<text x="{LEFT + 8}" y="{top + height / 2 + 4:.0f}" fill="{MUTED}">no analysis '
            "window measured yet</text>",
        ]
    maximum = fixed_max if fixed_max is not None else _nice_max(max(values))
    out = _y_grid(top, height, maximum, _format)

    def y(value: float) -> float:
        return top + height - min(value / maximum, 1.0) * height

    for s in series:
        if not s.values:
            continue
        coords = " ".join(f"{axis.x(at):.1f},{y(v):.1f}" for at, v in s.values)
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        label = escape(s.label)
        out.append(
            f'<polyline class="series" data-series="{label}" points="{coords}" fill="none" '
            f'stroke="{s.colour}" stroke-width="2"{dash}><title>{label}</title></polyline>'
        )
        for at, v in s.values:
            out.append(
                f'<circle cx="{axis.x(at):.1f}" cy="{y(v):.1f}" r="2.5" fill="{s.colour}">'
                f"<title>{label} {_format(v)} at {at:%H:%M:%S}</title></circle>"
            )
    return out


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= value * 1.05:
            return factor * magnitude
    return 10 * magnitude


def _format(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _elapsed(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"
