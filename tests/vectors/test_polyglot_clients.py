"""The Go, TypeScript and Java suites, each run against a live server.

Each suite runs the shared vectors through its language's generated stubs;
this test gives it MLSDM_ADDR, requires exit status 0, and checks from the
suite's own report that every vector ran (a suite that skipped would exit 0
too). Toolchains and dependencies must already be installed (see .ci/run:
`go mod download`, `npm ci`, a first `mvn` build); a missing one fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from vector_check import load_vectors

ROOT = Path(__file__).resolve().parents[2]
# Bound on one suite, compile included; the slowest (Maven) takes well under a minute when warm.
SUITE_LIMIT_S = 900


@dataclass(frozen=True)
class Suite:
    language: str
    workdir: Path
    command: tuple[str, ...]
    clean: tuple[Path, ...] = ()


SUITES = [
    Suite("go", ROOT / "client/go", ("go", "test", "-count=1", "-v", "./...")),
    Suite("node", ROOT / "client/node", ("npm", "test")),
    Suite(
        "java",
        ROOT / "client/java",
        ("mvn", "-q", "-B", "test"),
        clean=(ROOT / "client/java/target/surefire-reports",),
    ),
]


def _ran(suite: Suite, output: str, name: str) -> bool:
    """True when the suite's own report shows vector `name` as run and passed."""
    if suite.language == "go":
        return f"--- PASS: TestVectorsLive/{name} " in output
    if suite.language == "node":
        return re.search(rf"^\s*ok \d+ - {re.escape(name)}$", output, re.MULTILINE) is not None
    reports = suite.workdir / "target/surefire-reports"
    xml = "".join(p.read_text() for p in reports.glob("TEST-*.xml")) if reports.exists() else ""
    pattern = (
        rf'<testcase name="sharedVectorsAgainstServer\(\) {re.escape(name)}"'
        r"[^>]*?(/>|>(.*?)</testcase>)"
    )
    case = re.search(pattern, xml, re.S)
    body = (case.group(2) or "") if case else ""
    return case is not None and "<skipped" not in body and "<failure" not in body


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES, ids=[s.language for s in SUITES])
def test_client_suite_against_live_server(suite: Suite, vectors_address: str) -> None:
    assert shutil.which(suite.command[0]), f"{suite.command[0]} is not installed"
    for path in suite.clean:
        shutil.rmtree(path, ignore_errors=True)
    env = dict(os.environ, MLSDM_ADDR=vectors_address)
    result = subprocess.run(
        suite.command,
        cwd=suite.workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SUITE_LIMIT_S,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"{' '.join(suite.command)} exited {result.returncode}:\n{output[-6000:]}"
    )
    missing = [v["name"] for v in load_vectors() if not _ran(suite, output, v["name"])]
    assert not missing, (
        f"{suite.language}: vectors not reported as run and passed: {missing}\n{output[-4000:]}"
    )
