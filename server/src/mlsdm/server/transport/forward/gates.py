"""The two ends of owner forwarding, as gates of the call context.

`PeerGate` (first): a call carrying a forwarded header is believed only when
its HMAC holds (signing.py); then its identity, roles and priority are the
forwarding pod's verdict, the auth and rate-limit gates pass it, and it is
marked FORWARDED (served here or refused TENANT_MOVING, never forwarded on,
never taking a lease from a live pod). A forged or replayed header is
UNAUTHENTICATED.

`ForwardGate` (last, innermost: every other gate ran first with the client's
credentials): a call for a tenant whose lease a live pod elsewhere holds is
sent there and its reply, or status with details and trailers, returned as
the owner gave it. The owner answering TENANT_MOVING (it lost the tenant
since the row was read) makes the gate read the row again and try once
more; an owner that cannot be reached or is draining makes it serve the
call here (taking the lease: a handover, counted by cause).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from mlsdm.server.service.errors import R, unauthenticated
from mlsdm.server.service.observability.forward_metrics import (
    FORWARD_SECONDS,
    FORWARDED,
    HANDOVERS,
)
from mlsdm.server.service.policy.priority import Priority
from mlsdm.server.service.tenancy.placement import FORWARDED as SERVING_FORWARDED
from mlsdm.server.service.tenancy.placement import OwnerDirectory, RemoteOwner
from mlsdm.server.transport.call import CallInfo, current_call
from mlsdm.server.transport.forward.proxy import Failure, PeerChannels, failure, relay
from mlsdm.server.transport.forward.signing import HEADER, SIGNATURE, BadForward, PeerSigner
from mlsdm.server.transport.interceptors.base import (
    CallPeer,
    Context,
    Gate,
    Release,
    StreamBehavior,
    UnaryBehavior,
)

# Services whose calls are never forwarded: AdminService names its tenant in
# the request and acts on this pod's registry (it hands tenants over itself).
NOT_FORWARDED = frozenset({"mlsdm.v1.AdminService"})
MOVING = "TENANT_MOVING"
DRAINING = "DRAINING"


class PeerGate(Gate):
    def __init__(self, signer: PeerSigner) -> None:
        self._signer = signer

    async def check(self, call: CallInfo, context: CallPeer) -> Release | None:
        header = call.metadata.get(HEADER)
        if header is None:
            return None
        try:
            verified = self._signer.verify(
                header, call.metadata.get(SIGNATURE, ""), call.method, call.tenant,
                call.priority.name.lower(), call.request_id,
            )  # fmt: skip
        except BadForward as exc:
            raise unauthenticated(
                R.ERROR_REASON_CREDENTIALS_INVALID, f"forwarded call refused: {exc}"
            ) from None
        call.forwarded = True
        call.principal, call.roles = verified.principal, verified.roles
        call.priority = Priority[verified.priority.upper()]
        call.max_priority = Priority[verified.max_priority.upper()]
        call.trusted_scorer = verified.trusted_scorer
        if verified.deadline_unix is not None:
            left = verified.deadline_unix - time.time()
            mine = call.deadline
            theirs = time.monotonic() + left
            call.deadline = theirs if mine is None else min(mine, theirs)
        SERVING_FORWARDED.set(True)
        return None


def _forwardable(method: str) -> bool:
    return method.lstrip("/").partition("/")[0] not in NOT_FORWARDED


class ForwardGate(Gate):
    def __init__(self, directory: OwnerDirectory, channels: PeerChannels) -> None:
        self._directory = directory
        self._channels = channels

    def scoped(self) -> bool:
        # Wraps the handler itself (never grouped with check-only gates).
        return True

    async def check(self, call: CallInfo, context: CallPeer) -> Release | None:
        return None

    async def _target(self, call: CallInfo) -> RemoteOwner | None:
        if SERVING_FORWARDED.get():
            return None  # one hop
        return await self._directory.remote_owner(call.tenant)

    def _fall_back(self, owner: RemoteOwner, failed: Failure) -> bool:
        """Whether to serve here after `failed`: the owner is gone or leaving."""
        if not failed.from_owner and failed.error.code() == grpc.StatusCode.UNAVAILABLE:
            cause = "owner_unreachable"
        elif failed.from_owner and failed.reason == DRAINING:
            cause = "owner_draining"
        else:
            return False
        self._directory.forget(owner.tenant)
        FORWARDED.labels("unreachable" if cause == "owner_unreachable" else "draining").inc()
        HANDOVERS.labels(cause).inc()
        return True

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        if not _forwardable(method):
            return behavior

        async def unary(request: Any, context: Context) -> Any:
            call = current_call()
            owner = await self._target(call)
            if owner is None:
                return await behavior(request, context)
            started = time.perf_counter()
            payload = request.SerializeToString()
            for attempt in (1, 2):
                try:
                    reply, trailers = await self._channels.unary(owner.address, call, payload)
                except grpc.aio.AioRpcError as exc:
                    failed = failure(exc)
                    if failed.from_owner and failed.reason == MOVING and attempt == 1:
                        FORWARDED.labels("moved").inc()
                        self._directory.forget(call.tenant)
                        owner = await self._target(call)
                        if owner is None:
                            return await behavior(request, context)
                        continue
                    if self._fall_back(owner, failed):
                        return await behavior(request, context)
                    FORWARDED.labels("status").inc()
                    FORWARD_SECONDS.observe(time.perf_counter() - started)
                    await context.abort(exc.code(), exc.details() or "", failed.trailers)
                FORWARDED.labels("ok").inc()
                FORWARD_SECONDS.observe(time.perf_counter() - started)
                context.set_trailing_metadata(trailers)
                return reply
            raise AssertionError("unreachable")  # pragma: no cover

        return unary

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        if not _forwardable(method):
            return behavior

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            call = current_call()
            owner = await self._target(call)
            if owner is not None:
                served = await self._forward_stream(owner, call, request, context)
                async for message in served:
                    yield message
                return
            async for message in behavior(request, context):
                yield message

        return stream

    async def _forward_stream(
        self, owner: RemoteOwner, call: CallInfo, request: Any, context: Context
    ) -> AsyncIterator[Any]:
        started = time.perf_counter()
        pending = self._channels.stream(owner.address, call, request.SerializeToString())
        relayed = relay(pending)
        try:
            first = await anext(relayed)
        except StopAsyncIteration:
            first = None
        except grpc.aio.AioRpcError as exc:
            # Nothing was sent yet: a stale or gone owner is handled as for unary.
            failed = failure(exc)
            if failed.from_owner and failed.reason == MOVING:
                self._directory.forget(call.tenant)
            FORWARDED.labels("status").inc()
            await context.abort(exc.code(), exc.details() or "", failed.trailers)
        return self._rest(first, relayed, pending, context, started)

    async def _rest(
        self, first: bytes | None, relayed: AsyncIterator[bytes], pending: Any,
        context: Context, started: float,
    ) -> AsyncIterator[Any]:  # fmt: skip
        try:
            if first is not None:
                yield first
                async for message in relayed:
                    yield message
            context.set_trailing_metadata(tuple(await pending.trailing_metadata() or ()))
            FORWARDED.labels("ok").inc()
        except grpc.aio.AioRpcError as exc:
            FORWARDED.labels("status").inc()
            await context.abort(exc.code(), exc.details() or "", failure(exc).trailers)
        finally:
            FORWARD_SECONDS.observe(time.perf_counter() - started)
