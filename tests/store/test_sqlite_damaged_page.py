"""A damaged page of a real SQLite file refuses only the tenants whose rows it
holds: the store opens (header and schema checked, not every page), the
other tenant loads, the damaged one is TenantDataCorrupt, and the offline
`tenants` commands (integrity, list, export, repair) run on the file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
from mlsdm_testkit import console_script, server_process

from mlsdm.server.service.store.port import Lease, TenantDataCorrupt
from mlsdm.server.service.store.sqlite import SqliteConfig, SqliteStore
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

EVENTS = 60
DIM = 384  # a ProcessEvent record is ~1.6 KiB: a 4 KiB page holds one tenant's rows


def _fill(data: Path) -> None:
    """Real records, written by a real server: a's rows all first, then b's.
    The server is killed (no snapshot at drain: the loads read these events),
    then the WAL is checkpointed into the file."""
    with (
        server_process("tenants.store=sqlite", f"tenants.data_dir={data}") as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.CognitiveServiceStub(channel)
        for tenant in ("a", "b"):
            for i in range(EVENTS):
                vec = np.random.default_rng([ord(tenant), i]).uniform(-1, 1, DIM)
                stub.ProcessEvent(
                    pb.ProcessEventRequest(vector=vec.astype(np.float32).tolist(), moral_value=0.9),
                    metadata=[("x-mlsdm-tenant", tenant)],
                    timeout=10,
                )
        server.proc.kill()
        server.proc.wait()
    conn = sqlite3.connect(data / "tenants.sqlite3")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _stored(path: Path, tenant: str, seq: int) -> bytes:
    conn = sqlite3.connect(path)
    try:
        (record,) = conn.execute(
            "SELECT record FROM events WHERE tenant = ? AND seq = ?", (tenant, seq)
        ).fetchone()
        return bytes(record)
    finally:
        conn.close()


def _damage_page_of(path: Path, needle: bytes) -> int:
    """Overwrites the page holding `needle` with junk; returns its number."""
    raw = bytearray(path.read_bytes())
    page_size = int.from_bytes(raw[16:18], "big")
    at = raw.find(needle)
    assert at > 0, "the record is not in the main file (still in the WAL?)"
    page = at // page_size
    raw[page * page_size : (page + 1) * page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(raw))
    return page + 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*console_script(), "tenants", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    path = data / "tenants.sqlite3"
    _fill(data)
    _damage_page_of(path, _stored(path, "a", 30)[-64:])
    return data


def test_a_damaged_page_refuses_only_its_tenant(damaged: Path) -> None:
    async def body() -> None:
        store = SqliteStore(SqliteConfig(damaged / "tenants.sqlite3"))
        await store.open()  # no full-file check at start-up
        try:
            got = await store.load(Lease("b", store.owner, 1, float("inf")))
            assert got.last_seq == EVENTS
            with pytest.raises(TenantDataCorrupt) as corrupt:
                await store.load(Lease("a", store.owner, 1, float("inf")))
            assert corrupt.value.tenant == "a"
        finally:
            await store.close()

    asyncio.run(body())


def test_the_tenants_commands_run_on_a_damaged_file(damaged: Path) -> None:
    store = f"sqlite:{damaged}"
    checked = _cli("integrity", "--store", store)
    assert checked.returncode == 1, checked.stderr
    rows = {r["tenant"]: r for r in map(json.loads, checked.stdout.splitlines())}
    assert rows["b"]["ok"] and rows["b"]["readable_seq"] == EVENTS
    assert not rows["a"]["ok"] and rows["a"]["readable_seq"] < 30
    assert "1 tenant(s) affected" in checked.stderr
    listed = _cli("list", "--store", store)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["tenant"] for line in listed.stdout.splitlines()] == ["a", "b"]
    exported = _cli("export", "a", "--store", store)
    assert exported.returncode == 0, exported.stderr
    readable = json.loads(exported.stdout)["last_seq"]
    assert 0 < readable < 30
    # The damaged page itself cannot be rewritten: repair says how to get out.
    repaired = _cli("repair", "a", "--store", store)
    assert repaired.returncode == 1 and "tenants copy" in repaired.stderr, repaired.stderr
    assert len(repaired.stderr.strip().splitlines()) == 1
    fresh = damaged.parent / "fresh"
    refused = _cli("copy", "--from", store, "--to", f"sqlite:{fresh}")
    assert refused.returncode == 1 and "failed    a" in refused.stderr, refused.stderr
    copied = _cli("copy", "--salvage", "--from", store, "--to", f"sqlite:{fresh}")
    assert copied.returncode == 0, copied.stderr
    assert "salvaged  a" in copied.stderr and "skipped   b" in copied.stderr, copied.stderr
    again = _cli("integrity", "--store", f"sqlite:{fresh}")
    assert again.returncode == 0, again.stdout + again.stderr
    rows = {r["tenant"]: r for r in map(json.loads, again.stdout.splitlines())}
    assert (rows["a"]["last_seq"], rows["b"]["last_seq"]) == (readable, EVENTS)
