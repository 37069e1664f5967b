"""A parsed file that follows its source: rotation without restart.

The file is stat()ed at most once per interval; when its identity (inode,
size, mtime) changed it is parsed again. A missing or broken file at startup is
an error (the server does not start half-configured). A file that vanishes or
stops parsing later is logged once and remembered (`failure`, `failed_since`);
`get()` still returns the last good version, and what that means is the
caller's policy: the JWKS file keeps it, the keys file follows
auth.keys_file_missing (security/keyfile.py). Kubernetes Secret volumes swap a
symlink, which changes the inode.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("mlsdm.server.service.security")


class FileLoadError(Exception):
    """The file cannot be read or parsed; the message names the file and the line."""


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ReloadingFile(Generic[T]):
    def __init__(
        self,
        path: Path,
        parse: Callable[[str], T],
        interval: float,
        failure_note: str = "keeping the previous version",
    ) -> None:
        self._path = path
        self._parse = parse
        self._interval = interval
        self._note = failure_note
        self._checked = 0.0
        # Why the file is unusable now (None: the last check found it good), and since when.
        self.failure: str | None = None
        self.failed_since: float | None = None
        self._identity: tuple[int, int, int, int] | None
        try:
            self._identity = _identity(path)
            self._value = self._load()
        except OSError as exc:
            raise FileLoadError(f"cannot read {path}: {exc.strerror}") from exc
        self._checked = time.monotonic()

    def _load(self) -> T:
        return self._parse(self._path.read_text(encoding="utf-8"))

    @property
    def path(self) -> Path:
        return self._path

    def get(self) -> T:
        """The last good version (checking the file first when the interval passed)."""
        self.check()
        return self._value

    def check(self) -> None:
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            self._refresh()

    def _refresh(self) -> None:
        try:
            identity = _identity(self._path)
        except OSError as exc:
            # Forgotten, so the file coming back reloads even with the same identity.
            self._identity = None
            self._fail(f"cannot read {self._path}: {exc.strerror}")
            return
        if identity == self._identity:
            return
        # Remembered even when the parse fails, so a broken file is logged once, not per call.
        self._identity = identity
        try:
            value = self._load()
        except (OSError, FileLoadError) as exc:
            self._fail(str(exc))
            return
        self._value = value
        if self.failure is not None:
            log.warning("%s is good again", self._path)
        self.failure = self.failed_since = None
        log.info("reloaded %s", self._path)

    def _fail(self, why: str) -> None:
        if why == self.failure:
            return
        if self.failure is None:
            self.failed_since = time.monotonic()
        self.failure = why
        log.error("%s unusable (%s): %s", self._path, self._note, why)
