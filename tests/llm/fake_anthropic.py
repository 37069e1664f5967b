"""A real HTTP/1.1 server on 127.0.0.1 speaking Anthropic's Messages API.

`POST /v1/messages` answers with a message object, or with the named SSE
events of a stream: message_start, content_block_start, ping, one
content_block_delta (text_delta) per word, content_block_stop, message_delta
(stop_reason, output_tokens), message_stop. Errors are Anthropic's
`{"type": "error", "error": {"type": ..., "message": ...}}`, with the status's
error type (529: overloaded_error). fake_http.py has the serving, scripting
and fault injection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fake_http import FakeUpstream, Recorded, Reply, tokens_for

__all__ = ["FakeAnthropic", "Recorded", "Reply", "tokens_for"]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_object(message: str, status: int) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class FakeAnthropic(FakeUpstream):
    route = "/v1/messages"

    def error_body(self, message: str, status: int) -> dict[str, Any]:
        return error_object(message, status)

    async def answer(
        self, writer: asyncio.StreamWriter, reply: Reply, body: dict[str, Any]
    ) -> bool:
        tokens = tokens_for(body, reply)
        stop = "max_tokens" if len(tokens) >= int(body["max_tokens"]) else "end_turn"
        # A prompt-cache read, as the API reports one: counted as prompt tokens too.
        usage = {
            "input_tokens": len(str(body["messages"][-1]["content"]).split()),
            "cache_read_input_tokens": 2,
            "output_tokens": len(tokens),
        }
        message: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "text", "text": "".join(tokens)}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return await self._json(writer, 200, message)
        return await self._stream(writer, reply, message, tokens)

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        reply: Reply,
        message: dict[str, Any],
        tokens: list[str],
    ) -> bool:
        await self.start_stream(writer)

        async def event(name: str, payload: dict[str, Any]) -> None:
            data = json.dumps({"type": name, **payload})
            await self.send_chunk(writer, f"event: {name}\ndata: {data}\n\n".encode())

        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1} if reply.usage else {}}
        await event("message_start", {"message": start})
        await event("content_block_start",
                    {"index": 0, "content_block": {"type": "text", "text": ""}})
        await event("ping", {})
        for i, token in enumerate(tokens):
            if reply.error_after is not None and i >= reply.error_after:
                # The API's usual mid-stream failure: it is overloaded.
                await event("error", error_object(reply.error_message, 529))
                await self.end_stream(writer)
                return True
            if not await self.pace(writer, reply, i):
                return False
            await event("content_block_delta",
                        {"index": 0, "delta": {"type": "text_delta", "text": token}})
        await event("content_block_stop", {"index": 0})
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        final = {"output_tokens": usage["output_tokens"]} if reply.usage else {}
        await event("message_delta", {"delta": delta, "usage": final})
        await event("message_stop", {})
        await self.end_stream(writer)
        return True
