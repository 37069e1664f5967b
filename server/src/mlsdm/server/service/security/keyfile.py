"""The API keys file and what happens when it disappears or stops parsing.

Deleting the keys file is how an operator revokes every key at once, and a
file that no longer parses says nothing about which keys are still meant to
work; so by default (auth.keys_file_missing=fail_closed) API keys are refused
from the first check that finds the file unusable until a good file is back:
UNAVAILABLE, CREDENTIALS_UNAVAILABLE with RetryInfo, since the caller's key may
well be fine. keep_last_good keeps the last good keys for
auth.keys_file_grace_s, then fails closed the same way. Either way the change
is logged once and `on_state` (the mlsdm_auth_keys_file_ok gauge) reports it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from mlsdm.server.service.security.jwks_url import KeysUnavailable
from mlsdm.server.service.security.keys import KeyEntry, parse_keys
from mlsdm.server.service.security.reload import ReloadingFile

log = logging.getLogger("mlsdm.server.service.security")

FAIL_CLOSED = "fail_closed"
KEEP_LAST_GOOD = "keep_last_good"
# Suggested wait before retrying while the keys file is unusable (at least this).
RETRY_AFTER_S = 1.0

StateCallback = Callable[[bool], None]


class KeysSource:
    def __init__(
        self,
        path: Path,
        interval: float,
        policy: str = FAIL_CLOSED,
        grace_s: float = 0.0,
        on_state: StateCallback | None = None,
    ) -> None:
        self._policy = policy
        self._grace = grace_s if policy == KEEP_LAST_GOOD else 0.0
        note = (
            f"keeping the last good keys for {self._grace:g} s"
            if self._grace > 0
            else "API keys refused until the file is good again"
        )
        self._file = ReloadingFile(path, parse_keys, interval, note)
        self._retry_after = max(RETRY_AFTER_S, interval)
        self._on_state = on_state
        self._ok: bool | None = None
        self._closed_logged = False
        self._report(True)

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def ok(self) -> bool:
        return bool(self._ok)

    def _report(self, ok: bool) -> None:
        if ok == self._ok:
            return
        self._ok = ok
        if ok:
            self._closed_logged = False
        if self._on_state is not None:
            self._on_state(ok)

    def entries(self) -> dict[str, KeyEntry]:
        """The keys in force; raises KeysUnavailable when the policy says none are."""
        value = self._file.get()
        since = self._file.failed_since
        if since is None:
            self._report(True)
            return value
        self._report(False)
        if time.monotonic() - since < self._grace:
            return value
        if not self._closed_logged and self._grace > 0:
            log.error(
                "%s still unusable after %g s: API keys refused until it is good again",
                self.path,
                self._grace,
            )
        self._closed_logged = True
        raise KeysUnavailable(f"{self.path}: {self._file.failure}", self._retry_after)

    def check(self) -> None:
        """Looks at the file without a call (the background watcher), so the gauge
        and the log follow the file even while no API-key call arrives."""
        with contextlib.suppress(KeysUnavailable):
            self.entries()
