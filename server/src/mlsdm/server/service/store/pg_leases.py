"""Tenant leases on PostgreSQL: take, renew, release, and the handover talk.

A lease row (tenant, owner, epoch, expires_at) is taken when it is free (no
owner), ours, or expired; every change of hands bumps the epoch, which fences
the previous holder's writes. Expiry is set and compared in SQL by the
database's clock, so pods with skewed clocks agree; each statement returns
the time left (and the database's now, for the skew check, clock.py), which
the pod counts down on its monotonic clock from before it asked: no round
trip per call, and a pause never extends a lease.

Handover goes over one LISTEN/NOTIFY channel: a pod that wants a tenant
held by a live owner publishes a `release` request naming that owner, then
waits for the owner's `released` message (or the lease's expiry, or its own
deadline). The owner's store hands the request to the registry's callback,
which finishes the tenant's in-flight calls and releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from mlsdm.server.service.store.pg_schema import CHANNEL
from mlsdm.server.service.store.port import ReleaseRequested

log = logging.getLogger("mlsdm.store.postgres")

TAKE_SQL = """
INSERT INTO mlsdm_leases AS l (tenant, owner, epoch, expires_at, last_seq, address)
VALUES (%(tenant)s, %(owner)s, 1, now() + make_interval(secs => %(ttl)s),
        greatest((SELECT max(seq) FROM mlsdm_events WHERE tenant = %(tenant)s),
                 (SELECT max(seq) FROM mlsdm_snapshots WHERE tenant = %(tenant)s), 0),
        %(address)s)
ON CONFLICT (tenant) DO UPDATE
  SET owner = EXCLUDED.owner, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at,
      address = EXCLUDED.address
  WHERE l.owner = '' OR l.owner = EXCLUDED.owner OR l.expires_at <= now()
RETURNING epoch, extract(epoch FROM expires_at - now())::float8,
          extract(epoch FROM clock_timestamp())::float8
"""

HOLDER_SQL = """
SELECT owner, greatest(extract(epoch FROM expires_at - now())::float8, 0)
FROM mlsdm_leases WHERE tenant = %(tenant)s
"""

# Who serves the tenant now, where, and for how much longer (database clock).
OWNER_SQL = """
SELECT owner, address, extract(epoch FROM expires_at - now())::float8
FROM mlsdm_leases WHERE tenant = %(tenant)s
"""

RENEW_SQL = """
UPDATE mlsdm_leases SET expires_at = now() + make_interval(secs => %(ttl)s)
WHERE tenant = %(tenant)s AND owner = %(owner)s AND epoch = %(epoch)s
RETURNING extract(epoch FROM expires_at - now())::float8,
          extract(epoch FROM clock_timestamp())::float8
"""

RELEASE_SQL = """
WITH r AS (
  UPDATE mlsdm_leases SET owner = '', expires_at = now()
  WHERE tenant = %(tenant)s AND owner = %(owner)s AND epoch = %(epoch)s
  RETURNING tenant
)
SELECT pg_notify(%(channel)s, %(payload)s) FROM r
"""

NOTIFY_SQL = "SELECT pg_notify(%(channel)s, %(payload)s)"

# While waiting for a handover: re-ask the owner this often (its first
# notification may have arrived while it was still loading the tenant), and
# look at the lease row at least this often (a missed `released` message or
# an expiry needs no message).
REASK_S = 0.5
POLL_S = 0.2

# Runs one statement on a pooled connection and returns its rows.
Query = Callable[[str, dict[str, Any]], Awaitable[list[tuple[Any, ...]]]]


class Handover:
    """Waiting for tenants held elsewhere, and hearing requests for ours."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._waiters: dict[str, asyncio.Event] = {}
        self._callback: ReleaseRequested | None = None
        self._releasing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_release_requested(self, callback: ReleaseRequested) -> None:
        self._callback = callback

    def released_event(self, tenant: str) -> asyncio.Event:
        event = self._waiters.get(tenant)
        if event is None:
            event = self._waiters[tenant] = asyncio.Event()
        return event

    def done_waiting(self, tenant: str, event: asyncio.Event) -> None:
        if self._waiters.get(tenant) is event:
            del self._waiters[tenant]

    def dispatch(self, payload: str, held: Callable[[str], bool]) -> None:
        """One message from the channel."""
        try:
            message = json.loads(payload)
            op, tenant = str(message["op"]), str(message["tenant"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable lease message ignored", extra={"payload": payload[:200]})
            return
        if op == "released":
            event = self._waiters.get(tenant)
            if event is not None:
                event.set()
        elif op == "release" and message.get("owner") == self.owner and held(tenant):
            self._start_release(tenant)

    def _start_release(self, tenant: str) -> None:
        if self._callback is None or tenant in self._releasing:
            return
        self._releasing.add(tenant)
        callback = self._callback

        async def run() -> None:
            try:
                await callback(tenant)
            except Exception:
                log.exception("handing a tenant over failed", extra={"tenant": tenant})
            finally:
                self._releasing.discard(tenant)

        task = asyncio.get_running_loop().create_task(run(), name=f"mlsdm-handover-{tenant}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), 5.0)


def request_payload(tenant: str, owner: str, by: str) -> str:
    return json.dumps({"op": "release", "tenant": tenant, "owner": owner, "by": by})


def released_payload(tenant: str, by: str) -> str:
    return json.dumps({"op": "released", "tenant": tenant, "by": by})


class Listener:
    """The LISTEN connection: reconnects until closed; messages go to `on_message`."""

    def __init__(
        self, dsn: str, connect_timeout_s: float, on_message: Callable[[str], None]
    ) -> None:
        self._dsn = dsn
        self._connect_timeout_s = connect_timeout_s
        self._on_message = on_message
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mlsdm-pg-listen")

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout_s))
                )
            except (psycopg.Error, OSError) as exc:
                log.warning("lease channel: cannot connect", extra={"error": str(exc)[:200]})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    backoff = 0.2
                    async for note in conn.notifies():
                        self._on_message(note.payload)
            except (psycopg.Error, OSError) as exc:
                log.warning("lease channel lost; reconnecting", extra={"error": str(exc)[:200]})
            finally:
                self.connected.clear()
            await asyncio.sleep(backoff)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


def wait_step(deadline: float, holder_left_s: float) -> float:
    """How long to sleep before looking at the lease again."""
    left = deadline - time.monotonic()
    return max(0.0, min(left, POLL_S, holder_left_s + 0.01))
