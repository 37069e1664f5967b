"""Benchmark hygiene: every bench script has `--quick`, and a quick run never
touches the checked-in results (bench/RESULTS.md, bench/*.png), with or without
matplotlib installed."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
# Generous bound on one quick run for a loaded CI machine; it usually takes ~15 s.
LIMIT_S = 300


def bench_scripts() -> list[Path]:
    """The files in bench/ that run as programs (the others are their modules)."""
    return sorted(
        p for p in BENCH.glob("*.py") if 'if __name__ == "__main__":' in p.read_text("utf-8")
    )


def run(script: str, *args: str, cwd: Path = BENCH,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
        check=False,
    )


def snapshot() -> dict[str, str]:
    """Every file directly in bench/ by name, with a digest of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(BENCH.iterdir())
        if p.is_file()
    }


def test_the_script_list_is_not_empty() -> None:
    names = {p.name for p in bench_scripts()}
    assert {"load.py", "load_ladder.py", "engine_bench.py", "overload.py"} <= names


@pytest.mark.parametrize("script", bench_scripts(), ids=lambda p: p.name)
def test_every_bench_script_has_quick(script: Path) -> None:
    done = run(script.name, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^\s+--quick\b", done.stdout, re.M), done.stdout


def test_quick_refuses_to_write_into_bench() -> None:
    before = snapshot()
    done = run("load.py", "--quick", "--results", "bench/RESULTS.md", cwd=ROOT)
    assert done.returncode == 2
    assert "--quick never writes into bench/" in done.stderr
    assert snapshot() == before


def test_quick_run_without_matplotlib_leaves_results_untouched(tmp_path: Path) -> None:
    # A matplotlib that cannot be imported shadows the installed one, as on a
    # machine without it.
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        "raise ImportError('matplotlib is absent in this test')\n", encoding="utf-8"
    )
    before = snapshot()
    done = run(
        "load.py", "--quick", cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(blocker.parent)}
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert snapshot() == before
    # Nor anything in the folder it ran from (no tenant store in ./mlsdm-data).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
    lines = done.stdout.splitlines()
    # The table is printed in full, then one line says why there is no PNG.
    assert any(line.split()[:2] == ["Generate", "c=2"] for line in lines), done.stdout
    missing = [line for line in lines if "matplotlib is not installed" in line]
    assert len(missing) == 1, done.stdout
    assert "Traceback" not in done.stderr
    written = re.findall(r"^wrote (.+)$", done.stdout, re.M)
    assert len(written) == 1, done.stdout
    results = Path(written[0])
    assert not results.resolve().is_relative_to(BENCH)
    assert "## Load (bench/load.py)" in results.read_text(encoding="utf-8")
    assert not results.with_name("load.png").exists()


def test_echo_server_quick_self_check() -> None:
    done = run("load_echo.py", "--quick", "--stream-messages", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "echo ok: 256-byte reply, 3 stream messages"
