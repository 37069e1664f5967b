"""The image, outside Docker: its install step, its user, its read-only root.

deploy/validate.sh runs the Dockerfile's build stage (the wheelhouse, from
PyPI). Here the runtime stage's install step runs verbatim from the Dockerfile
into a temporary root, offline, from that wheelhouse; then ENTRYPOINT + CMD
start with the Dockerfile's ENV, as its numeric USER, with a mode's ConfigMap
settings file, and nothing writable except what that mode's pod mounts
writable: both VOLUMEs for the single-node mode (sqlite), only /tmp for the
scale-out mode (postgres, against a real PostgreSQL), whose pods keep nothing.
The server must come up healthy on 127.0.0.1, answer a real call, and exit
cleanly on the STOPSIGNAL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml
from deploy_testkit import DEPLOY, REPO, unavailable
from grpc_health.v1 import health_pb2, health_pb2_grpc
from manifest_kit import require_tenant_stores

from mlsdm.server.service.security.keys import KeyEntry, hash_key, new_key
from mlsdm.server.transport.health import HEALTH_SERVICES
from mlsdm.v1 import cognitive_service_pb2, cognitive_service_pb2_grpc

pytestmark = pytest.mark.slow

BUILD_ROOT = REPO / ".tools" / "image"
OVERLAYS = DEPLOY / "k8s" / "overlays"
# What each mode's pod mounts writable (its Deployment or StatefulSet).
WRITABLE = {"sqlite": ["/var/lib/mlsdm", "/tmp"], "postgres": ["/tmp"]}
# Bounds, not expectations: a loaded CI machine may be slow, a hung server is not.
STARTUP_LIMIT_S = 90.0
INSTALL_LIMIT_S = 600.0


def _tree(root: Path, skip: set[Path]) -> dict[str, tuple[int, int, int]]:
    """Every path under root with its mode, size and mtime, volumes excluded."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in dirnames + filenames:
            st = (here / name).lstat()
            out[str((here / name).relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def image(steps: ModuleType, dockerfile: dict[str, Any]) -> Iterator[tuple[Path, dict[str, str]]]:
    """The runtime stage installed under a temporary root: (root, its ENV)."""
    if not (BUILD_ROOT / "wheels").is_dir():
        unavailable("no wheelhouse: run deploy/validate.sh (Dockerfile build stage) first")
    root = Path(tempfile.mkdtemp(prefix="mlsdm-image-"))
    root.chmod(0o755)  # the image user must be able to reach its venv
    try:
        env = steps.run_stage(
            dockerfile["runtime"],
            root,
            stage_roots={"build": BUILD_ROOT},
            base_env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
            timeout_s=INSTALL_LIMIT_S,
        )
        yield root, env
    finally:
        for dirpath, _, _ in os.walk(root):  # undo the read-only emulation
            os.chmod(dirpath, 0o755)
        shutil.rmtree(root, ignore_errors=True)


def _image_user(dockerfile: dict[str, Any]) -> tuple[int, int]:
    uid, _, gid = dockerfile["runtime"].last("USER").args.partition(":")
    return int(uid), int(gid or uid)


def _prepare_root(
    root: Path, mode: str, volumes: list[Path], uid: int, gid: int, as_root: bool
) -> Path:
    """The pod's writable mounts writable by the image user; the settings and
    key files mounted read-only where the pod mounts them; returns the config path."""
    for volume in volumes:
        volume.mkdir(parents=True, exist_ok=True)
        if as_root:
            os.chown(volume, uid, gid)
    config_dir = root / "etc" / "mlsdm" / "config"
    keys_dir = root / "etc" / "mlsdm" / "keys"
    config_dir.mkdir(parents=True, exist_ok=True)
    keys_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(OVERLAYS / mode / "config.yaml", config_dir / "config.yaml")
    return config_dir / "config.yaml"


@pytest.fixture
def mode_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The mode's store: SQLite on the data volume, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    pg = request.getfixturevalue("pg")
    return {"MLSDM_TENANTS__POSTGRES_DSN": pg.new_database()}


def _read_only_except(root: Path, volumes: list[Path]) -> None:
    """Without root there is no other user to run as: drop write bits instead."""
    for dirpath, _, filenames in os.walk(root):
        here = Path(dirpath)
        if any(here == v or v in here.parents for v in volumes):
            continue
        for name in filenames:
            path = here / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        if here not in [v.parent for v in volumes] and not any(here == v for v in volumes):
            here.chmod(0o555)


def _free_port() -> int:
    # The metrics listener reports no bound port, so pick one; the window
    # between closing and the server binding it is tiny on a test machine.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(proc: subprocess.Popen[bytes], port_file: Path, log: Path) -> int:
    limit = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < limit:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        time.sleep(0.1)
    pytest.fail(f"no port file within {STARTUP_LIMIT_S}s:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize(
    ("mode", "mode_env"), [("sqlite", "sqlite"), ("postgres", "postgres")], indirect=["mode_env"]
)
def test_entrypoint_serves_healthy_as_image_user_on_read_only_root(
    image: tuple[Path, dict[str, str]],
    dockerfile: dict[str, Any],
    steps: ModuleType,
    mode: str,
    mode_env: dict[str, str],
) -> None:
    require_tenant_stores()
    root, image_env = image
    runtime = dockerfile["runtime"]
    reloc = steps.Relocator(root)
    uid, gid = _image_user(dockerfile)
    assert uid != 0
    image_volumes = yaml.safe_load(runtime.last("VOLUME").args)
    assert set(WRITABLE[mode]) <= set(image_volumes)
    volumes = [reloc.path(v) for v in WRITABLE[mode]]
    data_dir = reloc.path(runtime.last("WORKDIR").args)
    assert reloc.path(image_volumes[0]) == data_dir, "the working directory is the data volume"
    as_root = os.geteuid() == 0
    data_dir.mkdir(parents=True, exist_ok=True)
    if as_root and data_dir not in volumes:  # as the image has it: root's, not the user's
        os.chown(data_dir, 0, 0)
    scratch = reloc.path("/tmp")
    config = _prepare_root(root, mode, volumes, uid, gid, as_root)

    key_id, key = new_key()
    keys_file = config.parent.parent / "keys" / "api-keys"
    entry = KeyEntry(key_id, hash_key(key), "deploy-test", frozenset({"read"}), None, ("deploy",))
    keys_file.write_text(entry.to_json() + "\n", encoding="utf-8")

    argv = steps.exec_form(runtime.last("ENTRYPOINT").args)
    argv += steps.exec_form(runtime.last("CMD").args)
    resolved = shutil.which(argv[0], path=image_env["PATH"])
    assert resolved and Path(resolved).is_relative_to(root), "must run the image's install"
    argv[0] = resolved
    if as_root:
        # The image's UID without write access to anything it does not own.
        # CAP_DAC_READ_SEARCH (read-only bypass) stands in for the image's
        # world-readable /usr/local: this machine's interpreter lives under a
        # private /root; it grants no write to any path.
        argv = [
            "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--", *argv,
        ]  # fmt: skip

    port_file = scratch / f"port-{mode}"
    metrics_port = _free_port()
    env = {
        **image_env,
        "HOME": str(data_dir),
        "TMPDIR": str(scratch),
        # What the Deployment sets, then what differs on a test machine:
        # loopback and free ports instead of 0.0.0.0:50051/9464, and the
        # key and settings files at their relocated mount points.
        "MLSDM_CONFIG": str(config),
        "MLSDM_SERVER__HOST": "127.0.0.1",
        "MLSDM_SERVER__PORT": "0",
        "MLSDM_SERVER__PORT_FILE": str(port_file),
        "MLSDM_SERVER__HTTP__PORT": "0",
        "MLSDM_OBSERVABILITY__METRICS__HOST": "127.0.0.1",
        "MLSDM_OBSERVABILITY__METRICS__PORT": str(metrics_port),
        "MLSDM_AUTH__API_KEYS_FILE": str(keys_file),
        **mode_env,
    }
    if mode == "sqlite":  # the relocated data volume
        env["MLSDM_TENANTS__DATA_DIR"] = str(data_dir)
    skip = {*volumes, reloc.path(image_env["WHEELHOUSE"])}
    if not as_root:
        _read_only_except(root, volumes)
    before = _tree(root, skip)

    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "server.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=data_dir,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            port = _wait_for_port(proc, port_file, log)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=STARTUP_LIMIT_S)
                health = health_pb2_grpc.HealthStub(channel)
                for service in HEALTH_SERVICES:
                    reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                    assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
                state = cognitive_service_pb2_grpc.CognitiveServiceStub(channel).GetState(
                    cognitive_service_pb2.GetStateRequest(),
                    metadata=(("authorization", f"Bearer {key}"), ("x-mlsdm-tenant", "deploy")),
                    timeout=30,
                )
                assert state.tenant == "deploy"
            with urllib.request.urlopen(
                f"http://127.0.0.1:{metrics_port}/metrics", timeout=10
            ) as r:
                assert r.status == 200
                assert b"# TYPE" in r.read()

            stop = getattr(signal, runtime.last("STOPSIGNAL").args)
            proc.send_signal(stop)
            grace = yaml.safe_load(config.read_text())["server"]["grace_period_s"]
            code = proc.wait(timeout=grace + 30)
            assert code == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)

    after = _tree(root, skip)
    if not as_root:  # the next mode prepares the same root again
        for dirpath, _, _ in os.walk(root):
            os.chmod(dirpath, 0o755)
    assert after == before, "the server wrote outside what the pod mounts writable"
