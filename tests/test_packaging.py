"""The distribution installs only under the mlsdm namespace, with its data files."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"engine": "mlsdm.engine", "server": "mlsdm.server", "client": "mlsdm.client"}


def _listed_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def test_every_python_package_folder_is_listed() -> None:
    listed = _listed_packages()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            name = ".".join((package, *parts))
            assert name in listed, f"{name} ({init.parent}) is missing from pyproject packages"


def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("mlsdm_grpc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("mlsdm_grpc-")}
    assert top == {"mlsdm"}, top
    for expected in (
        "mlsdm/engine/data/aphasia_corpus.json",
        "mlsdm/v1/cognitive_service.proto",
        "mlsdm/v1/cognitive_service_pb2.py",
        "mlsdm/v1/cognitive_service_pb2_grpc.pyi",
        "mlsdm/server/py.typed",
    ):
        assert expected in names, expected
    assert not any(n.startswith("mlsdm/__init__") for n in names), "mlsdm must stay a namespace"
