"""The `mlsdm-grpc` console script: serve, check, info, demo, protoset, eval, keys, tenants."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsdm.server.preflight import PreflightError, preflight
from mlsdm.server.service.listen import ListenError
from mlsdm.server.settings import (
    Settings,
    SettingsError,
    load_settings,
    parse_overrides,
    settings_json,
)
from mlsdm.server.version import CONTRACT, VERSION


def _settings_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML or TOML settings file (or MLSDM_CONFIG)")
    parser.add_argument("--host", help="listen address (server.host)")
    parser.add_argument("--port", type=int, help="listen port, 0 for any free one (server.port)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one setting; repeatable, e.g. --set llm.stub_latency_s=0.5",
    )


def _load(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = parse_overrides(args.overrides)
    server = overrides.setdefault("server", {})
    if args.host is not None:
        server["host"] = args.host
    if args.port is not None:
        server["port"] = args.port
    if getattr(args, "image_defaults", False):
        from mlsdm.server.image import load_image_settings

        return load_image_settings(args.config, overrides)
    return load_settings(args.config, overrides=overrides)


def _configure_logging(settings: Settings) -> None:
    from mlsdm.server.service.observability.logs import configure_logging

    configure_logging(settings.observability.logging)


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlsdm.server.transport.app import run

    settings = _load(args)
    preflight(settings)
    _configure_logging(settings)
    return run(settings)


def _cmd_check(args: argparse.Namespace) -> int:
    settings = _load(args)
    preflight(settings)
    if not args.no_bind:
        # What `serve` would fail on next: the ports and the data directory's lock.
        from mlsdm.server.transport.wiring import probe_data_dir, probe_listeners

        probe_listeners(settings)
        probe_data_dir(settings)
    print(settings_json(settings))
    print("configuration OK", file=sys.stderr)
    return 0


def _contract() -> dict[str, list[str]]:
    from mlsdm.v1 import admin_service_pb2, cognitive_service_pb2

    out: dict[str, list[str]] = {}
    for file in (cognitive_service_pb2.DESCRIPTOR, admin_service_pb2.DESCRIPTOR):
        for service in file.services_by_name.values():
            out[service.full_name] = [m.name for m in service.methods]
    return out


def _cmd_info(args: argparse.Namespace) -> int:
    settings = _load(args)
    info = {
        "version": VERSION,
        "contract": CONTRACT,
        "services": _contract(),
        "listen": f"{settings.server.host}:{settings.server.port}",
        "http_listen": (
            f"{settings.server.host}:{settings.server.http.port}"
            if settings.server.http.enabled
            else None
        ),
        "llm_backend": settings.llm.backend,
        "engine": {
            "dim": settings.engine.dim,
            "capacity": settings.engine.capacity,
            "rhythm": f"{settings.engine.wake_steps} wake / {settings.engine.sleep_steps} sleep",
        },
        "reflection": settings.server.reflection,
        "credentials_configured": settings.auth.has_credentials,
        "tenants": _store_info(settings),
    }
    print(json.dumps(info, indent=2))
    return 0


def _store_info(settings: Settings) -> dict[str, Any]:
    t = settings.tenants
    out: dict[str, Any] = {"store": t.store, "max_resident": t.max_resident}
    if t.store == "sqlite":
        out.update(path=str(t.sqlite_path.absolute()), sync=t.sync)
    elif t.store == "postgres" and t.postgres_dsn is not None:
        from mlsdm.server.service.store.pg_info import describe

        # The DSN is a secret: shown masked, like `check` shows it.
        out["postgres_dsn"] = "***"
        out["owner"] = t.lease_owner or "host name + random suffix, chosen at start"
        out["database"] = asyncio.run(
            describe(t.postgres_dsn.get_secret_value(), t.postgres_connect_timeout_s)
        )
    return out


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlsdm.server.demo import run_demo

    settings = None if args.target else _load(args)
    return asyncio.run(run_demo(args.target, settings, args.api_key))


def _cmd_protoset(args: argparse.Namespace) -> int:
    from mlsdm.client.protoset import descriptor_set

    data = descriptor_set()
    if args.output is not None:
        args.output.write_bytes(data)
        return 0
    if sys.stdout.isatty():
        print(
            "mlsdm-grpc: the descriptor set is binary: redirect it "
            "(mlsdm-grpc protoset > mlsdm.protoset) or pass -o FILE",
            file=sys.stderr,
        )
        return 2
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from mlsdm.engine.eval_governance import governance_suite
    from mlsdm.engine.evaluation import SUITES, run_suites
    from mlsdm.server.service.memory_eval import memory_suite

    chosen = args.suite or [*SUITES, "memory"]
    results = run_suites([n for n in chosen if n not in ("memory", "governance")])
    if "governance" in chosen:
        results.append(governance_suite(args.scorer))
    if "memory" in chosen:
        results.append(memory_suite(args.embedder))
    failed = 0
    for result in results:
        print(f"\n== {result.name}: {'PASS' if result.passed else 'FAIL'} ({result.floor})")
        _print_rows(result.rows)
        failed += not result.passed
    print("\n== headline")
    for result in results:
        for name, value in result.headline.items():
            print(f"{name:<28} {value:.3f}")
    print(f"\n{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _print_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(c for r in rows for c in r))
    widths = [max(len(c), *(len(_fmt(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = (_fmt(row.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
        print("  ".join(cells))


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _add_eval_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = sub.add_parser("eval", help="run the engine's built-in evaluation suites")
    evaluate.add_argument(
        "--suite",
        action="append",
        choices=["aphasia", "moral", "retrieval", "governance", "memory"],
        help="repeatable (memory: told-then-asked through the service path)",
    )
    evaluate.add_argument(
        "--scorer",
        choices=["local", "wordlist"],
        default="local",
        help="content scorer for the governance suite (wordlist: the old fallback)",
    )
    evaluate.add_argument(
        "--embedder",
        choices=["hashing", "minilm"],
        default="hashing",
        help="embedder for the memory suite (minilm needs the extra)",
    )
    evaluate.set_defaults(func=_cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlsdm-grpc", description="Governed cognitive memory for LLMs, over gRPC."
    )
    parser.add_argument("--version", action="version", version=f"mlsdm-grpc {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
    _settings_args(serve)
    serve.add_argument(
        "--image-defaults",
        action="store_true",
        help="the container image's defaults: listen on 0.0.0.0; with no credential source, "
        "generate an admin key at first start in tenants.data_dir and print it once",
    )
    serve.set_defaults(func=_cmd_serve)

    check = sub.add_parser("check", help="validate the configuration and print the effective one")
    _settings_args(check)
    check.add_argument(
        "--no-bind",
        action="store_true",
        help="skip trying the ports and the data directory's lock (check beside a running serve)",
    )
    check.set_defaults(func=_cmd_check)

    info = sub.add_parser("info", help="version, contract and settings summary")
    _settings_args(info)
    info.set_defaults(func=_cmd_info)

    demo = sub.add_parser("demo", help="a scripted session against a server")
    _settings_args(demo)
    demo.add_argument("--target", help="host:port of a running server; default: an embedded one")
    demo.add_argument("--api-key", help="API key for a server that requires one")
    demo.set_defaults(func=_cmd_demo)

    protoset = sub.add_parser(
        "protoset",
        help="print the contract as a FileDescriptorSet (for ghz --protoset, grpcurl -protoset)",
    )
    protoset.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    protoset.set_defaults(func=_cmd_protoset)

    _add_eval_parser(sub)

    from mlsdm.server.service.security.keytool import add_keys_parser
    from mlsdm.server.tenants_cli import add_tenants_parser

    add_keys_parser(sub)
    add_tenants_parser(sub, _settings_args, _load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # One BLAS thread per process: the engine's matrix-vector products are small,
    # and BLAS threads fighting the event loop and the engine pool for the same
    # cores cost more than they give (bench/RESULTS.md, engine section). Set
    # before NumPy is first imported; an explicit environment value wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as exc:
        print(f"mlsdm-grpc: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except (PreflightError, ListenError) as exc:
        print(f"mlsdm-grpc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
