"""MemoryService writes as plain JSON data inside event records.

A REMEMBER record holds each item as validated, with the moral value judged
(the server's score combined with the client's), so replay never scores again;
a FORGET record holds ids; a FORGET_WHERE record a filter. Keys are short and
stable: they are a storage format, read back by every later release.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlsdm.engine import MemoryFilter, MemoryInput
from mlsdm.server.service.tenancy.records import RecordError


def items_body(items: Sequence[MemoryInput]) -> list[dict[str, Any]]:
    return [_item(i) for i in items]


def _item(i: MemoryInput) -> dict[str, Any]:
    out: dict[str, Any] = {"t": i.text, "m": i.moral_value, "at": i.occurred_at}
    if i.speaker:
        out["sp"] = i.speaker
    if i.session:
        out["se"] = i.session
    if i.labels:
        out["l"] = [list(kv) for kv in i.labels]
    if i.idempotency_key:
        out["k"] = i.idempotency_key
    if i.pinned:
        out["p"] = True
    if i.expires_at is not None:
        out["x"] = i.expires_at
    return out


def items_from(body: object) -> list[MemoryInput]:
    if not isinstance(body, list):
        raise RecordError("remember record without a list of items")
    try:
        return [
            MemoryInput(
                text=str(d["t"]),
                moral_value=float(d["m"]),
                occurred_at=float(d["at"]),
                speaker=str(d.get("sp", "")),
                session=str(d.get("se", "")),
                labels=tuple((str(k), str(v)) for k, v in d.get("l", ())),
                idempotency_key=str(d.get("k", "")),
                pinned=bool(d.get("p", False)),
                expires_at=None if d.get("x") is None else float(d["x"]),
            )
            for d in body
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"remember record does not decode: {exc}") from exc


def ids_body(ids: Sequence[str]) -> dict[str, Any]:
    return {"ids": list(ids)}


def ids_from(body: object) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
        raise RecordError("forget record without ids")
    return [str(i) for i in body["ids"]]


def filter_body(flt: MemoryFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if flt.speaker:
        out["sp"] = flt.speaker
    if flt.session:
        out["se"] = flt.session
    if flt.labels:
        out["l"] = [list(kv) for kv in flt.labels]
    if flt.after is not None:
        out["a"] = flt.after
    if flt.before is not None:
        out["b"] = flt.before
    return out


def filter_from(body: object) -> MemoryFilter:
    if not isinstance(body, dict):
        raise RecordError("forget-where record without a filter")
    try:
        return MemoryFilter(
            speaker=str(body.get("sp", "")),
            session=str(body.get("se", "")),
            labels=tuple((str(k), str(v)) for k, v in body.get("l", ())),
            after=None if body.get("a") is None else float(body["a"]),
            before=None if body.get("b") is None else float(body["b"]),
        )
    except (TypeError, ValueError) as exc:
        raise RecordError(f"forget-where record does not decode: {exc}") from exc
