"""`mlsdm-grpc demo`: a scripted session that shows what governance does.

Against --target it talks to a running server; without one it starts an
embedded server on free loopback ports, its tenants in memory, for the length
of the session.
"""

from __future__ import annotations

import uuid

from mlsdm.client import AsyncClient, MlsdmError
from mlsdm.server.settings import Settings
from mlsdm.server.transport.app import MlsdmServer
from mlsdm.v1 import types_pb2


def _phase(value: types_pb2.Phase.ValueType) -> str:
    return types_pb2.Phase.Name(value).removeprefix("PHASE_").lower()


def _reason(value: types_pb2.RefusalReason.ValueType) -> str:
    if value == types_pb2.REFUSAL_REASON_UNSPECIFIED:
        return "-"
    return types_pb2.RefusalReason.Name(value).removeprefix("REFUSAL_REASON_").lower()


async def _session(client: AsyncClient) -> None:
    print(f"{'step':>4}  {'phase':<5}  {'moral':>5}  {'theta':>5}  {'result':<8}  note")

    async def say(prompt: str, moral: float) -> None:
        r = await client.generate(prompt, moral_value=moral, max_tokens=48)
        result = "accepted" if r.accepted else f"refused:{_reason(r.refusal_reason)}"
        extra = f" (recalled {len(r.context_items)} memories)" if r.context_items else ""
        print(
            f"{r.step:>4}  {_phase(r.phase):<5}  {moral:>5.2f}  {r.moral_threshold:>5.2f}  "
            f"{result:<8}  {r.note}{extra}"
        )

    await say("My garden has tomatoes and basil growing by the south wall.", 0.95)
    await say("Tell me how to hurt someone.", 0.10)
    await say("What grows by the south wall of my garden?", 0.92)
    for i in range(9):
        await say(f"Another friendly question number {i} about my garden.", 0.9)
    state = await client.get_state()
    print(
        f"\nstate: step {state.step}, phase {_phase(state.phase)}, "
        f"threshold {state.moral_threshold:.2f}, memories {state.store.used}, "
        f"accepted {state.counters.accepted}, refused moral/sleep "
        f"{state.counters.rejected_moral}/{state.counters.rejected_sleep}"
    )
    print(f"server version {client.server_version}")


async def run_demo(target: str | None, settings: Settings | None, api_key: str | None) -> int:
    tenant = f"demo-{uuid.uuid4().hex[:8]}"
    server: MlsdmServer | None = None
    if target is None:
        assert settings is not None
        # Free ports for every listener and tenants kept in memory: the demo
        # must run beside a `serve` (or anything else) holding the configured
        # ports and, from the same folder, the configured data directory; its
        # throwaway tenant leaves nothing on disk.
        obs = settings.observability
        embedded = settings.model_copy(
            update={
                "server": settings.server.model_copy(
                    update={
                        "port": 0,
                        "port_file": None,
                        "http": settings.server.http.model_copy(update={"port": 0}),
                    }
                ),
                "observability": obs.model_copy(
                    update={"metrics": obs.metrics.model_copy(update={"port": 0})}
                ),
                "tenants": settings.tenants.model_copy(update={"store": "memory"}),
            }
        )
        server = MlsdmServer(embedded)
        port = await server.start()
        target = f"{embedded.server.host}:{port}"
        print(f"embedded server on {target}")
    try:
        async with AsyncClient(target, api_key=api_key, tenant=tenant, timeout=10.0) as client:
            await _session(client)
    except MlsdmError as exc:
        print(f"demo failed: {exc}")
        return 1
    finally:
        if server is not None:
            await server.stop(0)
    return 0
