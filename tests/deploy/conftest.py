"""Rendered manifests and the parsed Dockerfile, shared by the deploy tests."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from deploy_testkit import REPO, TARGETS, load_steps, out_name, validator


@pytest.fixture(scope="session")
def steps() -> ModuleType:
    return load_steps()


@pytest.fixture(scope="session")
def dockerfile(steps: ModuleType) -> dict[str, Any]:
    parsed: dict[str, Any] = steps.parse()
    return parsed


@pytest.fixture(scope="session")
def rendered_dir() -> Iterator[Path]:
    """Each target rendered and validated now (not a stale copy) into a directory."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = subprocess.run(
            [*validator(), "-out", str(work / "out"), *TARGETS.values()],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        yield work / "out"


@pytest.fixture(scope="session")
def rendered(rendered_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each target's rendered objects."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key, target in TARGETS.items():
        text = (rendered_dir / out_name(target)).read_text(encoding="utf-8")
        out[key] = [d for d in yaml.safe_load_all(text) if d]
    return out
