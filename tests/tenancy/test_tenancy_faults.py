"""Faults of the SQLite store seen through a running server: a full disk and
corrupt data end in a precise status, a log line, a metric and readiness that
tells the truth, never a generic INTERNAL, never a lost acknowledged event."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlsdm_testkit import server_process
from rich_status import rich

from mlsdm.v1 import admin_service_pb2 as admin_pb
from mlsdm.v1 import admin_service_pb2_grpc as admin_grpc
from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import cognitive_service_pb2_grpc as pb_grpc

DIM = 384
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _event(i: int) -> pb.ProcessEventRequest:
    vec = np.random.default_rng(i).uniform(-1, 1, DIM).astype(np.float32)
    return pb.ProcessEventRequest(vector=vec.tolist(), moral_value=0.9)


def _readiness(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=5)
    return int(reply.status)


def _wait_readiness(channel: grpc.Channel, want: int, limit: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if _readiness(channel) == want:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"readiness never became {want} within {limit}s")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    with contextlib.suppress(OSError), filler.open("ab") as f:
        while True:
            f.write(b"\0" * 512)
            f.flush()
    return filler


def test_full_disk_refuses_writes_precisely_then_resumes_losing_nothing(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "small", "4m") as data:
        with (
            server_process(f"tenants.data_dir={data}") as server,
            grpc.insecure_channel(server.address) as channel,
        ):
            stub = pb_grpc.CognitiveServiceStub(channel)
            meta = [("x-mlsdm-tenant", "t")]
            acked = 0
            for i in range(20):
                stub.ProcessEvent(_event(i), metadata=meta, timeout=10)
                acked += 1
            filler = _fill(data)
            refused = 0
            rss_before = _rss_kib(server.proc.pid)
            deadline = time.monotonic() + 3.0
            i = 1000
            first_refusal_at = None
            while time.monotonic() < deadline:
                i += 1
                try:
                    stub.ProcessEvent(_event(i), metadata=meta, timeout=10)
                    acked += 1
                except grpc.RpcError as exc:
                    status = rich(exc)
                    assert status.code == grpc.StatusCode.UNAVAILABLE, status
                    assert status.reason == "STORAGE_UNAVAILABLE"
                    assert "RetryInfo" in status.details
                    refused += 1
                    if first_refusal_at is None:
                        first_refusal_at = time.monotonic()
                        took = _wait_readiness(channel, NOT_SERVING)
                        print(f"readiness NOT_SERVING {took * 1000:.0f} ms after the refusal")
            rss_after = _rss_kib(server.proc.pid)
            print(f"refused {refused}; RSS {rss_before} -> {rss_after} KiB")
            assert refused > 10, "the full disk never refused a write"
            assert rss_after - rss_before < 30 * 1024, "RSS grew while writes failed"
            assert _readiness(channel) == NOT_SERVING
            # Reads still answer while writes cannot commit.
            state = stub.GetState(pb.GetStateRequest(), metadata=meta, timeout=10)
            assert state.step == acked
            filler.unlink()
            took = _wait_readiness(channel, SERVING)
            print(f"readiness SERVING {took * 1000:.0f} ms after space was freed")
            for j in range(10):
                stub.ProcessEvent(_event(5000 + j), metadata=meta, timeout=10)
                acked += 1
            assert server.terminate() == 0
        with (
            server_process(f"tenants.data_dir={data}") as server,
            grpc.insecure_channel(server.address) as channel,
        ):
            state = pb_grpc.CognitiveServiceStub(channel).GetState(
                pb.GetStateRequest(), metadata=meta, timeout=10
            )
            assert state.step == acked, "an acknowledged event was lost"


def _write(data: Path, tenant: str, first: int, n: int, *, snapshot: bool, kill: bool) -> None:
    with (
        server_process(f"tenants.data_dir={data}") as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.CognitiveServiceStub(channel)
        for i in range(first, first + n):
            stub.ProcessEvent(_event(i), metadata=[("x-mlsdm-tenant", tenant)], timeout=10)
        if snapshot:
            admin = admin_grpc.AdminServiceStub(channel)
            admin.SnapshotTenant(admin_pb.SnapshotTenantRequest(tenant=tenant), timeout=10)
        if kill:  # no snapshot at shutdown: the events stay after the last one
            server.proc.kill()
            server.proc.wait(30)
        else:
            assert server.terminate() == 0


def _damage(db: Path, table: str, column: str, seqs: list[int]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for seq in seqs:
            (blob,) = conn.execute(
                f"SELECT {column} FROM {table} WHERE tenant = 'broken' AND seq = ?", (seq,)
            ).fetchone()
            damaged = bytearray(blob)
            damaged[len(damaged) // 2] ^= 0xFF
            conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE tenant = 'broken' AND seq = ?",
                (bytes(damaged), seq),
            )
    conn.close()


def _get(stub: pb_grpc.CognitiveServiceStub, tenant: str) -> pb.GetStateResponse:
    reply: pb.GetStateResponse = stub.GetState(
        pb.GetStateRequest(), metadata=[("x-mlsdm-tenant", tenant)], timeout=10
    )
    return reply


# (what is damaged, the rows, the step the readable prefix rebuilds to)
CASES = {
    # Both snapshots (30 and 60); the events before the older one are gone.
    "every snapshot": ("snapshots", "blob", [30, 60], 0),
    # One event after the newest snapshot (30); 31 and 32 are still readable.
    "an event": ("events", "record", [33], 32),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_corrupt_tenant_is_data_loss_for_it_alone_and_repairs(tmp_path: Path, case: str) -> None:
    data = tmp_path / "data"
    table, column, seqs, readable_step = CASES[case]
    _write(data, "fine", 0, 5, snapshot=False, kill=False)
    _write(data, "broken", 0, 30, snapshot=True, kill=False)
    if table == "snapshots":
        _write(data, "broken", 30, 30, snapshot=True, kill=False)
    else:
        _write(data, "broken", 30, 10, snapshot=False, kill=True)
    _damage(data / "tenants.sqlite3", table, column, seqs)
    with (
        server_process(f"tenants.data_dir={data}") as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.CognitiveServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            _get(stub, "broken")
        status = rich(caught.value)
        assert status.code == grpc.StatusCode.DATA_LOSS
        assert status.reason == "TENANT_DATA_CORRUPT"
        assert status.infos[0].metadata["tenant"] == "broken"
        assert _get(stub, "fine").step == 5, "other tenants are unaffected"
        repaired = admin_grpc.AdminServiceStub(channel).RepairTenant(
            admin_pb.RepairTenantRequest(tenant="broken"), timeout=30
        )
        assert repaired.step == readable_step
        assert repaired.rows_quarantined >= len(seqs)
        assert _get(stub, "broken").step == readable_step
        stub.ProcessEvent(_event(99), metadata=[("x-mlsdm-tenant", "broken")], timeout=10)
        assert _get(stub, "broken").step == readable_step + 1
        assert server.terminate() == 0
        assert "tenant state cannot be rebuilt" in server.output()


def test_a_corrupt_newest_snapshot_falls_back_to_the_older_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write(data, "broken", 0, 30, snapshot=True, kill=False)
    _write(data, "broken", 30, 30, snapshot=True, kill=False)
    _damage(data / "tenants.sqlite3", "snapshots", "blob", [60])
    with (
        server_process(f"tenants.data_dir={data}") as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        assert _get(pb_grpc.CognitiveServiceStub(channel), "broken").step == 60
        assert server.terminate() == 0
        assert "tenant loaded around damage" in server.output()


def test_a_file_that_is_not_a_database_stops_startup_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "tenants.sqlite3").write_bytes(b"this is not a database" * 100)
    from mlsdm_testkit import console_script

    done = subprocess.run(
        [*console_script(), "serve", "--port", "0", "--set", f"tenants.data_dir={data}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "tenants.sqlite3" in lines[0]
