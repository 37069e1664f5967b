"""Each folder builds its own distribution; the root builds them as one; only `mlsdm.*` ships."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("engine", "client", "server")


def _deps(pyproject: Path) -> set[str]:
    config = tomllib.loads(pyproject.read_text())
    return set(config["project"]["dependencies"])


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def test_root_dependencies_are_the_union_of_the_parts() -> None:
    parts = set().union(*(_deps(ROOT / part / "pyproject.toml") for part in PARTS))
    own = {d for d in parts if not _name(d).startswith("mlsdm-")}
    assert _deps(ROOT / "pyproject.toml") == own


def test_every_package_lives_under_a_src_tree() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        parts = Path(name).parts
        # engine/training holds scripts that never ship (the content scorer's trainer).
        if parts[0] in PARTS and parts[1] not in {"node", "java", "go", "training"}:
            assert parts[1:3] == ("src", "mlsdm"), f"{name} is outside {parts[0]}/src/mlsdm"
    assert not (ROOT / "proto" / "mlsdm" / "v1" / "__init__.py").exists()


def _build(source: Path, out: Path) -> list[str]:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_root_wheel_contents(tmp_path: Path) -> None:
    names = _build(ROOT, tmp_path)
    top = {n.split("/")[0] for n in names if not n.startswith("mlsdm_grpc-")}
    assert top == {"mlsdm"}, top
    for expected in (
        "mlsdm/engine/data/aphasia_corpus.json",
        "mlsdm/v1/cognitive_service_pb2.py",
        "mlsdm/v1/cognitive_service_pb2_grpc.pyi",
        "mlsdm/server/py.typed",
        "mlsdm/client/py.typed",
        "mlsdm/v1/mlsdm.binpb",
    ):
        assert expected in names, expected
    assert not any(n.startswith("mlsdm/__init__") for n in names), "mlsdm must stay a namespace"


@pytest.mark.parametrize(
    ("part", "packages"),
    [
        ("engine", {"mlsdm/engine"}),
        ("client", {"mlsdm/client", "mlsdm/v1"}),
        ("server", {"mlsdm/server"}),
    ],
)
def test_part_wheel_holds_only_its_packages(tmp_path: Path, part: str, packages: set[str]) -> None:
    names = _build(ROOT / part, tmp_path)
    shipped = {"/".join(n.split("/")[:2]) for n in names if n.startswith("mlsdm/")}
    assert shipped == packages
