"""Metrics of owner forwarding (postgres store, transport/forward): calls
forwarded to a tenant's owner by outcome, their latency, and the handovers
this pod started instead, by cause. Outcomes: `ok` (the owner's reply),
`status` (the owner's error status, passed on unchanged), `moved` (the owner
no longer held the tenant: re-read and retried once), `unreachable` and
`draining` (the owner is gone or leaving: the call was served here, taking
the lease)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FORWARDED = Counter(
    "mlsdm_forwarded_calls",
    "Calls forwarded to the pod holding their tenant's lease, by outcome.",
    ("outcome",),
)
FORWARD_SECONDS = Histogram(
    "mlsdm_forward_seconds",
    "Time a forwarded call took at this pod (the hop to the owner included).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
HANDOVERS = Counter(
    "mlsdm_tenant_handovers_by_cause",
    "Calls this pod served by taking a tenant's lease from a live owner instead of "
    "forwarding, by cause: owner_unreachable, owner_draining, forwarding_off.",
    ("cause",),
)
