"""Turn bench/runtime/results/*.jsonl into the "## Runtime" section of bench/README.md.

Usage: python summarize.py RESULTS_DIR README_PATH [RUN_NOTE]
Tables: every cell; Serinus / peer ratios; the issue's goals with a verdict; startup and RSS.
Prose that needs a person (why a goal is missed) lives in bench/runtime/NOTES.md, included as is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTION = "## Runtime"


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def errors(r: dict) -> int:
    return sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))


def peer_key(server: str, proto: str) -> str | None:
    if server.startswith("serinus"):
        return None
    if server.startswith("mlserver") and "default" in server:
        return "MLServer default"
    if server.startswith("mlserver") and "parallel_workers=0" in server:
        return "MLServer in-process"
    if server.startswith("mlserver"):
        return "MLServer 2 workers"
    if server.startswith("kserve"):
        return f"KServe {proto}"
    if server.startswith("floor") and "1 worker" in server:
        return "bare app"
    if server.startswith("floor"):
        return "bare app 2 workers"
    return server


def cells_of(rows: list[dict]) -> dict[tuple[str, str, str, str], dict]:
    """(who, model, rows, conc) -> wrk result, `who` being a short server name."""
    cells: dict[tuple[str, str, str, str], dict] = {}
    for r in rows:
        server, proto, model, nrows, conc = r["label"].split("|")
        who = peer_key(server, proto) or (
            "Serinus"
            + ("" if "native" in server else " (uvicorn)")
            + (" 2 workers" if "2 workers" in server else "")
            + ("" if proto == "V2" else " V1")
        )
        cells[(who, model, nrows, conc)] = r
    return cells


def across_runs(runs: Path) -> list[str]:
    """The headline goals in every archived full run (runs/N-load.jsonl, N-note.txt)."""
    files = sorted(runs.glob("*-load.jsonl"), key=lambda p: int(p.name.split("-")[0]))
    if not files:
        return []
    out = ["", "### Headline goals in every full run", "",
           "Each run is one invocation of `run.sh` (raw data in `results/runs/`); the box was "
           "shared with other work to a varying degree, noted per run.", "",
           "| run | m1 1 row c=8 vs bare app | p99 Serinus / bare app (ms) "
           "| vs MLServer / KServe V2 "
           "| m2 1 row c=32, lowest ratio to a peer | p99 vs MLServer (ms) "
           "| 100 rows vs KServe V2, lowest (c>1) | box |",
           "|---|---:|---|---|---:|---|---:|---|"]  # fmt: skip
    for f in files:
        n = f.name.split("-")[0]
        c = cells_of(load(f))
        note_file = runs / f"{n}-note.txt"
        note = note_file.read_text().strip() if note_file.exists() else ""

        def get(who: str, m: str, rows: str, conc: str, c: dict = c) -> dict | None:
            return c.get((who, m, rows, conc))

        s1, b1 = get("Serinus", "m1", "1", "8"), get("bare app", "m1", "1", "8")
        ml, ks = get("MLServer default", "m1", "1", "8"), get("KServe V2", "m1", "1", "8")
        s2 = get("Serinus", "m2", "1", "32")
        peers2 = [get(p, "m2", "1", "32") for p in
                  ("MLServer default", "KServe V2", "KServe V1", "bare app")]  # fmt: skip
        peers2 = [p for p in peers2 if p]
        ml2 = get("MLServer default", "m2", "1", "32")
        hundred = []
        for m, conc in (("m1", "8"), ("m1", "32"), ("m2", "8"), ("m2", "32")):
            sv, kv = get("Serinus", m, "100", conc), get("KServe V2", m, "100", conc)
            if sv and kv:
                hundred.append(sv["rps"] / kv["rps"])

        def ratio(a: dict | None, b: dict | None) -> str:
            return f"{a['rps'] / b['rps']:.2f}x" if a and b else "-"

        out.append(
            f"| {n} | {ratio(s1, b1)} | "
            + (f"{s1['p99_ms']:.1f} / {b1['p99_ms']:.1f}" if s1 and b1 else "-")
            + f" | {ratio(s1, ml)} / {ratio(s1, ks)} | "
            + (f"{min(s2['rps'] / p['rps'] for p in peers2):.1f}x" if s2 and peers2 else "-")
            + " | "
            + (f"{s2['p99_ms']:.1f} / {ml2['p99_ms']:.1f}" if s2 and ml2 else "-")
            + f" | {(f'{min(hundred):.1f}x' if hundred else '-')} | {note} |"
        )
    return out


def main(results: Path, readme: Path, note: str) -> None:
    rows = load(results / "load.jsonl")
    servers = load(results / "servers.jsonl")
    cells = cells_of(rows)
    table = [(*r["label"].split("|"), r) for r in rows]

    out: list[str] = [SECTION, ""]
    out.append(
        "Serinus runtime vs the peers of `../shared/peers-bench` in **one run**: same models (the "
        "peers' `model.joblib` files, packed into bundles so the runtime keeps its full metrics: "
        "per-feature bins, class counts, latency histogram), same request bodies, wrk 4.1 `-t1`, "
        "1 s warm-up + measured run, load on core 0, each server on core 1. Reproduce: "
        '`bash bench/runtime/run.sh` (about 20 min; `PEERS="floor1" DUR=5` narrows it). '
        f"Raw results: `bench/runtime/results/`. This run: {note}."
    )
    out.append("")
    out += goals(cells, servers)
    out += ab_table(results / "ab.jsonl")
    out += across_runs(results / "runs")
    notes = HERE / "NOTES.md"
    if notes.exists():
        out += ["", notes.read_text().strip(), ""]
    out += ["", "### All cells (V2 unless noted)", "",
            "| server | proto | model | rows | conc | req/s | p50 ms | p99 ms | errors |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for server, proto, model, nrows, conc, r in table:
        mname = {"m1": "m1 LogReg", "m2": "m2 RF100"}[model]
        out.append(f"| {server} | {proto} | {mname} | {nrows} | {conc} | {r['rps']:.0f} | "
                   f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {errors(r)} |")  # fmt: skip
    out += ["", "### Serinus req/s as a multiple of each peer's (V2, same cell)", ""]
    peers = sorted({k[0] for k in cells if not k[0].startswith("Serinus")})
    out.append("| model | rows | conc | Serinus req/s | " + " | ".join(peers) + " |")
    out.append("|---|---:|---:|---:|" + "---:|" * len(peers))
    for (who, model, nrows, conc), r in sorted(cells.items(), key=lambda kv: kv[0][1:]):
        if who != "Serinus":
            continue
        ratios = []
        for p in peers:
            pr = cells.get((p, model, nrows, conc))
            ratios.append(f"{r['rps'] / pr['rps']:.1f}x" if pr and pr["rps"] else "-")
        out.append(f"| {model} | {nrows} | {conc} | {r['rps']:.0f} | " + " | ".join(ratios) + " |")
    out += ["", "### Startup and memory", "",
            "| server | model(s) | ready after (s) | first infer (s) | RSS at rest (MiB) | procs |",
            "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for s in servers:
        out.append(f"| {s['server']} | {s.get('model', 'm1+m2')} | {s['ready_health_s']:.2f} | "
                   f"{s['first_infer_s']:.2f} | {s['rss_mb']} | {s['procs']} |")  # fmt: skip
    out.append("")
    write_section(readme, "\n".join(out))


def goals(cells: dict, servers: list[dict]) -> list[str]:
    def rps(who: str, m: str, rows: str, c: str) -> float | None:
        r = cells.get((who, m, rows, c))
        return r["rps"] if r else None

    def p99(who: str, m: str, rows: str, c: str) -> float | None:
        r = cells.get((who, m, rows, c))
        return r["p99_ms"] if r else None

    lines = ["### Goals (issue 7)", "", "| goal | measured | met |", "|---|---|---|"]

    def row(goal: str, value: float | None, base: float | None, need: float, unit: str = "x",
            higher: bool = True) -> None:  # fmt: skip
        if value is None or base is None or base == 0:
            lines.append(f"| {goal} | not measured in this run | ? |")
            return
        if unit == "x":
            ratio = value / base
            ok = ratio >= need
            lines.append(f"| {goal} | {value:.0f} vs {base:.0f} req/s = **{ratio:.2f}x** | "
                         f"{'yes' if ok else '**no**'} |")  # fmt: skip
        else:
            ok = value <= base if not higher else value >= base
            lines.append(f"| {goal} | {value:.2f} vs {base:.2f} {unit} | "
                         f"{'yes' if ok else '**no**'} |")  # fmt: skip

    s = "Serinus"
    row(
        "m1 1 row c=8 ≥ 1.0x bare app", rps(s, "m1", "1", "8"), rps("bare app", "m1", "1", "8"), 1.0
    )
    row("m1 1 row c=8 ≥ 6x MLServer default", rps(s, "m1", "1", "8"),
        rps("MLServer default", "m1", "1", "8"), 6.0)  # fmt: skip
    row(
        "m1 1 row c=8 ≥ 3x KServe V2", rps(s, "m1", "1", "8"), rps("KServe V2", "m1", "1", "8"), 3.0
    )
    row("m1 1 row c=8 p99 ≤ bare app's", p99(s, "m1", "1", "8"), p99("bare app", "m1", "1", "8"),
        0, unit="ms", higher=False)  # fmt: skip
    for peer in ("MLServer default", "KServe V2", "KServe V1", "bare app"):
        row(f"m2 1 row c=32 ≥ 5x {peer}", rps(s, "m2", "1", "32"), rps(peer, "m2", "1", "32"), 5.0)
    row("m2 1 row c=32 p99 < MLServer default's", p99(s, "m2", "1", "32"),
        p99("MLServer default", "m2", "1", "32"), 0, unit="ms", higher=False)  # fmt: skip
    for m in ("m1", "m2"):
        for c in ("1", "8", "32"):
            row(f"{m} 100 rows c={c} ≥ 2x KServe V2", rps(s, m, "100", c),
                rps("KServe V2", m, "100", c), 2.0)  # fmt: skip
    srss = [x["rss_mb"] for x in servers if x["server"] == "serinus"]  # the 1-process config
    krss = [x["rss_mb"] for x in servers if x["server"].startswith("kserve")]
    if srss and krss:
        ok = max(srss) <= krss[0]
        lines.append(f"| RSS at rest ≤ KServe's | {max(srss)} vs {krss[0]} MiB | "
                     f"{'yes' if ok else '**no**'} |")  # fmt: skip
    lines.append("| a long predict does not stall health checks | tested: "
                 "`tests/runtime/test_lifecycle.py::test_long_predict_does_not_stall_health_or_other_"
                 "routes` | yes |")  # fmt: skip
    return lines


def ab_table(path: Path) -> list[str]:
    """Medians of the interleaved bare-app / Serinus runs (robust to load from other work)."""
    if not path.exists() or not path.read_text().strip():
        return []
    import statistics

    runs: dict[tuple[str, str, str, str], list[dict]] = {}
    for r in load(path):
        who, m, rows, c, _rep = r["label"].split("|")
        runs.setdefault((who, m, rows, c), []).append(r)
    out = ["", "### Interleaved A/B, bare app vs Serinus (median of the repetitions)", "",
           "Both servers up side by side on core 1, wrk alternating between them, so other load "
           "on the box falls on both alike.", "",
           "| cell | bare app req/s | Serinus req/s | ratio | bare app p99 ms | Serinus p99 ms |",
           "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for m, rows, c in (("m1", "1", "8"), ("m2", "1", "32"), ("m1", "100", "8")):
        f = runs.get(("floor", m, rows, c))
        s = runs.get(("serinus", m, rows, c))
        if not f or not s:
            continue
        frps = statistics.median(r["rps"] for r in f)
        srps = statistics.median(r["rps"] for r in s)
        fp99 = statistics.median(r["p99_ms"] for r in f)
        sp99 = statistics.median(r["p99_ms"] for r in s)
        out.append(f"| {m} {rows} row(s) c={c} (n={len(s)}) | {frps:.0f} | {srps:.0f} | "
                   f"**{srps / frps:.2f}x** | {fp99:.2f} | {sp99:.2f} |")  # fmt: skip
    return out


def write_section(readme: Path, section: str) -> None:
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == SECTION), None)
    if start is None:
        new = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))  # fmt: skip
        new = "\n".join([*lines[:start], *section.rstrip().splitlines(), "", *lines[end:]])
        new = new.rstrip() + "\n"
    readme.write_text(new)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
