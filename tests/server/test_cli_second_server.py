"""A second server on the same machine (issue 31, finding 7): one conflict names
every fixed setting in one line, `check` tries what `serve` would bind, and CLI
commands on things that do not exist exit non-zero."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_errors import one_line, run

from mlsdm.server.cli import main


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_port_conflict_names_every_fixed_setting(taken_port: int, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for command in ("serve", "check"):
        done = run(
            command,
            "--port",
            str(taken_port),
            "--set",
            "observability.metrics.port=9999",
            "--set",
            f"tenants.data_dir={data}",
        )
        one_line(
            done,
            "server.port",
            "already in use",
            "observability.metrics.port (9999)",
            f"tenants.data_dir ({data})",
        )


def test_check_tries_the_data_directory_lock(tmp_path: Path) -> None:
    import fcntl
    import os

    data = tmp_path / "data"
    data.mkdir()
    lock = os.open(data / "tenants.sqlite3.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run("check", "--port", "0", "--set", f"tenants.data_dir={data}")
        one_line(done, "is locked", "tenants.data_dir", "needs its own")
        assert run("check", "--no-bind", "--set", f"tenants.data_dir={data}").returncode == 0
    finally:
        os.close(lock)


def test_commands_on_missing_things_exit_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "list", "--file", str(tmp_path / "missing")]) == 1
    assert "no keys file" in capsys.readouterr().err
    assert main(["keys", "remove", "--file", str(tmp_path / "missing"), "--id", "ab"]) == 1
    done = run("tenants", "export", "nosuch", "--store", f"sqlite:{tmp_path / 'data'}")
    assert done.returncode != 0
    assert "no tenant 'nosuch'" in done.stderr
