"""`mlsdm-grpc keys add|list|remove`: manage a keys file without ever storing a key.

`add` prints the new key once on stdout and stores only its hash, with the
tenants it may use (`--tenant`, repeatable, `team-a-*` for a prefix; none: only
the tenant named after the principal). Both `add` and `remove` rewrite the file
atomically (temp file + rename), so the server, which fails closed on a file
that does not parse, never sees half a line; it picks the change up on its next
check, so rotation is: add the new key, move clients, remove the old.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlsdm.server.service.security.binding import check_patterns
from mlsdm.server.service.security.grants import PRIORITY_NAMES
from mlsdm.server.service.security.keys import KeyEntry, hash_key, new_key, parse_expiry, parse_keys
from mlsdm.server.service.security.reload import FileLoadError
from mlsdm.server.service.security.roles import ADMIN, ROLES

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(raw: str) -> timedelta:
    match = _DURATION.match(raw.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{raw!r}: use a number and s, m, h or d, e.g. 90d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _instant(raw: str) -> datetime:
    try:
        return parse_expiry(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r}: use ISO 8601, e.g. 2026-12-31T00:00:00Z"
        ) from None


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _pattern(raw: str) -> str:
    try:
        (pattern,) = check_patterns([raw])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return pattern


def _write_atomic(path: Path, text: str) -> None:
    """Replaces the file whole; an existing file keeps its mode, a new one is owner-only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cmd_add(args: argparse.Namespace) -> int:
    path: Path = args.file
    text = _read(path)
    entries = parse_keys(text, str(path))
    key_id, key = new_key()
    while key_id in entries:
        key_id, key = new_key()
    expires: datetime | None = args.expires
    if args.expires_in is not None:
        expires = datetime.now(UTC).replace(microsecond=0) + args.expires_in
    if args.tenant and ADMIN in args.role:
        # The admin role may use every tenant: a binding stored beside it would
        # read as a restriction that nothing enforces.
        print(
            "mlsdm-grpc: --tenant does not apply to --role admin (admins may use every "
            "tenant); drop --tenant, or give the key write or read instead of admin",
            file=sys.stderr,
        )
        return 2
    tenants = tuple(dict.fromkeys(args.tenant)) if args.tenant else None
    entry = KeyEntry(
        key_id,
        hash_key(key),
        args.principal,
        frozenset(args.role),
        expires,
        tenants,
        args.max_priority,
        args.trusted_scorer,
    )
    prefix = "" if not text or text.endswith("\n") else "\n"
    _write_atomic(path, f"{text}{prefix}{entry.to_json()}\n")
    print(key)
    print(
        f"added key id {key_id} for principal {args.principal!r} to {path}; "
        "the key above is shown only now",
        file=sys.stderr,
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    if not args.file.exists():
        print(f"mlsdm-grpc: no keys file {str(args.file)!r}", file=sys.stderr)
        return 1
    entries = parse_keys(_read(args.file), str(args.file))
    now = datetime.now(UTC)
    for entry in entries.values():
        expires = "never" if entry.expires is None else entry.expires.isoformat()
        state = " (expired)" if entry.expires is not None and entry.expires <= now else ""
        roles = ",".join(r for r in ROLES if r in entry.roles)
        if ADMIN in entry.roles:
            tenants = "* (admin)"
        elif entry.tenants is None:
            tenants = f"{entry.principal} (own name)"
        else:
            tenants = ",".join(entry.tenants) or "(none)"
        grants = entry.grants
        scorer = "  trusted-scorer" if grants.trusted_scorer else ""
        print(
            f"{entry.key_id}  {entry.principal}  {roles}  expires {expires}{state}  "
            f"tenants {tenants}  max-priority {grants.max_priority.name.lower()}{scorer}"
        )
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.exists():
        print(f"mlsdm-grpc: no keys file {str(path)!r}", file=sys.stderr)
        return 1
    text = _read(path)
    entries = parse_keys(text, str(path))
    if args.id not in entries:
        print(f"mlsdm-grpc: no key with id {args.id!r} in {path}", file=sys.stderr)
        return 1
    keep = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            single = parse_keys(stripped)
            if args.id in single:
                continue
        keep.append(line)
    _write_atomic(path, "".join(keep))
    print(f"removed key id {args.id} from {path}", file=sys.stderr)
    return 0


def _guarded(args: argparse.Namespace) -> int:
    try:
        code: int = args.keys_func(args)
    except FileLoadError as exc:
        print(f"mlsdm-grpc: {exc}", file=sys.stderr)
        return 2
    return code


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="create, list and remove API keys in a keys file")
    actions = keys.add_subparsers(dest="keys_command", required=True)

    add = actions.add_parser("add", help="create a key: prints it once, stores its hash")
    add.add_argument("--file", type=Path, required=True, help="keys file (auth.api_keys_file)")
    add.add_argument("--principal", required=True, help="who the key identifies")
    add.add_argument(
        "--role",
        action="append",
        required=True,
        choices=ROLES,
        help="repeatable; admin > write > read",
    )
    add.add_argument(
        "--tenant",
        action="append",
        type=_pattern,
        metavar="NAME",
        help="repeatable: a tenant the key may use, or a prefix pattern such as 'team-a-*'; "
        "none: only the tenant named after the principal; not with --role admin "
        "(admins may use every tenant)",
    )
    add.add_argument(
        "--max-priority",
        choices=PRIORITY_NAMES,
        help="the highest x-mlsdm-priority the key may use (default normal; a higher "
        "header is lowered to it)",
    )
    add.add_argument(
        "--trusted-scorer",
        action="store_true",
        help="the key's own moral scores are trusted (not implied by any role, admin included)",
    )
    when = add.add_mutually_exclusive_group()
    when.add_argument(
        "--expires", type=_instant, help="ISO 8601 instant, e.g. 2026-12-31T00:00:00Z"
    )
    when.add_argument("--expires-in", type=_duration, help="e.g. 90d, 12h")
    add.set_defaults(func=_guarded, keys_func=_cmd_add)

    listing = actions.add_parser("list", help="key ids, principals, roles, expiry (no secrets)")
    listing.add_argument("--file", type=Path, required=True)
    listing.set_defaults(func=_guarded, keys_func=_cmd_list)

    remove = actions.add_parser("remove", help="delete a key by id (atomic rewrite)")
    remove.add_argument("--file", type=Path, required=True)
    remove.add_argument("--id", required=True, help="key id, as `keys list` shows it")
    remove.set_defaults(func=_guarded, keys_func=_cmd_remove)
