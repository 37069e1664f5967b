"""Runs a Dockerfile stage's install steps outside Docker, verbatim.

CI has no Docker engine, yet the image's steps must not rot. This reads the
Dockerfile, and for one stage:

- applies its ENV (in order, `$VAR` expanded) and WORKDIR, with every literal
  absolute path relocated under a root directory (`/opt/mlsdm` -> ROOT/opt/mlsdm);
- performs its plain `COPY src... dest` from the build context;
- runs each RUN preceded by the comment `# ci: run outside docker` with
  `sh -c`, exactly as written; a `--mount=type=bind,from=STAGE` is provided as a
  symlink to that stage's relocated output.

Other RUN steps (creating the system user) need root inside an image and are
emulated by the caller instead (tests run the server as the image's UID).

    python deploy/dockerfile_steps.py build ROOT [CONTEXT]  # the wheelhouse stage (needs PyPI)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
MARKER = "# ci: run outside docker"


@dataclass
class Instruction:
    keyword: str
    args: str
    marked: bool = False


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """Stages by name (`FROM image AS name`), in file order."""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    marked = False
    logical = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            if line.lower() == MARKER:
                marked = True
            continue
        if line.startswith("#"):  # comment lines inside a continued instruction
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        logical = ""
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            current = stages[name] = Stage(name, words[0])
        elif current is None:
            if keyword != "ARG":
                raise ValueError(f"{path}: {keyword} before FROM")
        else:
            current.instructions.append(Instruction(keyword, args, marked))
        marked = False
    return stages


def exec_form(args: str) -> list[str]:
    """ENTRYPOINT/CMD in JSON (exec) form; shell form is refused, since a shell
    as PID 1 would not pass SIGTERM on."""
    value = json.loads(args)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not exec form: {args}")
    return value


def env_pairs(args: str) -> list[tuple[str, str]]:
    """`ENV A=1 B="x y"` (the legacy `ENV A 1` form too)."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [tuple(w.split("=", 1)) for w in words]  # type: ignore[misc]


class Relocator:
    """Maps the image's absolute paths into a directory on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def value(self, raw: str, env: dict[str, str]) -> str:
        # Only literal paths move; `$PATH` expands afterwards to this host's.
        parts = [str(self.path(p)) if p.startswith("/") else p for p in raw.split(":")]
        return _expand(":".join(parts), env)


def _expand(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1) or m.group(2), "")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, text)


def stage_env(
    stage: Stage, reloc: Relocator, base_env: dict[str, str], upto: int | None = None
) -> dict[str, str]:
    """The environment the stage's instruction number `upto` (default: its
    ENTRYPOINT, after every instruction) sees; ENV applies in file order."""
    env = dict(base_env)
    # The Dockerfile's `python` is the image's interpreter; here it is the one
    # running this script, so it leads the inherited PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for inst in stage.instructions[:upto]:
        if inst.keyword == "ENV":
            for key, raw in env_pairs(inst.args):
                env[key] = reloc.value(raw, env)
    return env


def workdir(stage: Stage, reloc: Relocator) -> Path:
    inst = stage.last("WORKDIR")
    return reloc.path(inst.args) if inst else reloc.root


def _strip_flags(args: str) -> tuple[list[str], str]:
    flags = []
    while args.startswith("--"):
        flag, _, args = args.partition(" ")
        flags.append(flag)
        args = args.lstrip()
    return flags, args


def _copy(inst: Instruction, context: Path, reloc: Relocator, cwd: Path) -> None:
    flags, rest = _strip_flags(inst.args)
    if any(f.startswith("--from") for f in flags):
        raise ValueError(f"COPY {inst.args}: copying between stages is not emulated")
    *sources, dest = shlex.split(rest)
    target = reloc.path(dest) if dest.startswith("/") else cwd / dest
    for src in sources:
        origin = context / src
        if origin.is_dir():
            shutil.copytree(
                origin,
                target,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
            )
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / origin.name)


def _mounts(flags: list[str], reloc: Relocator, stage_roots: dict[str, Path]) -> None:
    for flag in flags:
        if not flag.startswith("--mount="):
            continue
        opts = dict(o.split("=", 1) for o in flag.removeprefix("--mount=").split(","))
        if opts.get("type") != "bind" or "from" not in opts:
            raise ValueError(f"{flag}: only bind mounts from a stage are emulated")
        source = Relocator(stage_roots[opts["from"]]).path(opts.get("source", "/"))
        if not source.exists():
            raise FileNotFoundError(f"{flag}: stage {opts['from']!r} output {source} missing")
        target = reloc.path(opts["target"])
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(source.resolve(), target_is_directory=True)


def run_stage(
    stage: Stage,
    root: Path,
    *,
    context: Path = REPO,
    stage_roots: dict[str, Path] | None = None,
    base_env: dict[str, str] | None = None,
    timeout_s: float = 900,
) -> dict[str, str]:
    """Performs the stage's COPY and marked RUN steps under `root`; returns its env."""
    reloc = Relocator(root)
    base = dict(os.environ if base_env is None else base_env)
    cwd = reloc.root
    runs = [i for i in stage.instructions if i.keyword == "RUN" and i.marked]
    if not runs:
        raise ValueError(f"stage {stage.name!r} has no RUN marked {MARKER!r}")
    for number, inst in enumerate(stage.instructions):
        if inst.keyword == "WORKDIR":
            cwd = reloc.path(inst.args)
            cwd.mkdir(parents=True, exist_ok=True)
        elif inst.keyword == "COPY":
            _copy(inst, context, reloc, cwd)
        elif inst.keyword == "RUN" and inst.marked:
            flags, command = _strip_flags(inst.args)
            _mounts(flags, reloc, stage_roots or {})
            print(f"+ [{stage.name}] {command}", file=sys.stderr, flush=True)
            env = stage_env(stage, reloc, base, upto=number)
            subprocess.run(["sh", "-ec", command], cwd=cwd, env=env, check=True, timeout=timeout_s)
    return stage_env(stage, reloc, base)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: dockerfile_steps.py STAGE ROOT [CONTEXT]", file=sys.stderr)
        return 2
    name, root = argv[0], Path(argv[1]).resolve()
    context = Path(argv[2]).resolve() if len(argv) == 3 else REPO
    stages = parse()
    if name not in stages:
        print(f"no stage {name!r} in {DOCKERFILE} (have {', '.join(stages)})", file=sys.stderr)
        return 2
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    run_stage(stages[name], root, context=context)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
