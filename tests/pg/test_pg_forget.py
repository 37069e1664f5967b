"""Forgetting on PostgreSQL: after ForgetMemory returns, no row of the tenant
holds the text, and once VACUUM FULL has rewritten the tables (what an
operator's routine maintenance does) neither do the table files on disk."""

from __future__ import annotations

import secrets
from pathlib import Path

import grpc
from mlsdm_testkit import server_thread
from pg_harness import PgCluster
from rich_status import rich

from mlsdm.v1 import memory_service_pb2 as mpb
from mlsdm.v1 import memory_service_pb2_grpc as mpb_grpc

TABLES = ("mlsdm_events", "mlsdm_snapshots", "mlsdm_quarantine")


def _rows_holding(pg: PgCluster, dbname: str, marker: str) -> int:
    hex_marker = marker.encode().hex()
    total = 0
    for table in ("mlsdm_events", "mlsdm_snapshots"):
        column = "record" if table == "mlsdm_events" else "blob"
        found = pg.sql(
            f"SELECT count(*) FROM {table} "
            f"WHERE position('\\x{hex_marker}'::bytea in {column}) > 0",
            dbname,
        )
        total += int(found)
    return total


def _files_holding(data_dir: Path, marker: str) -> list[Path]:
    needle = marker.encode()
    return [p for p in (data_dir / "base").rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_forgotten_text_leaves_the_rows_and_after_vacuum_the_files(pg: PgCluster) -> None:
    dsn = pg.new_database()
    dbname = dsn.rsplit("/", 1)[1]
    marker = f"zanzibar{secrets.token_hex(8)}"
    overrides = {"tenants": {"store": "postgres", "postgres_dsn": dsn}}
    md = (("x-mlsdm-tenant", "erase"),)
    with server_thread(overrides) as server, grpc.insecure_channel(server.address) as ch:
        memory = mpb_grpc.MemoryServiceStub(ch)
        reply = memory.Remember(
            mpb.RememberRequest(
                memories=[
                    mpb.MemoryInput(text="The meeting moved to Thursday."),
                    mpb.MemoryInput(text=f"My passport number is {marker}."),
                ]
            ),
            metadata=md,
        )
        secret_id = reply.results[1].id
        assert _rows_holding(pg, dbname, marker) == 1  # the check sees it when it is there
        memory.ForgetMemory(mpb.ForgetMemoryRequest(id=secret_id), metadata=md)
        assert _rows_holding(pg, dbname, marker) == 0
        pg.sql("CHECKPOINT", dbname)
        for table in TABLES:
            pg.sql(f"VACUUM FULL {table}", dbname)
        pg.sql("CHECKPOINT", dbname)
        assert _files_holding(pg.data, marker) == []
        error = rich(_fails(memory.GetMemory, mpb.GetMemoryRequest(id=secret_id), metadata=md))
        assert error.reason == "MEMORY_NOT_FOUND"
        assert memory.ListMemories(mpb.ListMemoriesRequest(), metadata=md).total == 1


def _fails(fn, *args, **kwargs) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the call succeeded")
