"""A parsed file that follows its source: rotation without restart.

The file is stat()ed at most once per interval; when its identity (inode,
size, mtime) changed it is parsed again. A missing or broken file at startup is
an error (the server does not start half-configured); a broken rewrite later
keeps the last good version and logs, so a half-written file cannot lock every
caller out. Kubernetes Secret volumes swap a symlink, which changes the inode.
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
    def __init__(self, path: Path, parse: Callable[[str], T], interval: float) -> None:
        self._path = path
        self._parse = parse
        self._interval = interval
        self._checked = 0.0
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
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            self._refresh()
        return self._value

    def _refresh(self) -> None:
        try:
            identity = _identity(self._path)
        except OSError as exc:
            log.error("keeping the previous %s: %s", self._path, exc.strerror)
            return
        if identity == self._identity:
            return
        # Remembered even when the parse fails, so a broken file is logged once, not per call.
        self._identity = identity
        try:
            self._value = self._load()
        except (OSError, FileLoadError) as exc:
            log.error("keeping the previous %s: %s", self._path, exc)
            return
        log.info("reloaded %s", self._path)
