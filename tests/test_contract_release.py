"""`buf breaking` against the last release (.ci/breaking, .ci/last-release) can fail.

The release is recorded twice, as a tag and as a commit, because a clone (or a
submitted copy) may come without its tags: .ci/breaking uses the tag when it is
there and the commit otherwise. These tests check that the record agrees with
CHANGELOG.md and the tag, and that a clone without tags still catches a break.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _release() -> dict[str, str]:
    text = (ROOT / ".ci" / "last-release").read_text(encoding="utf-8")
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def _git(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _has_commit(commit: str) -> bool:
    return _git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def test_the_changelog_names_the_recorded_release() -> None:
    release = _release()
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", changelog, re.M)
    assert versions, "CHANGELOG.md lists no release"
    assert release["tag"] == f"v{versions[0]}", "the latest release is the one checked against"
    assert release["commit"][:7] in changelog, "CHANGELOG.md records the release's commit"


def test_the_tag_when_present_is_the_recorded_commit() -> None:
    release = _release()
    tagged = _git("rev-parse", "--verify", "--quiet", f"refs/tags/{release['tag']}^{{commit}}")
    if tagged.returncode != 0:
        pytest.skip(f"this clone has no tag {release['tag']} (.ci/breaking uses the commit)")
    assert tagged.stdout.strip() == release["commit"]


@pytest.fixture
def tagless_clone(tmp_path: Path) -> Path:
    release = _release()
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    if not _has_commit(release["commit"]):
        pytest.skip(f"release commit {release['commit']} is not in this (shallow?) clone")
    clone = tmp_path / "clone"
    done = _git("clone", "--quiet", "--no-tags", str(ROOT), str(clone))
    assert done.returncode == 0, done.stderr
    # The working tree's checker, not the committed one, runs in the clone.
    for name in ("breaking", "last-release"):
        shutil.copy2(ROOT / ".ci" / name, clone / ".ci" / name)
    assert _git("tag", cwd=clone).stdout == ""
    return clone


def _breaking(clone: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # buf comes with the dev extra (buf-bin), next to this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        ["bash", ".ci/breaking"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_breaking_change_fails_in_a_clone_without_tags(tagless_clone: Path) -> None:
    proto = tagless_clone / "proto" / "mlsdm" / "v1" / "cognitive_service.proto"
    text = proto.read_text(encoding="utf-8")
    message = re.search(r"^message GetStateResponse \{\n(.*?)^\}", text, re.M | re.S)
    assert message is not None
    body = message.group(1)
    step = re.search(r"^  int64 step = (\d+);\n", body, re.M)
    assert step is not None, "GetStateResponse.step is the field this test deletes"
    broken = body.replace(step.group(0), f"  reserved {step.group(1)};\n")
    proto.write_text(text.replace(body, broken), encoding="utf-8")

    done = _breaking(tagless_clone)
    assert done.returncode == 100, done.stdout + done.stderr
    assert f"ref={_release()['commit']}" in done.stdout
    assert 'with name "step" on message "GetStateResponse" was deleted' in done.stdout


def test_a_clone_without_tags_checks_the_current_contract(tagless_clone: Path) -> None:
    done = _breaking(tagless_clone)
    assert done.returncode == 0, done.stdout + done.stderr
