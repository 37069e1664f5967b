"""Admission gate: priority-aware concurrency limit (policy/admission.py).

Innermost of the gates, so a call only takes a slot or a queue place after
its deadline, identity and rate were accepted; the slot is held until the
handler (for a stream: the last message) is done.
"""

from __future__ import annotations

from functools import partial

from mlsdm.server.service.policy.admission import AdmissionController
from mlsdm.server.transport.call import CallInfo
from mlsdm.server.transport.interceptors.base import CallPeer, Gate, Release


class AdmissionGate(Gate):
    def __init__(self, controller: AdmissionController) -> None:
        super().__init__()
        self.controller = controller

    async def check(self, call: CallInfo, context: CallPeer) -> Release | None:
        granted = await self.controller.acquire(call.priority, call.deadline)
        return partial(self.controller.release, granted)
