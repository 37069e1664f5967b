"""Tenant isolation over real channels: who may use which tenant, on every RPC.

The matrix: roles read / write / admin x tenant own (unbound key, the tenant
named after its principal) / pattern (a key bound to `team-<role>-*`) / other
(another principal's tenant) x every RPC of CognitiveService, MemoryService and
AdminService.
Only the cells the role table and the binding allow succeed; every refusal
leaves the other tenant's GetState byte-identical and carries nothing of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from connect_kit import ConnectStub
from mlsdm_testkit import ServerThread, server_thread
from policy_kit import Issuer, KeysFile, bearer, failure, rich

from mlsdm.server.service.security.roles import METHOD_ROLES, expand
from mlsdm.v1 import admin_service_pb2 as apb
from mlsdm.v1 import admin_service_pb2_grpc as apb_grpc
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc
from mlsdm.v1 import memory_service_pb2 as mpb
from mlsdm.v1 import memory_service_pb2_grpc as mpb_grpc

SECRET = "zebra-4711"
VICTIM = "victim"
BYSTANDER = "bystander"
EVENT = pb.ProcessEventRequest(vector=[0.1] * 384, moral_value=0.9)
PROMPT = pb.GenerateRequest(prompt="Tell me about the weather.", moral_value=0.95)
STREAM_PROMPT = pb.StreamGenerateRequest(prompt="Tell me about the weather.", moral_value=0.95)
ROLES = ("read", "write", "admin")
KINDS = ("own", "pattern", "other")
Metadata = tuple[tuple[str, str], ...]


@dataclass
class World:
    running: ServerThread
    channel: grpc.Channel
    keys: dict[tuple[str, str], str]  # (role, "own" | "pattern") -> key
    victim_key: str
    issuer: Issuer
    # The id each tenant's last Remember stored (the victim's from the setup),
    # so GetMemory/ForgetMemory of a refused cell aim at the victim's memory.
    memory_ids: dict[str, str]
    # "grpc", or "connect": the same calls as Connect JSON on the HTTP port.
    transport: str = "grpc"

    def _stub(self, grpc_stub: Any, service: Any) -> Any:
        if self.transport == "connect":
            return ConnectStub(self.running.http_url, service)
        return grpc_stub(self.channel)

    @property
    def stub(self) -> pb_grpc.CognitiveServiceStub:
        service = pb.DESCRIPTOR.services_by_name["CognitiveService"]
        return self._stub(pb_grpc.CognitiveServiceStub, service)  # type: ignore[no-any-return]

    @property
    def admin(self) -> apb_grpc.AdminServiceStub:
        service = apb.DESCRIPTOR.services_by_name["AdminService"]
        return self._stub(apb_grpc.AdminServiceStub, service)  # type: ignore[no-any-return]

    @property
    def memory(self) -> mpb_grpc.MemoryServiceStub:
        service = mpb.DESCRIPTOR.services_by_name["MemoryService"]
        return self._stub(mpb_grpc.MemoryServiceStub, service)  # type: ignore[no-any-return]

    def memory_id(self, tenant: str) -> str:
        return self.memory_ids.get(tenant, self.memory_ids[VICTIM])

    def victim_state(self) -> bytes:
        md = (*bearer(self.victim_key), ("x-mlsdm-tenant", VICTIM))
        reply = self.stub.GetState(pb.GetStateRequest(), metadata=md)
        listed = self.memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md)
        return reply.SerializeToString(deterministic=True) + listed.SerializeToString(
            deterministic=True
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("tenancy")
    keys_file = KeysFile(base / "api-keys")
    issuer = Issuer(base / "jwks.json")
    keys = {}
    for role in ROLES:
        keys[(role, "own")] = keys_file.add(f"{role[0]}-own", role, tenants=None)
        keys[(role, "pattern")] = keys_file.add(
            f"{role[0]}-team", role, tenants=(f"team-{role[0]}-*",)
        )
    victim_key = keys_file.add(VICTIM, "write", tenants=None)
    overrides = {
        "auth": {
            "api_keys_file": str(keys_file.path),
            "jwt": {
                "jwks_file": str(issuer.path),
                "issuer": Issuer.ISSUER,
                "audience": Issuer.AUDIENCE,
            },
        },
        # A store that snapshots and repairs, so every admin cell can really succeed.
        "tenants": {"store": "sqlite", "data_dir": str(base / "data")},
    }
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        world = World(running, ch, keys, victim_key, issuer, {})
        md = (*bearer(victim_key), ("x-mlsdm-tenant", VICTIM))
        world.stub.ProcessEvent(EVENT, metadata=md)
        _remember(world, VICTIM, md)
        world.stub.Generate(
            pb.GenerateRequest(prompt=f"remember {SECRET}", moral_value=0.95), metadata=md
        )
        admin_md = (*bearer(keys[("admin", "own")]), ("x-mlsdm-tenant", BYSTANDER))
        world.stub.ProcessEvent(EVENT, metadata=admin_md)
        yield world


def tenant_of(role: str, kind: str) -> str:
    if kind == "own":
        return f"{role[0]}-own"
    if kind == "pattern":
        return f"team-{role[0]}-1"
    # Admins may use any tenant, and their allowed calls change it: not the victim's.
    return BYSTANDER if role == "admin" else VICTIM


def _stream(stub: pb_grpc.CognitiveServiceStub, md: Metadata) -> list[Any]:
    return list(stub.StreamGenerate(STREAM_PROMPT, metadata=md))


REMEMBER = mpb.RememberRequest(
    memories=[mpb.MemoryInput(text=f"The vault code is {SECRET}.", session="s1")]
)


def _remember(w: World, tenant: str, md: Metadata) -> mpb.RememberResponse:
    reply: mpb.RememberResponse = w.memory.Remember(REMEMBER, metadata=md)
    w.memory_ids[tenant] = reply.results[0].id
    return reply


# Method name -> how to call it for a tenant. Ordered so each cell finds its
# tenant in place (DeleteTenant last).
CALLS: dict[str, Callable[[World, str, Metadata], Any]] = {
    "GetState": lambda w, t, md: w.stub.GetState(pb.GetStateRequest(), metadata=md),
    "ProcessEvent": lambda w, t, md: w.stub.ProcessEvent(EVENT, metadata=md),
    "Generate": lambda w, t, md: w.stub.Generate(PROMPT, metadata=md),
    "StreamGenerate": lambda w, t, md: _stream(w.stub, md),
    "Remember": _remember,
    "Recall": lambda w, t, md: w.memory.Recall(mpb.RecallRequest(query="vault code"), metadata=md),
    "ListMemories": lambda w, t, md: w.memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md),
    "GetMemory": lambda w, t, md: w.memory.GetMemory(
        mpb.GetMemoryRequest(id=w.memory_id(t)), metadata=md
    ),
    "ForgetMemory": lambda w, t, md: w.memory.ForgetMemory(
        mpb.ForgetMemoryRequest(id=w.memory_id(t)), metadata=md
    ),
    "ForgetMemories": lambda w, t, md: w.memory.ForgetMemories(
        mpb.ForgetMemoriesRequest(filter=mpb.MemoryFilter(session="s1")), metadata=md
    ),
    "ListTenants": lambda w, t, md: w.admin.ListTenants(apb.ListTenantsRequest(), metadata=md),
    "SnapshotTenant": lambda w, t, md: w.admin.SnapshotTenant(
        apb.SnapshotTenantRequest(tenant=t), metadata=md
    ),
    "ResetEmergency": lambda w, t, md: w.admin.ResetEmergency(
        apb.ResetEmergencyRequest(tenant=t), metadata=md
    ),
    "RepairTenant": lambda w, t, md: w.admin.RepairTenant(
        apb.RepairTenantRequest(tenant=t), metadata=md
    ),
    "DeleteTenant": lambda w, t, md: w.admin.DeleteTenant(
        apb.DeleteTenantRequest(tenant=t), metadata=md
    ),
}


def required(method: str) -> str:
    if method in apb.DESCRIPTOR.services_by_name["AdminService"].methods_by_name:
        service = "AdminService"
    elif method in mpb.DESCRIPTOR.services_by_name["MemoryService"].methods_by_name:
        service = "MemoryService"
    else:
        service = "CognitiveService"
    full = f"/mlsdm.v1.{service}/{method}"
    return METHOD_ROLES.get(full) or METHOD_ROLES[f"/mlsdm.v1.{service}/*"]


def expected(role: str, kind: str, method: str) -> str:
    """'OK', or the ErrorInfo reason of the refusal."""
    if required(method) not in expand([role]):
        return "PERMISSION_DENIED"
    if role != "admin" and kind == "other":
        return "TENANT_FORBIDDEN"
    if method in ("GetMemory", "ForgetMemory") and required("Remember") not in expand([role]):
        # A read-only caller stored nothing in its tenant: the id it is given is
        # the victim's, which its own tenant does not hold.
        return "MEMORY_NOT_FOUND"
    return "OK"


def test_every_rpc_is_in_the_matrix() -> None:
    services = (
        pb.DESCRIPTOR.services_by_name["CognitiveService"],
        mpb.DESCRIPTOR.services_by_name["MemoryService"],
        apb.DESCRIPTOR.services_by_name["AdminService"],
    )
    assert {m.name for s in services for m in s.methods} == set(CALLS)


@pytest.mark.parametrize("transport", ["grpc", "connect"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("role", ROLES)
def test_cross_tenant_matrix(world: World, role: str, kind: str, transport: str) -> None:
    """Every cell over native gRPC and over Connect (HTTP port): the same outcomes."""
    world = dataclasses.replace(world, transport=transport)
    tenant = tenant_of(role, kind)
    key = world.keys[(role, "pattern" if kind == "pattern" else "own")]
    md = (*bearer(key), ("x-mlsdm-tenant", tenant))
    before = world.victim_state()
    outcomes, wanted = {}, {}
    for method, call in CALLS.items():
        wanted[method] = expected(role, kind, method)
        try:
            call(world, tenant, md)
        except grpc.RpcError as exc:
            error = rich(exc)
            outcomes[method] = error.reason
            if error.reason == "MEMORY_NOT_FOUND":
                # An allowed call with another tenant's memory id: not found, like
                # any id the tenant does not hold (no id's existence leaks).
                assert error.code == grpc.StatusCode.NOT_FOUND, (method, error)
                assert world.victim_state() == before, f"{method} changed {VICTIM}"
                continue
            assert error.code == grpc.StatusCode.PERMISSION_DENIED, (method, error)
            if error.reason == "TENANT_FORBIDDEN":
                assert error.metadata == {"tenant": tenant, "principal": f"{role[0]}-own"}
            # Nothing of the other tenant in the refusal, and nothing of it changed.
            call_obj: grpc.Call = exc  # type: ignore[assignment]
            assert SECRET not in f"{call_obj.details()} {call_obj.trailing_metadata()}"
            assert world.victim_state() == before, f"{method} changed {VICTIM}"
        else:
            outcomes[method] = "OK"
    print(f"\n{transport:>7} {role:>5} x {kind:<7} on {tenant}: {outcomes}")
    assert outcomes == wanted
    assert world.victim_state() == before


def test_a_bound_key_loses_its_own_name_tenant(world: World) -> None:
    md = (*bearer(world.keys[("write", "pattern")]), ("x-mlsdm-tenant", "w-team"))
    error = rich(failure(world.stub.GetState, pb.GetStateRequest(), metadata=md))
    assert error.reason == "TENANT_FORBIDDEN"


@pytest.mark.parametrize("tenant", ["team-w", "team-wx", "xteam-w-1", "TEAM-w-1"])
def test_a_pattern_is_a_plain_prefix(world: World, tenant: str) -> None:
    md = (*bearer(world.keys[("write", "pattern")]), ("x-mlsdm-tenant", tenant))
    error = rich(failure(world.stub.GetState, pb.GetStateRequest(), metadata=md))
    assert (error.reason, error.metadata["tenant"]) == ("TENANT_FORBIDDEN", tenant)


def test_the_default_tenant_is_a_tenant_like_any_other(world: World) -> None:
    error = rich(
        failure(world.stub.GetState, pb.GetStateRequest(), metadata=bearer(world.victim_key))
    )
    assert (error.reason, error.metadata["tenant"]) == ("TENANT_FORBIDDEN", "default")


def _jwt(world: World, **claims: Any) -> Metadata:
    return bearer(world.issuer.token("svc-jwt", ["write"], **claims))


def test_jwt_tenants_claim(world: World) -> None:
    stub = world.stub
    md = _jwt(world, mlsdm_tenants=["jwt-one", "jwt-team-*"])
    for tenant in ("jwt-one", "jwt-team-7"):
        assert (
            stub.GetState(pb.GetStateRequest(), metadata=(*md, ("x-mlsdm-tenant", tenant))).tenant
            == tenant
        )
    for tenant in ("jwt-two", VICTIM, "svc-jwt"):
        error = rich(
            failure(stub.GetState, pb.GetStateRequest(), metadata=(*md, ("x-mlsdm-tenant", tenant)))
        )
        assert error.metadata == {"tenant": tenant, "principal": "svc-jwt"}
    # Without the claim: the tenant named after the subject only.
    md = _jwt(world, mlsdm_tenants=None)
    assert (
        stub.GetState(pb.GetStateRequest(), metadata=(*md, ("x-mlsdm-tenant", "svc-jwt"))).step == 0
    )
    error = rich(
        failure(stub.GetState, pb.GetStateRequest(), metadata=(*md, ("x-mlsdm-tenant", VICTIM)))
    )
    assert error.reason == "TENANT_FORBIDDEN"


@pytest.mark.parametrize(
    "claim", ["jwt-one", {"jwt-one": True}, 7, ["ok", 3], ["../etc"], ["a*b"]], ids=str
)
def test_a_malformed_tenants_claim_is_unauthenticated(world: World, claim: Any) -> None:
    md = (*_jwt(world, mlsdm_tenants=claim), ("x-mlsdm-tenant", "jwt-one"))
    exc = failure(world.stub.GetState, pb.GetStateRequest(), metadata=md)
    error = rich(exc)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_INVALID")
    call: grpc.Call = exc  # type: ignore[assignment]
    # Which claim failed is for the server log only (issue 31): one message for every refusal.
    assert call.details() == "credentials rejected: the JWT was not accepted"


def test_admin_jwt_may_use_any_tenant(world: World) -> None:
    md = bearer(world.issuer.token("ops", ["admin"], mlsdm_tenants=["nothing-*"]))
    reply = world.stub.GetState(pb.GetStateRequest(), metadata=(*md, ("x-mlsdm-tenant", BYSTANDER)))
    assert reply.tenant == BYSTANDER


def test_open_dev_server_allows_any_tenant() -> None:
    with server_thread() as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        for tenant in ("alice", "bob", "default"):
            md = (("x-mlsdm-tenant", tenant),)
            assert stub.ProcessEvent(EVENT, metadata=md).step == 1


def test_keys_file_without_tenants_field_still_loads(tmp_path: Path) -> None:
    keys = KeysFile(tmp_path / "api-keys")
    key = keys.add("legacy", "read", tenants=None)
    assert "tenants" not in keys.path.read_text()
    overrides = {"auth": {"api_keys_file": str(keys.path)}}
    with server_thread(overrides) as running, grpc.insecure_channel(running.address) as ch:
        stub = pb_grpc.CognitiveServiceStub(ch)
        md = (*bearer(key), ("x-mlsdm-tenant", "legacy"))
        assert stub.GetState(pb.GetStateRequest(), metadata=md).tenant == "legacy"


def test_a_refused_call_creates_no_tenant(world: World) -> None:
    writer = world.keys[("write", "own")]
    for tenant in ("never-made-1", "never-made-2"):
        md = (*bearer(writer), ("x-mlsdm-tenant", tenant))
        for method in ("GetState", "ProcessEvent", "Generate", "StreamGenerate"):
            error = rich(failure(CALLS[method], world, tenant, md))
            assert error.reason == "TENANT_FORBIDDEN"
    admin = bearer(world.keys[("admin", "own")])
    listed = world.admin.ListTenants(apb.ListTenantsRequest(page_size=1000), metadata=admin)
    assert not {t.tenant for t in listed.tenants} & {"never-made-1", "never-made-2"}
