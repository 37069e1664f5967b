"""Every reason the server can send is a value of mlsdm.v1.ErrorReason.

Reasons are typed (ErrorReason values, never strings) in service/ and
transport/; the engine, which knows no protobuf, raises ValidationError with
plain reason strings that service/errors.py maps in one table. This test reads
the source: every ErrorReason member the server names, every reason string the
engine raises, and every ServiceError construction.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from google.rpc import code_pb2

from mlsdm.server.service import errors
from mlsdm.server.service.errors import ENGINE_REASONS, MESSAGES, Code, reason_name, reason_of
from mlsdm.v1.errors_pb2 import ErrorReason

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server" / "src" / "mlsdm" / "server"
ENGINE = ROOT / "engine" / "src" / "mlsdm" / "engine"
ENUM_NAMES = set(ErrorReason.keys())


def _trees(root: Path) -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(root.rglob("*.py"))]


def _named_reasons() -> dict[str, list[str]]:
    """ERROR_REASON_* attribute names used anywhere in the server, with where."""
    found: dict[str, list[str]] = {}
    for path, tree in _trees(SERVER):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("ERROR_REASON_"):
                found.setdefault(node.attr, []).append(f"{path.name}:{node.lineno}")
    return found


def _engine_reasons() -> dict[str, list[str]]:
    """The reason strings of every ValidationError(field, reason, ...) in the engine."""
    found: dict[str, list[str]] = {}
    for path, tree in _trees(ENGINE):
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "ValidationError"
            ):
                continue
            assert len(node.args) >= 2, f"{path.name}:{node.lineno}: reason not positional"
            reason = node.args[1]
            assert isinstance(reason, ast.Constant) and isinstance(reason.value, str), (
                f"{path.name}:{node.lineno}: the engine's reason must be a literal string"
            )
            found.setdefault(reason.value, []).append(f"{path.name}:{node.lineno}")
    return found


def test_every_reason_the_server_names_is_an_enum_value() -> None:
    named = _named_reasons()
    assert len(named) >= 20, "the scan found too few reasons: is it reading the right tree?"
    unknown = {name: where for name, where in named.items() if name not in ENUM_NAMES}
    assert not unknown


def test_every_engine_reason_maps_to_an_enum_value() -> None:
    raised = _engine_reasons()
    assert {"INVALID_DTYPE", "DIMENSION_MISMATCH", "EMPTY_PROMPT"} <= set(raised)
    missing = {r: where for r, where in raised.items() if r not in ENGINE_REASONS}
    assert not missing, f"engine reasons without an ErrorReason mapping: {missing}"
    for text, reason in ENGINE_REASONS.items():
        assert reason in ErrorReason.values()
        # The wire name is the engine's own string: clients see what the engine meant.
        assert reason_name(reason) == text


def test_no_service_error_is_built_with_a_string_reason() -> None:
    for root in (SERVER,):
        for path, tree in _trees(root):
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name not in {"ServiceError", "unavailable", "unauthenticated"}:
                    continue
                position = 1 if name == "ServiceError" else 0
                if len(node.args) > position:
                    arg = node.args[position]
                    assert not isinstance(arg, ast.Constant), (
                        f"{path.name}:{node.lineno}: reason given as a literal"
                    )


def test_reason_names_round_trip_and_skip_unspecified() -> None:
    for name in ENUM_NAMES - {"ERROR_REASON_UNSPECIFIED"}:
        short = name.removeprefix("ERROR_REASON_")
        assert reason_name(reason_of(short)) == short
    with pytest.raises(ValueError):
        reason_of("NOT_A_REASON")


def test_codes_are_google_rpc_codes_and_messages_are_keyed_by_reasons() -> None:
    for code in Code:
        assert code_pb2.Code.Value(code.name) == code.value
    for reason in MESSAGES:
        assert reason in ErrorReason.values()


@pytest.mark.parametrize(
    "build",
    [
        lambda wait: errors.rate_limited("p", "5/s burst 10", wait),
        lambda wait: errors.unavailable(ErrorReason.ERROR_REASON_OVERLOADED, wait),
        lambda wait: errors.unavailable(ErrorReason.ERROR_REASON_DRAINING, wait),
        lambda wait: errors.deadline_too_short(0.5, wait),
    ],
)
def test_retryable_messages_do_not_change_with_the_delay(build: object) -> None:
    make = build  # type: ignore[assignment]
    first, second = make(0.149), make(2.5)  # type: ignore[operator]
    assert first.message == second.message == MESSAGES[first.reason]
    assert first.code in errors.CONSTANT_MESSAGE_CODES
    assert "0.149" not in first.message and "149" not in first.message
