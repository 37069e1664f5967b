"""A real HTTP/1.1 server on 127.0.0.1 speaking the OpenAI moderation protocol
(`POST /v1/moderations`); it flags a text when it holds one of FLAGGED's words."""

from __future__ import annotations

import asyncio
from typing import Any

from fake_http import FakeUpstream, Reply

__all__ = ["FLAGGED", "FakeModeration", "Reply"]

FLAGGED = frozenset({"bomb", "poison", "kill"})


class FakeModeration(FakeUpstream):
    route = "/v1/moderations"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_body(self, message: str, status: int) -> dict[str, Any]:
        return {"error": {"message": message}}

    async def answer(
        self, writer: asyncio.StreamWriter, reply: Reply, body: dict[str, Any]
    ) -> bool:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        results = []
        for text in texts:
            hit = bool(FLAGGED & set(str(text).lower().split()))
            results.append({
                "flagged": hit,
                "categories": {"violence": hit, "harassment": False},
                "category_scores": {"violence": 0.97 if hit else 0.01, "harassment": 0.02},
            })
        return await self._json(writer, 200, {"id": "modr-1", "model": body["model"],
                                              "results": results})
