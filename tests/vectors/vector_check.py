"""The shared-vector comparator for Python: the same rules as the Go, TypeScript and Java runners.

The rules are stated in vectors.json ("about"); every runner implements them
independently so a wrong expectation fails in all four languages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

KNOWN_EXPECT_KEYS = frozenset(
    {"code", "fields", "non_empty", "headers_non_empty", "headers", "error_info"}
)
# Keys a setup call may hold: "save" names response values for later calls.
SETUP_KEYS = frozenset({"rpc", "request", "save"})
VECTORS_FILE = Path(__file__).with_name("vectors.json")


def vectors_path() -> Path:
    return Path(os.environ.get("MLSDM_VECTORS") or VECTORS_FILE)


def load_vectors(path: Path | None = None) -> list[dict[str, Any]]:
    data = json.loads((path or vectors_path()).read_text(encoding="utf-8"))
    if data.get("format") != 1 or not data.get("vectors"):
        raise ValueError(f"unsupported vectors file {path or vectors_path()}")
    return list(data["vectors"])


def to_json(message: Message) -> Any:
    """Proto JSON with unpopulated fields included (int64 as strings, enums as names)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


@dataclass
class Outcome:
    """One call: the response, or the error, and the response's initial metadata."""

    response: Message | None
    error: grpc.RpcError | None
    headers: Mapping[str, str]


def subset(expected: Any, actual: Any, at: str, tenant: str) -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{at}: expected an object, got {actual!r}"]
        out: list[str] = []
        for key in sorted(expected):
            if key not in actual:
                out.append(f"{at}.{key}: missing")
            else:
                out += subset(expected[key], actual[key], f"{at}.{key}", tenant)
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{at}: expected {expected!r}, got {actual!r}"]
        return [
            p for i, e in enumerate(expected) for p in subset(e, actual[i], f"{at}[{i}]", tenant)
        ]
    # bool is an int in Python: compare it by identity of type first.
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        ok = (
            isinstance(actual, (int, float))
            and not isinstance(actual, bool)
            and abs(actual - expected) <= 1e-9
        )
        return [] if ok else [f"{at}: expected {expected!r}, got {actual!r}"]
    want = expected.replace("${tenant}", tenant) if isinstance(expected, str) else expected
    if type(actual) is not type(want) or actual != want:
        return [f"{at}: expected {want!r}, got {actual!r}"]
    return []


def _lookup(doc: Any, dotted: str) -> Any:
    """The value at a dotted path; a segment that is a number indexes a list."""
    cur = doc
    for part in dotted.split("."):
        if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


def expand(value: Any, saved: Mapping[str, str]) -> Any:
    """`value` (proto JSON) with every ${name} of `saved` replaced in its strings."""
    if isinstance(value, dict):
        return {k: expand(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, saved) for v in value]
    if isinstance(value, str):
        for name, text in saved.items():
            value = value.replace("${" + name + "}", text)
    return value


def save_from(call: Mapping[str, Any], response: Message) -> tuple[dict[str, str], list[str]]:
    """The values a setup call's "save" names, read from its response; and the
    problems (a path that is missing or not a non-empty string)."""
    doc = to_json(response)
    saved: dict[str, str] = {}
    problems: list[str] = []
    for name, path in sorted(call.get("save", {}).items()):
        value = _lookup(doc, path)
        if isinstance(value, str) and value:
            saved[name] = value
        else:
            problems.append(f"save {name}: response.{path} is {value!r}, not a non-empty string")
    return saved, problems


def error_infos(error: grpc.RpcError | None) -> list[error_details_pb2.ErrorInfo]:
    """Every ErrorInfo in the call's grpc-status-details-bin."""
    if error is None:
        return []
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return []
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    return infos


def check(vector: Mapping[str, Any], tenant: str, outcome: Outcome) -> list[str]:
    expect = vector["expect"]
    problems = [f"unknown expect key {k!r}" for k in expect if k not in KNOWN_EXPECT_KEYS]
    want_code = expect.get("code")
    if not isinstance(want_code, str):
        return [*problems, "expect.code missing or not a string"]
    got_code = "OK" if outcome.error is None else outcome.error.code().name
    if got_code != want_code:
        return [*problems, f"code: expected {want_code}, got {got_code} ({outcome.error})"]
    response = None if outcome.response is None else to_json(outcome.response)
    if "fields" in expect:
        if response is None:
            problems.append("fields: no response")
        else:
            problems += subset(expect["fields"], response, "response", tenant)
    for path in expect.get("non_empty", ()):
        value = _lookup(response, path)
        if value in (None, "", [], {}):
            problems.append(f"response.{path}: expected non-empty, got {value!r}")
    for key in expect.get("headers_non_empty", ()):
        if not outcome.headers.get(key):
            problems.append(f"header {key}: expected non-empty, got {outcome.headers.get(key)!r}")
    for key, value in sorted(expect.get("headers", {}).items()):
        want = value.replace("${tenant}", tenant)
        if outcome.headers.get(key) != want:
            problems.append(f"header {key}: expected {want!r}, got {outcome.headers.get(key)!r}")
    if "error_info" in expect:
        infos = error_infos(outcome.error)
        if len(infos) != 1:
            problems.append(f"error_info: expected exactly one ErrorInfo, got {len(infos)}")
        else:
            problems += subset(expect["error_info"], to_json(infos[0]), "error_info", tenant)
    return problems


def metadata_dict(pairs: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {k: v for k, v in (pairs or ()) if isinstance(v, str)}
