"""Through a real server: LRU residency with snapshot-and-evict and load on
demand, state surviving a restart, and the AdminService RPCs."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mlsdm_testkit import server_thread

from mlsdm.v1 import admin_service_pb2 as apb
from mlsdm.v1 import admin_service_pb2_grpc as apb_grpc
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384


def _event(stub: pb_grpc.CognitiveServiceStub, tenant: str, seed: int) -> pb.ProcessEventResponse:
    vec = np.random.default_rng(seed).uniform(-1, 1, DIM).astype(np.float32)
    return stub.ProcessEvent(
        pb.ProcessEventRequest(vector=vec.tolist(), moral_value=0.95),
        metadata=[("x-mlsdm-tenant", tenant)],
        timeout=30,
    )


def _state(stub: pb_grpc.CognitiveServiceStub, tenant: str) -> pb.GetStateResponse:
    return stub.GetState(pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", tenant)], timeout=30)


def _reason(err: grpc.RpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    raise AssertionError("no ErrorInfo")


def test_lru_eviction_snapshots_and_reloads(tmp_path: Path) -> None:
    overrides = {"tenants": {"data_dir": str(tmp_path), "max_resident": 2, "store": "sqlite"}}
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        admin = apb_grpc.AdminServiceStub(channel)
        tenants = [f"t{i}" for i in range(5)]
        expected = {}
        for n, tenant in enumerate(tenants):
            for k in range(n + 3):
                _event(stub, tenant, n * 100 + k)
            expected[tenant] = _state(stub, tenant)
            assert server.server is not None
            assert len(server.server.tenants.resident()) <= 2
        listed = admin.ListTenants(apb.ListTenantsRequest(), timeout=30).tenants
        assert [t.tenant for t in listed] == tenants
        assert sum(t.resident for t in listed) <= 2
        evicted = [t for t in listed if not t.resident]
        assert evicted and all(t.disk_bytes > 0 and t.memory_bytes == 0 for t in evicted)
        assert all(t.step == expected[t.tenant].step for t in listed)
        # Loaded back on demand, in the same state (memory, store, counters).
        for tenant in tenants:
            again = _state(stub, tenant)
            assert again.step == expected[tenant].step
            assert again.memory == expected[tenant].memory
            assert again.store == expected[tenant].store
            assert again.counters == expected[tenant].counters
        stats = server.server.tenants.stats.as_dict()
        assert stats["evictions"] >= 3
        assert stats["snapshots_written"] >= 3


def test_state_survives_a_restart_and_admin_rpcs(tmp_path: Path) -> None:
    overrides = {"tenants": {"data_dir": str(tmp_path), "store": "sqlite"}}
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for k in range(7):
            _event(stub, "keep", k)
        stub.Generate(
            pb.GenerateRequest(prompt="what do you remember", moral_value=0.95),
            metadata=[("x-mlsdm-tenant", "keep")],
            timeout=30,
        )
        before = _state(stub, "keep")
        admin = apb_grpc.AdminServiceStub(channel)
        snap = admin.SnapshotTenant(apb.SnapshotTenantRequest(tenant="keep"), timeout=30)
        assert snap.step == before.step == 8
        assert snap.bytes > 0
        for k in range(3):
            _event(stub, "doomed", k)
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        admin = apb_grpc.AdminServiceStub(channel)
        after = _state(stub, "keep")
        assert (after.step, after.memory, after.store, after.counters) == (
            before.step,
            before.memory,
            before.store,
            before.counters,
        )
        assert admin.DeleteTenant(apb.DeleteTenantRequest(tenant="doomed"), timeout=30).deleted
        assert not admin.DeleteTenant(apb.DeleteTenantRequest(tenant="doomed"), timeout=30).deleted
        assert _state(stub, "doomed").step == 0  # a new, empty tenant
        with pytest.raises(grpc.RpcError) as missing:
            admin.ResetEmergency(apb.ResetEmergencyRequest(tenant="nobody"), timeout=30)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert _reason(missing.value) == "TENANT_NOT_FOUND"
        with pytest.raises(grpc.RpcError) as bad:
            admin.SnapshotTenant(apb.SnapshotTenantRequest(tenant="../etc"), timeout=30)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_reset_emergency_clears_it_durably(tmp_path: Path) -> None:
    # A budget so small that the first stored events push the tenant into emergency.
    overrides = {
        "tenants": {"data_dir": str(tmp_path), "store": "sqlite"},
        "engine": {"memory_budget_mb": 0.002},
    }
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        admin = apb_grpc.AdminServiceStub(channel)
        for k in range(3):
            _event(stub, "hot", k)
        assert _state(stub, "hot").emergency.active
        reply = admin.ResetEmergency(apb.ResetEmergencyRequest(tenant="hot"), timeout=30)
        assert reply.was_active
        assert not _state(stub, "hot").emergency.active
        again = admin.ResetEmergency(apb.ResetEmergencyRequest(tenant="hot"), timeout=30)
        assert not again.was_active
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        assert not _state(stub, "hot").emergency.active


def test_in_memory_mode_has_no_snapshots() -> None:
    with server_thread() as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        _event(stub, "mem", 1)
        admin = apb_grpc.AdminServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            admin.SnapshotTenant(apb.SnapshotTenantRequest(tenant="mem"), timeout=30)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        listed = admin.ListTenants(apb.ListTenantsRequest(), timeout=30).tenants
        assert [(t.tenant, t.resident, t.step, t.disk_bytes) for t in listed] == [
            ("mem", True, 1, 0)
        ]


def test_get_state_of_unknown_tenants_creates_nothing(tmp_path: Path) -> None:
    overrides = {"tenants": {"store": "sqlite", "data_dir": str(tmp_path)}}
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(20):
            state = _state(stub, f"ghost-{i}")
            assert (state.tenant, state.step) == (f"ghost-{i}", 0)
        assert server.server is not None
        assert server.server.tenants.resident() == []
        # A write creates the tenant; its reads then come from the real state.
        stub.Generate(
            pb.GenerateRequest(prompt="hello there", moral_value=0.95),
            metadata=[("x-mlsdm-tenant", "ghost-0")],
            timeout=30,
        )
        assert _state(stub, "ghost-0").step == 1
        listed = apb_grpc.AdminServiceStub(channel).ListTenants(apb.ListTenantsRequest()).tenants
        assert [t.tenant for t in listed] == ["ghost-0"]


def test_list_tenants_pages_through_thirteen_thousand(tmp_path: Path) -> None:
    import asyncio

    from mlsdm.server.service.store.sqlite import SqliteConfig, SqliteStore

    names = [f"t{i:05d}" for i in range(13_000)]

    async def register() -> None:
        store = SqliteStore(SqliteConfig(tmp_path / "tenants.sqlite3"))
        await store.open()
        try:
            await asyncio.gather(*(store.register(n, None, None) for n in names))
        finally:
            await store.close()

    asyncio.run(register())
    overrides = {"tenants": {"store": "sqlite", "data_dir": str(tmp_path)}}
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as channel:
        admin = apb_grpc.AdminServiceStub(channel)
        seen: list[str] = []
        token, pages = "", 0
        while True:
            page = admin.ListTenants(
                apb.ListTenantsRequest(page_size=1000, page_token=token), timeout=30
            )
            pages += 1
            assert len(page.tenants) <= 1000
            seen += [t.tenant for t in page.tenants]
            token = page.next_page_token
            if not token:
                break
        assert seen == names, "every tenant once, in id order"
        assert pages == 13
        default = admin.ListTenants(apb.ListTenantsRequest(), timeout=30)
        assert len(default.tenants) == 100 and default.next_page_token
        capped = admin.ListTenants(apb.ListTenantsRequest(page_size=50_000), timeout=30)
        assert len(capped.tenants) == 1000
        for bad in ("garbage!", "bm90IG91cnM", default.next_page_token[:-3] + "zzz"):
            with pytest.raises(grpc.RpcError) as caught:
                admin.ListTenants(apb.ListTenantsRequest(page_token=bad), timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert _reason(caught.value) == "INVALID_PAGE_TOKEN"
        with pytest.raises(grpc.RpcError) as negative:
            admin.ListTenants(apb.ListTenantsRequest(page_size=-1), timeout=30)
        assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
