"""The Dockerfile's hardening rules, read from the file itself."""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath
from types import ModuleType
from typing import Any

from deploy_testkit import REPO


def test_both_stages_use_one_base_pinned_to_a_patch_version(dockerfile: dict[str, Any]) -> None:
    assert list(dockerfile) == ["build", "runtime"]
    bases = {stage.base for stage in dockerfile.values()}
    assert len(bases) == 1
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", bases.pop())


def test_runtime_stage_installs_no_build_tools_and_copies_no_source(
    dockerfile: dict[str, Any],
) -> None:
    runtime = dockerfile["runtime"]
    commands = " ".join(i.args for i in runtime.all("RUN"))
    assert not re.search(r"apt-get|apk |gcc|build-essential|make ", commands)
    assert not runtime.all("COPY") and not runtime.all("ADD")
    # The venv has no pip; packages come from the build stage's wheelhouse only.
    assert "--without-pip" in commands and "--no-index" in commands


def test_runs_as_a_numeric_non_root_user(dockerfile: dict[str, Any]) -> None:
    user = dockerfile["runtime"].last("USER").args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) > 0 and int(gid) > 0


def test_signals_reach_the_server(dockerfile: dict[str, Any], steps: ModuleType) -> None:
    runtime = dockerfile["runtime"]
    assert runtime.last("STOPSIGNAL").args == "SIGTERM"
    # Exec form only (parsing refuses shell form), and no shell or wrapper as PID 1.
    entrypoint = steps.exec_form(runtime.last("ENTRYPOINT").args)
    assert entrypoint == ["mlsdm-grpc"]
    assert steps.exec_form(runtime.last("CMD").args) == ["serve", "--image-defaults"]
    # Kubernetes ignores HEALTHCHECK; the kubelet's gRPC probes do that job.
    assert not runtime.all("HEALTHCHECK")


def test_no_settings_baked_into_the_image(dockerfile: dict[str, Any], steps: ModuleType) -> None:
    """MLSDM_* in the image would override the ConfigMap (env beats file)."""
    names = [k for i in dockerfile["runtime"].all("ENV") for k, _ in steps.env_pairs(i.args)]
    assert not [n for n in names if n.startswith("MLSDM_")]


def test_build_context_is_an_allow_list(dockerfile: dict[str, Any]) -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for stage in dockerfile.values():
        for inst in stage.all("COPY"):
            *sources, _ = inst.args.split()
            copied |= {s.rstrip("/") for s in sources}
    assert copied == allowed


def test_build_stage_copies_what_the_root_build_reads(dockerfile: dict[str, Any]) -> None:
    """`pip wheel .` at the root reads pyproject.toml, its readme and license
    files, and the src/ trees of the three parts; a file missing from the
    context is only a warning there, so the image's wheel would silently lack it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    copied = set()
    for inst in dockerfile["build"].all("COPY"):
        *sources, _ = inst.args.split()
        copied |= {s.rstrip("/") for s in sources}
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= set(project["project"].get("license-files", []))
    roots = project["tool"]["setuptools"]["packages"]["find"]["where"]
    needed |= {PurePosixPath(r).parts[0] for r in roots}
    assert needed <= copied


def test_exposes_the_grpc_http_and_metrics_ports(dockerfile: dict[str, Any]) -> None:
    ports = dockerfile["runtime"].last("EXPOSE").args.split()
    assert ports == ["50051", "8080", "9464"]
