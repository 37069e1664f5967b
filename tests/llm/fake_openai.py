"""A real HTTP/1.1 server on 127.0.0.1 speaking the OpenAI chat-completions protocol.

It stands in for an upstream we do not own (vLLM, llama.cpp, Ollama, OpenAI);
fake_http.py has the serving, scripting and fault injection.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fake_http import FakeUpstream, Recorded, Reply, tokens_for

__all__ = ["FakeOpenAI", "Recorded", "Reply", "tokens_for"]


class FakeOpenAI(FakeUpstream):
    route = "/v1/chat/completions"

    def error_body(self, message: str, status: int) -> dict[str, Any]:
        return {"error": {"message": message, "type": "fake", "code": None}}

    async def answer(
        self, writer: asyncio.StreamWriter, reply: Reply, body: dict[str, Any]
    ) -> bool:
        tokens = tokens_for(body, reply)
        usage = {
            "prompt_tokens": len(str(body["messages"][-1]["content"]).split()),
            "completion_tokens": len(tokens),
            "total_tokens": 0,
        }
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(tokens)}
            return await self._json(writer, 200, {
                "id": "cmpl-1",
                "object": "chat.completion",
                "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            })
        return await self._stream(writer, reply, body, tokens, usage)

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        reply: Reply,
        body: dict[str, Any],
        tokens: list[str],
        usage: dict[str, int],
    ) -> bool:
        await self.start_stream(writer)

        async def event(payload: str) -> None:
            await self.send_chunk(writer, f"data: {payload}\n\n".encode())

        def chunk(delta: dict[str, str], finish: str | None) -> str:
            return json.dumps({
                "id": "cmpl-1", "object": "chat.completion.chunk", "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })

        await event(chunk({"role": "assistant"}, None))
        for i, token in enumerate(tokens):
            if not await self.pace(writer, reply, i):
                return False
            await event(chunk({"content": token}, None))
        await event(chunk({}, "length" if len(tokens) >= int(body.get("max_tokens") or 0) > 0
                          else "stop"))
        options = body.get("stream_options") or {}
        if reply.usage and options.get("include_usage"):
            await event(json.dumps({"id": "cmpl-1", "object": "chat.completion.chunk",
                                    "choices": [], "usage": usage}))
        await event("[DONE]")
        await self.end_stream(writer)
        return True
