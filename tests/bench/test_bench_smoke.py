"""Smoke run of the load harness (bench/load.py --quick) so it cannot rot.

It starts the echo server, the real server with the full interceptor chain and
the load generator as processes on 127.0.0.1, for a fraction of a second per
cell, and checks the output has every row. No timing is asserted: speed is
measured by the full run, not here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RPCS = ("echo", "echo-stream", "GetState", "ProcessEvent", "Generate", "StreamGenerate")
# Generous bound on the whole smoke for a loaded CI machine; it usually takes ~15 s.
LIMIT_S = 300


def test_quick_run_produces_every_row(tmp_path: Path) -> None:
    results, png, raw = tmp_path / "RESULTS.md", tmp_path / "load.png", tmp_path / "cells.json"
    results.write_text("## Engine (someone else's)\n\nkept as is\n", encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "load.py"),
            "--quick",
            "--results",
            str(results),
            "--plot",
            str(png),
            "--json",
            str(raw),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    cells = json.loads(raw.read_text())["cells"]
    closed = {(c["rpc"], c["load"]) for c in cells if c["mode"] == "closed"}
    # Plus Generate over a full store (--quick: a ring of 300, filled first).
    assert closed == {(rpc, 2) for rpc in RPCS} | {("Generate@300", 2)}
    assert {c["rpc"] for c in cells if c["mode"] == "open"} == set(RPCS)
    for c in cells:
        # Every call went through: auth, rate limit and admission let the bench in.
        assert c["result"]["count"] > 0, c
        assert c["result"]["errors"] == {}, c
    # Accepted/refused comes back for the RPCs that have it.
    assert all(
        c["result"]["accepted_frac"] is not None
        for c in cells
        if c["rpc"] in ("ProcessEvent", "Generate", "StreamGenerate", "Generate@300")
    )
    assert re.search(r"Generate@300: store filled to 300 of 300 in", done.stdout), done.stdout

    table_rows = [
        line.split()[:2]
        for line in done.stdout.splitlines()
        if line.split()[:1] and line.split()[0] in RPCS and "RPS" not in line
    ]
    for rpc in RPCS:
        assert [rpc, "c=2"] in table_rows, done.stdout
        assert [rpc, "open"] in table_rows, done.stdout
    logged = re.search(r"access-log lines written by the server: ([\d,]+)", done.stdout)
    assert logged is not None and int(logged.group(1).replace(",", "")) > 0, done.stdout

    text = results.read_text()
    assert text.startswith("## Engine (someone else's)\n\nkept as is\n")
    assert "## Load (bench/load.py)" in text
    for rpc in RPCS:
        assert f"| {rpc} | c=2 |" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_short_soak_reports_rss_slope(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "load.py"),
            "--soak",
            "--soak-seconds",
            "3",
            "--soak-sample-seconds",
            "0.5",
            "--soak-rate",
            "50",
            "--soak-tenants",
            "5",
            "--results",
            str(results),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # Sampled several times, fitted, and every call answered.
    assert len(re.findall(r"^  t=\s*\d+ s  RSS\s+[\d.]+ MiB$", done.stdout, re.M)) >= 4
    summary = re.search(r"slope ([+-][\d.]+) MiB/min, growth ([+-][\d.]+)%", done.stdout)
    assert summary is not None, done.stdout
    assert re.search(r"\(\d+ served, 0 errors\)", done.stdout), done.stdout
    assert "<!-- load-soak: begin" in results.read_text()


def test_overhead_quick_run_measures_both_paths(tmp_path: Path) -> None:
    """bench/overhead.py --quick: the fake LLM, the server and the loads as processes;
    every row has both paths, no errors, and the section lands in the given file."""
    results = tmp_path / "RESULTS.md"
    results.write_text("## Load (bench/load.py)\n\nkept as is\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "overhead.py"), "--quick", "--results", str(results)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = re.findall(r"^\| (3 tenants|1 tenant of 300) \| (\d+)/s \|(.*)$", done.stdout, re.M)
    assert [(label, rate) for label, rate, _ in rows] == [
        ("3 tenants", "10"), ("3 tenants", "50"), ("1 tenant of 300", "50")
    ], done.stdout
    for _, _, cells in rows:
        fields = [f.strip() for f in cells.split("|")]
        # direct, through Generate and echo each have a p50 / p99; nothing failed.
        assert all(re.fullmatch(r"[\d.]+ / [\d.]+", fields[i]) for i in (0, 1, 4)), fields
        assert fields[7] == "0", fields
    assert re.search(r"filled 3 tenants: \d+ memories stored in 3 tenant\(s\) \((\d+)-\d+ each\)",
                     done.stdout), done.stdout
    text = results.read_text()
    assert text.startswith("## Load (bench/load.py)\n\nkept as is\n")
    assert "## Overhead over the LLM (bench/overhead.py)" in text
    assert "| 3 tenants | 10/s |" in text
