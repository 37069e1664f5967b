"""A JWKS fetched from a URL (an identity provider's `jwks_uri`), kept fresh off the loop.

PyJWT's PyJWKClient does the fetching, with blocking urllib, so it only ever
runs in a worker thread; a call being authenticated reads the last good key
set and never waits for the network.

The set is fetched at startup, then again every `jwks_lifespan_s`, and early
when a token names a key id the set does not hold (at most once per
`jwks_min_refresh_s`), so a key the provider rotates in is picked up without
waiting out the lifespan; such a token is answered UNAVAILABLE with a short
RetryInfo while that refresh runs. A failed fetch keeps the last good set until
it is `jwks_max_stale_s` past its lifespan and is retried with backoff; before
the first success, or once the set is that stale, tokens cannot be verified and
every JWT call gets KeysUnavailable (UNAVAILABLE, CREDENTIALS_UNAVAILABLE, with
RetryInfo). Each fetch is logged on failure and counted by result.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import math
import time
from collections.abc import Callable

import jwt

from mlsdm.server.service.security.jwt_verify import (
    Claims,
    KeySet,
    UnknownKeyId,
    jwks_from_data,
    verify,
)
from mlsdm.server.service.security.reload import FileLoadError
from mlsdm.server.service.security.settings import JWTSettings

log = logging.getLogger("mlsdm.server.service.security")

# Backoff after failed fetches: 1, 2, 4 ... seconds, at most this (and at most the lifespan).
MAX_FAILURE_BACKOFF_S = 30.0
# The shortest RetryInfo given while keys are unavailable.
MIN_RETRY_S = 0.5
# RetryInfo for a token whose key id set off a refresh: about one fetch.
UNKNOWN_KID_RETRY_S = 1.0

FetchCallback = Callable[[bool], None]


class KeysUnavailable(Exception):
    """Tokens cannot be verified now: no usable key set (yet). Retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RemoteKeySet:
    """The key set behind `settings.jwks_url`; start() before use, close() at the end."""

    def __init__(
        self,
        settings: JWTSettings,
        on_fetch: FetchCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.jwks_url is None:
            raise ValueError("auth.jwt.jwks_url is not set")
        self.url = settings.jwks_url
        self._settings = settings
        self._on_fetch = on_fetch
        self._clock = clock
        self._client = jwt.PyJWKClient(
            self.url, cache_jwk_set=False, cache_keys=False, timeout=settings.jwks_timeout_s
        )
        self._keys: KeySet | None = None
        self._fetched_at = -math.inf
        self._last_attempt = -math.inf
        self._next_attempt = 0.0
        self._failures = 0
        self._refreshing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.fetches = 0

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Fetches once (so a reachable provider's keys are there before serving),
        then keeps refreshing in the background. A failed first fetch does not stop
        startup: JWT calls are UNAVAILABLE until a fetch succeeds."""
        await self._refresh()
        self._task = asyncio.create_task(self._run(), name="mlsdm-jwks-refresh")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- on the call path (never blocks) --------------------------------------

    def get(self) -> KeySet:
        """The current key set; KeysUnavailable when there is none fresh enough."""
        s = self._settings
        if self._keys is None or (
            self._clock() - self._fetched_at > s.jwks_lifespan_s + s.jwks_max_stale_s
        ):
            raise KeysUnavailable("no usable key set from the JWKS URL", self._retry_after())
        return self._keys

    def verify(self, token: str) -> Claims:
        """The token's claims; TokenInvalid / TokenExpired as for a file, or KeysUnavailable."""
        try:
            return verify(token, self.get(), self._settings)
        except UnknownKeyId:
            if not self._refresh_for_unknown_kid():
                raise
            raise KeysUnavailable(
                "the token's key id is not in the key set; the set is being refreshed",
                UNKNOWN_KID_RETRY_S,
            ) from None

    def _refresh_for_unknown_kid(self) -> bool:
        """True when a refresh is (now) under way that may bring the key in."""
        if self._refreshing:
            return True
        if self._clock() - self._last_attempt < self._settings.jwks_min_refresh_s:
            # Fetched moments ago: the key id is really unknown.
            return False
        self._wake.set()
        self._refreshing = True
        return True

    def _retry_after(self) -> float:
        return max(MIN_RETRY_S, self._next_attempt - self._clock())

    # -- background refresh ----------------------------------------------------

    async def _run(self) -> None:
        while True:
            delay = self._next_attempt - self._clock()
            if delay > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            self._wake.clear()
            await self._refresh()

    async def _refresh(self) -> None:
        self._refreshing = True
        self._last_attempt = self._clock()
        self.fetches += 1
        try:
            data = await asyncio.to_thread(self._client.fetch_data)
            keys = jwks_from_data(data, f"JWKS from {self.url}")
        except (
            jwt.PyJWKClientError,
            OSError,
            ValueError,
            http.client.HTTPException,
            FileLoadError,
        ) as exc:
            self._failed(exc)
        else:
            self._fetched(keys)
        finally:
            self._refreshing = False

    def _fetched(self, keys: KeySet) -> None:
        changed = self._keys is None or set(keys.keys) != set(self._keys.keys)
        if changed or self._failures:
            log.info(
                "JWKS from %s: %d key(s) (kid %s)",
                self.url,
                len(keys.keys),
                ", ".join(sorted(keys.keys)) or "-",
            )
        self._keys = keys
        self._fetched_at = self._clock()
        self._failures = 0
        self._next_attempt = self._fetched_at + self._settings.jwks_lifespan_s
        if self._on_fetch is not None:
            self._on_fetch(True)

    def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        backoff = min(
            2.0 ** (self._failures - 1), MAX_FAILURE_BACKOFF_S, self._settings.jwks_lifespan_s
        )
        self._next_attempt = self._clock() + backoff
        holding = (
            "keeping the last good key set"
            if self._keys is not None
            else "JWTs cannot be verified until a fetch succeeds"
        )
        log.error(
            "JWKS fetch from %s failed (%s: %s); %s; next try in %.1fs",
            self.url,
            type(exc).__name__,
            exc,
            holding,
            backoff,
        )
        if self._on_fetch is not None:
            self._on_fetch(False)
