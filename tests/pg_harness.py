"""A throwaway PostgreSQL cluster for tests: `initdb` in a temp directory, a
free TCP port on 127.0.0.1, the unix socket in the same directory.

PostgreSQL refuses to run as root, so as root every server binary runs as the
`postgres` user (Debian's package creates it) or, where that user is missing,
as a system user created for the purpose. The cluster can be stopped and
started again on the same port mid-test (the database-restart tests).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Generous: a shared CI machine can be slow to fsync a fresh cluster.
PG_CTL_WAIT_S = 120
FALLBACK_USER = "mlsdm-pg"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server binaries, or None."""
    def version(path: str) -> int:
        name = Path(path).parent.parent.name
        return int(name) if name.isdigit() else 0

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _run_as() -> str | None:
    """The user to run the server binaries as, or None for the current one."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_USER],
        check=True,
        capture_output=True,
    )
    return FALLBACK_USER


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One cluster; `dsn()` names a database in it (`new_database()` makes one)."""

    def __init__(self, bindir: Path, base: Path) -> None:
        self.bindir = bindir
        self.base = base
        self.data = base / "data"
        self.socket_dir = base / "sock"
        self.logfile = base / "server.log"
        self.port = _free_port()
        self.user = "mlsdm"
        self._as = _run_as()

    def _cmd(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bindir / tool), *args]
        return ["runuser", "-u", self._as, "--", *argv] if self._as else argv

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            self._cmd(tool, *args), capture_output=True, text=True, timeout=PG_CTL_WAIT_S + 30
        )
        if done.returncode != 0:
            log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{done.stdout}{done.stderr}{log}")

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True)
        if self._as:
            entry = pwd.getpwnam(self._as)
            for path in (self.base, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--locale=C")  # fmt: skip
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 300\n"
                "shared_buffers = 32MB\n"
                # Acknowledge-after-commit is the point of the tests: keep
                # durable commits exactly as production runs them.
                "fsync = on\n"
                "synchronous_commit = on\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w",
                  "-t", str(PG_CTL_WAIT_S), "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stops the server; `immediate` is a crash (no checkpoint, clients cut)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w",
                      "-t", str(PG_CTL_WAIT_S), "stop")  # fmt: skip

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, statement: str, dbname: str = "postgres") -> str:
        """Runs one statement with psql; returns its unaligned output."""
        done = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-d", self.dsn(dbname), "-c", statement],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql: {statement}: {done.stderr}")
        return done.stdout.strip()

    def new_database(self) -> str:
        """A fresh empty database; returns its DSN (tests never share one)."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE DATABASE {name}")
        return self.dsn(name)


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """A running throwaway cluster, stopped and removed on exit."""
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb) not found")
    base = Path(tempfile.mkdtemp(prefix="mlsdm-pg-"))
    cluster = PgCluster(bindir, base)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
