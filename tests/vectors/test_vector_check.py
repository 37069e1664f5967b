"""The Python comparator fails on wrong expectations (no server needed)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from vector_check import Outcome, check, expand, save_from

from mlsdm.v1 import cognitive_service_pb2 as pb
from mlsdm.v1 import memory_service_pb2 as mpb
from mlsdm.v1 import types_pb2

RESPONSE = pb.GenerateResponse(refusal_reason=types_pb2.REFUSAL_REASON_MORAL, step=1)
OK = Outcome(RESPONSE, None, {"x-mlsdm-version": "1.2.3"})


class _Late(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def details(self) -> str:
        return "late"


def _vector(expect: dict[str, Any]) -> dict[str, Any]:
    return {"name": "t", "expect": expect}


def test_matching_expectation_passes() -> None:
    expect = {
        "code": "OK",
        "fields": {
            "accepted": False,
            "refusalReason": "REFUSAL_REASON_MORAL",
            "step": "1",
            "response": "",
        },
        "headers_non_empty": ["x-mlsdm-version"],
        "headers": {"x-mlsdm-version": "1.2.3"},
    }
    assert check(_vector(expect), "t", OK) == []


@pytest.mark.parametrize(
    "expect",
    [
        {"code": "INVALID_ARGUMENT"},
        {"code": "OK", "fields": {"accepted": True}},
        {"code": "OK", "fields": {"accepted": 0}},
        {"code": "OK", "fields": {"refusalReason": "REFUSAL_REASON_SLEEP"}},
        {"code": "OK", "fields": {"step": "2"}},
        {"code": "OK", "fields": {"step": 1}},
        {"code": "OK", "fields": {"noSuchField": 1}},
        {"code": "OK", "non_empty": ["response"]},
        {"code": "OK", "headers_non_empty": ["x-request-id"]},
        {"code": "OK", "headers": {"x-mlsdm-version": "1.2.4"}},
        {"code": "OK", "headers": {"x-request-id": ""}},
        {"code": "OK", "error_info": {"reason": "X"}},
        {"code": "OK", "surprise": 1},
    ],
)
def test_wrong_expectation_fails(expect: dict[str, Any]) -> None:
    assert check(_vector(expect), "t", OK) != []


def test_non_empty_indexes_lists() -> None:
    item = types_pb2.ContextItem(prompt="p", response="r", step=1, age_steps=1)
    recalled = Outcome(pb.GenerateResponse(context_items=[item]), None, {})
    first = _vector({"code": "OK", "non_empty": ["contextItems.0.response"]})
    assert check(first, "t", recalled) == []
    assert check(first, "t", OK) != []
    for path in ("contextItems.1.response", "contextItems.0.text", "contextItems.x.response"):
        assert check(_vector({"code": "OK", "non_empty": [path]}), "t", recalled) != [], path


def test_deadline_without_details() -> None:
    late = Outcome(None, _Late(), {})
    assert check(_vector({"code": "DEADLINE_EXCEEDED"}), "t", late) == []
    assert (
        check(
            _vector({"code": "DEADLINE_EXCEEDED", "error_info": {"reason": "DEADLINE_EXPIRED"}}),
            "t",
            late,
        )
        != []
    )


def test_save_reads_a_setup_response_and_fills_later_strings() -> None:
    remembered = mpb.RememberResponse(results=[mpb.RememberResult(stored=True, id="m-1")])
    saved, problems = save_from({"save": {"id": "results.0.id"}}, remembered)
    assert (saved, problems) == ({"id": "m-1"}, [])
    assert expand({"id": "${id}", "n": [1, "x${id}"], "t": "${tenant}"}, saved) == {
        "id": "m-1",
        "n": [1, "xm-1"],
        "t": "${tenant}",
    }
    for path in ("results.1.id", "results.0.stored", "storedCount"):
        assert save_from({"save": {"id": path}}, remembered)[1] != [], path
    refused = mpb.RememberResponse(results=[mpb.RememberResult(stored=False)])
    assert save_from({"save": {"id": "results.0.id"}}, refused)[1] != []
