"""CognitiveService: proto messages in, domain calls, proto messages out.

Thin on purpose (no policy, no math): policies live in the interceptors, the
governed pipeline in generation.py, the cognition in mlsdm.engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import grpc
from google.protobuf import duration_pb2

from mlsdm.engine import EngineStateView, Phase, RefusalReason
from mlsdm.server.service.generation import Ask, Generation, GovernedGenerator, Timings
from mlsdm.server.service.request_checks import check_event, check_generation
from mlsdm.server.service.tenancy.registry import TenantRegistry
from mlsdm.server.service.tenancy.session import TenantSession
from mlsdm.server.transport.call import CallInfo, current_call
from mlsdm.server.transport.memory_messages import memory_message
from mlsdm.server.transport.tenant_use import use_checked
from mlsdm.server.version import VERSION
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import types_pb2

Context = grpc.aio.ServicerContext[Any, Any]

_PHASES = {Phase.WAKE: types_pb2.PHASE_WAKE, Phase.SLEEP: types_pb2.PHASE_SLEEP}
REFUSALS = {
    RefusalReason.NONE: types_pb2.REFUSAL_REASON_UNSPECIFIED,
    RefusalReason.MORAL: types_pb2.REFUSAL_REASON_MORAL,
    RefusalReason.SLEEP: types_pb2.REFUSAL_REASON_SLEEP,
    RefusalReason.EMERGENCY: types_pb2.REFUSAL_REASON_EMERGENCY,
    RefusalReason.MORAL_OUTPUT: types_pb2.REFUSAL_REASON_MORAL_OUTPUT,
}
_APHASIA_FLAGS = {
    "short_sentences": types_pb2.APHASIA_FLAG_SHORT_SENTENCES,
    "low_function_words": types_pb2.APHASIA_FLAG_LOW_FUNCTION_WORDS,
    "fragmented": types_pb2.APHASIA_FLAG_FRAGMENTS,
}
_NOTES = {
    RefusalReason.NONE: "accepted",
    RefusalReason.MORAL: "refused: moral value below the adaptive threshold",
    RefusalReason.SLEEP: "refused: the tenant is asleep; retry after the sleep phase",
    RefusalReason.EMERGENCY: "refused: the tenant is in emergency shutdown",
    RefusalReason.MORAL_OUTPUT: "refused: the answer's moral score is below the threshold",
}


class CognitiveServicer(pb_grpc.CognitiveServiceServicer):
    def __init__(self, tenants: TenantRegistry, generator: GovernedGenerator) -> None:
        self._tenants = tenants
        self._generator = generator

    def _generation(
        self, request: pb.GenerateRequest | pb.StreamGenerateRequest
    ) -> tuple[AbstractAsyncContextManager[TenantSession], Ask]:
        """The tenant to generate on, used only once the request's fields are
        checked (a refusal registers nothing), and the request as an Ask."""
        call = current_call()
        ask = _ask(request, call)
        check = partial(
            check_generation,
            self._tenants.config,
            ask.prompt,
            ask.moral_value,
            ask.max_tokens,
            ask.context_top_k,
        )
        return use_checked(self._tenants, call, check), ask

    async def Generate(self, request: pb.GenerateRequest, context: Context) -> pb.GenerateResponse:
        use, ask = self._generation(request)
        async with use as tenant:
            generation = await self._generator.generate(tenant, ask)
        return _generate_response(generation, include_text=True)

    async def StreamGenerate(
        self, request: pb.StreamGenerateRequest, context: Context
    ) -> AsyncIterator[pb.StreamGenerateResponse]:
        use, ask = self._generation(request)
        async with use as tenant:
            async for item in self._generator.stream(tenant, ask):
                if isinstance(item, str):
                    yield pb.StreamGenerateResponse(delta=item)
                else:
                    yield pb.StreamGenerateResponse(
                        result=_generate_response(item, include_text=False)
                    )

    async def ProcessEvent(
        self, request: pb.ProcessEventRequest, context: Context
    ) -> pb.ProcessEventResponse:
        moral = request.moral_value if request.HasField("moral_value") else None
        check = partial(check_event, self._tenants.config, request.vector, moral)
        async with use_checked(self._tenants, current_call(), check) as tenant:
            outcome = await tenant.process_event(request.vector, request.moral_value)
        return pb.ProcessEventResponse(
            accepted=outcome.accepted,
            refusal_reason=REFUSALS[outcome.reason],
            phase=_PHASES[outcome.phase],
            step=outcome.step,
            moral_threshold=outcome.moral_threshold,
            acceptance_rate=outcome.acceptance_ema,
            consolidated=outcome.consolidated,
            note=_NOTES[outcome.reason],
        )

    async def GetState(self, request: pb.GetStateRequest, context: Context) -> pb.GetStateResponse:
        call = current_call()
        # A read creates nothing: an unknown tenant reads as a fresh one.
        state = await self._tenants.read_state(call.tenant, wait_s=call.remaining())
        return state_response(call.tenant, state, self._tenants.config.dim)


def _ask(request: pb.GenerateRequest | pb.StreamGenerateRequest, call: CallInfo) -> Ask:
    """The request as the generator takes it: the client's moral value (None
    when unset) only lowers the server's score unless the caller holds the
    trusted-scorer grant."""
    return Ask(
        request.prompt,
        request.moral_value if request.HasField("moral_value") else None,
        request.max_tokens,
        request.context_top_k,
        call.deadline,
        trusted_scorer=call.trusted_scorer,
    )


def state_response(tenant: str, state: EngineStateView, dim: int) -> pb.GetStateResponse:
    rejected = state.rejected_by_reason
    return pb.GetStateResponse(
        tenant=tenant,
        step=state.step,
        phase=_PHASES[state.phase],
        phase_steps_remaining=state.phase_counter,
        moral_threshold=state.moral_threshold,
        acceptance_rate=state.acceptance_ema,
        memory=types_pb2.SynapticMemory(
            l1_norm=state.l1_norm, l2_norm=state.l2_norm, l3_norm=state.l3_norm
        ),
        store=types_pb2.StoreUsage(
            used=state.store_used, capacity=state.store_capacity, bytes=state.store_bytes
        ),
        emergency=types_pb2.EmergencyState(active=state.emergency, reason=state.emergency_reason),
        counters=types_pb2.Counters(
            accepted=state.accepted_total,
            rejected_moral=rejected.get(RefusalReason.MORAL.value, 0),
            rejected_sleep=rejected.get(RefusalReason.SLEEP.value, 0),
            rejected_emergency=rejected.get(RefusalReason.EMERGENCY.value, 0),
            consolidations=state.consolidations_total,
        ),
        dim=dim,
        server_version=VERSION,
    )


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def _timings(t: Timings) -> types_pb2.Timings:
    return types_pb2.Timings(
        admit=_duration(t.admit),
        llm=_duration(t.llm),
        first_token=_duration(t.first_token),
        commit=_duration(t.commit),
        total=_duration(t.total),
    )


def _generate_response(generation: Generation, include_text: bool) -> pb.GenerateResponse:
    admission = generation.admission
    outcome = admission.outcome
    response = pb.GenerateResponse(
        response=generation.text if include_text else "",
        accepted=outcome.accepted,
        refusal_reason=REFUSALS[outcome.reason],
        phase=_PHASES[outcome.phase],
        step=outcome.step,
        note=_NOTES[outcome.reason],
        moral_threshold=outcome.moral_threshold,
        moral_value=admission.moral_value,
        context_items=[
            types_pb2.ContextItem(
                text=c.response,
                score=c.score,
                phase_value=c.phase_value,
                prompt=c.prompt,
                response=c.response,
                step=c.step,
                age_steps=c.age_steps,
                memory=None if c.memory is None else memory_message(c.memory),
            )
            for c in admission.context
        ],
        confidence=generation.confidence,
        server_moral_score=generation.server_moral_score,
        output_moral_score=generation.output_moral_score,
        usage=types_pb2.Usage(
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            total_tokens=generation.prompt_tokens + generation.completion_tokens,
        ),
        timings=_timings(generation.timings),
    )
    report = generation.aphasia
    if report is not None:
        response.aphasia.CopyFrom(
            types_pb2.AphasiaReport(
                aphasic=report.is_aphasic,
                severity=report.severity,
                flags=[_APHASIA_FLAGS[f] for f in report.flags if f in _APHASIA_FLAGS],
                repair_attempted=generation.repair_attempted,
                repaired=generation.repaired,
            )
        )
    return response
