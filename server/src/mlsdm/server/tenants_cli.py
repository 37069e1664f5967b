"""`mlsdm-grpc tenants ...`: the tenant store offline, for an operator.

  tenants list                      tenants in the configured store
  tenants copy --from S --to D      every tenant from one store to another
                   [--salvage]      (corrupt ones: their readable part)
  tenants export TENANT [-o FILE]   the readable part of a tenant, as JSON
  tenants repair TENANT             keep the readable part, quarantine the rest
  tenants integrity                 which tenants a damaged store affects

A store is named `sqlite:DIR` (the data directory), `postgres:` (the DSN of
tenants.postgres_dsn / MLSDM_TENANTS__POSTGRES_DSN) or `postgres:DSN`, or
left out for the configured `tenants.store`. SQLite allows one process at a
time: stop the server first (PostgreSQL needs no such pause: copy and repair
take each tenant's lease, which a running server hands over).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import SecretStr

from mlsdm.server.service.store.port import StoredTenant, StoreError, TenantStore
from mlsdm.server.service.store.settings import TenantSettings
from mlsdm.server.settings import Settings, SettingsError

LoadSettings = Callable[[argparse.Namespace], Settings]


def store_settings(spec: str | None, base: TenantSettings) -> TenantSettings:
    """The tenant settings that `spec` (sqlite:DIR, postgres:[DSN]) names."""
    if not spec:
        return base
    kind, _, rest = spec.partition(":")
    if kind == "sqlite" and rest:
        return base.model_copy(update={"store": "sqlite", "data_dir": Path(rest)})
    if kind == "postgres":
        dsn = SecretStr(rest) if rest else base.postgres_dsn
        if dsn is None or not dsn.get_secret_value():
            raise SettingsError(
                f"{spec}: no DSN (give postgres:DSN or set MLSDM_TENANTS__POSTGRES_DSN)"
            )
        return base.model_copy(update={"store": "postgres", "postgres_dsn": dsn})
    raise SettingsError(f"{spec!r}: a store is sqlite:DIR, postgres: or postgres:DSN")


def _open(settings: Settings, spec: str | None) -> TenantStore:
    from mlsdm.server.service.store.factory import build_store

    chosen = store_settings(spec, settings.tenants)
    if chosen.store == "memory":
        raise SettingsError("tenants.store is memory: there is nothing stored to work on")
    return build_store(chosen)


async def _with(store: TenantStore, work: Callable[[TenantStore], Awaitable[int]]) -> int:
    try:
        await store.open()
    except StoreError as exc:
        raise SettingsError(str(exc)) from None
    try:
        return await work(store)
    finally:
        await store.close()


def _state_of(settings: Settings) -> Callable[[StoredTenant], object]:
    """Rebuilds a stored tenant into an engine; its snapshot bytes are its state."""
    from mlsdm.server.service.tenancy.replay import rebuild
    from mlsdm.server.transport.wiring import build_embedder

    config = settings.engine.config()
    embedder = build_embedder(settings, config.dim)

    def state(stored: StoredTenant) -> object:
        return rebuild("copy", stored, config, embedder).engine.snapshot()

    return state


def cmd_copy(args: argparse.Namespace, load: LoadSettings) -> int:
    from mlsdm.server.service.store.copy import copy_all

    settings = load(args)
    src, dst = _open(settings, args.source), _open(settings, args.target)

    async def work(_: TenantStore) -> int:
        async def inner(_: TenantStore) -> int:
            def progress(tenant: str, outcome: str) -> None:
                print(f"{outcome:9} {tenant}", file=sys.stderr)

            report = await copy_all(
                src, dst, overwrite=args.overwrite, state=_state_of(settings),
                progress=progress, salvage=args.salvage,
            )  # fmt: skip
            counts = {o: report.count(o) for o in ("copied", "resumed", "skipped", "salvaged")}
            print(json.dumps({**counts, "errors": report.errors}, indent=2))
            return 0 if report.ok else 1

        return await _with(dst, inner)

    return asyncio.run(_with(src, work))


def cmd_list(args: argparse.Namespace, load: LoadSettings) -> int:
    settings = load(args)

    async def work(store: TenantStore) -> int:
        after = ""
        while page := await store.list_tenants(after, 500):
            for row in page:
                print(json.dumps(dataclasses.asdict(row)))
            after = page[-1].tenant
        return 0

    return asyncio.run(_with(_open(settings, args.store), work))


def cmd_export(args: argparse.Namespace, load: LoadSettings) -> int:
    settings = load(args)

    async def work(store: TenantStore) -> int:
        stored = await store.export(args.tenant)
        snap = stored.snapshot
        if snap is None and not stored.events:
            # Nothing stored under that name: a typo must not look like an empty tenant.
            print(f"mlsdm-grpc: no tenant {args.tenant!r} in the store", file=sys.stderr)
            return 1
        doc = {
            "tenant": args.tenant,
            "snapshot": None
            if snap is None
            else {
                "seq": snap.seq,
                "format_version": snap.format_version,
                "blob": base64.b64encode(snap.blob).decode(),
            },
            "events": [[seq, base64.b64encode(raw).decode()] for seq, raw in stored.events],
            "last_seq": stored.last_seq,
        }
        text = json.dumps(doc)
        if args.output is not None:
            args.output.write_text(text, encoding="utf-8")
        else:
            print(text)
        print(
            f"exported tenant {args.tenant!r}: readable up to seq {stored.last_seq}",
            file=sys.stderr,
        )
        return 0

    return asyncio.run(_with(_open(settings, args.store), work))


def cmd_repair(args: argparse.Namespace, load: LoadSettings) -> int:
    from mlsdm.server.service.tenancy.replay import rebuild_prefix
    from mlsdm.server.transport.wiring import build_embedder

    settings = load(args)
    config = settings.engine.config()
    embedder = build_embedder(settings, config.dim)

    async def work(store: TenantStore) -> int:
        lease = await store.acquire(args.tenant, wait_s=settings.tenants.handover_wait_s)
        try:
            report = await store.repair(
                lease, lambda stored: rebuild_prefix(args.tenant, stored, config, embedder)
            )
        except StoreError as exc:
            print(f"mlsdm-grpc tenants repair: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.release(lease)
        print(json.dumps(dataclasses.asdict(report)))
        return 0

    return asyncio.run(_with(_open(settings, args.store), work))


def cmd_integrity(args: argparse.Namespace, load: LoadSettings) -> int:
    from mlsdm.server.service.store.integrity import check_tenants

    settings = load(args)

    async def work(store: TenantStore) -> int:
        affected = 0
        async for check in check_tenants(store):
            affected += not check.ok
            print(json.dumps(dataclasses.asdict(check)))
        print(f"{affected} tenant(s) affected", file=sys.stderr)
        return 1 if affected else 0

    return asyncio.run(_with(_open(settings, args.store), work))


def add_tenants_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    settings_args: Callable[[argparse.ArgumentParser], None],
    load: LoadSettings,
) -> None:
    tenants = sub.add_parser(
        "tenants", help="the tenant store offline: list, copy, export, repair, integrity"
    )
    verbs = tenants.add_subparsers(dest="verb", required=True)

    def verb(
        name: str, help_text: str, run: Callable[[argparse.Namespace, LoadSettings], int]
    ) -> argparse.ArgumentParser:
        parser = verbs.add_parser(name, help=help_text)
        settings_args(parser)
        parser.set_defaults(func=lambda args: run(args, load))
        return parser

    listing = verb("list", "every tenant in the store, one JSON line each", cmd_list)
    listing.add_argument("--store", help="sqlite:DIR, postgres: or postgres:DSN")
    copy = verb("copy", "copy every tenant to another store (resumable, verified)", cmd_copy)
    copy.add_argument("--from", dest="source", required=True, help="sqlite:DIR or postgres:[DSN]")
    copy.add_argument("--to", dest="target", required=True, help="sqlite:DIR or postgres:[DSN]")
    copy.add_argument("--overwrite", action="store_true", help="replace differing histories")
    copy.add_argument(
        "--salvage", action="store_true",
        help="copy the readable part of tenants whose rows cannot rebuild them",
    )  # fmt: skip
    export = verb("export", "a tenant's readable snapshot and events as JSON", cmd_export)
    export.add_argument("tenant")
    export.add_argument("--store", help="sqlite:DIR, postgres: or postgres:DSN")
    export.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    repair = verb("repair", "keep a tenant's readable prefix, quarantine the rest", cmd_repair)
    repair.add_argument("tenant")
    repair.add_argument("--store", help="sqlite:DIR, postgres: or postgres:DSN")
    check = verb("integrity", "which tenants a damaged store affects (exit 1: some)", cmd_integrity)
    check.add_argument("--store", help="sqlite:DIR, postgres: or postgres:DSN")
