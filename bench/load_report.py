"""Turns load results into the console table, the RESULTS.md section and the PNG.

A Cell is one (RPC, load) measurement. The generated parts of RESULTS.md sit
between marker comments inside the "## Load (bench/load.py)" section, so a
rerun replaces the numbers and keeps any hand-written notes around them (and
every other section of the file).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECTION = "## Load (bench/load.py)"
TABLE_MARK = "load-table"
SOAK_MARK = "load-soak"
# Goals of issue 17: RPS at c=16 as a fraction of echo, and p99 at most 2x echo's.
# Generate is judged over a store of under 1k (the Generate@1k row: a ring of
# 1,000, full) and over a full 20k store (Generate@20k).
RPS_GOALS = {"GetState": 0.8, "ProcessEvent": 0.6, "Generate@1k": 0.6, "Generate@20k": 0.3}
GOAL_CONCURRENCY = 16
P99_GOAL = 2.0
# Each RPC is compared with the bare-grpc baseline of its shape.
BASELINES = ("echo", "echo-stream")
BASELINE_OF = {"StreamGenerate": "echo-stream", "echo-stream": "echo-stream"}


@dataclass
class Cell:
    rpc: str
    mode: str  # "closed" or "open"
    load: float  # concurrency (closed) or calls per second (open)
    result: dict[str, Any]
    server_cpu: float  # fraction of one core during the measured window
    client_cpu: float

    @property
    def rps(self) -> float:
        return float(self.result["rps"])

    def p(self, which: str) -> float:
        return float(self.result[f"{which}_ms"])

    @property
    def label(self) -> str:
        return f"c={int(self.load)}" if self.mode == "closed" else f"open {self.load:,.0f}/s"


def _echo_for(cells: list[Cell], cell: Cell) -> Cell | None:
    base = BASELINE_OF.get(cell.rpc, "echo")
    for other in cells:
        if other.rpc == base and other.mode == cell.mode and other.load == cell.load:
            return other
    return None


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def rows(cells: list[Cell]) -> list[dict[str, Any]]:
    out = []
    for cell in cells:
        echo = _echo_for(cells, cell)
        errors = sum(cell.result["errors"].values())
        accepted = cell.result.get("accepted_frac")
        out.append(
            {
                "rpc": cell.rpc,
                "load": cell.label,
                "rps": cell.rps,
                "p50": cell.p("p50"),
                "p90": cell.p("p90"),
                "p99": cell.p("p99"),
                "rps_x": _ratio(cell.rps, echo.rps) if echo and cell.mode == "closed" else None,
                "p99_x": _ratio(cell.p("p99"), echo.p("p99")) if echo else None,
                "srv_cpu": cell.server_cpu,
                "cli_cpu": cell.client_cpu,
                "errors": errors,
                "accepted": accepted,
            }
        )
    return out


_HEADER = (
    "rpc",
    "load",
    "RPS",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "RPS / echo",
    "p99 / echo",
    "server CPU",
    "client CPU",
    "errors",
    "accepted",
)


def _fmt_row(r: dict[str, Any]) -> list[str]:
    def num(v: float | None, spec: str) -> str:
        return "–" if v is None or math.isnan(v) else format(v, spec)

    return [
        r["rpc"],
        r["load"],
        num(r["rps"], ",.0f"),
        num(r["p50"], ".2f"),
        num(r["p90"], ".2f"),
        num(r["p99"], ".2f"),
        num(r["rps_x"], ".2f"),
        num(r["p99_x"], ".2f"),
        f"{r['srv_cpu']:.0%}",
        f"{r['cli_cpu']:.0%}",
        str(r["errors"]),
        "–" if r["accepted"] is None else f"{r['accepted']:.0%}",
    ]


def console_table(cells: list[Cell]) -> str:
    table = [list(_HEADER)] + [_fmt_row(r) for r in rows(cells)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADER))]
    lines = []
    for n, line in enumerate(table):
        cols = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cols))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(cells: list[Cell]) -> str:
    align = ["---", "---"] + ["---:"] * (len(_HEADER) - 2)
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_fmt_row(r)) + " |" for r in rows(cells)]
    return "\n".join(lines)


def goals(cells: list[Cell]) -> list[str]:
    """One line per goal of the issue: met or not, with the measured ratio."""
    out = []
    by = {(c.rpc, c.mode, c.load): c for c in cells}
    echo16 = by.get(("echo", "closed", GOAL_CONCURRENCY))
    for rpc, goal in RPS_GOALS.items():
        cell = by.get((rpc, "closed", GOAL_CONCURRENCY))
        if cell is None or echo16 is None:
            continue
        ratio = _ratio(cell.rps, echo16.rps)
        verdict = "met" if ratio >= goal else "NOT met"
        out.append(
            f"{rpc} RPS at c={GOAL_CONCURRENCY}: {ratio:.2f}x echo (goal ≥ {goal}x): {verdict}"
        )
    for cell in cells:
        echo = _echo_for(cells, cell)
        if cell.rpc in BASELINES or echo is None:
            continue
        ratio = _ratio(cell.p("p99"), echo.p("p99"))
        if not ratio <= P99_GOAL:
            out.append(
                f"{cell.rpc} p99 at {cell.label}: {ratio:.2f}x echo (goal ≤ {P99_GOAL}x): NOT met"
            )
    p99_misses = sum(1 for line in out if " p99 " in line)
    p99_cells = sum(1 for c in cells if c.rpc not in BASELINES and _echo_for(cells, c) is not None)
    out.append(f"p99 ≤ {P99_GOAL}x echo p99: met in {p99_cells - p99_misses} of {p99_cells} cells")
    return out


def _replace_marked(text: str, mark: str, body: str) -> str:
    begin, end = f"<!-- {mark}: begin (generated by bench/load.py) -->", f"<!-- {mark}: end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    # Not there yet: at the end of this section (before the next "## ").
    start = text.index(SECTION)
    nxt = text.find("\n## ", start + len(SECTION))
    cut = len(text) if nxt < 0 else nxt + 1
    head = text[:cut].rstrip("\n")
    return f"{head}\n\n{block}\n" + ("\n" + text[cut:] if cut < len(text) else "")


def update_results(path: Path, mark: str, body: str) -> None:
    """Writes `body` into this section of RESULTS.md, between its markers."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if SECTION not in text:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + SECTION + "\n"
    path.write_text(_replace_marked(text, mark, body), encoding="utf-8")


def plot(cells: list[Cell], path: Path, title: str) -> bool:
    """Draws the PNG; False (nothing written) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    closed = [c for c in cells if c.mode == "closed"]
    rpcs = list(dict.fromkeys(c.rpc for c in closed))
    loads = sorted({c.load for c in closed})
    fig, (lat_ax, rps_ax) = plt.subplots(1, 2, figsize=(13, 5))
    colors = {rpc: f"C{i}" for i, rpc in enumerate(rpcs)}
    for rpc in rpcs:
        mine = sorted((c for c in closed if c.rpc == rpc), key=lambda c: c.load)
        xs = [c.load for c in mine]
        lat_ax.plot(xs, [c.p("p50") for c in mine], "o-", color=colors[rpc], label=f"{rpc} p50")
        lat_ax.plot(xs, [c.p("p99") for c in mine], "s--", color=colors[rpc], label=f"{rpc} p99")
    lat_ax.set_xscale("log", base=2)
    lat_ax.set_yscale("log")
    lat_ax.set_xticks(loads, [str(int(x)) for x in loads])
    lat_ax.set_xlabel("concurrency (closed loop)")
    lat_ax.set_ylabel("latency, ms (log)")
    lat_ax.set_title("latency percentiles vs concurrency")
    lat_ax.grid(True, which="both", alpha=0.3)
    lat_ax.legend(fontsize=7, ncol=2)

    width = 0.8 / max(1, len(rpcs))
    for i, rpc in enumerate(rpcs):
        by_load = {c.load: c for c in closed if c.rpc == rpc}
        xs = [j + (i - (len(rpcs) - 1) / 2) * width for j in range(len(loads))]
        ys = [by_load[x].rps if x in by_load else 0.0 for x in loads]
        bars = rps_ax.bar(xs, ys, width, color=colors[rpc], label=rpc)
        if rpc not in BASELINES:
            base = BASELINE_OF.get(rpc, "echo")
            echo = {c.load: c.rps for c in closed if c.rpc == base}
            for bar, x in zip(bars, loads, strict=True):
                if echo.get(x) and x in by_load:
                    rps_ax.annotate(
                        f"{by_load[x].rps / echo[x]:.2f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=6,
                    )
    rps_ax.set_xticks(range(len(loads)), [f"c={int(x)}" for x in loads])
    rps_ax.set_ylabel("calls per second")
    rps_ax.set_title("RPS (labels: ratio to its echo baseline at the same concurrency)")
    rps_ax.grid(True, axis="y", alpha=0.3)
    rps_ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
